//! End-to-end proof of the server's downlink estimate fallbacks, in the deterministic
//! virtual-time simulation (`tests/sim`): a str0m publisher sends VP8 simulcast (about
//! 150 kbit/s, 500 kbit/s and 1.5 Mbit/s) plus Opus; the subscriber does NOT negotiate
//! transport-cc, so the server's TWCC/GCC estimator has nothing to work with.
//!
//! * Receiver-report loss (`src/bwe/loss.rs`): a subscriber that offers neither
//!   transport-cc nor goog-remb. Its downlink is wide, then capped far below the top layer
//!   (the bottleneck queue tail-drops), then wide again. Every estimate the forwarder gets
//!   must be a step of the loss controller (×1.05, hold, or a back-off); the estimate must
//!   fall under congestion, the layer must step down to the one the link carries without
//!   ever pausing video, and climb back to the top layer once the link is wide again. A
//!   second run does the same with 25 % random loss instead of a cap.
//! * REMB: a subscriber that offers goog-remb (no transport-cc) and sends REMB reports
//!   from its str0m receive stream (`StreamRx::request_remb`). The server's estimate must be
//!   exactly the reported value, and the layer must follow it down and up.
//!
//! Without the fallbacks the server gets no estimate at all for these subscribers and
//! forwards the top layer forever, so every "steps down" check fails. Each test prints
//! what it measured (run with `--nocapture`); the congestion scenario replays to check
//! that a second run is identical.

mod sim;

use std::time::{Duration, Instant};

use sim::link::LinkConfig;
use sim::media::SIMULCAST;
use sim::peer::{Feedback, Peer, Role};
use sim::video::{Freeze, Video};
use sim::{trace, Sim};
use switchboard::bwe::loss::{MAX_BPS, MIN_BPS};
use switchboard::ids::SessionKind;

const S: Duration = Duration::from_secs(1);
const DELAY: Duration = Duration::from_millis(20);
const WIDE_BPS: u64 = 5_000_000;
/// Below the middle layer plus audio: only the lowest layer fits.
const CAP_BPS: u64 = 400_000;
const TOP: u8 = 2;
const LOWEST: u8 = 0;
/// The link goes bad at ONSET and recovers at RECOVER; the run ends at END.
const ONSET: Duration = Duration::from_secs(15);
const RECOVER: Duration = Duration::from_secs(45);
const END: Duration = Duration::from_secs(105);

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// Publisher at 0 s, subscriber with `feedback` at 0.5 s on a [`WIDE_BPS`] downlink (the
/// handshake crosses it unlimited, as in `sim_simulcast.rs`, so that runs replay).
fn start(feedback: Feedback) -> (Sim, usize) {
    let mut sim = Sim::new();
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(S / 2));
    let viewer = sim.join_subscriber("viewer", feedback, link(), link());
    let at = sim.run_until_connected(viewer, sim.now + 5 * S);
    sim.peers[viewer].downlink.set_capacity(at, Some(WIDE_BPS));
    (sim, viewer)
}

/// The first in-order video packet in `[from, to)` whose layer satisfies `ok`, as a time
/// after `from`.
fn first(v: &Video, from: Instant, to: Instant, ok: impl Fn(u8) -> bool) -> Option<Duration> {
    v.in_order()
        .find(|g| g.at >= from && g.at < to && ok(g.layer))
        .map(|g| g.at - from)
}

/// Share of `[from, to)`, sampled every 100 ms, during which the last in-order video
/// packet was on `layer`.
fn share_on(v: &Video, from: Instant, to: Instant, layer: u8) -> f64 {
    let n = ((to - from).as_millis() / 100) as u32;
    let on = (0..n).filter(|i| v.layer_at(from + Duration::from_millis(100) * *i) == Some(layer));
    on.count() as f64 / f64::from(n.max(1))
}

/// The estimates for `peer` in `[from, to)`, bit/s.
fn estimates(sim: &Sim, peer: usize, from: Duration, to: Duration) -> Vec<u64> {
    let (a, b) = (sim.at(from), sim.at(to));
    let e = sim.estimates.iter().filter(|e| e.peer == peer);
    e.filter(|e| e.at >= a && e.at < b).map(|e| e.bps).collect()
}

