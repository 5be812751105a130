//! Synthetic media for the simulation, in the client kit's one format
//! (`switchboard_kit::media`): VP8 RTP payloads (RFC 7741 payload descriptor and, on the
//! first packet of a frame, a VP8 payload header — a keyframe one with the start code and
//! the layer's dimensions, or a delta one) and Opus audio payloads. The body's stream byte
//! carries the simulcast layer the packet was encoded for (0 without simulcast) and its
//! counter the sender's packet counter, and the filler lets a receiver check each payload
//! byte for byte.

use switchboard_kit::media::{self as kit, Body, FrameSpec, PayloadCodec};

/// Why a payload failed to verify.
pub use switchboard_kit::media::ParseError as Corrupt;

/// Video: packets per frame of the single-stream publisher.
pub const PACKETS_PER_FRAME: u64 = 4;
/// Audio: payload bytes of one 20 ms Opus packet.
const AUDIO_LEN: usize = 92;

/// How one video stream (a simulcast layer, or the only stream) is encoded: packets per
/// frame and payload bytes per packet, for delta frames and keyframes, and the picture
/// size written into keyframe headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    /// The simulcast RID (RFC 8851), `None` for a single stream.
    pub rid: Option<&'static str>,
    /// Packets of a delta frame.
    pub delta_packets: u64,
    /// Payload bytes of each delta frame packet.
    pub delta_len: usize,
    /// Packets of a keyframe.
    pub key_packets: u64,
    /// Payload bytes of each keyframe packet.
    pub key_len: usize,
    /// Keyframe picture width and height.
    pub size: (u16, u16),
}

impl LayerSpec {
    /// Packets of a frame.
    pub fn packets(&self, keyframe: bool) -> u64 {
        if keyframe {
            self.key_packets
        } else {
            self.delta_packets
        }
    }

    /// Payload bytes of each packet of a frame.
    pub fn payload_len(&self, keyframe: bool) -> usize {
        if keyframe {
            self.key_len
        } else {
            self.delta_len
        }
    }

    /// Payload bit rate of delta frames at `fps` frames per second (RTP header excluded),
    /// the rate the server's layer meters see between keyframes.
    pub fn delta_bps(&self, fps: u64) -> u64 {
        let frame_bytes = self.delta_len as u64 * self.delta_packets;
        frame_bytes * 8 * fps
    }
}

/// The single-stream publisher: four packets per frame, 512 payload bytes per delta
/// packet and 1012 per keyframe packet, 640x360.
pub const SINGLE: LayerSpec = LayerSpec {
    rid: None,
    delta_packets: PACKETS_PER_FRAME,
    delta_len: 512,
    key_packets: PACKETS_PER_FRAME,
    key_len: 1012,
    size: (640, 360),
};

/// A single stream of about 1.2 Mbit/s at 30 fps (payload bytes; an aiortc VP8 publisher
/// sends 1–1.4 Mbit/s): four 1212-byte packets per delta frame, eight per keyframe, 640x480.
pub const SINGLE_1200K: LayerSpec = LayerSpec {
    rid: None,
    delta_packets: 4,
    delta_len: 1212,
    key_packets: 8,
    key_len: 1212,
    size: (640, 480),
};

/// Three simulcast layers, lowest first, of about 150 kbit/s, 500 kbit/s and 1.5 Mbit/s
/// at 30 fps (payload bytes; the RTP header and SRTP tag add about 4 %). Keyframes are
/// two to three times the size of a delta frame.
pub const SIMULCAST: [LayerSpec; 3] = [
    LayerSpec {
        rid: Some("q"),
        delta_packets: 1,
        delta_len: 622,
        key_packets: 2,
        key_len: 912,
        size: (320, 180),
    },
    LayerSpec {
        rid: Some("h"),
        delta_packets: 2,
        delta_len: 1037,
        key_packets: 5,
        key_len: 1037,
        size: (640, 360),
    },
    LayerSpec {
        rid: Some("f"),
        delta_packets: 6,
        delta_len: 1037,
        key_packets: 14,
        key_len: 1037,
        size: (1280, 720),
    },
];

/// What a parsed payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The sender's packet counter (per kind).
    pub counter: u64,
    /// Video: this packet starts a frame (descriptor S=1, PID=0).
    pub frame_start: bool,
    /// Video: this packet starts a keyframe (frame start and P bit 0).
    pub keyframe_start: bool,
    /// Video: the layer index the packet was encoded for (0 for audio).
    pub layer: u8,
}

