//! Unit tests of `bwe::policy`: the policy alone, driven with demands and what is sent,
//! as the forwarder drives it every reallocation.

use super::*;
use crate::bwe::pause::PAUSE_AFTER;

const K: u64 = 1_000;
const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
/// A three-layer simulcast ladder, bit/s.
const LADDER: [u64; 3] = [150 * K, 500 * K, 1_500 * K];

fn video(id: u32) -> TrackDemand {
    TrackDemand {
        id,
        audio: false,
        priority: 0,
        layers: LADDER.to_vec(),
    }
}

fn audio(id: u32) -> TrackDemand {
    TrackDemand {
        id,
        audio: true,
        priority: 0,
        layers: vec![40 * K],
    }
}

/// What `choice` sends: allocated, next step up, rungs (as the forwarder computes it
/// when no layer is picked by hand).
fn sent(demands: &[TrackDemand], choice: &[Option<usize>]) -> Sent {
    let mut s = Sent::default();
    for (d, pick) in demands.iter().zip(choice) {
        if d.audio {
            s.allocated += d.layers[0];
            s.next_total += d.layers[0];
            continue;
        }
        s.allocated += pick.map_or(0, |i| d.layers[i]);
        s.rungs += pick.map_or(0, |i| i + 1);
        let up = match pick {
            Some(i) => d.layers.get(i + 1).or(d.layers.get(*i)),
            None => d.layers.first(),
        };
        s.next_total += up.copied().unwrap_or(0);
    }
    s
}

/// One reallocation at `now`: choose, then targets.
fn step(
    p: &mut ViewerPolicy,
    now: Instant,
    demands: &[TrackDemand],
) -> (Vec<Option<usize>>, Option<Targets>) {
    let choice = p.choose(now, demands);
    let targets = p.targets(now, sent(demands, &choice), demands);
    (choice, targets)
}

#[test]
fn without_an_estimate_every_track_gets_its_top_layer() {
    let mut p = ViewerPolicy::default();
    let demands = [audio(0), video(1), video(2)];
    let choice = p.choose(Instant::now(), &demands);
    assert_eq!(choice, vec![Some(0), Some(2), Some(2)]);
}

#[test]
fn media_fills_only_the_usable_share_of_the_estimate() {
    let t0 = Instant::now();
    let mut p = ViewerPolicy::default();
    let demands = [video(1)];
    // 1.6 Mbit/s: 1.44 usable, below the 1.5 Mbit/s top layer.
    p.on_estimate(t0, 1_600 * K, EstimateKind::Remb);
    assert_eq!(p.choose(t0, &demands), vec![Some(1)]);
    // 1.9 Mbit/s: 1.71 usable, above the top layer with the climb headroom.
    let mut p = ViewerPolicy::default();
    p.on_estimate(t0, 1_900 * K, EstimateKind::Remb);
    assert_eq!(p.choose(t0, &demands), vec![Some(2)]);
}

#[test]
fn a_starved_twcc_viewer_keeps_its_lowest_layer_without_loss() {
    let t0 = Instant::now();
    let mut p = ViewerPolicy::default();
    let demands = [video(1)];
    for i in 0..40u32 {
        let now = t0 + 500 * MS * i;
        p.on_estimate(now, 100 * K, EstimateKind::Twcc);
        p.on_loss_report(now, 0.0);
        let (choice, _) = step(&mut p, now, &demands);
        assert_eq!(choice, vec![Some(0)], "paused at {} ms", 500 * i);
    }
}

#[test]
fn a_starved_twcc_viewer_pauses_after_loss_backs_the_shortfall() {
    let t0 = Instant::now();
    let mut p = ViewerPolicy::default();
    let demands = [video(1)];
    let mut choices = Vec::new();
    for i in 0..20u32 {
        let now = t0 + 500 * MS * i;
        p.on_estimate(now, 100 * K, EstimateKind::Twcc);
        p.on_loss_report(now, 0.3);
        choices.push(step(&mut p, now, &demands).0[0]);
    }
    // Held for PAUSE_AFTER (4 s: 8 reallocations), then paused.
    let held = (PAUSE_AFTER.as_millis() / 500) as usize;
    assert!(choices[..held].iter().all(|c| *c == Some(0)), "{choices:?}");
    assert!(choices[held..].iter().all(|c| c.is_none()), "{choices:?}");
}

/// The instants (ms after `t0`) at which probe windows open over 30 s of
/// reallocations every 500 ms, for one video track under `estimate(ms)`.
fn windows(estimate: impl Fn(u32) -> u64) -> Vec<u32> {
    let t0 = Instant::now();
    let mut p = ViewerPolicy::default();
    let demands = [video(1)];
    let mut opened = Vec::new();
    for i in 0..60u32 {
        let (ms, now) = (500 * i, t0 + 500 * MS * i);
        p.on_estimate(now, estimate(ms), EstimateKind::Twcc);
        if step(&mut p, now, &demands)
            .1
            .expect("targets")
            .window_opened
        {
            opened.push(ms);
        }
    }
    opened
}

