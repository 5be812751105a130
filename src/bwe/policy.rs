//! [`ViewerPolicy`]: one subscriber's bandwidth policy — from its downlink estimate and
//! the ladders of the tracks it receives to the layers each track gets, and from what is
//! then really sent to what str0m's estimator is told to sustain and probe for.
//!
//! The forwarder calls it twice per reallocation: [`ViewerPolicy::choose`] with the
//! tracks' demands (it applies the choice to its selectors, where a layer picked by hand
//! may override it), then [`ViewerPolicy::targets`] with what is sent. The rules, each
//! with its reason:
//!
//! * **Usable share**: media fills at most [`USABLE_PERCENT`] of the estimate; NACK/RTX,
//!   RTCP, probing and keyframe bursts need the rest.
//! * **Step down** (`step_down`): with TWCC, a drop that looks like a probe's back-off
//!   keeps the layers that flow, for a while, unless the viewer reports loss.
//! * **Pause** (`pause`): below the lowest layers, video keeps them until congestion loss
//!   backs the shortfall for [`PAUSE_AFTER`]; then it pauses.
//! * **Probe windows**: padding toward the next step up happens only inside windows of
//!   [`PROBE_WINDOW`], [`PROBE_BACKOFF_MIN`] apart, doubling to [`PROBE_BACKOFF_MAX`]
//!   while climbs fail, and only toward a step that str0m's probes (at most twice the
//!   estimate) can reach.
//! * **Padding ramp**: inside a window the padding target starts a quarter of the way
//!   from what media sends to the next step, reaches the step after [`PROBE_RAMP`], and
//!   never exceeds the usable share of the estimate. An estimate can run past the link
//!   while media is application-limited (nothing verifies it); padding to it at once
//!   would overfill a shallow bottleneck queue before delay-based detection reacts, and
//!   the viewer would lose media. A gradual rise lets the queue's growth show first.
//! * **Desired rate**: what every track's top layer needs, with the allocator's climb
//!   headroom; raised by a quarter inside a window, which is what makes str0m probe.
//!
//! Pure: `now` comes in, nothing is sent; bit rates are bits per second.

use std::time::{Duration, Instant};

use super::allocator::{desired_bitrate, Allocator, AllocatorConfig, TrackDemand};
use super::pause::PauseGate;
use super::step_down::StepDownHold;
use super::EstimateKind;

/// A probe window: how long str0m may pad toward the next layer up.
pub(crate) const PROBE_WINDOW: Duration = Duration::from_secs(2);
/// How long the padding target takes inside a probe window to rise from a quarter of
/// the way to the whole way toward the next step (module docs: padding ramp).
pub(crate) const PROBE_RAMP: Duration = Duration::from_millis(1_500);
/// First pause between probe windows; doubles while climbs fail, up to
/// [`PROBE_BACKOFF_MAX`], and resets when a track climbs a rung of its ladder.
pub(crate) const PROBE_BACKOFF_MIN: Duration = Duration::from_secs(4);
/// Longest pause between probe windows.
pub(crate) const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Share of a subscriber's estimate that media may fill, in percent. GCC estimates the
/// link's capacity; retransmissions (NACK/RTX), RTCP, probing and keyframe bursts into a
/// shallow bottleneck queue need the rest.
pub(crate) const USABLE_PERCENT: u64 = 90;

/// Probing aims this far (percent) above what a step up needs, matching the allocator's
/// climb headroom (`AllocatorConfig::up_headroom`, 1.1) with a margin.
pub(crate) const PROBE_HEADROOM_PERCENT: u64 = 115;

/// While a falling estimate waits to step layers down (`step_down`), it is kept at
/// least this far (percent) above what the layers flowing need, so that their measured
/// rates' few percent of wobble do not step them down.
pub(crate) const HOLD_MARGIN_PERCENT: u64 = 110;

/// What a subscriber's tracks are really sent after a choice was applied (a layer
/// picked by hand overrides the allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// What the layers sent need, bit/s, audio included.
    pub allocated: u64,
    /// What one step up on every video track would need, bit/s, audio included.
    pub next_total: u64,
    /// Sum over the video tracks of the ladder rung each is sent (1 for the lowest, 0
    /// for none).
    pub rungs: usize,
}

