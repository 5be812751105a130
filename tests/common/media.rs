//! Synthetic but well-formed RTP payloads for the test peers, and the
//! receiver-side parsing that checks them.
//!
//! Every payload is `codec header | counter (u64 BE) | send time (u64 BE,
//! microseconds since [`epoch`]) | pattern`, where the pattern is a byte
//! sequence derived from the counter, and the payload has a fixed total length
//! per media kind. A receiver can therefore tell, byte for byte, whether a
//! forwarded payload is the one the publisher wrote, and how long it took.
//!
//! Codec headers:
//! - VP8 (RFC 7741): a one-byte payload descriptor (`0x10` = S bit, PID 0 on
//!   the first packet of a frame, `0x00` otherwise). The first packet of a
//!   frame then carries the VP8 frame tag (P bit 0 for keyframes, 1 for delta
//!   frames) and, for keyframes, the start code `9d 01 2a` and the 16-bit
//!   little-endian width and height.
//! - H264 (RFC 6184, packetization-mode 1): a keyframe is a STAP-A carrying an
//!   SPS, a PPS and an SEI unit (the SEI body holds the test body), followed
//!   by FU-A fragments of an IDR slice; a delta frame is FU-A fragments of a
//!   non-IDR slice.
//! - Opus: a single TOC byte.
//!
//! Simulcast: the OBS-shaped simulcast publisher sends three layers
//! ([`SIMULCAST_LAYERS`]) that differ in payload length and packets per
//! frame, so their bitrates differ as an encoder's would. The layer is part
//! of every counter it writes ([`layer_counter`], [`counter_layer`]), so a
//! subscriber can tell which layer each forwarded packet came from.

use std::sync::OnceLock;
use std::time::Instant;

/// Total RTP payload length of every video packet the test publishers send.
pub const VIDEO_PAYLOAD_LEN: usize = 1000;
/// Total RTP payload length of every audio packet the test publishers send.
pub const AUDIO_PAYLOAD_LEN: usize = 120;
/// Bytes of counter plus send time that follow the codec header.
pub const BODY_HEADER_LEN: usize = 16;

/// Video frame rate of the test publishers.
pub const VIDEO_FPS: u32 = 30;
/// RTP clock of video.
pub const VIDEO_CLOCK: u32 = 90_000;
/// Audio packet duration in milliseconds.
pub const AUDIO_PTIME_MS: u32 = 20;
/// RTP clock of Opus.
pub const AUDIO_CLOCK: u32 = 48_000;
/// A keyframe is sent at least this often (in frames): every 2 s.
pub const KEYFRAME_INTERVAL_FRAMES: u64 = 2 * VIDEO_FPS as u64;

/// An OBS-style simulcast layer keyframes at least this often (in frames):
/// every 3 s.
pub const SIMULCAST_KEYFRAME_INTERVAL_FRAMES: u64 = 3 * VIDEO_FPS as u64;

/// Size and rate of one simulcast layer of the test publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// The layer's RID.
    pub rid: &'static str,
    /// RTP payload length of every packet of the layer.
    pub payload_len: usize,
    /// Packets of a keyframe (a STAP-A, then FU-A fragments of the IDR).
    pub key_packets: usize,
    /// Packets of a delta frame: the first on even frames, the second on odd
    /// ones. At least 2 (an FU-A may not carry a whole NAL unit).
    pub delta_packets: (usize, usize),
}

impl LayerShape {
    /// Payload bit rate of the layer's delta frames at [`VIDEO_FPS`].
    pub fn nominal_bps(&self) -> u64 {
        let per_frame2 = (self.delta_packets.0 + self.delta_packets.1) * self.payload_len;
        (per_frame2 as u64 * 8 * VIDEO_FPS as u64) / 2
    }
}

/// The layers of the OBS-style simulcast publisher, in the offer's RID order:
/// like OBS, RID `"0"` is the highest. About 1.06 Mbit/s, 480 kbit/s and
/// 150 kbit/s of payload: the highest stays well inside the 2 Mbit/s a
/// viewer's estimate starts at, so a loaded machine's delay jitter cannot
/// keep it off the top layer.
pub const SIMULCAST_LAYERS: [LayerShape; 3] = [
    LayerShape {
        rid: "0",
        payload_len: 1100,
        key_packets: 10,
        delta_packets: (4, 4),
    },
    LayerShape {
        rid: "1",
        payload_len: 1000,
        key_packets: 4,
        delta_packets: (2, 2),
    },
    LayerShape {
        rid: "2",
        payload_len: 320,
        key_packets: 3,
        delta_packets: (2, 2),
    },
];

