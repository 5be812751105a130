//! What a subscriber's video looked like, from the packets it recorded ([`Got`]): which
//! layer arrived when (packets per layer per second of virtual time), layer switches,
//! sequence gaps and repairs, completed frames and freezes.
//!
//! "In order" packets are those with a sequence number above every earlier one; a
//! retransmission arriving late is a repair and never counts as a switch. A frame is
//! complete once its first packet (VP8 S=1, PID=0), its last (marker) and every sequence
//! number in between have arrived; it completes at the arrival that fills it. A freeze
//! is a time longer than [`FREEZE_AFTER`] without a newly completed frame, once the
//! first one completed.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::peer::Got;

/// Three frame intervals at 30 fps.
pub const FREEZE_AFTER: Duration = Duration::from_millis(100);

/// A change of the layer arriving in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    /// Arrival of the first packet of the new layer.
    pub at: Instant,
    /// Layer before.
    pub from: u8,
    /// Layer after.
    pub to: u8,
}

/// A time without a newly completed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freeze {
    /// Completion of the last frame before it.
    pub from: Instant,
    /// How long until the next frame completed (or the end of the run).
    pub length: Duration,
}

/// A subscriber's video packets, in arrival order, and the start of virtual time.
#[derive(Debug, Clone, Copy)]
pub struct Video<'a> {
    got: &'a [Got],
    t0: Instant,
}

impl<'a> Video<'a> {
    /// View over `got` (arrival order); times are reported relative to `t0`.
    pub fn new(got: &'a [Got], t0: Instant) -> Self {
        Video { got, t0 }
    }

    /// Packets with a sequence number above every earlier one.
    pub fn in_order(&self) -> impl Iterator<Item = &'a Got> + 'a {
        let mut highest: Option<u64> = None;
        self.got.iter().filter(move |g| {
            let fresh = highest.is_none_or(|h| g.seq > h);
            if fresh {
                highest = Some(g.seq);
            }
            fresh
        })
    }

    /// Packets received per layer (index) in each whole second of virtual time, up to
    /// the last arrival.
    pub fn per_second(&self) -> Vec<Vec<u64>> {
        let layers = self.got.iter().map(|g| g.layer as usize + 1).max();
        let seconds = self
            .got
            .last()
            .map(|g| g.at.saturating_duration_since(self.t0).as_secs() as usize + 1);
        let (Some(layers), Some(seconds)) = (layers, seconds) else {
            return Vec::new();
        };
        let mut out = vec![vec![0; layers]; seconds];
        for g in self.got {
            let s = g.at.saturating_duration_since(self.t0).as_secs() as usize;
            out[s][g.layer as usize] += 1;
        }
        out
    }

    /// Packets per layer arriving in `[from, to)`.
    pub fn per_layer(&self, from: Instant, to: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        for g in self.got.iter().filter(|g| g.at >= from && g.at < to) {
            let l = g.layer as usize;
            if out.len() <= l {
                out.resize(l + 1, 0);
            }
            out[l] += 1;
        }
        out
    }

    /// Every change of the in-order layer.
    pub fn switches(&self) -> Vec<Switch> {
        let mut out = Vec::new();
        let mut layer: Option<u8> = None;
        for g in self.in_order() {
            if let Some(from) = layer.filter(|l| *l != g.layer) {
                out.push(Switch {
                    at: g.at,
                    from,
                    to: g.layer,
                });
            }
            layer = Some(g.layer);
        }
        out
    }

    /// (sequence numbers skipped at arrival, packets that arrived behind a higher one).
    pub fn gaps(&self) -> (u64, u64) {
        let Some(first) = self.got.first() else {
            return (0, 0);
        };
        let mut highest = first.seq;
        let (mut holes, mut late) = (0, 0);
        for g in &self.got[1..] {
            if g.seq <= highest {
                late += 1;
            } else {
                holes += g.seq - highest - 1;
                highest = g.seq;
            }
        }
        (holes, late)
    }

    /// The layer of the last in-order packet that arrived by `t`.
    pub fn layer_at(&self, t: Instant) -> Option<u8> {
        self.in_order()
            .take_while(|g| g.at <= t)
            .last()
            .map(|g| g.layer)
    }

    /// The start of the final run, within `[from, to)`, of in-order packets whose layer
    /// satisfies `ok`: the earliest time after which every in-order packet up to `to` is on
    /// an accepted layer. `None` if the last in-order packet before `to` is not accepted,
    /// or none arrived in the window.
    pub fn settled_from(
        &self,
        from: Instant,
        to: Instant,
        ok: impl Fn(u8) -> bool,
    ) -> Option<Instant> {
        let mut start: Option<Instant> = None;
        let mut any = false;
        for g in self.in_order().filter(|g| g.at >= from && g.at < to) {
            any = true;
            if ok(g.layer) {
                start.get_or_insert(g.at);
            } else {
                start = None;
            }
        }
        start.filter(|_| any)
    }

    /// When each frame completed, in order.
    pub fn frames_completed(&self) -> Vec<Instant> {
        #[derive(Default)]
        struct Frame {
            first: Option<u64>,
            last: Option<u64>,
            seqs: BTreeSet<u64>,
            done: bool,
        }
        let mut frames: HashMap<u32, Frame> = HashMap::new();
        let mut out = Vec::new();
        for g in self.got {
            let f = frames.entry(g.ts).or_default();
            if f.done {
                continue;
            }
            f.seqs.insert(g.seq);
            if g.frame_start {
                f.first = Some(g.seq);
            }
            if g.marker {
                f.last = Some(g.seq);
            }
            if let (Some(a), Some(b)) = (f.first, f.last) {
                if b >= a && f.seqs.range(a..=b).count() as u64 == b - a + 1 {
                    f.done = true;
                    out.push(g.at);
                }
            }
        }
        out
    }

    /// Times longer than [`FREEZE_AFTER`] without a newly completed frame, from the first
    /// completed frame until `end`.
    pub fn freezes(&self, end: Instant) -> Vec<Freeze> {
        let done = self.frames_completed();
        let mut out = Vec::new();
        let ends = done.iter().skip(1).copied().chain([end]);
        for (from, to) in done.iter().copied().zip(ends) {
            let length = to.saturating_duration_since(from);
            if length > FREEZE_AFTER {
                out.push(Freeze { from, length });
            }
        }
        out
    }
}
