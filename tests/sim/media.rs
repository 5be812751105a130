//! Synthetic media for the simulation: VP8 RTP payloads (RFC 7741 payload descriptor and,
//! on the first packet of a frame, a VP8 payload header — a keyframe one with the start
//! code and dimensions, or a delta one) and Opus-sized audio payloads. After the codec
//! bytes every video payload carries a 1-byte layer index (the simulcast layer it was
//! encoded for; 0 without simulcast), and every payload an 8-byte packet counter, a
//! 2-byte body length and a body derived from the counter, so a receiver can tell which
//! layer a packet came from and check each payload byte for byte.

use switchboard_kit::codec;

/// Video: packets per frame of the single-stream publisher.
pub const PACKETS_PER_FRAME: u64 = 4;
/// Audio: body bytes of one 20 ms Opus packet.
const AUDIO_BODY: usize = 80;

/// How one video stream (a simulcast layer, or the only stream) is encoded: packets per
/// frame and body bytes per packet, for delta frames and keyframes, and the picture size
/// written into keyframe headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    /// The simulcast RID (RFC 8851), `None` for a single stream.
    pub rid: Option<&'static str>,
    /// Packets of a delta frame.
    pub delta_packets: u64,
    /// Body bytes of each delta frame packet.
    pub delta_body: usize,
    /// Packets of a keyframe.
    pub key_packets: u64,
    /// Body bytes of each keyframe packet.
    pub key_body: usize,
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

    /// Body bytes of each packet of a frame.
    pub fn body(&self, keyframe: bool) -> usize {
        if keyframe {
            self.key_body
        } else {
            self.delta_body
        }
    }

    /// Payload bit rate of delta frames at `fps` frames per second (RTP header excluded),
    /// the rate the server's layer meters see between keyframes.
    pub fn delta_bps(&self, fps: u64) -> u64 {
        let payload = 1 + 3 + HEAD_BYTES + self.delta_body;
        let frame_bytes = payload as u64 * self.delta_packets;
        frame_bytes * 8 * fps
    }
}

/// The single-stream publisher: four packets per frame, 500 body bytes per delta packet and
/// 1000 per keyframe packet, 640x360.
pub const SINGLE: LayerSpec = LayerSpec {
    rid: None,
    delta_packets: PACKETS_PER_FRAME,
    delta_body: 500,
    key_packets: PACKETS_PER_FRAME,
    key_body: 1000,
    size: (640, 360),
};

/// A single stream of about 1.2 Mbit/s at 30 fps (payload bytes; an aiortc VP8 publisher
/// sends 1–1.4 Mbit/s): four 1200-byte packets per delta frame, eight per keyframe, 640x480.
pub const SINGLE_1200K: LayerSpec = LayerSpec {
    rid: None,
    delta_packets: 4,
    delta_body: 1200,
    key_packets: 8,
    key_body: 1200,
    size: (640, 480),
};

/// Three simulcast layers, lowest first, of about 150 kbit/s, 500 kbit/s and 1.5 Mbit/s
/// at 30 fps (payload bytes; the RTP header and SRTP tag add about 4 %). Keyframes are
/// two to three times the size of a delta frame.
pub const SIMULCAST: [LayerSpec; 3] = [
    LayerSpec {
        rid: Some("q"),
        delta_packets: 1,
        delta_body: 610,
        key_packets: 2,
        key_body: 900,
        size: (320, 180),
    },
    LayerSpec {
        rid: Some("h"),
        delta_packets: 2,
        delta_body: 1025,
        key_packets: 5,
        key_body: 1025,
        size: (640, 360),
    },
    LayerSpec {
        rid: Some("f"),
        delta_packets: 6,
        delta_body: 1025,
        key_packets: 14,
        key_body: 1025,
        size: (1280, 720),
    },
];

/// Bytes between the codec header and the body: layer index, counter, length.
const HEAD_BYTES: usize = 1 + 8 + 2;

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

/// Why a payload failed to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corrupt {
    /// Too short for its headers.
    Truncated(usize),
    /// The length field disagrees with the bytes present.
    Length { declared: usize, present: usize },
    /// A keyframe header without the VP8 start code.
    StartCode,
    /// A body byte differs from the pattern.
    Body { counter: u64, offset: usize },
}

fn pattern(counter: u64, i: usize) -> u8 {
    (counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i as u8).wrapping_mul(31)
}

fn body(out: &mut Vec<u8>, counter: u64, len: usize) {
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend((0..len).map(|i| pattern(counter, i)));
}