/// Counters of simulcast layer `i` carry `i + 1` in their top byte; plain
/// (non-simulcast) counters never get that large.
const LAYER_TAG_SHIFT: u32 = 56;

/// The `n`-th counter of simulcast layer `layer` (`n` below 2^56).
pub fn layer_counter(layer: u8, n: u64) -> u64 {
    ((u64::from(layer) + 1) << LAYER_TAG_SHIFT) | (n & ((1 << LAYER_TAG_SHIFT) - 1))
}

/// The simulcast layer (index into [`SIMULCAST_LAYERS`]) a counter belongs
/// to, `None` for a plain counter.
pub fn counter_layer(counter: u64) -> Option<u8> {
    match (counter >> LAYER_TAG_SHIFT) as u8 {
        0 => None,
        tag => Some(tag - 1),
    }
}

/// The payload length every video packet with `counter` has.
pub fn video_payload_len(counter: u64) -> usize {
    counter_layer(counter)
        .and_then(|l| SIMULCAST_LAYERS.get(l as usize))
        .map_or(VIDEO_PAYLOAD_LEN, |shape| shape.payload_len)
}

use switchboard_kit::codec::{self as kit, write_h264_fu_a, write_h264_stap_a};
pub use switchboard_kit::codec::{h264_nal_types, VP8_HEIGHT, VP8_WIDTH};

/// The process-wide time origin shared by publishers (send stamps) and
/// subscribers (receive stamps).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`] at `t`.
pub fn micros_since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_micros() as u64
}

/// Video codecs the publishers can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

/// Codecs a subscriber can tell apart in what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvCodec {
    Vp8,
    H264,
    Opus,
}

impl RecvCodec {
    pub fn is_video(self) -> bool {
        !matches!(self, RecvCodec::Opus)
    }
}

/// The byte at position `i` of the pattern for packet `counter`.
pub fn pattern_byte(counter: u64, i: usize) -> u8 {
    let mixed = counter.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    let k = (mixed >> 24) as u8;
    k ^ (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8).wrapping_mul(7)
}

/// Append counter, send time and pattern to `out` until it is `total` bytes.
fn push_body(out: &mut Vec<u8>, counter: u64, send_us: u64, total: usize) {
    assert!(
        out.len() + BODY_HEADER_LEN <= total,
        "codec header of {} bytes leaves no room for the body",
        out.len()
    );
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&send_us.to_be_bytes());
    let n = total - out.len();
    out.extend((0..n).map(|i| pattern_byte(counter, i)));
}

/// One RTP payload of a generated video frame.
#[derive(Clone, Debug)]
pub struct VideoPacket {
    pub counter: u64,
    pub payload: Vec<u8>,
    /// Last packet of the frame (the RTP marker bit).
    pub last: bool,
}

/// Number of packets a frame has: keyframes 5, delta frames 3 or 4.
pub fn packets_per_frame(keyframe: bool, frame_index: u64) -> usize {
    if keyframe {
        5
    } else {
        3 + (frame_index % 2) as usize
    }
}

/// Build the payloads of one video frame. `next_counter` is advanced by one
/// per packet.
pub fn video_frame(
    codec: VideoCodec,
    keyframe: bool,
    frame_index: u64,
    next_counter: &mut u64,
    send_us: u64,
) -> Vec<VideoPacket> {
    let n = packets_per_frame(keyframe, frame_index);
    video_frame_with(codec, keyframe, n, VIDEO_PAYLOAD_LEN, send_us, || {
        let c = *next_counter;
        *next_counter += 1;
        c
    })
}

/// Build the `n` payloads (each `payload_len` bytes) of one video frame,
/// taking each packet's counter from `next_counter`.
pub fn video_frame_with(
    codec: VideoCodec,
    keyframe: bool,
    n: usize,
    payload_len: usize,
    send_us: u64,
    mut next_counter: impl FnMut() -> u64,
) -> Vec<VideoPacket> {
    (0..n)
        .map(|i| {
            let counter = next_counter();
            let mut p = Vec::with_capacity(payload_len);
            match codec {
                VideoCodec::Vp8 => vp8_header(&mut p, keyframe, i == 0),
                // A keyframe's STAP-A (its SEI unit's body is the test body), then
                // FU-A fragments of an IDR (keyframe) or non-IDR slice.
                VideoCodec::H264 if keyframe && i == 0 => write_h264_stap_a(&mut p, payload_len),
                VideoCodec::H264 => {
                    let first_frag = if keyframe { i == 1 } else { i == 0 };
                    write_h264_fu_a(&mut p, keyframe, first_frag, i == n - 1);
                }
            }
            push_body(&mut p, counter, send_us, payload_len);
            VideoPacket {
                counter,
                payload: p,
                last: i == n - 1,
            }
        })
        .collect()
}