/// What the subscriber's estimator is told ([`ViewerPolicy::targets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Targets {
    /// Rate to sustain, with padding if media falls short, bit/s.
    pub minimum: u64,
    /// Everything the subscriber could use, bit/s: where str0m probes.
    pub desired: u64,
    /// A probe window opened with this call.
    pub window_opened: bool,
}

/// Bandwidth state of one subscriber.
pub(crate) struct ViewerPolicy {
    allocator: Allocator,
    /// Latest estimate in bit/s and where it came from; `None` until the estimator
    /// reports (then every track gets its top layer).
    estimate: Option<(u64, EstimateKind)>,
    pause: PauseGate,
    step_down: StepDownHold,
    /// `Sent::allocated` of the last call to `targets`, bit/s.
    allocated: u64,
    /// When the current probe window opened (the padding ramp's start); `None` between
    /// windows. Padding toward the next layer up is allowed for [`PROBE_WINDOW`] from it.
    probe_opened: Option<Instant>,
    /// When the next probe window may open.
    next_probe: Option<Instant>,
    /// Current back-off between probe windows.
    probe_backoff: Duration,
    /// `Sent::rungs` when the last probe window opened: a climb above it is a probe that
    /// worked, and resets the back-off. (The allocated bit rate would not do: it follows
    /// the measured layer rates, which wobble by a few percent from one reallocation to
    /// the next.)
    probe_from_rungs: usize,
}

impl Default for ViewerPolicy {
    fn default() -> Self {
        ViewerPolicy::new(AllocatorConfig::default())
    }
}

impl ViewerPolicy {
    /// A subscriber without an estimate yet.
    pub(crate) fn new(config: AllocatorConfig) -> Self {
        ViewerPolicy {
            allocator: Allocator::new(config),
            estimate: None,
            pause: PauseGate::default(),
            step_down: StepDownHold::default(),
            allocated: 0,
            probe_opened: None,
            next_probe: None,
            probe_backoff: PROBE_BACKOFF_MIN,
            probe_from_rungs: 0,
        }
    }

    /// The latest estimate, bit/s.
    pub(crate) fn estimate_bps(&self) -> Option<u64> {
        self.estimate.map(|(bps, _)| bps)
    }

    /// A new estimate, bit/s, and where it came from.
    pub(crate) fn on_estimate(&mut self, now: Instant, estimate_bps: u64, kind: EstimateKind) {
        self.estimate = Some((estimate_bps, kind));
        self.step_down.on_estimate(now, estimate_bps);
    }

    /// A receiver report's fraction lost (0.0–1.0, RFC 3550 §6.4.1).
    pub(crate) fn on_loss_report(&mut self, now: Instant, fraction: f32) {
        self.pause.on_loss_report(now, fraction);
    }

    /// The layer (index into `layers`, `None`: not sent) each track in `demands` gets:
    /// audio first, lowest layers, then upgrades by priority (`allocator`), under the
    /// step-down and pause rules of the module docs. Without an estimate yet, every
    /// track gets its top layer.
    pub(crate) fn choose(&mut self, now: Instant, demands: &[TrackDemand]) -> Vec<Option<usize>> {
        let Some((raw, kind)) = self.estimate else {
            return demands
                .iter()
                .map(|d| d.layers.len().checked_sub(1))
                .collect();
        };
        // A probe's back-off does not step down the layers the link carries.
        let estimate = if kind.can_probe() {
            let congested = self.pause.congested(now);
            let floor = self.allocated / USABLE_PERCENT * 100 * HOLD_MARGIN_PERCENT / 100;
            self.step_down.estimate(now, raw, floor, congested)
        } else {
            raw
        };
        let usable = estimate / 100 * USABLE_PERCENT;
        let floor: u64 = demands.iter().filter_map(|d| d.layers.first()).sum();
        // Below the lowest layers: keep them unless congestion loss has backed the
        // shortfall for a while (`pause`).
        let hold = self.pause.hold_floor(now, kind, usable < floor);
        let a = &mut self.allocator;
        match (hold, kind.can_probe()) {
            // A grace period: what runs keeps its lowest layer.
            (true, true) => a.update(now, floor, demands).to_vec(),
            // No way to probe: the lowest layers run, a paused track resumes now.
            (true, false) => a.update_keeping_lowest(now, floor, demands).to_vec(),
            (false, _) => a.update(now, usable, demands).to_vec(),
        }
    }