fn print_run(sim: &Sim, peer: usize) {
    let v = Video::new(&sim.peers[peer].received.video, sim.t0);
    let rows: Vec<String> = v.per_second().iter().map(|r| format!("{r:?}")).collect();
    println!("video packets per layer per second: {}", rows.join(" "));
    let est: Vec<String> = (sim.estimates.iter().filter(|e| e.peer == peer))
        .map(|e| format!("{:.1}:{}", sim.elapsed(e.at).as_secs_f64(), e.bps / 1000))
        .collect();
    println!("estimates (s:kbit/s): {}", est.join(" "));
    let at = |f: &Freeze| sim.elapsed(f.from).as_secs_f64();
    let freezes: Vec<String> = (v.freezes(sim.now).iter())
        .map(|f| format!("{:.2}:{}ms", at(f), f.length.as_millis()))
        .collect();
    println!("freezes (s:length): {}", freezes.join(" "));
    println!("downlink: {:?}", sim.peers[peer].downlink.stats());
}

#[test]
fn offers_without_transport_cc() {
    let mut sim = Sim::new();
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    let all = [Feedback::Default, Feedback::ReportsOnly, Feedback::Remb];
    for (i, feedback) in all.into_iter().enumerate() {
        let addr = format!("10.0.0.{}:5000", 10 + i).parse().expect("addr");
        let (sub, links) = (Role::Subscriber, (link(), link()));
        let (_, offer, _) = Peer::offer_with(sim.now, "v", sub, &[], addr, links, feedback);
        let room = &mut sim.room;
        let answer = (room.handle_join(
            sim.now,
            SessionKind::Subscriber,
            &offer,
            &sim::join_options("v"),
        ))
        .expect("join")
        .answer;
        let twcc = |sdp: &str| sdp.contains("transport-cc") || sdp.contains("transport-wide-cc");
        println!(
            "{feedback:?}: offer transport-cc {}, goog-remb {}; answer transport-cc {}",
            twcc(&offer),
            offer.contains("goog-remb"),
            twcc(&answer)
        );
        // The check itself can see transport-cc: str0m offers it by default.
        let want_twcc = feedback == Feedback::Default;
        assert_eq!(twcc(&offer), want_twcc, "{feedback:?} offer:\n{offer}");
        assert_eq!(twcc(&answer), want_twcc, "{feedback:?} answer:\n{answer}");
        let want_remb = feedback != Feedback::ReportsOnly;
        assert_eq!(
            offer.contains("goog-remb"),
            want_remb,
            "{feedback:?}:\n{offer}"
        );
    }
}

/// How the downlink goes bad between [`ONSET`] and [`RECOVER`].
#[derive(Debug, Clone, Copy)]
enum Impairment {
    /// Capacity limited to [`CAP_BPS`]: congestion, tail drops.
    Cap,
    /// Random loss of this share of packets; capacity stays wide.
    Loss(f64),
}

fn reports_only(impairment: Impairment) -> Sim {
    let _capture = trace::capture();
    let (mut sim, viewer) = start(Feedback::ReportsOnly);
    sim.run_until(sim.at(ONSET));
    let (now, down) = (sim.now, &mut sim.peers[viewer].downlink);
    match impairment {
        Impairment::Cap => down.set_capacity(now, Some(CAP_BPS)),
        Impairment::Loss(p) => down.set_loss(p),
    }
    sim.run_until(sim.at(RECOVER));
    let (now, down) = (sim.now, &mut sim.peers[viewer].downlink);
    down.set_capacity(now, Some(WIDE_BPS));
    down.set_loss(0.0);
    sim.run_until(sim.at(END));
    sim
}

/// Limits for one impairment; every duration is from the event it follows.
struct Limits {
    /// Off the top layer after the onset.
    leave_top: Duration,
    /// On the layer the bad link carries (and what that layer is).
    reach: (u8, Duration),
    /// Share of the bad phase, from `reach` on, spent on that layer.
    share: f64,
    /// The lowest estimate in the bad phase, at most this share of the one at the onset.
    fall: f64,
    /// Back on the top layer after the recovery, for good.
    climb: Duration,
}

