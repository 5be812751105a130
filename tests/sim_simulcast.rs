//! Simulcast layer adaptation through a sans-IO `Room` in deterministic virtual time: a
//! str0m publisher sends VP8 on three RIDs (about 150 kbit/s, 500 kbit/s and 1.5 Mbit/s)
//! plus Opus; str0m subscribers behind capacity-limited downlinks must receive the layer
//! their link carries, step down when the link narrows, and climb back when it widens.
//! The layer a subscriber is on is read from the layer index every payload carries.
//!
//! Each test prints what it measured (packets per layer per second, estimates, switches,
//! freezes, the downlink's offered load and tail drops by kind of traffic; run with
//! `--nocapture`), collects every failed check before failing, and replays its scenario
//! to check that a second run is identical.

mod sim;

use std::time::{Duration, Instant};

use sim::link::{Fate, LinkConfig, LinkStats};
use sim::media::SIMULCAST;
use sim::peer::Traffic;
use sim::video::Video;
use sim::{check_intact, secs, trace, Failures, Sim};

const S: Duration = Duration::from_secs(1);
/// One-way delay of every link.
const DELAY: Duration = Duration::from_millis(20);
const WIDE_BPS: u64 = 5_000_000;
const NARROW_BPS: u64 = 600_000;
/// Layer indices (the publisher's RID order, lowest first).
const TOP: u8 = 2;
const MIDDLE: u8 = 1;
/// When the subscriber joins.
const SUBSCRIBE_AT: Duration = Duration::from_millis(500);

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

/// Packets per second of each layer over `[from, to)`.
fn rates(v: &Video, from: Instant, to: Instant) -> Vec<f64> {
    let secs = to.saturating_duration_since(from).as_secs_f64();
    v.per_layer(from, to)
        .iter()
        .map(|n| *n as f64 / secs)
        .collect()
}

fn print_run(sim: &Sim, peer: usize, end: Duration) {
    let sub = &sim.peers[peer];
    let v = Video::new(&sub.received.video, sim.t0);
    println!("{}: packets per layer per second:", sub.name);
    for (s, row) in v.per_second().iter().enumerate() {
        print!(" {s}s:{row:?}");
    }
    println!();
    println!(
        "{}: estimate per second (kbit/s): {:?}",
        sub.name,
        sim.estimates_per_second(peer, end)
    );
    let switches: Vec<String> = v
        .switches()
        .iter()
        .map(|s| format!("{}→{} at {}", s.from, s.to, secs(sim.elapsed(s.at))))
        .collect();
    println!("{}: switches: {switches:?}", sub.name);
    let freezes: Vec<String> = v
        .freezes(sim.at(end))
        .iter()
        .map(|f| {
            format!(
                "{} for {} ms",
                secs(sim.elapsed(f.from)),
                f.length.as_millis()
            )
        })
        .collect();
    println!("{}: freezes (> 100 ms): {freezes:?}", sub.name);
    let (holes, late) = v.gaps();
    let down = sub.downlink.stats();
    println!(
        "{}: {} video packets, {} frames complete, {holes} sequence numbers skipped at \
         arrival, {late} repaired; downlink: {} packets offered, {} tail-dropped",
        sub.name,
        sub.received.video.len(),
        v.frames_completed().len(),
        down.pushed,
        down.tail_dropped
    );
}

/// Every estimate for `peer` in `[from, to)`: "time:kbit/s".
fn print_estimates(sim: &Sim, peer: usize, from: Duration, to: Duration) {
    let list: Vec<String> = sim
        .estimates
        .iter()
        .filter(|e| e.peer == peer && e.at >= sim.at(from) && e.at < sim.at(to))
        .map(|e| format!("{:.2}:{}", sim.elapsed(e.at).as_secs_f64(), e.bps / 1000))
        .collect();
    println!(
        "{}: estimates {}-{} (s:kbit/s): {}",
        sim.peers[peer].name,
        secs(from),
        secs(to),
        list.join(" ")
    );
}