/// The short VP8 payload descriptor (X=0), and on a frame's first packet the frame
/// header (first partition of 600 bytes).
fn vp8_header(p: &mut Vec<u8>, keyframe: bool, first: bool) {
    kit::write_vp8_descriptor(p, first, None);
    if first {
        kit::write_vp8_frame_header(p, keyframe, 600, (VP8_WIDTH, VP8_HEIGHT));
    }
}

/// Build an Opus payload.
pub fn opus_packet(counter: u64, send_us: u64) -> Vec<u8> {
    // TOC: config 31 (CELT fullband 20 ms), stereo, one frame.
    let mut p = vec![kit::OPUS_TOC];
    push_body(&mut p, counter, send_us, AUDIO_PAYLOAD_LEN);
    p
}

/// What a receiver learns from one payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPayload {
    pub counter: u64,
    pub send_us: u64,
    /// Length and pattern as the publisher wrote them.
    pub intact: bool,
    /// The packet starts a keyframe (by the contract's rules).
    pub starts_keyframe: bool,
}

/// Parse a received payload. `Err` describes a payload that does not even
/// have the expected structure.
pub fn parse_payload(codec: RecvCodec, payload: &[u8]) -> Result<ParsedPayload, String> {
    let body_at = match codec {
        RecvCodec::Vp8 => {
            kit::vp8_body_offset(payload)
                .map_err(|e| format!("VP8: {e}"))?
                .0
        }
        RecvCodec::H264 => {
            kit::h264_body_offset(payload)
                .map_err(|e| format!("H264: {e}"))?
                .0
        }
        RecvCodec::Opus => 1,
    };
    let body = payload
        .get(body_at..)
        .filter(|b| b.len() >= BODY_HEADER_LEN)
        .ok_or_else(|| format!("payload of {} bytes too short", payload.len()))?;
    let counter = u64::from_be_bytes(body[0..8].try_into().unwrap());
    let expected_len = match codec {
        RecvCodec::Opus => AUDIO_PAYLOAD_LEN,
        _ => video_payload_len(counter),
    };
    let send_us = u64::from_be_bytes(body[8..16].try_into().unwrap());
    let pattern_ok = body[BODY_HEADER_LEN..]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(counter, i));
    let starts_keyframe = match codec {
        RecvCodec::Vp8 => is_vp8_keyframe_start(payload),
        RecvCodec::H264 => is_h264_keyframe_start(payload),
        RecvCodec::Opus => false,
    };
    Ok(ParsedPayload {
        counter,
        send_us,
        intact: pattern_ok && payload.len() == expected_len,
        starts_keyframe,
    })
}

/// RFC 7741: S=1, PID=0 and the P bit of the VP8 payload header is 0.
pub fn is_vp8_keyframe_start(p: &[u8]) -> bool {
    kit::vp8_body_offset(p).is_ok_and(|(_, key)| key)
}