/// Checks common to both impairments; prints what they measure.
fn check_reports_only(sim: &Sim, lim: &Limits) {
    let viewer = 1;
    print_run(sim, viewer);
    let r = &sim.peers[viewer].received;
    assert!(r.corrupt.is_empty() && r.unknown == 0, "bad payloads");
    let v = Video::new(&r.video, sim.t0);
    let (onset, recover, end) = (sim.at(ONSET), sim.at(RECOVER), sim.at(END));

    // Estimates exist and every one is a step of the receiver-report loss controller:
    // at most ×1.05 below 2 % loss (less where growth meets its cap, 1.5× what is sent),
    // ×1 between 2 and 10 %, ×(1 − loss/2) ≤ 0.95 above, each clamped to
    // [MIN_BPS, MAX_BPS]. TWCC/GCC or REMB estimates would not fit.
    let all = estimates(sim, viewer, Duration::ZERO, END);
    assert!(all.len() >= 60, "only {} estimates in {END:?}", all.len());
    for w in all.windows(2) {
        let r = w[1] as f64 / w[0] as f64;
        let clamped = (w[1] == MAX_BPS && r > 1.0) || (w[1] == MIN_BPS && r < 1.0);
        let ok = (1.0..1.0501).contains(&r) || r <= 0.951 || clamped;
        assert!(ok, "estimate step {} → {} bit/s (×{r:.4})", w[0], w[1]);
    }
    // Growth is capped by what is sent: never far above it (≤ 1.5× the top layer's
    // rate plus audio, with margin), unlike an uncapped controller that climbs to 20 Mbit/s.
    let top = all.iter().copied().max().unwrap_or(0);
    assert!(top < 4_000_000, "the estimate ran away to {top} bit/s");

    // Before the onset: on the top layer for the last 2 s.
    let top_from = v.settled_from(sim.t0, onset, |l| l == TOP);
    let on_top = top_from.is_some_and(|t| t + 2 * S <= onset);
    assert!(on_top, "not on the top layer before the onset");

    // The estimate falls in the bad phase.
    let before = estimates(sim, viewer, Duration::ZERO, ONSET);
    let at_onset = *before.last().expect("estimates before the onset");
    let bad = estimates(sim, viewer, ONSET, RECOVER);
    let low = *bad.iter().min().expect("estimates in the bad phase");
    // The receiver-reported loss each back-off implies: ×(1 − loss/2).
    let implied: Vec<String> = (bad.windows(2).map(|w| w[1] as f64 / w[0] as f64))
        .filter(|r| *r <= 0.951)
        .map(|r| format!("{:.0}", 200.0 * (1.0 - r)))
        .collect();
    let holds = bad.windows(2).filter(|w| w[0] == w[1]).count();
    println!(
        "bad phase: {} estimates, {holds} holds (2-10 % loss), back-offs implying loss (%): {}",
        bad.len(),
        implied.join(" ")
    );
    println!(
        "estimate at the onset {} kbit/s, lowest in the bad phase {} kbit/s ({:.0} %), \
         at the recovery {} kbit/s",
        at_onset / 1000,
        low / 1000,
        100.0 * low as f64 / at_onset as f64,
        bad.last().expect("estimate") / 1000
    );
    assert!(
        (low as f64) <= lim.fall * at_onset as f64,
        "the estimate only fell from {at_onset} to {low} bit/s"
    );

    // Down: off the top layer, then on the layer the link carries.
    let left = first(&v, onset, recover, |l| l < TOP);
    let (layer, within) = lim.reach;
    let reached = first(&v, onset, recover, |l| l == layer);
    println!(
        "adapt-down: off the top layer {} after the onset, on layer {layer} {}",
        secs(left),
        secs(reached)
    );
    assert!(left.is_some_and(|d| d <= lim.leave_top), "stayed on top");
    let ok = reached.is_some_and(|d| d <= within);
    assert!(ok, "not on layer {layer} in time");

    // The bad phase after that: mostly on that layer, never back on top, never paused.
    let from = onset + within;
    let share = share_on(&v, from, recover, layer);
    let top = first(&v, from, recover, |l| l == TOP);
    let per_second = v.per_second();
    let thinnest = (ONSET.as_secs()..RECOVER.as_secs())
        .map(|s| per_second[s as usize].iter().sum::<u64>())
        .min()
        .unwrap_or(0);
    println!(
        "bad phase from {}: {:.0} % of the time on layer {layer}, back on top {}; \
         fewest video packets in one second {thinnest}",
        secs(Some(ONSET + within)),
        share * 100.0,
        secs(top)
    );
    assert!(share >= lim.share, "only {share:.2} on layer {layer}");
    assert!(top.is_none(), "back on the top layer while the link is bad");
    assert!(thinnest >= 25, "video paused: {thinnest} packets/s");

    // Up: on the top layer within the limit, until the end.
    let up = v.settled_from(recover, end, |l| l == TOP);
    let up = up.map(|t| t - recover);
    println!(
        "adapt-up: on the top layer for good {} after the recovery",
        secs(up)
    );
    assert!(up.is_some_and(|d| d <= lim.climb), "no climb in time");
}

