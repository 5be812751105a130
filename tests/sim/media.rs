//! Synthetic media for the simulation, in the client kit's one format
//! (`switchboard_kit::media`): VP8 RTP payloads (RFC 7741 payload descriptor and, on the
//! first packet of a frame, a VP8 payload header — a keyframe one with the start code and
//! the layer's dimensions, or a delta one) and Opus audio payloads. The body's stream byte
//! carries the simulcast layer the packet was encoded for (0 without simulcast) and its
//! counter the sender's packet counter, and the filler lets a receiver check each payload
//! byte for byte.

use switchboard_kit::media::{self as kit, Body};

/// Video: packets per frame of the single-stream publisher.
pub const PACKETS_PER_FRAME: u64 = 4;
/// Audio: payload bytes of one 20 ms Opus packet.
pub const AUDIO_LEN: usize = 92;

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

/// The body of a packet with `counter`: the publisher id is the counter's high half
/// (see `Tag::counter`).
pub fn body(stream: u8, counter: u64) -> Body {
    Body {
        stream,
        publisher: (counter >> 32) as u32,
        counter,
        ..Body::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use switchboard_kit::source::{Packet, Slot, Source};

    use super::*;
    use switchboard_kit::media::{ParseError, Parsed, PayloadCodec};

    /// What the receiver's log reads from a video payload (`kit::verify`).
    fn parse_vp8(p: &[u8]) -> Result<Parsed, ParseError> {
        kit::verify(PayloadCodec::Vp8, p)
    }

    fn layer_of(p: &Parsed) -> u8 {
        kit::stream_layer(p.body.stream).unwrap_or(0)
    }

    /// 200 ms of a publisher of `layers`, counters numbered from 40 per kind.
    fn packets(layers: &[LayerSpec]) -> Vec<Packet> {
        let mut source = Source::new(super::super::peer::source_plan(layers));
        let t0 = Instant::now();
        source.start(t0);
        let mut video = 40;
        source.poll_due(t0 + Duration::from_millis(200), |slot| match slot {
            Slot::Video { layer, .. } => {
                video += 1;
                body(kit::stream_byte(layer as u8, 0), video - 1)
            }
            Slot::Audio { n } => body(kit::AUDIO_STREAM, 40 + n),
        })
    }

    #[test]
    fn payloads_round_trip_and_detect_corruption() {
        let pkts = packets(&[SINGLE]);
        let frame = |n: u64| -> Vec<&Packet> {
            pkts.iter()
                .filter(|p| p.layer.is_some() && p.frame == n)
                .collect()
        };
        let (k, d) = (frame(0), frame(1));
        let first = parse_vp8(&k[0].payload).unwrap();
        assert_eq!(first.body.counter, 40);
        assert!(first.frame_start && first.starts_keyframe);
        assert_eq!(layer_of(&first), 0);
        assert!(!parse_vp8(&d[0].payload).unwrap().starts_keyframe);
        assert!(parse_vp8(&d[0].payload).unwrap().frame_start);
        assert!(!parse_vp8(&k[2].payload).unwrap().frame_start);
        assert_eq!(parse_vp8(&k[2].payload).unwrap().body.counter, 42);
        let mut bad = d[1].payload.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(parse_vp8(&bad), Err(ParseError::Filler { .. })));
        let audio = pkts.iter().find(|p| p.layer.is_none()).unwrap();
        let opus = |p: &[u8]| kit::verify(PayloadCodec::Opus, p);
        assert_eq!(opus(&audio.payload).unwrap().body.counter, 40);
        assert!(opus(&audio.payload[..50]).is_err());
    }

    #[test]
    fn layer_index_survives_every_packet_kind() {
        let pkts = packets(&SIMULCAST);
        for (layer, spec) in SIMULCAST.iter().enumerate() {
            for (n, keyframe) in [(0, true), (1, false)] {
                let frame: Vec<&Packet> = pkts
                    .iter()
                    .filter(|p| p.layer == Some(layer) && p.frame == n)
                    .collect();
                assert_eq!(frame.len() as u64, spec.packets(keyframe));
                for (i, p) in frame.iter().enumerate() {
                    let parsed = parse_vp8(&p.payload).unwrap();
                    assert_eq!(layer_of(&parsed), layer as u8);
                    assert_eq!(parsed.body.counter, p.counter);
                    assert_eq!(parsed.starts_keyframe, keyframe && i == 0);
                    assert_eq!(p.payload.len(), spec.payload_len(keyframe));
                    assert!(
                        p.payload.len() <= 1100,
                        "payload of {} bytes",
                        p.payload.len()
                    );
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
