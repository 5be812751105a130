//! Bandwidth allocation for ONE subscriber: given its downlink estimate and its tracks, choose the
//! layer each track receives.
//!
//! Owns: the allocation rule ([`allocate`], pure and stateless), the hysteresis that turns a
//! stream of estimates into calm layer changes ([`Allocator`]), and the bitrate sums the caller
//! needs around them ([`desired_bitrate`] for probing, [`allocated_bitrate`]).
//!
//! Never: estimates bandwidth (the estimate comes from the WebRTC library's send-side estimator,
//! GCC over transport-wide congestion control feedback: draft-ietf-rmcat-gcc-02,
//! draft-holmer-rmcat-transport-wide-cc-extensions-01), measures layer bitrates (the caller passes
//! them), touches packets, reads a clock (time comes in as `now`), or panics on any input.
//!
//! # Allocation rule
//!
//! 1. Audio first: every audio track gets its layer even when that exceeds the estimate. Audio is
//!    small and losing it breaks a call; video is what gives way.
//! 2. Then every video track, highest priority first (ties in input order), gets its lowest layer
//!    if that fits in what remains, else it is paused. A subscriber that cannot carry the lowest
//!    layer gets no video for that track, never a stream starved below its lowest layer. A later,
//!    cheaper track may still fit after a dearer one did not.
//! 3. Then passes over the running video tracks in the same order raise each by ONE layer while
//!    the remaining budget covers the step, until a pass raises nothing. One step per track per
//!    pass shares the headroom: the second viewer window gets its medium layer before the first
//!    one goes to full resolution.
//!
//! The rule never spends more than the estimate on video, and a paused track could not have been
//! fed even by undoing every upgrade. It is not monotone per track: more bandwidth can let a
//! higher-priority track in (or one step up) and leave less for a lower one. The total is
//! monotone: more bandwidth never lowers the sum allocated (ascending ladders).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What one track of the subscriber could receive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrackDemand {
    /// The caller's id for the track, stable across calls; [`Allocator`] keys its history on it.
    pub id: u32,
    /// An audio track: always allocated (see the module documentation).
    pub audio: bool,
    /// Higher is served first.
    pub priority: u8,
    /// Bitrate of each selectable layer in bit/s, ascending (lowest quality first), already
    /// truncated to what the viewer can use. Audio has a single entry. An empty list makes the
    /// track unallocatable (always `None`). A list that is not ascending is served without panic,
    /// but a step down the list is budgeted as free.
    pub layers: Vec<u64>,
}

/// The layer index chosen for each of `tracks` (same order), `None` for a paused track, given a
/// downlink estimate of `estimate_bps` bit/s. Pure and stateless; the rule is in the module
/// documentation. Allocates the result and a sort order: call it per estimate update, not per
/// packet.
pub fn allocate(estimate_bps: u64, tracks: &[TrackDemand]) -> Vec<Option<usize>> {
    let mut chosen: Vec<Option<usize>> = vec![None; tracks.len()];
    let mut audio_bps: u64 = 0;
    for (slot, t) in chosen.iter_mut().zip(tracks) {
        if t.audio {
            if let Some(&bps) = t.layers.last() {
                // `last` is Some, so the ladder is not empty and `len - 1` cannot underflow.
                *slot = Some(t.layers.len() - 1);
                audio_bps = audio_bps.saturating_add(bps);
            }
        }
    }
    let mut remaining = estimate_bps.saturating_sub(audio_bps);

    let mut order: Vec<usize> = (0..tracks.len()).filter(|&i| !tracks[i].audio).collect();
    // Stable sort: equal priorities keep their input order.
    order.sort_by_key(|&i| std::cmp::Reverse(tracks[i].priority));

    for &i in &order {
        if let Some(&lowest) = tracks[i].layers.first() {
            if lowest <= remaining {
                remaining -= lowest;
                chosen[i] = Some(0);
            }
        }
    }
    loop {
        let mut raised = false;
        for &i in &order {
            let Some(k) = chosen[i] else { continue };
            let (Some(&from), Some(&to)) = (tracks[i].layers.get(k), tracks[i].layers.get(k + 1))
            else {
                continue;
            };
            let step = to.saturating_sub(from);
            if step <= remaining {
                remaining -= step;
                chosen[i] = Some(k + 1);
                raised = true;
            }
        }
        // Each pass raises some layer index, and indices are bounded by the ladders: this ends.
        if !raised {
            return chosen;
        }
    }
}

