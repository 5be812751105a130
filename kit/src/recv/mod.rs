//! What a viewer measures from the packets it receives: one [`SlotStats`] per received
//! SSRC (a WHEP slot; a plain viewer has one video and one audio stream) for loss,
//! freezes, layer switches, source changes and keyframes, and viewer-wide one-way
//! latency, packet counts and media of its own identity (which a conference server
//! must never send back). [`Received`] is the log every view starts from: each packet
//! read once ([`Got`]), in arrival order.
//!
//! Pure bookkeeping: times come in as microseconds since the tool's start, nothing
//! here reads the clock or touches a socket.

use std::collections::HashMap;

mod histogram;
mod log;
mod slot;

pub use histogram::Histogram;
pub use log::{Corrupt, Got, Received};
pub use slot::{Arrival, SlotStats};

use crate::media::{Parsed, AUDIO_STREAM};

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
    /// One-way latency of packets in the window, microseconds.
    pub latency_us: Histogram,
    /// The same for audio packets only.
    pub audio_latency_us: Histogram,
    /// Video packets per spatial layer (whole session).
    pub layer_packets: [u64; 4],
    /// Packets of the viewer's own publisher (whole session): a conference server must
    /// never send a participant its own media.
    pub own_packets: u64,
    /// One entry per SSRC received, in order of the first packet.
    pub slots: Vec<SlotStats>,
    /// The viewer's own publisher id, if it publishes.
    own: Option<u32>,
    by_ssrc: HashMap<u32, usize>,
    current_layer: Option<u8>,
}

impl RecvStats {
    /// A viewer whose own publisher (if any) has id `own`.
    pub fn new(own: Option<u32>) -> Self {
        RecvStats {
            own,
            ..Default::default()
        }
    }

    /// Account for one parsed packet received on `ssrc`. `in_window` says whether the
    /// measurement window is open; `freeze_us` is the frame gap (microseconds) above
    /// which a freeze counts.
    pub fn record(&mut self, ssrc: u32, p: &Parsed, a: Arrival, in_window: bool, freeze_us: u64) {
        let b = &p.body;
        let audio = b.stream == AUDIO_STREAM;
        self.bytes += a.len as u64;
        if self.own == Some(b.publisher) {
            self.own_packets += 1;
        }
        let layer = b.stream >> 4;
        if audio {
            self.audio_packets += 1;
        } else {
            self.video_packets += 1;
            if let Some(n) = self.layer_packets.get_mut(usize::from(layer)) {
                *n += 1;
            }
        }
        let i = *self.by_ssrc.entry(ssrc).or_insert_with(|| {
            self.slots.push(SlotStats::new(ssrc, audio));
            self.slots.len() - 1
        });
        if !self.slots[i].record(p, a, in_window, freeze_us) {
            // A late packet (a retransmission) of a layer or source left behind.
            return;
        }
        if !audio {
            self.current_layer = Some(layer);
        }
        if !in_window {
            return;
        }
        self.window_packets += 1;
        let latency = a.now_us.saturating_sub(b.send_us);
        self.latency_us.record(latency);
        if audio {
            self.audio_latency_us.record(latency);
        }
    }

    /// The spatial layer of the latest video packet (any slot).
    pub fn current_layer(&self) -> Option<u8> {
        self.current_layer
    }

    /// The video streams (slots) received.
    pub fn video_slots(&self) -> impl Iterator<Item = &SlotStats> {
        self.slots.iter().filter(|s| !s.audio)
    }

    /// The audio streams (slots) received.
    pub fn audio_slots(&self) -> impl Iterator<Item = &SlotStats> {
        self.slots.iter().filter(|s| s.audio)
    }

