//! Figures the test peers collect: what a publisher wrote, what a
//! subscriber received (each payload parsed and checked against what the
//! publisher must have written), and the state of a peer's connection.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use str0m::rtp::RtpPacket;

use super::media::{self, RecvCodec};
use switchboard_kit::media::ParseError;
use switchboard_kit::recv::{Got, RecvStats};

/// Per-kind receive figures of a subscriber.
#[derive(Clone, Debug, Default)]
pub struct KindReport {
    /// RTP packets received (str0m filters duplicates).
    pub packets: u64,
    pub bytes: u64,
    /// Decoded counters in arrival order.
    pub counters: Vec<u64>,
    /// Payloads whose length and pattern were exactly as sent.
    pub intact: u64,
    /// Payloads that were not.
    pub corrupt: u64,
    pub first_corruption: Option<String>,
    pub ssrcs: BTreeSet<u32>,
    pub pts: BTreeSet<u8>,
    /// Extended sequence numbers received.
    pub seqs: BTreeSet<u64>,
    /// Packets whose sequence number was not above every earlier one
    /// (reordering, or a retransmission filling a hole).
    pub seq_backwards: u64,
    /// Packets whose RTP timestamp went backwards (video only matters).
    pub ts_backwards: u64,
    /// Whether the first packet of this kind started a keyframe.
    pub first_starts_keyframe: Option<bool>,
    /// Keyframes whose start was received (counted once per RTP timestamp).
    pub keyframes: u64,
    pub first_packet_at: Option<Instant>,
    /// Counter of the first packet.
    pub first_counter: Option<u64>,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    /// When the packet with the highest latency arrived.
    pub latency_max_at: Option<Instant>,
    /// Packets per simulcast layer (from the layer tag of their counters).
    pub layer_packets: BTreeMap<u8, u64>,
    /// Every change of the simulcast layer the packets come from, in arrival
    /// order; the first packet with a layer tag opens the list.
    pub layer_switches: Vec<LayerSwitch>,
    /// Layer of the latest packet that had one.
    pub current_layer: Option<u8>,
    last_seq: Option<u64>,
    last_ssrc: Option<u32>,
    last_ts: Option<u32>,
    last_keyframe_ts: Option<u32>,
}

