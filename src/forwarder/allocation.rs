//! Per-subscriber bandwidth allocation glue: from a subscriber's estimate and the
//! ladders of the tracks it receives to selector targets, keyframe requests and the
//! estimator's probing targets (`bwe::allocator` decides; this applies).

use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequestKind, MediaKind};

use super::selector::Layer;
use super::{request_keyframe, Forwarder, ForwarderOutput};
use crate::bwe::allocator::{Allocator, TrackDemand};
use crate::bwe::pause::PauseGate;
use crate::bwe::step_down::StepDownHold;
use crate::bwe::EstimateKind;
use crate::ids::ParticipantId;

/// Bandwidth state of one subscriber.
pub(super) struct SubscriberBwe {
    pub(super) allocator: Allocator,
    /// Latest estimate in bit/s and where it came from; `None` until the estimator
    /// reports (then every track gets its top layer).
    pub(super) estimate: Option<(u64, EstimateKind)>,
    /// Whether the lowest layers are kept while the estimate is below them
    /// (`bwe::pause`).
    pub(super) pause: PauseGate,
    /// When a falling estimate steps layers down (`bwe::step_down`).
    pub(super) step_down: StepDownHold,
    /// Allocated total after the last reallocation, bit/s.
    pub(super) allocated: u64,
    /// Padding toward the next layer up is allowed until then (a probe window).
    pub(super) probe_until: Option<Instant>,
    /// When the next probe window may open.
    pub(super) next_probe: Option<Instant>,
    /// Current back-off between probe windows.
    pub(super) probe_backoff: Duration,
    /// Sum over the subscriber's video tracks of the ladder rung each is sent (1 for the
    /// lowest, 0 for none) when the last probe window opened: a climb above it is a probe
    /// that worked, and resets the back-off. (The allocated
    /// bit rate would not do: it follows the measured layer rates, which wobble by a few
    /// percent from one reallocation to the next.)
    pub(super) probe_from_rungs: usize,
}

/// A probe window: how long str0m may pad toward the next layer up.
pub const PROBE_WINDOW: Duration = Duration::from_secs(2);
/// First pause between probe windows; doubles while climbs fail, up to
/// [`PROBE_BACKOFF_MAX`], and resets when a track climbs a rung of its ladder.
pub const PROBE_BACKOFF_MIN: Duration = Duration::from_secs(4);
/// Longest pause between probe windows.
pub const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(8);

pub use crate::bwe::pause::PAUSE_AFTER;

/// Share of a subscriber's estimate that media may fill, in percent. GCC estimates the
/// link's capacity; retransmissions (NACK/RTX), RTCP, probing and keyframe bursts into a
/// shallow bottleneck queue need the rest.
pub const USABLE_PERCENT: u64 = 90;

/// Probing aims this far (percent) above what a step up needs, matching the allocator's
/// climb headroom (`AllocatorConfig::up_headroom`, 1.1) with a margin.
pub const PROBE_HEADROOM_PERCENT: u64 = 115;

/// While a falling estimate waits to step layers down (`bwe::step_down`), it is kept at
/// least this far (percent) above what the layers flowing need, so that their measured
/// rates' few percent of wobble do not step them down.
pub const HOLD_MARGIN_PERCENT: u64 = 110;

/// How often allocations are recomputed even without a new estimate (layers start,
/// stop and change rate).
pub const REALLOCATE_EVERY: Duration = Duration::from_millis(500);

impl Forwarder {
    // ---- allocation ----