#[test]
fn receiver_reports_follow_congestion() {
    let sim = reports_only(Impairment::Cap);
    check_reports_only(
        &sim,
        &Limits {
            leave_top: 8 * S,
            reach: (LOWEST, 10 * S),
            share: 0.75,
            fall: 0.25,
            climb: 45 * S,
        },
    );
    let replay = |s: &Sim| {
        let v = &s.peers[1].received.video;
        let video: Vec<_> = v.iter().map(|g| (s.elapsed(g.at), g.counter)).collect();
        let est = s.estimates.iter().map(|e| (s.elapsed(e.at), e.bps));
        let est: Vec<_> = est.collect();
        (video, est)
    };
    let again = reports_only(Impairment::Cap);
    assert!(replay(&sim) == replay(&again), "did not replay");
}

/// Random loss is not congestion, and the subscriber's receiver reports show much less of
/// it than the link drops (the back-offs imply 10-19 % against 25 %, with many 2-10 %
/// holds; NACK/RTX repairs count as received), so the estimate falls slowly and the layer
/// leaves the top late. The limits are loose.
#[test]
fn receiver_reports_follow_random_loss() {
    let sim = reports_only(Impairment::Loss(0.25));
    check_reports_only(
        &sim,
        &Limits {
            leave_top: 28 * S,
            reach: (1, 28 * S),
            share: 0.0,
            fall: 0.6,
            climb: 45 * S,
        },
    );
}

// ---- REMB ----

const REMB_HIGH: u64 = 3_000_000;
const REMB_LOW: u64 = 400_000;
/// REMB says REMB_LOW in [REMB_DOWN, REMB_UP), REMB_HIGH otherwise.
const REMB_DOWN: Duration = Duration::from_secs(15);
const REMB_UP: Duration = Duration::from_secs(30);
const REMB_END: Duration = Duration::from_secs(45);

fn remb_at(t: Duration) -> u64 {
    if t >= REMB_DOWN && t < REMB_UP {
        REMB_LOW
    } else {
        REMB_HIGH
    }
}

#[test]
fn remb_sets_the_estimate_and_the_layer() {
    let _capture = trace::capture();
    let (mut sim, viewer) = start(Feedback::Remb);
    // One REMB a second from 1 s on, like libwebrtc's periodic REMB.
    let mut sent = Vec::new();
    for s in 1..REMB_END.as_secs() {
        sim.run_until(sim.at(S * s as u32));
        let (now, bps) = (sim.now, remb_at(S * s as u32));
        sim.peers[viewer].send_remb(now, bps);
        sent.push((now, bps));
    }
    sim.run_until(sim.at(REMB_END));
    print_run(&sim, viewer);

    // Every estimate is the value of the last REMB sent before it (no loss-fallback or
    // TWCC estimate in between), and every REMB got through.
    let est: Vec<_> = sim.estimates.iter().filter(|e| e.peer == viewer).collect();
    assert_eq!(est.len(), sent.len(), "one estimate per REMB");
    for e in &est {
        let last = sent.iter().rev().find(|(t, _)| *t <= e.at).map(|(_, b)| *b);
        assert_eq!(Some(e.bps), last, "estimate at {:?}", sim.elapsed(e.at));
    }
    let stats = sim.room.subscriber_stats(sim.now, &sim.resources[viewer]);
    let reported = stats.and_then(|s| s.estimate_bps);
    println!("subscriber_stats estimate at the end: {reported:?} bit/s");
    assert_eq!(reported, Some(REMB_HIGH));

    let v = Video::new(&sim.peers[viewer].received.video, sim.t0);
    let (down, up, end) = (sim.at(REMB_DOWN), sim.at(REMB_UP), sim.at(REMB_END));
    let top_from = v.settled_from(sim.t0, down, |l| l == TOP);
    let low = v.settled_from(down, up, |l| l == LOWEST).map(|t| t - down);
    let high = v.settled_from(up, end, |l| l == TOP).map(|t| t - up);
    let freezes = v.freezes(end);
    let longest = freezes.iter().map(|f| f.length).max().unwrap_or_default();
    println!(
        "REMB {} → {} kbit/s: on the lowest layer {} later; back to {} kbit/s: on top {} \
         later; longest freeze {} ms",
        REMB_HIGH / 1000,
        REMB_LOW / 1000,
        secs(low),
        REMB_HIGH / 1000,
        secs(high),
        longest.as_millis()
    );
    assert!(
        top_from.is_some_and(|t| t + 2 * S <= down),
        "not on top at first"
    );
    assert!(
        low.is_some_and(|d| d <= 2 * S),
        "did not follow the REMB down"
    );
    assert!(
        high.is_some_and(|d| d <= 6 * S),
        "did not follow the REMB up"
    );
    assert!(longest <= Duration::from_millis(500), "froze {longest:?}");
}