/// Per second in `[from, to)` of peer `peer`'s downlink: kbit/s offered by kind of
/// traffic, and packets tail-dropped by kind.
fn print_downlink(sim: &Sim, peer: usize, from: Duration, to: Duration) {
    let p = &sim.peers[peer];
    let kinds = [
        Traffic::Video,
        Traffic::VideoRtx,
        Traffic::Audio,
        Traffic::OtherRtp,
        Traffic::NotRtp,
    ];
    println!(
        "{} downlink per second: offered kbit/s {kinds:?} | tail-dropped packets",
        p.name
    );
    for sec in from.as_secs()..to.as_secs() {
        let (a, b) = (sim.at(S * sec as u32), sim.at(S * (sec as u32 + 1)));
        let mut bits = [0u64; 5];
        let mut drops = [0u64; 5];
        for smp in p
            .downlink
            .samples()
            .iter()
            .filter(|x| x.at >= a && x.at < b)
        {
            let k = kinds
                .iter()
                .position(|k| *k == p.traffic(smp))
                .expect("kind");
            bits[k] += smp.len as u64 * 8;
            if smp.fate == Fate::TailDropped {
                drops[k] += 1;
            }
        }
        let kbps: Vec<u64> = bits.iter().map(|b| b / 1000).collect();
        println!(
            "  {sec}s: {kbps:?} total {} | {drops:?}",
            bits.iter().sum::<u64>() / 1000
        );
    }
}

/// Tail drops of media packets (VP8, Opus; not retransmissions or padding) on peer
/// `peer`'s downlink in `[from, to)`: (dropped, offered).
fn media_drops(sim: &Sim, peer: usize, from: Instant, to: Instant) -> (usize, usize) {
    let p = &sim.peers[peer];
    let media: Vec<_> = p
        .downlink
        .samples()
        .iter()
        .filter(|x| x.at >= from && x.at < to)
        .filter(|x| matches!(p.traffic(x), Traffic::Video | Traffic::Audio))
        .collect();
    let dropped = media.iter().filter(|x| x.fate == Fate::TailDropped).count();
    (dropped, media.len())
}

/// Everything a run produced that must replay identically, times relative to the start:
/// per subscriber (arrival, payload counter, layer) of every video packet and the
/// estimates; the publisher's keyframe requests.
#[derive(Debug, PartialEq)]
struct Replay {
    video: Vec<Vec<(Duration, u64, u8)>>,
    estimates: Vec<(Duration, usize, u64)>,
    keyframe_requests: Vec<(Duration, Option<u8>)>,
}

fn replay(sim: &Sim) -> Replay {
    Replay {
        video: sim.peers[1..]
            .iter()
            .map(|p| {
                p.received
                    .video
                    .iter()
                    .map(|g| (sim.elapsed(g.at), g.counter, g.layer))
                    .collect()
            })
            .collect(),
        estimates: sim
            .estimates
            .iter()
            .map(|e| (sim.elapsed(e.at), e.peer, e.bps))
            .collect(),
        keyframe_requests: sim.peers[0]
            .sent
            .layer_keyframe_requests
            .iter()
            .map(|(t, l)| (sim.elapsed(*t), *l))
            .collect(),
    }
}

// ---- downlink drop and recovery ----

const DROP_AT: Duration = Duration::from_secs(10);
const RECOVER_AT: Duration = Duration::from_secs(30);
const END: Duration = Duration::from_secs(60);
/// How long the subscriber may take to step down after the drop.
const DOWN_WITHIN: Duration = Duration::from_secs(3);
/// How long it may take to climb back to the top layer after the recovery.
const UP_WITHIN: Duration = Duration::from_secs(15);
/// At most this share of the packets offered to the narrow link after the first
/// [`DOWN_WITHIN`] may be tail-dropped.
const MAX_SUSTAINED_DROP: f64 = 0.01;

