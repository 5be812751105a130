//! What a viewer measures from the packets it receives: loss by per-stream counters,
//! one-way latency, frame gaps (freezes), layer switches and the first complete
//! keyframe; plus [`Histogram`], a small log-linear histogram for percentiles.
//!
//! Pure bookkeeping: times come in as microseconds since the tool's start, nothing
//! here reads the clock or touches a socket.

use std::collections::HashMap;

use crate::media::{Parsed, AUDIO_STREAM};

/// Values below this are counted exactly; above it with 1/128 relative precision.
const LINEAR_LIMIT: u64 = 1024;
/// Sub-buckets per power of two above [`LINEAR_LIMIT`].
const SUB_BUCKETS: u64 = 128;
/// How far back (in counters) a late packet may still fill a gap.
const REORDER_WINDOW: u64 = 128;

/// A log-linear histogram of `u64` values (microseconds here): exact below 1024, within
/// 0.8 % above. Grows only as far as the largest value recorded.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < LINEAR_LIMIT {
            return v as usize;
        }
        let exp = 63 - u64::from(v.leading_zeros()); // >= 10
        let sub = (v >> (exp - 7)) & (SUB_BUCKETS - 1);
        (LINEAR_LIMIT + (exp - 10) * SUB_BUCKETS + sub) as usize
    }

    /// The smallest value that falls into bucket `i` (`i` up to one past the last).
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR_LIMIT {
            return i;
        }
        let exp = (i - LINEAR_LIMIT) / SUB_BUCKETS + 10;
        let sub = (i - LINEAR_LIMIT) % SUB_BUCKETS;
        (1 << exp) | (sub << (exp - 7))
    }

    /// Record one value.
    pub fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), by nearest rank, as the highest value of its
    /// bucket (never above the largest recorded); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some((Self::value(i + 1) - 1).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Largest value recorded.
    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// Mean value.
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }
}

/// Counter bookkeeping of one stream: highest counter, a window of recent ones.
#[derive(Clone, Debug, Default)]
struct StreamSeq {
    highest: u64,
    /// Bit i: counter `highest - i` was received.
    window: u128,
    /// The next packet starts a new run (first packet, or after a layer switch).
    fresh: bool,
}

/// Keyframe being reassembled: one RTP timestamp of one stream.
#[derive(Clone, Copy, Debug)]
struct KeyframeAssembly {
    stream: u8,
    ts: u32,
    first: u64,
    last: Option<u64>,
    packets: u64,
}

/// RTP header facts and arrival time of one packet.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// RTP timestamp.
    pub ts: u32,
    /// RTP marker bit.
    pub marker: bool,
    /// Payload length in bytes.
    pub len: usize,
    /// Arrival time, microseconds since the tool's start.
    pub now_us: u64,
}

/// Everything one viewer measured.
#[derive(Clone, Debug, Default)]
pub struct RecvStats {
    /// Video RTP packets received (whole session).
    pub video_packets: u64,
    /// Audio RTP packets received (whole session).
    pub audio_packets: u64,
    /// Payload bytes received (whole session).
    pub bytes: u64,
    /// Payloads that could not be read (not written by this tool, or damaged).
    pub unreadable: u64,
    /// Packets received in the measurement window.
    pub window_packets: u64,
    /// Counters expected in the window (sum over streams of each run's span).
    pub expected: u64,
    /// Distinct counters received in the window.
    pub received: u64,
    /// One-way latency of packets in the window, microseconds.
    pub latency_us: Histogram,
    /// The same for audio packets only.
    pub audio_latency_us: Histogram,
    /// Complete video frames (marker packets) in the window.
    pub frames: u64,
    /// Frame gaps longer than the freeze threshold in the window.
    pub freezes: u64,
    /// Sum of those gaps, microseconds.
    pub freeze_us: u64,
    /// Changes of the spatial layer received, in the window.
    pub layer_switches: u64,
    /// Video packets per spatial layer (whole session).
    pub layer_packets: [u64; 4],
    /// Time of the first complete keyframe, microseconds since the tool's start.
    pub first_keyframe_us: Option<u64>,
    /// Complete keyframes received (whole session).
    pub keyframes: u64,
    streams: HashMap<u8, StreamSeq>,
    current_layer: Option<u8>,
    last_frame_us: Option<u64>,
    assembly: Option<KeyframeAssembly>,
}

impl RecvStats {
    /// Account for one parsed packet. `in_window` says whether the measurement window
    /// is open; `freeze_us` is the frame gap (microseconds) above which a freeze counts.
    pub fn record(&mut self, p: &Parsed, a: Arrival, in_window: bool, freeze_us: u64) {
        let Arrival {
            ts,
            marker,
            len,
            now_us,
        } = a;
        let b = &p.body;
        let audio = b.stream == AUDIO_STREAM;
        self.bytes += len as u64;
        if audio {
            self.audio_packets += 1;
        } else {
            self.video_packets += 1;
            let layer = b.stream >> 4;
            if let Some(n) = self.layer_packets.get_mut(usize::from(layer)) {
                *n += 1;
            }
            self.keyframe_progress(p, ts, marker, now_us);
            if !self.track_layer(layer, b.stream, b.counter, in_window) {
                // A late packet (a retransmission) of a layer left behind: no switch.
                return;
            }
        }
        if !in_window {
            return;
        }
        self.window_packets += 1;
        let latency = now_us.saturating_sub(b.send_us);
        self.latency_us.record(latency);
        if audio {
            self.audio_latency_us.record(latency);
        }
        self.count(b.stream, b.counter);
        if !audio && marker {
            self.frames += 1;
            if let Some(last) = self.last_frame_us {
                let gap = now_us.saturating_sub(last);
                if gap > freeze_us {
                    self.freezes += 1;
                    self.freeze_us += gap;
                }
            }
            self.last_frame_us = Some(now_us);
        }
    }