fn check_body(counter_at: usize, p: &[u8]) -> Result<u64, Corrupt> {
    let head = p
        .get(counter_at..counter_at + 10)
        .ok_or(Corrupt::Truncated(p.len()))?;
    let counter = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
    let declared = u16::from_be_bytes([head[8], head[9]]) as usize;
    let rest = &p[counter_at + 10..];
    if rest.len() != declared {
        return Err(Corrupt::Length {
            declared,
            present: rest.len(),
        });
    }
    if let Some(offset) = rest
        .iter()
        .enumerate()
        .position(|(i, b)| *b != pattern(counter, i))
    {
        return Err(Corrupt::Body { counter, offset });
    }
    Ok(counter)
}

/// The payload of packet `index` (0-based) of a video frame of the single-stream
/// publisher; `counter` is the packet's running number over the whole video stream.
pub fn vp8_payload(counter: u64, keyframe: bool, index: u64) -> Vec<u8> {
    vp8_layer_payload(&SINGLE, 0, counter, keyframe, index)
}

/// The payload of packet `index` (0-based) of a video frame encoded with `spec` for layer
/// `layer`; `counter` is the packet's running number over all video the publisher sends.
pub fn vp8_layer_payload(
    spec: &LayerSpec,
    layer: u8,
    counter: u64,
    keyframe: bool,
    index: u64,
) -> Vec<u8> {
    let len = spec.body(keyframe);
    let mut p = Vec::with_capacity(len + 32);
    let first = index == 0;
    // The short payload descriptor; on a frame's first packet the frame header (a
    // 16-byte first partition) with the layer's size on a keyframe.
    codec::write_vp8_descriptor(&mut p, first, None);
    if first {
        codec::write_vp8_frame_header(&mut p, keyframe, 16, spec.size);
    }
    p.push(layer);
    body(&mut p, counter, len);
    p
}

/// Parse and verify a payload made by [`vp8_payload`] or [`vp8_layer_payload`].
pub fn parse_vp8(p: &[u8]) -> Result<Parsed, Corrupt> {
    let d = *p.first().ok_or(Corrupt::Truncated(0))?;
    let frame_start = d & 0x10 != 0 && d & 0x07 == 0;
    let (keyframe_start, at) = if frame_start {
        let tag = *p.get(1).ok_or(Corrupt::Truncated(p.len()))?;
        if tag & 0x01 == 0 {
            if p.get(4..7) != Some(&[0x9d, 0x01, 0x2a][..]) {
                return Err(Corrupt::StartCode);
            }
            (true, 11)
        } else {
            (false, 4)
        }
    } else {
        (false, 1)
    };
    let layer = *p.get(at).ok_or(Corrupt::Truncated(p.len()))?;
    let counter = check_body(at + 1, p)?;
    Ok(Parsed {
        counter,
        frame_start,
        keyframe_start,
        layer,
    })
}

/// The payload of audio packet `counter`: a TOC byte (SILK-only 20 ms mono) and a body.
pub fn opus_payload(counter: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(AUDIO_BODY + 16);
    p.push(0x08);
    body(&mut p, counter, AUDIO_BODY);
    p
}

/// Parse and verify a payload made by [`opus_payload`].
pub fn parse_opus(p: &[u8]) -> Result<Parsed, Corrupt> {
    let counter = check_body(1, p)?;
    Ok(Parsed {
        counter,
        frame_start: false,
        keyframe_start: false,
        layer: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_detect_corruption() {
        let k = vp8_payload(7, true, 0);
        assert_eq!(
            parse_vp8(&k),
            Ok(Parsed {
                counter: 7,
                frame_start: true,
                keyframe_start: true,
                layer: 0,
            })
        );
        let d = vp8_payload(8, false, 0);
        assert!(!parse_vp8(&d).unwrap().keyframe_start);
        assert!(parse_vp8(&d).unwrap().frame_start);
        let m = vp8_payload(9, true, 2);
        assert!(!parse_vp8(&m).unwrap().frame_start);
        let mut bad = vp8_payload(10, false, 1);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(parse_vp8(&bad), Err(Corrupt::Body { .. })));
        assert_eq!(parse_opus(&opus_payload(3)).unwrap().counter, 3);
        assert!(parse_opus(&opus_payload(3)[..50]).is_err());
    }

    #[test]
    fn layer_index_survives_every_packet_kind() {
        for (layer, spec) in SIMULCAST.iter().enumerate() {
            let layer = layer as u8;
            for (keyframe, index) in [(true, 0), (true, 1), (false, 0), (false, 1)] {
                let p = vp8_layer_payload(spec, layer, 40 + index, keyframe, index);
                let parsed = parse_vp8(&p).unwrap();
                assert_eq!(parsed.layer, layer);
                assert_eq!(parsed.counter, 40 + index);
                assert_eq!(parsed.keyframe_start, keyframe && index == 0);
                assert!(p.len() <= 1100, "payload of {} bytes", p.len());
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