    /// When `n` video slots had each received a complete keyframe (the `n`-th first
    /// keyframe), microseconds since the tool's start; `None` while fewer had.
    pub fn keyframes_in(&self, n: usize) -> Option<u64> {
        let mut at: Vec<u64> = self
            .video_slots()
            .filter_map(|s| s.first_keyframe_us)
            .collect();
        at.sort_unstable();
        n.checked_sub(1).and_then(|i| at.get(i).copied())
    }

    fn sum(&self, f: impl Fn(&SlotStats) -> u64) -> u64 {
        self.slots.iter().map(f).sum()
    }

    /// Counters expected in the window, all slots.
    pub fn expected(&self) -> u64 {
        self.sum(|s| s.expected)
    }

    /// Lost packets in the window (expected but never received), all slots.
    pub fn lost(&self) -> u64 {
        self.sum(SlotStats::lost)
    }

    /// Freezes in the window, all video slots.
    pub fn freezes(&self) -> u64 {
        self.sum(|s| s.freezes)
    }

    /// Sum of the freezes' gaps, microseconds.
    pub fn freeze_us(&self) -> u64 {
        self.sum(|s| s.freeze_us)
    }

    /// Spatial layer changes in the window, all video slots.
    pub fn layer_switches(&self) -> u64 {
        self.sum(|s| s.layer_switches)
    }