    /// The spatial layer of the latest video packet.
    pub fn current_layer(&self) -> Option<u8> {
        self.current_layer
    }

    /// Lost packets in the window (expected but never received).
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    /// Follow the spatial layer; returns false for a stale packet of another layer.
    fn track_layer(&mut self, layer: u8, stream: u8, counter: u64, in_window: bool) -> bool {
        if self.current_layer == Some(layer) {
            return true;
        }
        if let Some(s) = self.streams.get(&stream) {
            if !s.fresh && counter <= s.highest && self.current_layer.is_some() {
                return false;
            }
        }
        if self.current_layer.is_some() && in_window {
            self.layer_switches += 1;
        }
        self.current_layer = Some(layer);
        // The new layer's counters continue from wherever they are: start new runs.
        for (k, s) in self.streams.iter_mut() {
            if *k != AUDIO_STREAM && *k >> 4 == layer {
                s.fresh = true;
            }
        }
        // A switch is not a freeze of the old layer's frame cadence.
        true
    }

    fn count(&mut self, stream: u8, c: u64) {
        let s = self.streams.entry(stream).or_insert(StreamSeq {
            fresh: true,
            ..Default::default()
        });
        if s.fresh {
            s.fresh = false;
            s.highest = c;
            s.window = 1;
            self.expected += 1;
            self.received += 1;
            return;
        }
        if c > s.highest {
            let d = c - s.highest;
            self.expected += d;
            self.received += 1;
            s.window = if d >= 128 { 1 } else { (s.window << d) | 1 };
            s.highest = c;
        } else {
            let d = s.highest - c;
            if d < REORDER_WINDOW && s.window & (1 << d) == 0 {
                s.window |= 1 << d;
                self.received += 1;
            }
        }
    }

    fn keyframe_progress(&mut self, p: &Parsed, ts: u32, marker: bool, now_us: u64) {
        let b = &p.body;
        if p.starts_keyframe {
            let same = self
                .assembly
                .is_some_and(|a| a.stream == b.stream && a.ts == ts);
            if !same {
                self.assembly = Some(KeyframeAssembly {
                    stream: b.stream,
                    ts,
                    first: b.counter,
                    last: None,
                    packets: 0,
                });
            }
        }
        let Some(a) = self.assembly.as_mut() else {
            return;
        };
        if a.stream != b.stream || a.ts != ts {
            return;
        }
        a.first = a.first.min(b.counter);
        a.packets += 1;
        if marker {
            a.last = Some(b.counter);
        }
        if a.last.is_some_and(|last| last + 1 == a.first + a.packets) {
            self.keyframes += 1;
            self.first_keyframe_us.get_or_insert(now_us);
            self.assembly = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Body;

    fn pkt(stream: u8, counter: u64, key: bool) -> Parsed {
        Parsed {
            body: Body {
                stream,
                frame: 0,
                counter,
                send_us: 1_000,
            },
            starts_keyframe: key,
        }
    }

    fn arr(ts: u32, marker: bool, now_us: u64) -> Arrival {
        Arrival {
            ts,
            marker,
            len: 100,
            now_us,
        }
    }

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        assert!((p50 / 50_000.0 - 1.0).abs() < 0.01, "{p50}");
        assert_eq!(h.quantile(1.0), Some(100_000));
        assert_eq!(h.quantile(0.0001), Some(10));
        let mut g = Histogram::default();
        g.merge(&h);
        assert_eq!(g.len(), 100_000);
        assert!(Histogram::default().quantile(0.5).is_none());
    }

    #[test]
    fn loss_counts_gaps_and_late_fills_but_not_switches() {
        let mut s = RecvStats::default();
        let rec = |s: &mut RecvStats, stream, c, marker, now| {
            s.record(&pkt(stream, c, false), arr(1, marker, now), true, 100_000)
        };
        for c in [1, 2, 4, 5] {
            rec(&mut s, 0x20, c, true, 2_000);
        }
        assert_eq!((s.expected, s.received, s.lost()), (5, 4, 1));
        rec(&mut s, 0x20, 3, false, 2_000); // late fill
        assert_eq!(s.lost(), 0);
        rec(&mut s, 0x20, 3, false, 2_000); // duplicate
        assert_eq!(s.received, 5);
        // Switch to layer 1 (counters elsewhere), then back to 2 much later.
        rec(&mut s, 0x10, 500, true, 3_000);
        rec(&mut s, 0x10, 501, true, 3_010);
        rec(&mut s, 0x20, 90, true, 3_020);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.layer_switches, 2);
        // A stale retransmission of layer 1 does not switch back.
        rec(&mut s, 0x10, 400, false, 3_030);
        assert_eq!(s.layer_switches, 2);
        // Audio is its own stream.
        rec(&mut s, AUDIO_STREAM, 7, false, 3_040);
        rec(&mut s, AUDIO_STREAM, 9, false, 3_050);
        assert_eq!(s.lost(), 1);
        // A 200 ms gap between frames is a freeze.
        rec(&mut s, 0x20, 91, true, 203_020);
        assert_eq!(s.freezes, 1);
    }

    #[test]
    fn first_keyframe_needs_every_packet() {
        let mut s = RecvStats::default();
        s.record(&pkt(0, 10, true), arr(7, false, 1), false, 1);
        s.record(&pkt(0, 12, false), arr(7, true, 2), false, 1);
        assert_eq!(s.first_keyframe_us, None);
        s.record(&pkt(0, 11, false), arr(7, false, 3), false, 1);
        assert_eq!(s.first_keyframe_us, Some(3));
        assert_eq!(s.keyframes, 1);
    }
}