    /// What the estimator should sustain and probe for, given what is `sent` and the
    /// tracks' `demands`; opens and closes probe windows (module docs). `None` when the
    /// tracks want nothing (no estimator change).
    pub(crate) fn targets(
        &mut self,
        now: Instant,
        sent: Sent,
        demands: &[TrackDemand],
    ) -> Option<Targets> {
        // To step up, the allocator needs the usable share of the estimate to exceed the
        // next total with its headroom: probe for that much, not just the layer's rate.
        let climb = |bps: u64| bps / USABLE_PERCENT * PROBE_HEADROOM_PERCENT;
        let minimum = climb(sent.next_total);
        let desired = climb(desired_bitrate(demands));
        if desired == 0 {
            return None;
        }
        self.allocated = sent.allocated;
        // A climb above where the last window started is a probe that worked.
        if sent.rungs > self.probe_from_rungs {
            self.probe_backoff = PROBE_BACKOFF_MIN;
            self.probe_from_rungs = sent.rungs;
        }
        let next_probe = *self.next_probe.get_or_insert(now + PROBE_BACKOFF_MIN);
        // A window only where str0m's probes (at most twice the estimate) can reach the
        // step: one beyond reach only fills a full bottleneck queue, and costs media loss.
        let reachable = self
            .estimate
            .is_none_or(|(e, _)| minimum <= e.saturating_mul(2));
        let mut window_opened = false;
        if sent.next_total > sent.allocated
            && reachable
            && now >= next_probe
            && self.probe_opened.is_none()
        {
            self.probe_opened = Some(now);
            self.probe_from_rungs = sent.rungs;
            window_opened = true;
        }
        if self.probe_opened.is_some_and(|t| now >= t + PROBE_WINDOW) {
            self.probe_opened = None;
            self.next_probe = Some(now + self.probe_backoff);
            self.probe_backoff = (self.probe_backoff * 2).min(PROBE_BACKOFF_MAX);
        }
        // Inside a window: pad toward the next step, and raise `desired` by a quarter.
        // str0m starts an allocation probe (at 1x and 2x `desired`, capped at twice the
        // estimate) only when `desired` rises above the estimate; padding alone is capped
        // by the estimate and cannot raise it. Between windows `desired` returns to the
        // full demand, which keeps str0m's periodic probes in application-limited
        // periods aimed at it and makes every window's rise a fresh probe. The padding
        // target ramps toward the step (module docs).
        let (minimum, desired) = if self.probe_opened.is_some() {
            let raised = desired + desired / 4;
            (
                self.padding(now, sent.allocated, minimum.min(raised)),
                raised,
            )
        } else {
            (sent.allocated.min(desired), desired)
        };
        Some(Targets {
            minimum,
            desired,
            window_opened,
        })
    }

    /// The padding target inside a probe window, bit/s: from a quarter of the way between
    /// `allocated` (what media sends) and `goal` at the window's start to `goal` after
    /// [`PROBE_RAMP`], capped at the usable share of the estimate, never below
    /// `allocated`.
    fn padding(&self, now: Instant, allocated: u64, goal: u64) -> u64 {
        let ramp = PROBE_RAMP.as_millis() as u64;
        let elapsed = self
            .probe_opened
            .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64);
        let permille = (250 + 750 * elapsed.min(ramp) / ramp).min(1_000);
        let ramped = allocated + goal.saturating_sub(allocated) / 1_000 * permille;
        let cap = self
            .estimate
            .map_or(u64::MAX, |(e, _)| e / 100 * USABLE_PERCENT);
        ramped.min(cap).max(allocated)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