/// NAL type 5 (IDR) or 7 (SPS) as a single NAL, inside a STAP-A, or at the
/// start of an FU-A.
pub fn is_h264_keyframe_start(p: &[u8]) -> bool {
    let is_key = |t: u8| t == 5 || t == 7;
    let Some(&b0) = p.first() else {
        return false;
    };
    match b0 & 0x1f {
        t @ 1..=23 => is_key(t),
        24 => {
            let mut off = 1;
            while off + 2 < p.len() {
                let size = u16::from_be_bytes([p[off], p[off + 1]]) as usize;
                off += 2;
                if let Some(h) = p.get(off) {
                    if is_key(h & 0x1f) {
                        return true;
                    }
                }
                off += size;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        _ => false,
    }
}

#[cfg(test)]
mod self_check {
    use super::*;

    #[test]
    fn generated_payloads_round_trip() {
        let mut counter = 7;
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            let recv = match codec {
                VideoCodec::Vp8 => RecvCodec::Vp8,
                VideoCodec::H264 => RecvCodec::H264,
            };
            for (frame, key) in [(0, true), (1, false), (2, false)] {
                let pkts = video_frame(codec, key, frame, &mut counter, 1234);
                assert_eq!(pkts.len(), packets_per_frame(key, frame));
                for (i, pkt) in pkts.iter().enumerate() {
                    assert_eq!(pkt.payload.len(), VIDEO_PAYLOAD_LEN);
                    let parsed = parse_payload(recv, &pkt.payload).unwrap();
                    assert_eq!(parsed.counter, pkt.counter);
                    assert_eq!(parsed.send_us, 1234);
                    assert!(parsed.intact, "{codec:?} frame {frame} packet {i}");
                    // H264 keyframes start twice by the contract's rules:
                    // the STAP-A with the SPS and the FU-A start of the IDR.
                    let expect_key = key && (i == 0 || (codec == VideoCodec::H264 && i == 1));
                    assert_eq!(parsed.starts_keyframe, expect_key, "{codec:?} {i}");
                    // Agree with str0m's own detectors.
                    match codec {
                        VideoCodec::Vp8 => assert_eq!(
                            str0m::format::detect_vp8_keyframe(&pkt.payload),
                            key && i == 0
                        ),
                        VideoCodec::H264 => {
                            let sps = str0m::format::detect_h264_nalu(&pkt.payload, 7);
                            let idr = str0m::format::detect_h264_keyframe(&pkt.payload);
                            assert_eq!(sps, key && i == 0);
                            assert_eq!(idr, key && i == 1);
                        }
                    }
                }
            }
        }
        let a = opus_packet(99, 5);
        let parsed = parse_payload(RecvCodec::Opus, &a).unwrap();
        assert_eq!(
            (parsed.counter, parsed.send_us, parsed.intact),
            (99, 5, true)
        );
    }

    #[test]
    fn simulcast_layers_round_trip_with_their_layer() {
        for (i, shape) in SIMULCAST_LAYERS.iter().enumerate() {
            let layer = i as u8;
            let mut n = 0;
            for key in [true, false] {
                let count = if key {
                    shape.key_packets
                } else {
                    shape.delta_packets.0
                };
                let pkts =
                    video_frame_with(VideoCodec::H264, key, count, shape.payload_len, 9, || {
                        n += 1;
                        layer_counter(layer, n)
                    });
                assert_eq!(pkts.len(), count);
                assert!(pkts.last().unwrap().last);
                for (j, pkt) in pkts.iter().enumerate() {
                    assert_eq!(pkt.payload.len(), shape.payload_len);
                    assert_eq!(counter_layer(pkt.counter), Some(layer));
                    let parsed = parse_payload(RecvCodec::H264, &pkt.payload).unwrap();
                    assert_eq!(parsed.counter, pkt.counter);
                    assert!(parsed.intact, "layer {i} key {key} packet {j}");
                    assert_eq!(parsed.starts_keyframe, key && j < 2);
                    let nals = h264_nal_types(&pkt.payload);
                    if key && j == 0 {
                        assert_eq!(nals, vec![7, 8, 6]);
                    } else {
                        assert_eq!(nals, vec![if key { 5 } else { 1 }]);
                    }
                    assert_eq!(
                        str0m::format::detect_h264_nalu(&pkt.payload, 7),
                        key && j == 0
                    );
                }
            }
            assert!(shape.delta_packets.0 >= 2 && shape.delta_packets.1 >= 2);
            assert!(shape.key_packets >= 3);
        }
        // RID "0" is the highest, as OBS sends it.
        let rates: Vec<u64> = SIMULCAST_LAYERS.iter().map(|l| l.nominal_bps()).collect();
        assert!(rates.windows(2).all(|w| w[0] > 2 * w[1]), "{rates:?}");
        assert_eq!(counter_layer(12345), None);
        assert_eq!(video_payload_len(12345), VIDEO_PAYLOAD_LEN);
    }

    #[test]
    fn corruption_is_detected() {
        let mut counter = 0;
        let mut p = video_frame(VideoCodec::Vp8, false, 1, &mut counter, 0)[1]
            .payload
            .clone();
        let n = p.len();
        p[n - 10] ^= 0x01;
        assert!(!parse_payload(RecvCodec::Vp8, &p).unwrap().intact);
        p[n - 10] ^= 0x01;
        p.pop();
        assert!(!parse_payload(RecvCodec::Vp8, &p).unwrap().intact);
    }
}