struct DropRun {
    sim: Sim,
    /// Downlink counters at the drop + [`DOWN_WITHIN`] and at the recovery.
    settled: LinkStats,
    recovered: LinkStats,
}

/// The simulcast publisher, and at [`SUBSCRIBE_AT`] a viewer on a wide recorded downlink:
/// (the simulation, the viewer's index).
fn publisher_and_viewer() -> (Sim, usize) {
    let mut sim = Sim::new();
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(SUBSCRIBE_AT));
    let viewer = sim.subscribe_limited("viewer", link(), WIDE_BPS);
    sim.peers[viewer].downlink.set_recording(true);
    (sim, viewer)
}

/// Set `viewer`'s downlink capacity to `bps` bit/s from now on.
fn set_downlink(sim: &mut Sim, viewer: usize, bps: u64) {
    let now = sim.now;
    sim.peers[viewer].downlink.set_capacity(now, Some(bps));
}

fn drop_and_recovery() -> DropRun {
    let _capture = trace::capture();
    let (mut sim, viewer) = publisher_and_viewer();
    sim.run_until(sim.at(DROP_AT));
    set_downlink(&mut sim, viewer, NARROW_BPS);
    sim.run_until(sim.at(DROP_AT + DOWN_WITHIN));
    let settled = sim.peers[viewer].downlink.stats();
    sim.run_until(sim.at(RECOVER_AT));
    let recovered = sim.peers[viewer].downlink.stats();
    set_downlink(&mut sim, viewer, WIDE_BPS);
    sim.run_until(sim.at(END));
    DropRun {
        sim,
        settled,
        recovered,
    }
}