    /// Source changes in the window, all slots.
    pub fn source_switches(&self) -> u64 {
        self.sum(|s| s.source_switches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Body;

    const SSRC: u32 = 0x1234;

    fn from(publisher: u32, stream: u8, counter: u64, key: bool) -> Parsed {
        Parsed {
            body: Body {
                stream,
                publisher,
                frame: 0,
                counter,
                send_us: 1_000,
            },
            frame_start: key,
            starts_keyframe: key,
            body_at: 1,
        }
    }

    fn pkt(stream: u8, counter: u64, key: bool) -> Parsed {
        from(0, stream, counter, key)
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
    fn loss_counts_gaps_and_late_fills_but_not_switches() {
        let mut s = RecvStats::default();
        let rec = |s: &mut RecvStats, stream, c, marker, now| {
            let ssrc = if stream == AUDIO_STREAM { 1 } else { SSRC };
            s.record(
                ssrc,
                &pkt(stream, c, false),
                arr(1, marker, now),
                true,
                100_000,
            )
        };
        for c in [1, 2, 4, 5] {
            rec(&mut s, 0x20, c, true, 2_000);
        }
        assert_eq!((s.expected(), s.slots[0].received, s.lost()), (5, 4, 1));
        rec(&mut s, 0x20, 3, false, 2_000); // late fill
        assert_eq!(s.lost(), 0);
        rec(&mut s, 0x20, 3, false, 2_000); // duplicate
        assert_eq!(s.slots[0].received, 5);
        // Switch to layer 1 (counters elsewhere), then back to 2 much later.
        rec(&mut s, 0x10, 500, true, 3_000);
        rec(&mut s, 0x10, 501, true, 3_010);
        rec(&mut s, 0x20, 90, true, 3_020);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.layer_switches(), 2);
        // A stale retransmission of layer 1 does not switch back.
        rec(&mut s, 0x10, 400, false, 3_030);
        assert_eq!(s.layer_switches(), 2);
        assert_eq!(s.current_layer(), Some(2));
        // Audio is its own stream.
        rec(&mut s, AUDIO_STREAM, 7, false, 3_040);
        rec(&mut s, AUDIO_STREAM, 9, false, 3_050);
        assert_eq!(s.lost(), 1);
        assert_eq!((s.video_slots().count(), s.audio_slots().count()), (1, 1));
        // A 200 ms gap between frames is a freeze.
        rec(&mut s, 0x20, 91, true, 203_020);
        assert_eq!(s.freezes(), 1);
        assert_eq!(s.source_switches(), 0);
    }

    #[test]
    fn first_keyframe_needs_every_packet() {
        let mut s = RecvStats::default();
        s.record(SSRC, &pkt(0, 10, true), arr(7, false, 1), false, 1);
        s.record(SSRC, &pkt(0, 12, false), arr(7, true, 2), false, 1);
        assert_eq!(s.keyframes_in(1), None);
        s.record(SSRC, &pkt(0, 11, false), arr(7, false, 3), false, 1);
        assert_eq!(s.keyframes_in(1), Some(3));
        assert_eq!(s.slots[0].keyframes, 1);
    }

    #[test]
    fn a_source_change_is_neither_loss_nor_freeze_nor_layer_switch() {
        let mut s = RecvStats::new(Some(9));
        let freeze = 100_000;
        // Publisher 1 on layer 2 in the slot, frames every 33 ms.
        for (i, c) in (1..=3).enumerate() {
            let now = 10_000 + 33_000 * i as u64;
            s.record(
                SSRC,
                &from(1, 0x20, c, c == 1),
                arr(c as u32, true, now),
                true,
                freeze,
            );
        }
        // The server re-maps the slot to publisher 2 (layer 0, counters far ahead)
        // after a 500 ms wait for its keyframe.
        s.record(
            SSRC,
            &from(2, 0x00, 700, true),
            arr(50, false, 600_000),
            true,
            freeze,
        );
        s.record(
            SSRC,
            &from(2, 0x00, 701, false),
            arr(50, true, 600_100),
            true,
            freeze,
        );
        s.record(
            SSRC,
            &from(2, 0x00, 702, false),
            arr(51, true, 633_000),
            true,
            freeze,
        );
        let slot = &s.slots[0];
        assert_eq!((slot.expected, slot.lost()), (6, 0));
        assert_eq!((slot.freezes, slot.layer_switches), (0, 0));
        assert_eq!(slot.source_switches, 1);
        assert_eq!(slot.sources, vec![1, 2]);
        assert_eq!(slot.keyframes, 2);
        // A late retransmission of publisher 1 does not switch back.
        s.record(
            SSRC,
            &from(1, 0x20, 2, false),
            arr(2, false, 640_000),
            true,
            freeze,
        );
        assert_eq!(s.source_switches(), 1);
        assert_eq!(s.window_packets, 6);
        // Publisher 1 comes back much later: a new run again, no loss for the time away.
        s.record(
            SSRC,
            &from(1, 0x20, 90, false),
            arr(90, true, 2_000_000),
            true,
            freeze,
        );
        s.record(
            SSRC,
            &from(1, 0x20, 92, false),
            arr(91, true, 2_033_000),
            true,
            freeze,
        );
        assert_eq!(s.source_switches(), 2);
        assert_eq!((s.expected(), s.lost()), (9, 1));
        assert_eq!(s.freezes(), 0);
        // Media of the viewer's own publisher is counted.
        assert_eq!(s.own_packets, 0);
        s.record(
            7,
            &from(9, AUDIO_STREAM, 1, false),
            arr(1, false, 2_100_000),
            true,
            freeze,
        );
        assert_eq!(s.own_packets, 1);
    }

    #[test]
    fn every_video_slot_needs_its_keyframe() {
        let mut s = RecvStats::default();
        for (ssrc, publisher, at) in [(1, 1, 500), (2, 2, 900)] {
            s.record(
                ssrc,
                &from(publisher, 0, 1, true),
                arr(1, true, at),
                false,
                1,
            );
        }
        // An audio slot and a slot with only delta frames.
        s.record(
            3,
            &from(1, AUDIO_STREAM, 1, false),
            arr(1, true, 100),
            false,
            1,
        );
        s.record(4, &from(3, 0, 5, false), arr(1, true, 200), false, 1);
        assert_eq!(s.keyframes_in(1), Some(500));
        assert_eq!(s.keyframes_in(2), Some(900));
        assert_eq!(s.keyframes_in(3), None);
        assert_eq!(s.keyframes_in(0), None);
        assert_eq!(s.video_slots().count(), 3);
    }
}
