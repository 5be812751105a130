//! A step down waits for a drop in a send-side estimate to last, unless the receiver
//! reports congestion loss.
//!
//! Owns: per subscriber, the estimates of the last [`LOOKBACK`] and since when the estimate
//! has been below what the layers already flowing need ([`StepDownHold`]). Never allocates layers, sends probes or reads a clock.
//!
//! # Why
//!
//! str0m probes a TWCC path at up to twice the estimate: in our probe windows
//! (`bwe::policy`), every 5 s while the sender is application-limited
//! (periodic ALR probes aimed at twice what the allocation desires), and after a large
//! drop. On a link whose capacity sits between what is sent and what a probe aims for, the
//! probe fills the bottleneck queue, GCC's delay detector reads overuse, and the estimate
//! falls to 0.85× the *acknowledged* rate (draft-ietf-rmcat-gcc-02 §5.5), which for an
//! application-limited viewer is what its current layers send: below them. Still
//! application-limited, GCC then climbs back slowly. Following that estimate steps the
//! viewer down for a probe, not for congestion. Measured in the Chromium simulcast test (a
//! viewer behind a 400 kbit/s tbf on the lowest layer, about 220 kbit/s with audio): probe
//! after probe took the estimate from 300–550 kbit/s down to 165–180 kbit/s for seconds
//! with no loss at all, and the viewer fell to a quarter or half of the frames (TID 0 or
//! 1), 14.3 fps over a 10 s window. LiveKit's stream allocator likewise does not
//! downgrade on a failed probe, and acts on a falling estimate only once its trend holds.
//!
//! So a drop that looks like a probe's back-off keeps the floor (the estimate that keeps
//! the layers flowing now, which the link has been carrying) for [`STEP_DOWN_AFTER`]; a
//! drop that lasts longer is followed. It looks like one when, in the [`LOOKBACK`] before
//! it (the last second of the fall aside), the estimate was already close to the floor ([`NEAR_FLOOR_PERCENT`]): it rose
//! briefly above a level the layers just fit, and fell below. A drop from an estimate
//! that sat well above the floor is a real narrowing and is followed at once: there no
//! loss would warn, as str0m paces at 1.1× the estimate and queues the rest in its own
//! pacer. A receiver report with loss at or above `bwe::pause::CONGESTED_LOSS` shows the
//! link really is full: then the estimate is followed at once too. Only for TWCC: a
//! REMB or loss-based estimate is not lowered by probes, so its drops are followed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long an estimate may stay below the layers already flowing, without congestion
/// loss, before the allocation follows it down. A probe's back-off and GCC's
/// application-limited climb took 3–5 s in the measurements above.
pub(crate) const STEP_DOWN_AFTER: Duration = Duration::from_secs(5);

/// How far back a drop's history is read.
pub(crate) const LOOKBACK: Duration = Duration::from_secs(6);
/// An estimate below this share (percent) of the floor counts as close to it.
pub(crate) const NEAR_FLOOR_PERCENT: u64 = 125;
/// Estimates this close before a drop belong to the fall itself, not to where the
/// estimate stood before it.
const FALL: Duration = Duration::from_secs(1);
/// Most estimates remembered (GCC reports a few to a few tens a second); the oldest go
/// first.
const MAX_SAMPLES: usize = 256;

/// Per-subscriber step-down rule; see the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepDownHold {
    /// Estimates of the last [`LOOKBACK`], bit/s, oldest first.
    recent: VecDeque<(Instant, u64)>,
    /// Since when the estimate has been below the floor without a break, and whether that
    /// drop looked like a probe's back-off.
    below: Option<(Instant, bool)>,
}