#[test]
fn downlink_drop_and_recovery() {
    let DropRun {
        sim,
        settled,
        recovered,
    } = drop_and_recovery();
    let viewer = 1;
    print_run(&sim, viewer, END);
    print_downlink(&sim, viewer, DROP_AT - S, RECOVER_AT + 8 * S);
    print_estimates(&sim, viewer, DROP_AT - S, RECOVER_AT + UP_WITHIN);
    let requests: Vec<String> = sim.peers[0]
        .sent
        .layer_keyframe_requests
        .iter()
        .map(|(t, l)| format!("{:.3}:{l:?}", sim.elapsed(*t).as_secs_f64()))
        .collect();
    println!(
        "publisher: keyframe requests (s:layer): {}",
        requests.join(" ")
    );
    check_intact(&sim, viewer);
    let sub = &sim.peers[viewer];
    let v = Video::new(&sub.received.video, sim.t0);
    let (drop_at, recover_at, end) = (sim.at(DROP_AT), sim.at(RECOVER_AT), sim.at(END));
    let mut failed = Failures::default();

    // Before the drop: on the top layer for at least the last 2 s.
    let top_from = v.settled_from(sim.t0, drop_at, |l| l == TOP);
    println!(
        "before the drop: on the top layer from {:?}",
        top_from.map(|t| secs(sim.elapsed(t)))
    );
    failed.check(
        top_from.is_some_and(|t| t + 2 * S <= drop_at),
        format!(
            "not on the top layer for the 2 s before the drop (from {:?})",
            top_from.map(|t| secs(sim.elapsed(t)))
        ),
    );

    // After the drop: on a layer that fits within DOWN_WITHIN, for the rest of the window.
    let down_after = v
        .settled_from(drop_at, recover_at, |l| l <= MIDDLE)
        .map(|t| t.saturating_duration_since(drop_at));
    println!(
        "adapt-down: on layer ≤ {MIDDLE} from {:?} after the drop",
        down_after.map(secs)
    );
    failed.check(
        down_after.is_some_and(|d| d <= DOWN_WITHIN),
        format!(
            "adapt-down: on layer ≤ {MIDDLE} only {:?} after the drop (limit {})",
            down_after.map(secs),
            secs(DOWN_WITHIN)
        ),
    );

    // Sustained loss: tail drops among everything offered to the narrow link after the
    // first DOWN_WITHIN.
    let offered = recovered.pushed - settled.pushed;
    let dropped = recovered.tail_dropped - settled.tail_dropped;
    let share = dropped as f64 / offered.max(1) as f64;
    let (media_dropped, media_offered) =
        media_drops(&sim, viewer, sim.at(DROP_AT + DOWN_WITHIN), recover_at);
    println!(
        "narrow link after the first {}: {dropped} of {offered} packets tail-dropped \
         ({:.2} %); media (VP8, Opus) {media_dropped} of {media_offered}",
        secs(DOWN_WITHIN),
        share * 100.0
    );
    failed.check(
        share < MAX_SUSTAINED_DROP,
        format!(
            "sustained loss on the narrow link: {dropped} of {offered} packets ({:.2} %) \
             tail-dropped from {} to {}, {media_dropped} of them media (limit {:.0} %)",
            share * 100.0,
            secs(DROP_AT + DOWN_WITHIN),
            secs(RECOVER_AT),
            MAX_SUSTAINED_DROP * 100.0
        ),
    );

    // After the recovery: back on the top layer within UP_WITHIN, until the end.
    let up_after = v
        .settled_from(recover_at, end, |l| l == TOP)
        .map(|t| t.saturating_duration_since(recover_at));
    println!(
        "adapt-up: on the top layer from {:?} after the recovery",
        up_after.map(secs)
    );
    failed.check(
        up_after.is_some_and(|d| d <= UP_WITHIN),
        format!(
            "adapt-up: on the top layer only {:?} after the recovery (limit {})",
            up_after.map(secs),
            secs(UP_WITHIN)
        ),
    );
    for (name, from, to) in [
        ("wide (5-10 s)", sim.at(5 * S), drop_at),
        (
            "narrow (13-30 s)",
            sim.at(DROP_AT + DOWN_WITHIN),
            recover_at,
        ),
        ("wide again (50-60 s)", sim.at(50 * S), end),
    ] {
        println!("packets/s per layer, {name}: {:.1?}", rates(&v, from, to));
    }

    let again = drop_and_recovery();
    failed.check(
        replay(&sim) == replay(&again.sim),
        "the scenario did not replay identically".into(),
    );
    failed.finish();
}

// ---- two subscribers, two links ----

const TWO_END: Duration = Duration::from_secs(30);
/// The window in which the layers are checked: the last 10 s.
const TWO_FROM: Duration = Duration::from_secs(20);

fn two_subscribers() -> Sim {
    let _capture = trace::capture();
    let mut sim = Sim::new();
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(SUBSCRIBE_AT));
    for (name, bps) in [("wide", WIDE_BPS), ("narrow", NARROW_BPS)] {
        let index = sim.subscribe_limited(name, link(), bps);
        sim.peers[index].downlink.set_recording(true);
    }
    sim.run_until(sim.at(TWO_END));
    sim
}

