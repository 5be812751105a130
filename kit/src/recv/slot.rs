//! What a viewer measures on one received RTP stream (one SSRC): a WHEP slot of a
//! conference viewer, or the video or audio stream of a plain one. Loss by per-stream
//! counters, frame gaps (freezes), layer switches, source changes and the first
//! complete keyframe.
//!
//! A counter belongs to one publisher's stream: `(publisher id, stream byte)` from the
//! payload body. A slot shows one source at a time; when another publisher's packets
//! arrive on it (the server re-mapped the slot), that is a **source change**: the new
//! source's counters start new runs, the gap between the old source's last frame and
//! the new one's first is not a freeze, and no layer switch is counted. A late
//! retransmission of a source (or a layer) left behind changes nothing. Pure
//! bookkeeping: times come in as microseconds since the tool's start.

use std::collections::HashMap;

use crate::media::Parsed;

/// How far back (in counters) a late packet may still fill a gap.
const REORDER_WINDOW: u64 = 128;

/// What a counter belongs to: (publisher id, stream byte).
type StreamKey = (u32, u8);

/// Counter bookkeeping of one stream: highest counter, a window of recent ones.
#[derive(Clone, Debug, Default)]
struct StreamSeq {
    highest: u64,
    /// Bit i: counter `highest - i` was received.
    window: u128,
    /// The next packet starts a new run (first packet, after a layer switch or a
    /// source change).
    fresh: bool,
}

/// Keyframe being reassembled: one RTP timestamp of one stream.
#[derive(Clone, Copy, Debug)]
struct KeyframeAssembly {
    key: StreamKey,
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

/// Everything measured on one received SSRC.
#[derive(Clone, Debug)]
pub struct SlotStats {
    /// The SSRC the server sends it on.
    pub ssrc: u32,
    /// An audio stream (its first packet was audio).
    pub audio: bool,
    /// RTP packets received (whole session).
    pub packets: u64,
    /// Packets counted in the measurement window.
    pub window_packets: u64,
    /// Counters expected in the window (sum over runs of each run's span).
    pub expected: u64,
    /// Distinct counters received in the window.
    pub received: u64,
    /// Complete video frames (marker packets) in the window.
    pub frames: u64,
    /// Frame gaps longer than the freeze threshold in the window.
    pub freezes: u64,
    /// Sum of those gaps, microseconds.
    pub freeze_us: u64,
    /// Changes of the spatial layer of one source, in the window.
    pub layer_switches: u64,
    /// Changes of the source (publisher) shown, in the window.
    pub source_switches: u64,
    /// Time of the first complete keyframe, microseconds since the tool's start.
    pub first_keyframe_us: Option<u64>,
    /// Complete keyframes received (whole session).
    pub keyframes: u64,
    /// Publishers seen on this SSRC, in order of first appearance.
    pub sources: Vec<u32>,
    source: Option<u32>,
    current_layer: Option<u8>,
    streams: HashMap<StreamKey, StreamSeq>,
    last_frame_us: Option<u64>,
    assembly: Option<KeyframeAssembly>,
}

impl SlotStats {
    /// A slot on `ssrc`, audio or video.
    pub fn new(ssrc: u32, audio: bool) -> Self {
        SlotStats {
            ssrc,
            audio,
            packets: 0,
            window_packets: 0,
            expected: 0,
            received: 0,
            frames: 0,
            freezes: 0,
            freeze_us: 0,
            layer_switches: 0,
            source_switches: 0,
            first_keyframe_us: None,
            keyframes: 0,
            sources: Vec::new(),
            source: None,
            current_layer: None,
            streams: HashMap::new(),
            last_frame_us: None,
            assembly: None,
        }
    }

    /// Account for one parsed packet; `false` for a late packet of a source or layer
    /// left behind (not counted in the window). `freeze_us` is the frame gap above
    /// which a freeze counts.
    pub fn record(&mut self, p: &Parsed, a: Arrival, in_window: bool, freeze_us: u64) -> bool {
        let b = &p.body;
        self.packets += 1;
        if !self.track_source(b.publisher, b.stream, b.counter, in_window) {
            return false;
        }
        let key = (b.publisher, b.stream);
        if !self.audio {
            self.keyframe_progress(p, key, a.ts, a.marker, a.now_us);
            if !self.track_layer(b.stream >> 4, key, b.counter, in_window) {
                return false;
            }
        }
        if !in_window {
            return true;
        }
        self.window_packets += 1;
        self.count(key, b.counter);
        if !self.audio && a.marker {
            self.frames += 1;
            if let Some(last) = self.last_frame_us {
                let gap = a.now_us.saturating_sub(last);
                if gap > freeze_us {
                    self.freezes += 1;
                    self.freeze_us += gap;
                }
            }
            self.last_frame_us = Some(a.now_us);
        }
        true
    }

    /// The spatial layer of the latest video packet of the current source.
    pub fn current_layer(&self) -> Option<u8> {
        self.current_layer
    }

    /// Lost packets in the window (expected but never received).
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    /// Follow the source; returns false for a late packet of a source left behind.
    fn track_source(&mut self, publisher: u32, stream: u8, counter: u64, in_window: bool) -> bool {
        if self.source == Some(publisher) {
            return true;
        }
        if self.source.is_some() {
            if let Some(s) = self.streams.get(&(publisher, stream)) {
                if !s.fresh && counter <= s.highest {
                    return false;
                }
            }
            if in_window {
                self.source_switches += 1;
            }
        }
        self.source = Some(publisher);
        if !self.sources.contains(&publisher) {
            self.sources.push(publisher);
        }
        // The new source's counters continue from wherever they are: new runs. The gap
        // until its first frame is not a freeze, its layer not a layer switch.
        for (k, s) in self.streams.iter_mut() {
            if k.0 == publisher {
                s.fresh = true;
            }
        }
        self.current_layer = None;
        self.last_frame_us = None;
        self.assembly = None;
        true
    }

    /// Follow the spatial layer; returns false for a stale packet of another layer.
    fn track_layer(&mut self, layer: u8, key: StreamKey, counter: u64, in_window: bool) -> bool {
        if self.current_layer == Some(layer) {
            return true;
        }
        if let Some(s) = self.streams.get(&key) {
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
            if k.0 == key.0 && k.1 >> 4 == layer {
                s.fresh = true;
            }
        }
        true
    }

    fn count(&mut self, key: StreamKey, c: u64) {
        let s = self.streams.entry(key).or_insert(StreamSeq {
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

    fn keyframe_progress(&mut self, p: &Parsed, key: StreamKey, ts: u32, marker: bool, now: u64) {
        let counter = p.body.counter;
        if p.starts_keyframe {
            let same = self.assembly.is_some_and(|a| a.key == key && a.ts == ts);
            if !same {
                self.assembly = Some(KeyframeAssembly {
                    key,
                    ts,
                    first: counter,
                    last: None,
                    packets: 0,
                });
            }
        }
        let Some(a) = self.assembly.as_mut() else {
            return;
        };
        if a.key != key || a.ts != ts {
            return;
        }
        a.first = a.first.min(counter);
        a.packets += 1;
        if marker {
            a.last = Some(counter);
        }
        if a.last.is_some_and(|last| last + 1 == a.first + a.packets) {
            self.keyframes += 1;
            self.first_keyframe_us.get_or_insert(now);
            self.assembly = None;
        }
    }
}