impl KindReport {
    /// Mean one-way latency (publisher write to subscriber receive).
    pub fn mean_latency(&self) -> Duration {
        if self.packets == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.latency_sum_us / self.packets)
    }

    pub fn max_latency(&self) -> Duration {
        Duration::from_micros(self.latency_max_us)
    }

    /// Sequence numbers missing between the lowest and highest received.
    pub fn seq_gaps(&self) -> u64 {
        match (self.seqs.first(), self.seqs.last()) {
            (Some(lo), Some(hi)) => hi - lo + 1 - self.seqs.len() as u64,
            _ => 0,
        }
    }

    /// Packets received from simulcast layer `layer`.
    pub fn packets_of_layer(&self, layer: u8) -> u64 {
        self.layer_packets.get(&layer).copied().unwrap_or(0)
    }

    /// Distinct counters received.
    pub fn distinct_counters(&self) -> BTreeSet<u64> {
        self.counters.iter().copied().collect()
    }

    /// Account for `pkt`, received at `now`, as the kit's receiver log read it (`read`:
    /// the entry, or why the payload could not be read).
    pub(super) fn record(
        &mut self,
        codec: RecvCodec,
        pkt: &RtpPacket,
        now: Instant,
        read: Result<&Got, &ParseError>,
    ) {
        self.packets += 1;
        self.bytes += pkt.payload.len() as u64;
        self.ssrcs.insert(*pkt.header.ssrc);
        self.pts.insert(*pkt.header.payload_type);
        let seq = *pkt.seq_no;
        let prev = (self.last_seq, self.last_ts, self.last_ssrc);
        self.last_ssrc = Some(*pkt.header.ssrc);
        if self.last_seq.is_some_and(|last| seq <= last) {
            self.seq_backwards += 1;
        }
        self.seqs.insert(seq);
        self.last_seq = Some(self.last_seq.map_or(seq, |l| l.max(seq)));
        let ts = pkt.header.timestamp;
        if let Some(last) = self.last_ts {
            // Wrapping comparison: "behind" means within half the range below.
            if ts != last && ts.wrapping_sub(last) > u32::MAX / 2 {
                self.ts_backwards += 1;
            }
        }
        self.last_ts = Some(ts);
        if self.first_packet_at.is_none() {
            self.first_packet_at = Some(now);
        }
        let got = match read {
            Ok(got) => got,
            Err(why) => {
                if self.first_starts_keyframe.is_none() {
                    self.first_starts_keyframe = Some(false);
                }
                self.corrupt += 1;
                self.first_corruption
                    .get_or_insert_with(|| format!("{codec:?} seq {seq}: {why}"));
                return;
            }
        };
        let intact = media::intact(got);
        if self.first_starts_keyframe.is_none() {
            self.first_starts_keyframe = Some(got.keyframe_start);
        }
        if self.first_counter.is_none() {
            self.first_counter = Some(got.counter);
        }
        if got.keyframe_start && self.last_keyframe_ts != Some(ts) {
            self.keyframes += 1;
            self.last_keyframe_ts = Some(ts);
        }
        if let Some(layer) = media::counter_layer(got.counter) {
            *self.layer_packets.entry(layer).or_default() += 1;
            if self.current_layer != Some(layer) {
                self.layer_switches.push(LayerSwitch {
                    at: now,
                    from: self.current_layer,
                    to: layer,
                    starts_keyframe: got.keyframe_start,
                    nal_types: if codec == RecvCodec::H264 {
                        media::h264_nal_types(&pkt.payload)
                    } else {
                        Vec::new()
                    },
                    intact,
                    seq,
                    prev_seq: prev.0,
                    ts,
                    prev_ts: prev.1,
                    ssrc: *pkt.header.ssrc,
                    prev_ssrc: prev.2,
                });
                self.current_layer = Some(layer);
            }
        }
        self.counters.push(got.counter);
        let lat = media::micros_since_epoch(now).saturating_sub(got.body.send_us);
        self.latency_sum_us += lat;
        if lat > self.latency_max_us || self.latency_max_at.is_none() {
            self.latency_max_us = lat;
            self.latency_max_at = Some(now);
        }
        if intact {
            self.intact += 1;
        } else {
            self.corrupt += 1;
            self.first_corruption.get_or_insert_with(|| {
                format!(
                    "{codec:?} seq {seq} counter {} len {}: pattern or length differs",
                    got.counter,
                    pkt.payload.len()
                )
            });
        }
    }
}

/// The first packet a subscriber received from a simulcast layer after
/// packets of another (or none), with the header fields of the packet
/// received just before it.
#[derive(Clone, Debug)]
pub struct LayerSwitch {
    pub at: Instant,
    pub from: Option<u8>,
    pub to: u8,
    /// The packet starts a keyframe.
    pub starts_keyframe: bool,
    /// H264: the NAL unit types it carries (see [`media::h264_nal_types`]).
    pub nal_types: Vec<u8>,
    /// Its payload is exactly as the publisher wrote it.
    pub intact: bool,
    /// Extended sequence number, and the highest one before it.
    pub seq: u64,
    pub prev_seq: Option<u64>,
    pub ts: u32,
    /// RTP timestamp of the packet received before it.
    pub prev_ts: Option<u32>,
    pub ssrc: u32,
    pub prev_ssrc: Option<u32>,
}

impl LayerSwitch {
    /// RTP timestamp step from the previous packet (wrapping; negative when
    /// it went backwards).
    pub fn ts_step(&self) -> Option<i64> {
        self.prev_ts
            .map(|p| i64::from(self.ts.wrapping_sub(p) as i32))
    }
}