#[test]
fn two_subscribers_get_different_layers() {
    let sim = two_subscribers();
    let (from, end) = (sim.at(TWO_FROM), sim.at(TWO_END));
    for peer in [1, 2] {
        print_run(&sim, peer, TWO_END);
        check_intact(&sim, peer);
        let sub = &sim.peers[peer];
        let v = Video::new(&sub.received.video, sim.t0);
        println!(
            "{}: packets/s per layer in the last 10 s: {:.1?}",
            sub.name,
            rates(&v, from, end)
        );
    }
    let wide = Video::new(&sim.peers[1].received.video, sim.t0);
    let narrow = Video::new(&sim.peers[2].received.video, sim.t0);
    let wide_top = wide.settled_from(sim.t0, end, |l| l == TOP);
    println!(
        "wide: on the top layer from {:?}",
        wide_top.map(|t| secs(sim.elapsed(t)))
    );
    assert!(
        wide_top.is_some_and(|t| t <= from),
        "wide: not on the top layer throughout the last 10 s: {:?}",
        wide.per_layer(from, end)
    );
    let narrow_low = narrow.settled_from(sim.t0, end, |l| l <= MIDDLE);
    println!(
        "narrow: on layer ≤ {MIDDLE} from {:?}",
        narrow_low.map(|t| secs(sim.elapsed(t)))
    );
    assert!(
        narrow_low.is_some_and(|t| t <= from),
        "narrow: not on a lower layer throughout the last 10 s: {:?}",
        narrow.per_layer(from, end)
    );
    let narrow_video: u64 = narrow.per_layer(from, end).iter().sum();
    assert!(
        narrow_video >= 10 * 25,
        "narrow: only {narrow_video} video packets in the last 10 s"
    );

    assert!(
        replay(&sim) == replay(&two_subscribers()),
        "the scenario did not replay identically"
    );
}

// ---- a link narrower than the lowest layer ----

/// Narrower than the lowest layer (q, about 150 kbit/s at 30 fps; a quarter of its
/// frames with keyframes still about 50 kbit/s) next to audio (about 55 kbit/s).
const STARVED_BPS: u64 = 70_000;
const STARVE_AT: Duration = Duration::from_secs(6);
const WIDEN_AT: Duration = Duration::from_secs(26);
const STARVE_END: Duration = Duration::from_secs(40);

fn starved_link() -> Sim {
    let _capture = trace::capture();
    let (mut sim, viewer) = publisher_and_viewer();
    sim.run_until(sim.at(STARVE_AT));
    set_downlink(&mut sim, viewer, STARVED_BPS);
    sim.run_until(sim.at(WIDEN_AT));
    set_downlink(&mut sim, viewer, WIDE_BPS);
    sim.run_until(sim.at(STARVE_END));
    sim
}

/// A TWCC viewer whose link cannot carry even the lowest layer: the tail drops are
/// congestion loss in its receiver reports, so after the grace period its video is
/// paused (a low estimate alone would not, `bwe::pause`) and its audio gets through; once
/// the link widens, str0m's probing finds room and the video comes back.
#[test]
fn a_link_below_the_lowest_layer_pauses_video_until_it_widens() {
    let sim = starved_link();
    let viewer = 1;
    print_run(&sim, viewer, STARVE_END);
    print_downlink(&sim, viewer, STARVE_AT - S, WIDEN_AT + 4 * S);
    check_intact(&sim, viewer);
    let sub = &sim.peers[viewer];
    let v = Video::new(&sub.received.video, sim.t0);
    // The last 8 s of the narrow phase: video paused (a keyframe or a trial at most).
    let (from, to) = (sim.at(WIDEN_AT - 8 * S), sim.at(WIDEN_AT));
    let video: u64 = v.per_layer(from, to).iter().sum();
    let audio = sub
        .received
        .audio
        .iter()
        .filter(|g| g.at >= from && g.at < to)
        .count();
    println!("narrow phase, last 8 s: {video} video packets, {audio} audio packets");
    assert!(video <= 8 * 3, "video not paused: {video} packets in 8 s");
    assert!(audio >= 8 * 40, "audio starved: {audio} packets in 8 s");
    // Back within 10 s of the link widening, and flowing at full rate by the end.
    let back = v.settled_from(sim.at(WIDEN_AT), sim.at(STARVE_END), |_| true);
    println!("video back from {:?}", back.map(|t| secs(sim.elapsed(t))));
    let last = v.per_layer(sim.at(STARVE_END - 4 * S), sim.at(STARVE_END));
    assert!(
        last.iter().sum::<u64>() >= 4 * 25,
        "video did not come back: {last:?} packets per layer in the last 4 s"
    );
    assert!(
        replay(&sim) == replay(&starved_link()),
        "the scenario did not replay identically"
    );
}