/// What the subscriber would receive with unlimited bandwidth, in bit/s: the sum of every track's
/// highest layer (saturating). The caller hands it to the estimator as the rate to probe towards,
/// so the estimate can show headroom before any track climbs.
pub fn desired_bitrate(tracks: &[TrackDemand]) -> u64 {
    tracks
        .iter()
        .filter_map(|t| t.layers.last())
        .fold(0, |sum, &bps| sum.saturating_add(bps))
}

/// The bitrate of `allocation` (as returned by [`allocate`] for `tracks`), in bit/s: the sum of
/// the chosen layers (saturating). Indices outside a track's ladder, and entries beyond the
/// shorter of the two slices, count as nothing.
pub fn allocated_bitrate(tracks: &[TrackDemand], allocation: &[Option<usize>]) -> u64 {
    tracks
        .iter()
        .zip(allocation)
        .filter_map(|(t, k)| k.and_then(|k| t.layers.get(k)))
        .fold(0, |sum, &bps| sum.saturating_add(bps))
}

/// Tuning of [`Allocator`]'s hysteresis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AllocatorConfig {
    /// How long the estimate must continuously allow a higher layer before a track steps up.
    pub up_hold: Duration,
    /// Headroom factor for stepping up: a higher allocation is only climbed to when it fits in
    /// `estimate / up_headroom` bit/s (rounded down), i.e. the estimate exceeds its total times
    /// this factor. Values below 1.0 (and NaN) count as 1.0.
    pub up_headroom: f64,
}

impl Default for AllocatorConfig {
    /// `up_hold` 2 s, `up_headroom` 1.1 (10 % margin).
    fn default() -> Self {
        AllocatorConfig {
            up_hold: Duration::from_secs(2),
            up_headroom: 1.1,
        }
    }
}

/// Per-track history kept between updates.
#[derive(Clone, Copy, Debug)]
struct TrackState {
    /// The layer in force.
    applied: Option<usize>,
    /// An upward change being held back, if the estimate currently allows one.
    climb: Option<Climb>,
}

/// A pending step up: since when the estimate has allowed a higher layer without a break, and the
/// highest layer it has allowed at every update since (the minimum over the wait).
#[derive(Clone, Copy, Debug)]
struct Climb {
    since: Instant,
    level: Option<usize>,
}

/// Layer allocation with hysteresis for one subscriber: steps down at once, steps up only after
/// the estimate has shown headroom for a while.
///
/// Why: the GCC estimate can dip briefly on a loss burst or delay spike and recover within a
/// second or two. Following it upwards at once makes layers oscillate, and every spatial step up
/// costs a keyframe (a burst several times a delta frame), which itself can push the estimate
/// down again. Following it downwards late would send more than the path carries, building queues
/// and loss. So a decrease applies at the update that calls for it, and an increase waits until
/// the estimate has allowed it, with [`AllocatorConfig::up_headroom`] margin, for
/// [`AllocatorConfig::up_hold`] without a break; a dip restarts the wait.
///
/// Each track is judged on its own against [`allocate`]. Since that rule is not monotone per track
/// (see the module documentation), a rising estimate can move a lower-priority track down at once
/// while the track that displaces it still waits out its hold; the total then dips for up to
/// `up_hold`, and never exceeds the estimate.
#[derive(Clone, Debug)]
pub struct Allocator {
    config: AllocatorConfig,
    tracks: HashMap<u32, TrackState>,
    allocation: Vec<Option<usize>>,
}