/// The body of a packet with `counter`: the publisher id is the counter's high half
/// (see `Tag::counter`).
fn body(stream: u8, counter: u64) -> Body {
    Body {
        stream,
        publisher: (counter >> 32) as u32,
        counter,
        ..Body::default()
    }
}

/// The payloads of one video frame encoded with `spec` for layer `layer`; packet `i`
/// gets counter `counter(i)` (the packet's running number over all video the publisher
/// sends).
pub fn vp8_frame(
    spec: &LayerSpec,
    layer: u8,
    keyframe: bool,
    counter: impl Fn(u64) -> u64,
) -> Vec<Vec<u8>> {
    let frame = FrameSpec {
        size: spec.size,
        ..FrameSpec::new(PayloadCodec::Vp8, keyframe)
    };
    let sizes = vec![spec.payload_len(keyframe); spec.packets(keyframe) as usize];
    kit::video_frame(&frame, &sizes, |i| {
        body(kit::stream_byte(layer, 0), counter(i as u64))
    })
}

/// The payloads of frame of the single-stream publisher whose first packet has
/// `counter`.
pub fn vp8_payloads(counter: u64, keyframe: bool) -> Vec<Vec<u8>> {
    vp8_frame(&SINGLE, 0, keyframe, |i| counter + i)
}

fn parsed(codec: PayloadCodec, p: &[u8]) -> Result<Parsed, Corrupt> {
    let m = kit::verify(codec, p)?;
    Ok(Parsed {
        counter: m.body.counter,
        frame_start: m.frame_start,
        keyframe_start: m.starts_keyframe,
        layer: kit::stream_layer(m.body.stream).unwrap_or(0),
    })
}

/// Parse and verify a payload made by [`vp8_frame`].
pub fn parse_vp8(p: &[u8]) -> Result<Parsed, Corrupt> {
    parsed(PayloadCodec::Vp8, p)
}

/// The payload of audio packet `counter`: a TOC byte and the body.
pub fn opus_payload(counter: u64) -> Vec<u8> {
    kit::opus_packet(body(kit::AUDIO_STREAM, counter), AUDIO_LEN)
}

/// Parse and verify a payload made by [`opus_payload`].
pub fn parse_opus(p: &[u8]) -> Result<Parsed, Corrupt> {
    parsed(PayloadCodec::Opus, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_detect_corruption() {
        let k = vp8_payloads(7, true);
        assert_eq!(
            parse_vp8(&k[0]),
            Ok(Parsed {
                counter: 7,
                frame_start: true,
                keyframe_start: true,
                layer: 0,
            })
        );
        let d = vp8_payloads(8, false);
        assert!(!parse_vp8(&d[0]).unwrap().keyframe_start);
        assert!(parse_vp8(&d[0]).unwrap().frame_start);
        assert!(!parse_vp8(&k[2]).unwrap().frame_start);
        assert_eq!(parse_vp8(&k[2]).unwrap().counter, 9);
        let mut bad = d[1].clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(parse_vp8(&bad), Err(Corrupt::Filler { .. })));
        assert_eq!(parse_opus(&opus_payload(3)).unwrap().counter, 3);
        assert!(parse_opus(&opus_payload(3)[..50]).is_err());
    }

    #[test]
    fn layer_index_survives_every_packet_kind() {
        for (layer, spec) in SIMULCAST.iter().enumerate() {
            let layer = layer as u8;
            for keyframe in [true, false] {
                let pkts = vp8_frame(spec, layer, keyframe, |i| 40 + i);
                assert_eq!(pkts.len() as u64, spec.packets(keyframe));
                for (i, p) in pkts.iter().enumerate() {
                    let parsed = parse_vp8(p).unwrap();
                    assert_eq!(parsed.layer, layer);
                    assert_eq!(parsed.counter, 40 + i as u64);
                    assert_eq!(parsed.keyframe_start, keyframe && i == 0);
                    assert!(p.len() <= 1100, "payload of {} bytes", p.len());
                }
            }
        }
    }

    #[test]
    fn simulcast_rates_are_as_documented() {
        let kbps: Vec<u64> = SIMULCAST.iter().map(|s| s.delta_bps(30) / 1000).collect();
        assert!((140..=160).contains(&kbps[0]), "{kbps:?}");
        assert!((480..=520).contains(&kbps[1]), "{kbps:?}");
        assert!((1440..=1560).contains(&kbps[2]), "{kbps:?}");
    }
}