/// What a subscriber received.
#[derive(Clone, Debug, Default)]
pub struct SubscriberReport {
    pub audio: KindReport,
    pub video: KindReport,
    /// Packets with a payload type the subscriber did not offer.
    pub unknown_pt: u64,
    /// The client kit's receiver checks over the whole session (what the load tool
    /// measures): loss by counter per stream, frames, freezes, latency percentiles.
    pub checks: RecvStats,
}

/// What a publisher sent.
#[derive(Clone, Debug, Default)]
pub struct PublisherReport {
    /// Counters of the video packets written, in order.
    pub video_counters: Vec<u64>,
    /// Counters of the audio packets written, in order.
    pub audio_counters: Vec<u64>,
    pub video_frames: u64,
    pub keyframes_sent: u64,
    /// `Event::KeyframeRequest`s received (PLI/FIR from the server).
    pub keyframe_requests: u64,
    pub video_ssrc: Option<u32>,
    pub audio_ssrc: Option<u32>,
    /// Writes that found no send stream.
    pub missing_stream: u64,
    /// Simulcast publishers: what each layer sent, in the offer's RID order.
    pub layers: Vec<LayerSent>,
}

/// What one simulcast layer of a publisher sent.
#[derive(Clone, Debug, Default)]
pub struct LayerSent {
    pub rid: String,
    pub ssrc: Option<u32>,
    /// Counters written, in order (each tagged with the layer).
    pub counters: Vec<u64>,
    pub bytes: u64,
    pub frames: u64,
    pub keyframes_sent: u64,
    /// When each keyframe was written.
    pub keyframe_sent_at: Vec<Instant>,
    /// Keyframe requests (PLI/FIR) naming this layer's RID.
    pub keyframe_requests: u64,
    /// When each of them arrived.
    pub keyframe_requested_at: Vec<Instant>,
}

impl PublisherReport {
    /// Video packets written with a counter of at least `counter`.
    pub fn video_sent_from(&self, counter: u64) -> usize {
        self.video_counters
            .iter()
            .filter(|c| **c >= counter)
            .count()
    }

    /// Whether `counter` is one this publisher wrote.
    pub fn wrote(&self, counter: u64) -> bool {
        if let Some(layer) = media::counter_layer(counter) {
            return self
                .layers
                .get(layer as usize)
                .is_some_and(|l| l.counters.binary_search(&counter).is_ok());
        }
        self.video_counters.binary_search(&counter).is_ok()
            || self.audio_counters.binary_search(&counter).is_ok()
    }
}

/// Snapshot of a peer's state and figures.
#[derive(Clone, Debug, Default)]
pub struct PeerReport {
    /// `Event::Connected` (ICE + DTLS) was seen.
    pub connected_at: Option<Instant>,
    pub ice_state: Option<String>,
    /// The remote closed DTLS.
    pub remote_closed: bool,
    /// The task stopped (closed, vanished, or failed).
    pub finished: bool,
    /// str0m or socket error that stopped the task.
    pub error: Option<String>,
    pub datagrams_in: u64,
    /// Bytes of the datagrams received (media, padding, RTCP, STUN, DTLS).
    pub bytes_in: u64,
    pub datagrams_out: u64,
    /// Datagrams str0m could not classify.
    pub datagrams_unparsable: u64,
    pub publisher: PublisherReport,
    pub subscriber: SubscriberReport,
}

impl KindReport {
    /// Whole-run checks of a viewer's stream: one SSRC, no sequence gaps, nothing
    /// going backwards, no corrupt payload. `step` names the check in failures.
    pub fn check_contiguous(&self, step: &str) {
        let v = self;
        assert_eq!(
            v.ssrcs.len(),
            1,
            "{step}: more than one SSRC: {:?}",
            v.ssrcs
        );
        assert_eq!(v.seq_gaps(), 0, "{step}: sequence gaps");
        assert_eq!(v.seq_backwards, 0, "{step}: sequence numbers went back");
        assert_eq!(v.ts_backwards, 0, "{step}: RTP timestamps went back");
        assert_eq!(
            v.corrupt, 0,
            "{step}: corrupt payloads: {:?}",
            v.first_corruption
        );
    }
}