#[test]
fn probe_windows_back_off_while_climbs_fail() {
    // 1.2 Mbit/s: the middle layer fits, the top one does not but is within reach of
    // str0m's probes (twice the estimate).
    let opened = windows(|_| 1_200 * K);
    // The first window after PROBE_BACKOFF_MIN; each lasts PROBE_WINDOW; the pause after
    // it is 4 s, then 8 s (PROBE_BACKOFF_MAX).
    assert_eq!(opened, vec![4_000, 10_000, 20_000]);
}

#[test]
fn a_climb_resets_the_probe_back_off() {
    // 400 kbit/s: the lowest layer, the middle one within reach. At 9 s the estimate
    // rises enough for the middle layer, which the allocator climbs to 2 s later
    // (`up_hold`), during the second window: the pause after that window is the minimum
    // again (4 s, so 16 s), not the doubled 8 s (20 s); the climb to the top layer
    // fails, so the pause doubles after that window (8 s, so 26 s).
    let opened = windows(|ms| if ms < 9_000 { 400 * K } else { 1_200 * K });
    assert_eq!(opened, vec![4_000, 10_000, 16_000, 26_000]);
}

#[test]
fn no_window_toward_a_step_beyond_probe_reach() {
    let t0 = Instant::now();
    let mut p = ViewerPolicy::default();
    let demands = [video(1)];
    for i in 0..40u32 {
        let now = t0 + 500 * MS * i;
        // 200 kbit/s: the lowest layer; the next (500 kbit/s, 640 with headroom) is
        // more than twice the estimate.
        p.on_estimate(now, 200 * K, EstimateKind::Twcc);
        let (choice, t) = step(&mut p, now, &demands);
        assert_eq!(choice, vec![Some(0)]);
        assert!(
            !t.expect("targets").window_opened,
            "window at {} ms",
            500 * i
        );
    }
}

#[test]
fn desired_rate_is_the_full_demand_with_headroom_raised_inside_a_window() {
    let t0 = Instant::now();
    let mut p = ViewerPolicy::default();
    let demands = [audio(0), video(1)];
    let full = (40 * K + 1_500 * K) / USABLE_PERCENT * PROBE_HEADROOM_PERCENT;
    p.on_estimate(t0, 1_200 * K, EstimateKind::Twcc);
    let (choice, t) = step(&mut p, t0, &demands);
    let t = t.expect("targets");
    // Between windows: desired is the demand, minimum what is sent.
    assert_eq!(t.desired, full);
    assert_eq!(t.minimum, sent(&demands, &choice).allocated);
    // Inside the first window (opens at PROBE_BACKOFF_MIN): desired up by a quarter,
    // minimum a quarter of the way toward the next step up.
    let opened = t0 + PROBE_BACKOFF_MIN;
    p.on_estimate(opened, 1_200 * K, EstimateKind::Twcc);
    let (choice, t) = step(&mut p, opened, &demands);
    let t = t.expect("targets");
    assert!(t.window_opened);
    assert_eq!(t.desired, full + full / 4);
    let sent_now = sent(&demands, &choice);
    let goal = sent_now.next_total / USABLE_PERCENT * PROBE_HEADROOM_PERCENT;
    let gap = goal - sent_now.allocated;
    let cap = 1_200 * K / 100 * USABLE_PERCENT;
    assert_eq!(t.minimum, sent_now.allocated + gap / 1_000 * 250);
    // Half-way through the ramp: five eighths of the way, here past the cap.
    let now = opened + PROBE_RAMP / 2;
    p.on_estimate(now, 1_200 * K, EstimateKind::Twcc);
    let t = step(&mut p, now, &demands).1.expect("targets");
    assert!(sent_now.allocated + gap / 1_000 * 625 > cap);
    assert_eq!(t.minimum, cap);
    // At the end of the ramp the step, capped at the usable share of the estimate.
    let now = opened + PROBE_RAMP;
    p.on_estimate(now, 1_200 * K, EstimateKind::Twcc);
    let t = step(&mut p, now, &demands).1.expect("targets");
    assert_eq!(t.minimum, goal.min(cap));
    // After the window: back to the demand.
    let now = opened + PROBE_WINDOW + S;
    p.on_estimate(now, 1_200 * K, EstimateKind::Twcc);
    let t = step(&mut p, now, &demands).1.expect("targets");
    assert_eq!(t.desired, full);
}

#[test]
fn padding_never_exceeds_the_usable_share_of_an_estimate_past_the_link() {
    // One video track on its lowest layer, the estimate just enough for the middle one
    // to be within probe reach: whatever the ramp, padding stays within 90 % of it.
    let t0 = Instant::now();
    let mut p = ViewerPolicy::default();
    let demands = [video(1)];
    for i in 0..40u32 {
        let now = t0 + 500 * MS * i;
        p.on_estimate(now, 450 * K, EstimateKind::Twcc);
        let (choice, t) = step(&mut p, now, &demands);
        let t = t.expect("targets");
        let allocated = sent(&demands, &choice).allocated;
        assert!(
            t.minimum <= (450 * K / 100 * USABLE_PERCENT).max(allocated),
            "{t:?}"
        );
    }
}

#[test]
fn nothing_wanted_changes_nothing() {
    let mut p = ViewerPolicy::default();
    let now = Instant::now();
    assert_eq!(p.targets(now, Sent::default(), &[]), None);
}