    /// Recompute a subscriber's layers from its estimate (audio first, lowest layers,
    /// then upgrades by priority; `bwe::allocator`), apply them to the selectors, ask for
    /// keyframes where a switch waits on one, and tell the estimator what to probe for.
    pub(super) fn reallocate(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        out: &mut Vec<ForwarderOutput>,
    ) {
        if self.next_reallocate.is_none() {
            self.next_reallocate = Some(now + REALLOCATE_EVERY);
        }
        let candidates: Vec<usize> = self
            .subscribed
            .iter()
            .filter(|(_, s)| s.subscriber == subscriber && s.connected && s.source.is_some())
            .map(|(k, _)| k)
            .collect();
        // Tracks whose source has no active layer yet stay out of the allocation (their
        // first packet reallocates at once, as a new track).
        let mut keys: Vec<usize> = Vec::with_capacity(candidates.len());
        let mut ladders: Vec<Vec<(Layer, u64)>> = Vec::with_capacity(candidates.len());
        let mut demands: Vec<TrackDemand> = Vec::with_capacity(candidates.len());
        for k in candidates {
            let sub = &self.subscribed[k];
            let cap = sub.max_spatial_rank;
            let size = sub.max_size;
            let Some(track) = sub.source.and_then(|s| self.published.get_mut(&s)) else {
                continue;
            };
            let audio = track.kind == MediaKind::Audio;
            let ladder = if audio {
                track.ladder(now, None, (None, None))
            } else {
                track.ladder(now, cap, size)
            };
            let Some(top) = ladder.last().map(|(_, b)| *b) else {
                continue;
            };
            demands.push(TrackDemand {
                id: k as u32,
                audio,
                priority: 0,
                layers: if audio {
                    vec![top]
                } else {
                    ladder.iter().map(|(_, b)| *b).collect()
                },
            });
            keys.push(k);
            ladders.push(ladder);
        }
        let Some(bwe) = self.bwe.get_mut(&subscriber) else {
            return;
        };
        let can_probe = bwe.estimate.is_some_and(|(_, kind)| kind.can_probe());
        let choice: Vec<Option<usize>> = match bwe.estimate {
            Some((raw, kind)) => {
                // A probe's back-off does not step down the layers the link carries.
                let estimate = if can_probe {
                    let congested = bwe.pause.congested(now);
                    let floor = bwe.allocated / USABLE_PERCENT * 100 * HOLD_MARGIN_PERCENT / 100;
                    bwe.step_down.estimate(now, raw, floor, congested)
                } else {
                    raw
                };
                let usable = estimate / 100 * USABLE_PERCENT;
                let floor: u64 = demands.iter().filter_map(|d| d.layers.first()).sum();
                // Below the lowest layers: keep them unless congestion loss has backed the
                // shortfall for a while (`bwe::pause`).
                let hold = bwe.pause.hold_floor(now, kind, usable < floor);
                let a = &mut bwe.allocator;
                match (hold, kind.can_probe()) {
                    // A grace period: what runs keeps its lowest layer.
                    (true, true) => a.update(now, floor, &demands).to_vec(),
                    // No way to probe: the lowest layers run, a paused track resumes now.
                    (true, false) => a.update_keeping_lowest(now, floor, &demands).to_vec(),
                    (false, _) => a.update(now, usable, &demands).to_vec(),
                }
            }
            None => demands
                .iter()
                .map(|d| d.layers.len().checked_sub(1))
                .collect(),
        };
        // What is really sent (a layer picked by hand overrides the allocation) and what
        // one step up would need, both in bit/s over every track.
        let mut allocated = 0;
        let mut next_total = 0;
        let mut rungs = 0;
        for (((&k, ladder), pick), demand) in keys.iter().zip(&ladders).zip(&choice).zip(&demands) {
            let sub = &mut self.subscribed[k];
            if sub.kind == MediaKind::Audio {
                let bps = demand.layers.first().copied().unwrap_or(0);
                allocated += bps;
                next_total += bps;
                continue;
            }
            let target = pick.and_then(|i| ladder.get(i)).map(|(l, _)| *l);
            sub.set_target(target, &self.meters);
            let sent = sub.selector.target();
            let at = sent.and_then(|t| ladder.iter().position(|(l, _)| *l == t));
            allocated += at.map(|i| ladder[i].1).unwrap_or(0);
            rungs += at.map_or(0, |i| i + 1);
            let next_up = match (at, sub.manual.is_some()) {
                (Some(i), false) => ladder.get(i + 1).or(ladder.get(i)),
                (Some(i), true) => ladder.get(i),
                (None, _) => ladder.first(),
            };
            next_total += next_up.map(|(_, b)| *b).unwrap_or(0);
            if let (Some(spatial), Some(source)) = (sub.selector.waiting_for_keyframe(), sub.source)
            {
                if let Some(track) = self.published.get_mut(&source) {
                    let kind = KeyframeRequestKind::Pli;
                    request_keyframe(now, source, track, spatial, kind, &self.meters, out);
                }
            }
        }
        // To step up, the allocator needs the usable share of the estimate to exceed the
        // next total with its headroom: probe for that much, not just the layer's rate.
        let climb = |bps: u64| bps / USABLE_PERCENT * PROBE_HEADROOM_PERCENT;
        let minimum = climb(next_total);
        let desired = climb(crate::bwe::allocator::desired_bitrate(&demands));
        if desired == 0 {
            return;
        }
        // Padding toward the next layer (the `minimum`) only inside bounded probe windows:
        // padding all the time at a link's capacity makes the tail drop hit media.
        let Some(bwe) = self.bwe.get_mut(&subscriber) else {
            return;
        };
        bwe.allocated = allocated;
        // A climb above where the last window started is a probe that worked.
        if rungs > bwe.probe_from_rungs {
            bwe.probe_backoff = PROBE_BACKOFF_MIN;
            bwe.probe_from_rungs = rungs;
        }
        let next_probe = *bwe.next_probe.get_or_insert(now + PROBE_BACKOFF_MIN);
        // A window only where str0m's probes (at most twice the estimate) can reach the
        // step: one beyond reach only fills a full bottleneck queue, and costs media loss.
        let reachable = bwe
            .estimate
            .is_none_or(|(e, _)| minimum <= e.saturating_mul(2));
        if next_total > allocated && reachable && now >= next_probe && bwe.probe_until.is_none() {
            bwe.probe_until = Some(now + PROBE_WINDOW);
            bwe.probe_from_rungs = rungs;
            tracing::debug!(
                subscriber = subscriber.0,
                allocated_bps = allocated,
                next_bps = next_total,
                "probe window opened"
            );
        }
        if bwe.probe_until.is_some_and(|t| now >= t) {
            bwe.probe_until = None;
            bwe.next_probe = Some(now + bwe.probe_backoff);
            bwe.probe_backoff = (bwe.probe_backoff * 2).min(PROBE_BACKOFF_MAX);
        }
        // Inside a window: pad toward the next step, and raise `desired` by a quarter. str0m
        // starts an allocation probe (at 1x and 2x `desired`, capped at twice the estimate)
        // only when `desired` rises above the estimate; padding alone is capped by the
        // estimate and cannot raise it. Between windows `desired` returns to the full demand,
        // which keeps str0m's periodic probes in application-limited periods aimed at it and
        // makes every window's rise a fresh probe.
        let (minimum, desired) = if bwe.probe_until.is_some() {
            let raised = desired + desired / 4;
            (minimum.min(raised), raised)
        } else {
            (allocated.min(desired), desired)
        };
        out.push(ForwarderOutput::SetBitrate {
            subscriber,
            minimum,
            desired,
        });
    }
}
