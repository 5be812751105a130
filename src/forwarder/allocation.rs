//! Per-subscriber bandwidth allocation glue: the ladders of the tracks a subscriber
//! receives become demands for its `bwe::policy::ViewerPolicy`, whose choice becomes
//! selector targets and keyframe requests, and whose targets become the estimator's
//! `SetBitrate` (`bwe` decides; this gathers and applies).

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::media::{KeyframeRequestKind, MediaKind};

use super::selector::Layer;
use super::{request_keyframe, Forwarder, ForwarderOutput};
use crate::bwe::allocator::TrackDemand;
use crate::bwe::policy::Sent;
use crate::ids::ParticipantId;

/// How often allocations are recomputed even without a new estimate (layers start,
/// stop and change rate).
pub(crate) const REALLOCATE_EVERY: Duration = Duration::from_millis(500);

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
        let Some(policy) = self.bwe.get_mut(&subscriber) else {
            return;
        };
        let choice = policy.choose(now, &demands);
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
        let Some(policy) = self.bwe.get_mut(&subscriber) else {
            return;
        };
        let sent = Sent {
            allocated,
            next_total,
            rungs,
        };
        let Some(targets) = policy.targets(now, sent, &demands) else {
            return;
        };
        if targets.window_opened {
            tracing::debug!(
                subscriber = subscriber.0,
                allocated_bps = allocated,
                next_bps = next_total,
                "probe window opened"
            );
        }
        out.push(ForwarderOutput::SetBitrate {
            subscriber,
            minimum: Bitrate::bps(targets.minimum),
            desired: Bitrate::bps(targets.desired),
        });
    }
}
