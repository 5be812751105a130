//! A viewer that estimates its own downlink and sends REMB, with no transport-wide
//! feedback (aiortc, older libwebrtc, many embedded stacks), in the deterministic
//! virtual-time simulation (`tests/sim`, the receiver model in `tests/sim/remb.rs`). The
//! publisher sends one VP8 stream of about 1.2 Mbit/s plus Opus.
//!
//! * On a clean link whose receiver's delay detector fires spuriously every other second,
//!   the REMB estimate hovers at 0.85–0.92× what arrives, below what the only layer needs.
//!   The viewer must keep its video for 5 minutes of virtual time (frames in every second),
//!   and the server must never pause it: a receive-side estimate cannot grow for media
//!   that is not sent, so a pause would be for good.
//! * Behind a real bottleneck (500 kbit/s, tail drops) the server may pause the video, but
//!   must bring it back once the bottleneck lifts.
//!
//! Both also read `switchboard_bandwidth_estimates_total`: one `remb` estimate per REMB
//! sent, no other kind. Each test prints what it measured (run with `--nocapture`).

mod sim;

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sim::link::LinkConfig;
use sim::media::SINGLE_1200K;
use sim::peer::Feedback;
use sim::remb::RembReceiver;
use sim::video::Video;
use sim::Sim;

const S: Duration = Duration::from_secs(1);
const DELAY: Duration = Duration::from_millis(20);
const WIDE_BPS: u64 = 10_000_000;
/// A second "has video" with at least this many frames completed (of 30).
const MIN_FPS: u32 = 20;

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

/// A room whose meters record into a Prometheus recorder of its own, the publisher at 0 s
/// and a REMB-only viewer at 0.5 s on a [`WIDE_BPS`] downlink (limited once connected,
/// as in `sim_fallback_bwe.rs`, so that runs replay).
fn start() -> (Sim, usize, PrometheusHandle) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut sim = metrics::with_local_recorder(&recorder, Sim::new);
    sim.join_publisher("publisher", &[SINGLE_1200K], link(), link());
    sim.run_until(sim.at(S / 2));
    let viewer = sim.join_subscriber("viewer", Feedback::Remb, link(), link());
    let at = sim.run_until_connected(viewer, sim.now + 5 * S);
    sim.peers[viewer].downlink.set_capacity(at, Some(WIDE_BPS));
    (sim, viewer, handle)
}

/// Runs whole seconds up to `end`; at each, `before` may change the links, then the
/// viewer's REMB receiver reports. Stops half a second after the last report.
fn run(sim: &mut Sim, remb: &mut RembReceiver, end: u32, mut before: impl FnMut(&mut Sim, u32)) {
    for s in 1..=end {
        sim.run_until(sim.at(S * s));
        before(sim, s);
        remb.tick(sim);
    }
    // Let the last report reach the server.
    sim.run_until(sim.at(S * end + S / 2));
}

/// Frames completed by `peer` in each whole second `[0, end)`.
fn frames_per_second(sim: &Sim, peer: usize, end: u32) -> Vec<u32> {
    let mut out = vec![0; end as usize];
    let v = Video::new(&sim.peers[peer].received.video, sim.t0);
    for t in v.frames_completed() {
        let s = sim.elapsed(t).as_secs() as usize;
        if let Some(n) = out.get_mut(s) {
            *n += 1;
        }
    }
    out
}