impl Allocator {
    /// An allocator with no history.
    pub fn new(config: AllocatorConfig) -> Self {
        Allocator {
            config,
            tracks: HashMap::new(),
            allocation: Vec::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> AllocatorConfig {
        self.config
    }

    /// The result of the last [`Allocator::update`] (empty before the first).
    pub fn allocation(&self) -> &[Option<usize>] {
        &self.allocation
    }

    /// Recomputes the allocation for a new estimate (bit/s) or a new set of tracks, at `now`.
    /// Returns the layer in force per track, in the order of `tracks`.
    ///
    /// Per track, with `ceiling` the [`allocate`] result for `estimate_bps`:
    /// * a track not seen in the previous update gets its ceiling at once;
    /// * a track above its ceiling drops to it at once;
    /// * a track below both its ceiling and its allocation under `estimate_bps / up_headroom`
    ///   climbs once that has been so at every update for `up_hold`, to the lowest such layer
    ///   seen over the wait (the layer the estimate allowed throughout); a break restarts the
    ///   wait.
    ///
    /// So no track is ever above its ceiling, and (ascending ladders) the total never exceeds the
    /// estimate except by audio the estimate cannot carry. Tracks absent from `tracks` are
    /// forgotten. Ids are expected to be unique; duplicates share one history.
    pub fn update(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        tracks: &[TrackDemand],
    ) -> &[Option<usize>] {
        let headroom = if self.config.up_headroom >= 1.0 {
            self.config.up_headroom
        } else {
            1.0
        };
        // `as` from f64 saturates (and maps NaN to 0): never panics.
        let climb_budget = (estimate_bps as f64 / headroom) as u64;
        let ceiling = allocate(estimate_bps, tracks);
        let with_headroom = allocate(climb_budget, tracks);

        let mut next = HashMap::with_capacity(tracks.len());
        self.allocation.clear();
        for ((t, &ceiling), &with_headroom) in tracks.iter().zip(&ceiling).zip(&with_headroom) {
            let state = match self.tracks.get(&t.id) {
                None => TrackState {
                    applied: ceiling,
                    climb: None,
                },
                Some(old) => self.step(now, *old, ceiling, with_headroom.min(ceiling)),
            };
            self.allocation.push(state.applied);
            next.insert(t.id, state);
        }
        self.tracks = next;
        &self.allocation
    }

    /// [`Allocator::update`], then every track with a ladder that would be paused gets its
    /// lowest layer at once (no hold, no headroom). For a caller that keeps the lowest layers
    /// although the estimate is below them (`bwe::pause`): a paused track comes back now,
    /// not after the estimate has shown headroom it cannot show while nothing is sent.
    pub fn update_keeping_lowest(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        tracks: &[TrackDemand],
    ) -> &[Option<usize>] {
        self.update(now, estimate_bps, tracks);
        for (t, applied) in tracks.iter().zip(self.allocation.iter_mut()) {
            if applied.is_none() && !t.layers.is_empty() {
                *applied = Some(0);
                self.tracks.insert(
                    t.id,
                    TrackState {
                        applied: Some(0),
                        climb: None,
                    },
                );
            }
        }
        &self.allocation
    }

    /// The next state of a known track whose ceiling is `ceiling` and whose allowed climb target
    /// is `allowed` (≤ `ceiling`).
    fn step(
        &self,
        now: Instant,
        old: TrackState,
        ceiling: Option<usize>,
        allowed: Option<usize>,
    ) -> TrackState {
        if ceiling <= old.applied {
            // Step down (or stay) at once; any pending climb is void.
            return TrackState {
                applied: ceiling,
                climb: None,
            };
        }
        if allowed <= old.applied {
            // The estimate covers more, but not with headroom: the wait (re)starts later.
            return TrackState {
                applied: old.applied,
                climb: None,
            };
        }
        let climb = match old.climb {
            Some(c) => Climb {
                since: c.since,
                level: c.level.min(allowed),
            },
            None => Climb {
                since: now,
                level: allowed,
            },
        };
        if now.saturating_duration_since(climb.since) < self.config.up_hold {
            return TrackState {
                applied: old.applied,
                climb: Some(climb),
            };
        }
        // Climb to what was allowed throughout the wait; if more is allowed now, that is a new
        // wait starting here.
        TrackState {
            applied: climb.level,
            climb: (allowed > climb.level).then_some(Climb {
                since: now,
                level: allowed,
            }),
        }
    }
}

#[cfg(test)]
#[path = "allocator_tests.rs"]
mod tests;
