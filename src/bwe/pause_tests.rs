//! Unit tests of `bwe::pause`.

use super::*;

const S: Duration = Duration::from_secs(1);

/// Calls `hold_floor` every 500 ms over `[from, to)` (seconds after `t0`), returns the answers.
fn run(
    g: &mut PauseGate,
    t0: Instant,
    from: u32,
    to: u32,
    kind: EstimateKind,
    starved: bool,
) -> Vec<bool> {
    (from * 2..to * 2)
        .map(|i| g.hold_floor(t0 + S / 2 * i, kind, starved))
        .collect()
}

#[test]
fn twcc_without_loss_never_pauses() {
    // The startup dip measured on a loaded machine: short of the floor for 4.4 s, no loss.
    let t0 = Instant::now();
    let mut g = PauseGate::new();
    for s in 0..60 {
        g.on_loss_report(t0 + S * s, 0.0);
    }
    let held = run(&mut g, t0, 0, 60, EstimateKind::Twcc, true);
    assert!(held.iter().all(|h| *h), "{held:?}");
    assert!(!g.paused());
}

#[test]
fn twcc_with_congestion_pauses_after_the_grace_period() {
    let t0 = Instant::now();
    let mut g = PauseGate::new();
    // Congested reports every second from the start of the shortfall.
    let mut held = Vec::new();
    for i in 0..20u32 {
        if i % 2 == 0 {
            g.on_loss_report(t0 + S / 2 * i, 0.25);
        }
        held.push(g.hold_floor(t0 + S / 2 * i, EstimateKind::Twcc, true));
    }
    // Held for PAUSE_AFTER (4 s = 8 calls), then the estimate is followed.
    assert!(held[..8].iter().all(|h| *h), "{held:?}");
    assert!(held[8..].iter().all(|h| !*h), "{held:?}");
    // The estimate covers the floor again (str0m probed it up): nothing to hold, and a
    // new dip starts over with its own grace period.
    assert!(!g.hold_floor(t0 + 10 * S, EstimateKind::Twcc, false));
    assert!(g.hold_floor(t0 + 11 * S, EstimateKind::Twcc, true));
}

#[test]
fn old_congestion_does_not_pause() {
    // Loss seen once, then LOSS_MEMORY passes before the grace period ends.
    let t0 = Instant::now();
    let mut g = PauseGate::new();
    g.on_loss_report(t0, 0.5);
    let held = run(&mut g, t0, 0, 20, EstimateKind::Twcc, true);
    assert!(held.iter().all(|h| *h), "{held:?}");
}

#[test]
fn remb_without_loss_never_pauses() {
    let t0 = Instant::now();
    let mut g = PauseGate::new();
    for s in 0..300 {
        g.on_loss_report(t0 + S * s, 0.02);
    }
    let held = run(&mut g, t0, 0, 300, EstimateKind::Remb, true);
    assert!(held.iter().all(|h| *h));
    assert!(!g.paused());
    // The loss fallback alike.
    let mut g = PauseGate::new();
    let held = run(&mut g, t0, 0, 60, EstimateKind::Loss, true);
    assert!(held.iter().all(|h| *h));
}

#[test]
fn remb_with_congestion_pauses_then_tries_again_with_back_off() {
    let t0 = Instant::now();
    let at = |s: u32| t0 + S / 2 * s;
    let mut g = PauseGate::new();
    // Congested reports every second while the estimate is short.
    let mut pauses = Vec::new();
    let mut trials = Vec::new();
    let mut last = true;
    for i in 0..240 {
        if i % 2 == 0 {
            g.on_loss_report(at(i), 0.5);
        }
        let held = g.hold_floor(at(i), EstimateKind::Remb, true);
        if last && !held {
            pauses.push(i);
        }
        if !last && held {
            trials.push(i);
        }
        last = held;
    }
    // First pause after PAUSE_AFTER, then trials after 4, 8, 16, 32, 32 s, each failing
    // on the first congested report past the grace second.
    assert_eq!(pauses[0], 8, "{pauses:?}");
    let waits: Vec<u32> = trials.iter().zip(&pauses).map(|(t, p)| t - p).collect();
    assert_eq!(
        &waits[..5],
        &[8, 16, 32, 64, 64],
        "{waits:?} {pauses:?} {trials:?}"
    );
    for (t, p) in trials.iter().zip(pauses.iter().skip(1)) {
        assert!(p - t <= 4, "trial at {t} lasted until {p}");
    }
}

#[test]
fn a_trial_without_loss_ends_the_pause() {
    let t0 = Instant::now();
    let at = |s: u32| t0 + S * s;
    let mut g = PauseGate::new();
    for s in 0..6 {
        g.on_loss_report(at(s), 0.6);
        g.hold_floor(at(s), EstimateKind::Remb, true);
    }
    assert!(g.paused());
    assert!(!g.hold_floor(at(7), EstimateKind::Remb, true));
    // The bottleneck is gone: the trial at 8 s (4 s after the pause at 4 s) sees clean
    // reports and keeps the video for good.
    let mut held = Vec::new();
    for s in 8..120 {
        g.on_loss_report(at(s), 0.0);
        held.push(g.hold_floor(at(s), EstimateKind::Remb, true));
    }
    assert!(held.iter().all(|h| *h), "{held:?}");
    assert!(!g.paused());
}

#[test]
fn the_estimate_covering_the_floor_ends_a_pause() {
    let t0 = Instant::now();
    let mut g = PauseGate::new();
    for s in 0..6 {
        g.on_loss_report(t0 + S * s, 0.3);
        g.hold_floor(t0 + S * s, EstimateKind::Loss, true);
    }
    assert!(g.paused());
    assert!(!g.hold_floor(t0 + 7 * S, EstimateKind::Loss, false));
    assert!(!g.paused());
    g.on_loss_report(t0 + 8 * S, f32::NAN);
    assert!(g.hold_floor(t0 + 8 * S, EstimateKind::Loss, true));
}