/// The value of the Prometheus sample `name{labels}` (0 if absent).
fn sample(handle: &PrometheusHandle, name_and_labels: &str) -> u64 {
    let text = handle.render();
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// `switchboard_bandwidth_estimates_total` counted one `remb` estimate per REMB sent, and
/// nothing of another kind.
fn check_estimate_counter(handle: &PrometheusHandle, remb: &RembReceiver) {
    let name = "switchboard_bandwidth_estimates_total";
    let by_kind =
        ["twcc", "remb", "loss"].map(|k| sample(handle, &format!("{name}{{kind=\"{k}\"}}")));
    println!(
        "{name} twcc/remb/loss: {by_kind:?}; REMB sent: {}",
        remb.sent.len()
    );
    assert_eq!(by_kind, [0, remb.sent.len() as u64, 0]);
}

fn print_run(sim: &Sim, viewer: usize, remb: &RembReceiver, fps: &[u32]) {
    let fps: Vec<String> = fps.iter().map(u32::to_string).collect();
    println!("frames per second: {}", fps.join(" "));
    let sent: Vec<String> = (remb.sent.iter())
        .map(|(t, b)| format!("{t:.0}:{}", b / 1000))
        .collect();
    println!("REMB sent (s:kbit/s): {}", sent.join(" "));
    println!("downlink: {:?}", sim.peers[viewer].downlink.stats());
}

#[test]
fn remb_viewer_of_one_layer_keeps_its_video_for_five_minutes() {
    const END: u32 = 300;
    let (mut sim, viewer, handle) = start();
    let mut remb = RembReceiver::new(viewer, Some(2));
    run(&mut sim, &mut remb, END, |_, _| {});
    let fps = frames_per_second(&sim, viewer, END);
    print_run(&sim, viewer, &remb, &fps);

    let pauses = sample(&handle, "switchboard_track_pauses_total");
    let paused = sample(
        &handle,
        "switchboard_packets_dropped_total{reason=\"paused\"}",
    );
    // The estimate the server saw: below what the stream needs most of the time.
    let layer_bps = SINGLE_1200K.delta_bps(30);
    let below = remb.sent.iter().filter(|(_, b)| *b < layer_bps).count();
    let with_video = fps[1..].iter().filter(|n| **n >= MIN_FPS).count();
    let last = fps.iter().rposition(|n| *n >= MIN_FPS).unwrap_or(0);
    println!(
        "REMB below the layer's {} kbit/s in {below} of {} reports; video (≥ {MIN_FPS} frames) \
         in {with_video} of {} seconds, until {last} s; track pauses {pauses}, packets dropped \
         as paused {paused}",
        layer_bps / 1000,
        remb.sent.len(),
        END - 1
    );
    assert!(
        below * 2 > remb.sent.len(),
        "the model should keep the estimate below the layer"
    );
    for (s, n) in fps.iter().enumerate().skip(2) {
        assert!(*n >= MIN_FPS, "only {n} frames in second {s}");
    }
    assert_eq!(pauses, 0, "paused without congestion");
    check_estimate_counter(&handle, &remb);
}

#[test]
fn remb_viewer_behind_a_bottleneck_recovers_after_it_lifts() {
    const ONSET: u32 = 20;
    const LIFT: u32 = 60;
    const END: u32 = 150;
    const CAP_BPS: u64 = 500_000;
    /// Back on video, for good, at most this long after the lift: the longest back-off
    /// between trials (32 s) and a trial.
    const RECOVER: u32 = 40;
    let (mut sim, viewer, handle) = start();
    let mut remb = RembReceiver::new(viewer, None);
    run(&mut sim, &mut remb, END, |sim, s| {
        let now = sim.now;
        let down = &mut sim.peers[viewer].downlink;
        if s == ONSET {
            down.set_capacity(now, Some(CAP_BPS));
        } else if s == LIFT {
            down.set_capacity(now, Some(WIDE_BPS));
        }
    });
    let fps = frames_per_second(&sim, viewer, END);
    print_run(&sim, viewer, &remb, &fps);

    let pauses = sample(&handle, "switchboard_track_pauses_total");
    let bad = &fps[ONSET as usize..LIFT as usize];
    let dark = bad.iter().filter(|n| **n == 0).count();
    // From when on every second has video again.
    let back = (LIFT..END)
        .find(|&s| fps[s as usize..].iter().all(|n| *n >= MIN_FPS))
        .map(|s| s - LIFT);
    println!(
        "bottleneck {} kbit/s from {ONSET} s to {LIFT} s: {dark} seconds without a frame, \
         track pauses {pauses}; video in every second from {} after the lift",
        CAP_BPS / 1000,
        back.map_or("never".into(), |d| format!("{d} s"))
    );
    for (s, n) in fps.iter().enumerate().take(ONSET as usize).skip(2) {
        assert!(
            *n >= MIN_FPS,
            "only {n} frames in second {s} before the bottleneck"
        );
    }
    assert!(pauses >= 1, "congestion with loss never paused the video");
    assert!(
        back.is_some_and(|d| d <= RECOVER),
        "no video for good within {RECOVER} s of the lift"
    );
    check_estimate_counter(&handle, &remb);
}