impl StepDownHold {
    /// A new estimate (bit/s) at `now` (monotonic).
    pub(crate) fn on_estimate(&mut self, now: Instant, estimate_bps: u64) {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > LOOKBACK)
            || self.recent.len() >= MAX_SAMPLES
        {
            self.recent.pop_front();
        }
        self.recent.push_back((now, estimate_bps));
    }

    /// The estimate (bit/s) to allocate with at `now` (monotonic): `floor_bps` (the
    /// estimate that keeps the layers flowing now) while `estimate_bps` is below it after
    /// what looks like a probe's back-off, for at most [`STEP_DOWN_AFTER`] and only
    /// without congestion loss (`congested`); else `estimate_bps`.
    pub(crate) fn estimate(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        floor_bps: u64,
        congested: bool,
    ) -> u64 {
        if estimate_bps >= floor_bps || congested {
            self.below = None;
            return estimate_bps;
        }
        let near = floor_bps / 100 * NEAR_FLOOR_PERCENT;
        let recent = &self.recent;
        let (since, probe_backoff) = *self.below.get_or_insert_with(|| {
            // Before the fall itself (GCC lowers an estimate in steps over a few hundred
            // milliseconds).
            let was_near = recent.iter().any(|(t, b)| *t + FALL <= now && *b < near);
            (now, was_near)
        });
        if probe_backoff && now.saturating_duration_since(since) < STEP_DOWN_AFTER {
            floor_bps
        } else {
            estimate_bps
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// A hold whose estimate hovered at `bps` for the last few seconds.
    fn hovering(t0: Instant, bps: u64) -> StepDownHold {
        let mut h = StepDownHold::default();
        for i in 0..10u32 {
            h.on_estimate(t0 + S / 2 * i, bps);
        }
        h
    }

    #[test]
    fn a_probes_back_off_keeps_the_layers_flowing() {
        let t0 = Instant::now();
        let mut h = hovering(t0, 280_000);
        let t1 = t0 + 5 * S;
        // A probe overshoots, then GCC backs off to 0.85x what is acknowledged.
        h.on_estimate(t1, 540_000);
        assert_eq!(h.estimate(t1, 540_000, 240_000, false), 540_000);
        h.on_estimate(t1 + S, 165_000);
        assert_eq!(h.estimate(t1 + S, 165_000, 240_000, false), 240_000);
        assert_eq!(h.estimate(t1 + 4 * S, 170_000, 240_000, false), 240_000);
        // It climbs back before STEP_DOWN_AFTER: nothing was stepped down.
        assert_eq!(h.estimate(t1 + 5 * S, 260_000, 240_000, false), 260_000);
        // A new drop starts its own wait.
        assert_eq!(h.estimate(t1 + 6 * S, 165_000, 240_000, false), 240_000);
    }

    #[test]
    fn a_lasting_drop_is_followed() {
        let t0 = Instant::now();
        let mut h = hovering(t0, 280_000);
        let t1 = t0 + 5 * S;
        assert_eq!(h.estimate(t1, 165_000, 240_000, false), 240_000);
        let late = t1 + STEP_DOWN_AFTER;
        assert_eq!(h.estimate(late, 165_000, 240_000, false), 165_000);
        // Stepped down, the floor follows the new layers and the estimate covers them.
        assert_eq!(h.estimate(late + S, 165_000, 150_000, false), 165_000);
    }

    #[test]
    fn a_drop_from_well_above_the_floor_is_followed_at_once() {
        // A real narrowing: the estimate sat at twice what the layers need.
        let t0 = Instant::now();
        let mut h = hovering(t0, 3_700_000);
        let t1 = t0 + 5 * S;
        h.on_estimate(t1, 777_000);
        assert_eq!(h.estimate(t1, 777_000, 1_800_000, false), 777_000);
    }

    #[test]
    fn congestion_loss_is_followed_at_once() {
        let t0 = Instant::now();
        let mut h = hovering(t0, 280_000);
        let t1 = t0 + 5 * S;
        assert_eq!(h.estimate(t1, 120_000, 240_000, true), 120_000);
        assert_eq!(h.estimate(t1 + S, 120_000, 240_000, false), 240_000);
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut h = StepDownHold::default();
        for i in 0..10_000u32 {
            h.on_estimate(t0 + Duration::from_micros(u64::from(i)), 1);
        }
        assert_eq!(h.recent.len(), MAX_SAMPLES);
    }
}
