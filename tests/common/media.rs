//! Synthetic but well-formed RTP payloads for the test peers, and the
//! receiver-side parsing that checks them.
//!
//! Every payload is the client kit's one format (`switchboard_kit::media`):
//! codec header, a body with the counter and the send time (microseconds
//! since [`epoch`]), and a filler derived from the counter, with a fixed total
//! length per media kind. A receiver can therefore tell, byte for byte,
//! whether a forwarded payload is the one the publisher wrote, and how long it
//! took. VP8 uses the one-byte payload descriptor; H264 a STAP-A keyframe then
//! FU-A fragments, as OBS sends it.
//!
//! Simulcast: the OBS-shaped simulcast publisher sends three layers
//! ([`SIMULCAST_LAYERS`]) that differ in payload length and packets per
//! frame, so their bitrates differ as an encoder's would. The layer is part
//! of every counter it writes ([`layer_counter`], [`counter_layer`]) as well
//! as of the body's stream byte, so a subscriber can tell which layer each
//! forwarded packet came from.

use std::sync::OnceLock;
use std::time::Instant;

/// Total RTP payload length of every video packet the test publishers send.
pub const VIDEO_PAYLOAD_LEN: usize = 1000;
/// Total RTP payload length of every audio packet the test publishers send.
pub const AUDIO_PAYLOAD_LEN: usize = 120;

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

pub use switchboard_kit::codec::h264_nal_types;
/// Codecs a subscriber can tell apart in what it receives.
pub use switchboard_kit::media::PayloadCodec as RecvCodec;
use switchboard_kit::media::{self as kit, Body, FrameSpec, ParseError};

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

impl VideoCodec {
    /// The kit's name for it.
    pub fn payload_codec(self) -> RecvCodec {
        match self {
            VideoCodec::Vp8 => RecvCodec::Vp8,
            VideoCodec::H264 => RecvCodec::H264,
        }
    }
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

/// Build the payloads of frame `frame_index` of the single-stream publisher.
/// `next_counter` is advanced by one per packet.
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
    let counters: Vec<u64> = (0..n).map(|_| next_counter()).collect();
    let spec = FrameSpec::new(codec.payload_codec(), keyframe);
    let payloads = kit::video_frame(&spec, &vec![payload_len; n], |i| Body {
        stream: kit::stream_byte(counter_layer(counters[i]).unwrap_or(0), 0),
        counter: counters[i],
        send_us,
        ..Body::default()
    });
    payloads
        .into_iter()
        .zip(counters)
        .enumerate()
        .map(|(i, (payload, counter))| VideoPacket {
            counter,
            payload,
            last: i == n - 1,
        })
        .collect()
}

/// Build an Opus payload.
pub fn opus_packet(counter: u64, send_us: u64) -> Vec<u8> {
    let body = Body {
        stream: kit::AUDIO_STREAM,
        counter,
        send_us,
        ..Body::default()
    };
    kit::opus_packet(body, AUDIO_PAYLOAD_LEN)
}

/// What a receiver learns from one payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPayload {
    pub counter: u64,
    pub send_us: u64,
    /// Length and filler as the publisher wrote them.
    pub intact: bool,
    /// The packet starts a keyframe (by the contract's rules).
    pub starts_keyframe: bool,
}

/// Parse a received payload. `Err` describes a payload that does not even
/// have the expected structure.
pub fn parse_payload(codec: RecvCodec, payload: &[u8]) -> Result<ParsedPayload, String> {
    let (parsed, filler_ok) = match kit::verify(codec, payload) {
        Ok(p) => (p, true),
        Err(ParseError::Filler { .. }) => (
            kit::parse(codec, payload).map_err(|e| e.to_string())?,
            false,
        ),
        Err(e) => return Err(format!("{codec:?}: {e}")),
    };
    let counter = parsed.body.counter;
    let expected_len = match codec {
        RecvCodec::Opus => AUDIO_PAYLOAD_LEN,
        _ => video_payload_len(counter),
    };
    Ok(ParsedPayload {
        counter,
        send_us: parsed.body.send_us,
        intact: filler_ok && payload.len() == expected_len,
        starts_keyframe: parsed.starts_keyframe,
    })
}

#[cfg(test)]
mod self_check {
    use super::*;

    #[test]
    fn generated_payloads_round_trip() {
        let mut counter = 7;
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            let recv = codec.payload_codec();
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
        assert!(parse_payload(RecvCodec::Vp8, &p).is_err());
    }
}
