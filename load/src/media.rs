//! Synthetic, well-formed RTP payloads and the receiver's parsing of them.
//!
//! Every payload is `codec header | body | filler`. The codec header is what a real
//! encoder's packetizer writes, so a forwarding server's codec inspection (keyframe
//! detection, VP8 temporal layers, picture id rewriting) sees ordinary media:
//!
//! - VP8 (RFC 7741): the payload descriptor always carries the extension byte with a
//!   15-bit PictureID, TL0PICIDX and TID/Y/KEYIDX; the first packet of a frame then has
//!   the 3-byte frame tag, and keyframes the start code and 640x360 dimensions.
//! - H264 (RFC 6184, packetization mode 1): a keyframe is a STAP-A with SPS, PPS and an
//!   SEI unit (the SEI holds the body), then FU-A fragments of an IDR slice, as OBS
//!   sends them; a delta frame is FU-A fragments of a non-IDR slice.
//! - Opus: one TOC byte (20 ms CELT fullband).
//!
//! The [`Body`] (28 bytes) carries a magic byte, the stream byte (spatial layer in the
//! high nibble, temporal id in the low one; 0xff for audio), the publisher id, a frame
//! number, a per-stream packet counter and the send time in microseconds since the tool
//! started. Receivers need neither RID nor SSRC to tell layers and publishers apart: the
//! stream byte and the publisher id say it, so a conference slot whose source changes
//! (another publisher forwarded on the same SSRC) is recognised as such.
//! Never does I/O, never reads the clock.

/// Magic first byte of every body.
pub const MAGIC: u8 = 0x5b;
/// Bytes of the body that follows the codec header.
pub const BODY_LEN: usize = 28;
/// Largest RTP payload the publisher writes, in bytes (fits a 1200-byte MTU with
/// RTP header, extensions and SRTP tag).
pub const MAX_PAYLOAD: usize = 1100;
/// Stream byte of the audio stream.
pub const AUDIO_STREAM: u8 = 0xff;
/// Opus payload length in bytes: 32 kbit/s at 20 ms.
pub const OPUS_PAYLOAD_LEN: usize = 80;
/// Opus packet duration in milliseconds.
pub const OPUS_PTIME_MS: u32 = 20;
use switchboard_kit::codec::{self as kit, PayloadError};

/// Codec of a payload, as the receiver maps it from the payload type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadCodec {
    /// VP8 video.
    Vp8,
    /// H264 video.
    H264,
    /// Opus audio.
    Opus,
}

/// What follows the codec header in every payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Body {
    /// Spatial layer << 4 | temporal id for video, [`AUDIO_STREAM`] for audio.
    pub stream: u8,
    /// The publisher that sent it (its participant index); counters are per publisher.
    pub publisher: u32,
    /// Frame number within the stream's spatial layer (audio: packet number).
    pub frame: u32,
    /// Packet counter of this stream, +1 per packet, starting at 1.
    pub counter: u64,
    /// Send time, microseconds since the tool's start.
    pub send_us: u64,
}

impl Body {
    fn write(&self, out: &mut Vec<u8>, total: usize) {
        out.push(MAGIC);
        out.push(self.stream);
        out.extend_from_slice(&(total as u16).to_be_bytes());
        out.extend_from_slice(&self.publisher.to_be_bytes());
        out.extend_from_slice(&self.frame.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.send_us.to_be_bytes());
        // Filler: zeroes compress nowhere on the wire (SRTP encrypts) and cost nothing to make.
        out.resize(total.max(out.len()), 0);
    }

    fn read(b: &[u8], total: usize) -> Result<Body, ParseError> {
        let b = b.get(..BODY_LEN).ok_or(ParseError::Short)?;
        if b[0] != MAGIC {
            return Err(ParseError::NoBody);
        }
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if len != total {
            return Err(ParseError::Length);
        }
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        Ok(Body {
            stream: b[1],
            publisher: u32_at(4),
            frame: u32_at(8),
            counter: u64_at(12),
            send_us: u64_at(20),
        })
    }
}

/// Why a payload could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its headers.
    Short,
    /// A codec header the tool never writes.
    Codec,
    /// No body where one should be (not from this tool).
    NoBody,
    /// The payload length differs from the one the publisher wrote.
    Length,
}

impl From<PayloadError> for ParseError {
    fn from(e: PayloadError) -> Self {
        match e {
            PayloadError::Short => ParseError::Short,
            PayloadError::Codec(_) => ParseError::Codec,
        }
    }
}

/// The VP8 descriptor fields of one frame (PictureID, TL0PICIDX, TID, KEYIDX).
pub type Vp8Frame = kit::Vp8Descriptor;

/// Build the payloads of one video frame: `sizes[i]` bytes for packet `i` (each at
/// least [`min_packet_len`]), bodies from `body(i)`.
pub fn video_frame(
    codec: PayloadCodec,
    keyframe: bool,
    vp8: Vp8Frame,
    sizes: &[usize],
    mut body: impl FnMut(usize) -> Body,
) -> Vec<Vec<u8>> {
    let n = sizes.len();
    sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut p = Vec::with_capacity(len);
            match codec {
                PayloadCodec::Vp8 => vp8_header(&mut p, keyframe, i == 0, vp8),
                PayloadCodec::H264 if keyframe && i == 0 => kit::write_h264_stap_a(&mut p, len),
                PayloadCodec::H264 => {
                    // FU-A of an IDR (keyframe) or non-IDR slice; a keyframe's first
                    // packet is the STAP-A, so its slice starts at packet 1.
                    let start = if keyframe { 1 } else { 0 };
                    kit::write_h264_fu_a(&mut p, keyframe, i == start, i == n - 1);
                }
                PayloadCodec::Opus => p.push(kit::OPUS_TOC),
            }
            body(i).write(&mut p, len);
            p
        })
        .collect()
}

/// The smallest packet a frame may have for `codec` (headers plus body).
pub fn min_packet_len(codec: PayloadCodec) -> usize {
    match codec {
        // Descriptor (6) + keyframe payload header (10) + body.
        PayloadCodec::Vp8 => 16 + BODY_LEN,
        // STAP-A header with SPS, PPS and the SEI's size and header + body.
        PayloadCodec::H264 => kit::H264_STAP_A_HEADER_LEN + BODY_LEN,
        PayloadCodec::Opus => 1 + BODY_LEN,
    }
}

/// Split `bytes` of a frame into packet sizes of at most [`MAX_PAYLOAD`], at least
/// `min_packets` packets (H264 FU-A needs two; a STAP-A keyframe three).
pub fn packet_sizes(codec: PayloadCodec, bytes: usize, min_packets: usize) -> Vec<usize> {
    let min_len = min_packet_len(codec);
    let n = bytes.div_ceil(MAX_PAYLOAD).max(min_packets).max(1);
    let each = (bytes / n).clamp(min_len, MAX_PAYLOAD);
    vec![each; n]
}

/// The extended VP8 descriptor, and on a frame's first packet the frame header (first
/// partition of 400 bytes).
fn vp8_header(p: &mut Vec<u8>, keyframe: bool, first: bool, f: Vp8Frame) {
    kit::write_vp8_descriptor(p, first, Some(f));
    if first {
        kit::write_vp8_frame_header(p, keyframe, 400, (kit::VP8_WIDTH, kit::VP8_HEIGHT));
    }
}

/// One Opus payload.
pub fn opus_packet(body: Body) -> Vec<u8> {
    // TOC: config 31 (CELT fullband 20 ms), stereo, one frame.
    let mut p = Vec::with_capacity(OPUS_PAYLOAD_LEN);
    p.push(kit::OPUS_TOC);
    body.write(&mut p, OPUS_PAYLOAD_LEN);
    p
}

/// What a receiver reads from one payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The body.
    pub body: Body,
    /// The packet starts a keyframe (VP8: S=1, PID 0, P bit 0; H264: SPS or IDR start).
    pub starts_keyframe: bool,
}

/// Parse a received payload of `codec`.
pub fn parse(codec: PayloadCodec, p: &[u8]) -> Result<Parsed, ParseError> {
    let (at, starts_keyframe) = match codec {
        PayloadCodec::Vp8 => kit::vp8_body_offset(p)?,
        PayloadCodec::H264 => kit::h264_body_offset(p)?,
        PayloadCodec::Opus => (1, false),
    };
    let body = Body::read(p.get(at..).ok_or(ParseError::Short)?, p.len())?;
    Ok(Parsed {
        body,
        starts_keyframe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(i: usize) -> Body {
        Body {
            stream: 0x21,
            publisher: 3,
            frame: 7,
            counter: 100 + i as u64,
            send_us: 123_456,
        }
    }

    #[test]
    fn vp8_frames_round_trip_and_match_str0m() {
        let f = Vp8Frame {
            picture_id: 0x1234,
            tl0_pic_idx: 9,
            tid: 1,
            layer_sync: true,
            key_idx: 3,
        };
        for key in [true, false] {
            let sizes = packet_sizes(PayloadCodec::Vp8, 5000, 1);
            let pkts = video_frame(PayloadCodec::Vp8, key, f, &sizes, body);
            assert_eq!(pkts.len(), 5);
            for (i, p) in pkts.iter().enumerate() {
                let parsed = parse(PayloadCodec::Vp8, p).unwrap();
                assert_eq!(parsed.body, body(i));
                assert_eq!(parsed.starts_keyframe, key && i == 0);
                assert_eq!(str0m::format::detect_vp8_keyframe(p), key && i == 0);
            }
        }
    }

    #[test]
    fn h264_keyframe_is_stap_a_then_fu_a_idr() {
        let sizes = packet_sizes(PayloadCodec::H264, 300, 3);
        let pkts = video_frame(PayloadCodec::H264, true, Vp8Frame::default(), &sizes, body);
        assert_eq!(pkts.len(), 3);
        assert!(str0m::format::detect_h264_nalu(&pkts[0], 7));
        assert!(str0m::format::detect_h264_keyframe(&pkts[1]));
        assert_eq!(pkts[1][1] & 0xc0, 0x80, "FU-A start");
        assert_eq!(pkts[2][1] & 0xc0, 0x40, "FU-A end");
        for (i, p) in pkts.iter().enumerate() {
            let parsed = parse(PayloadCodec::H264, p).unwrap();
            assert_eq!(parsed.body, body(i));
            assert_eq!(parsed.starts_keyframe, i < 2);
        }
        let delta = video_frame(PayloadCodec::H264, false, Vp8Frame::default(), &sizes, body);
        assert!(
            !parse(PayloadCodec::H264, &delta[0])
                .unwrap()
                .starts_keyframe
        );
    }

    #[test]
    fn opus_round_trips_and_garbage_is_an_error() {
        let b = Body {
            stream: AUDIO_STREAM,
            publisher: 0x0102_0304,
            frame: 1,
            counter: 1,
            send_us: 5,
        };
        let p = opus_packet(b);
        assert_eq!(p.len(), OPUS_PAYLOAD_LEN);
        assert_eq!(parse(PayloadCodec::Opus, &p).unwrap().body, b);
        assert_eq!(parse(PayloadCodec::Opus, &p[..40]), Err(ParseError::Length));
        assert!(parse(PayloadCodec::Vp8, &[]).is_err());
        assert!(parse(PayloadCodec::H264, &[0x78, 0xff]).is_err());
        assert_eq!(
            parse(PayloadCodec::H264, &[0x1e, 0]),
            Err(ParseError::Codec)
        );
    }

    #[test]
    fn sizes_respect_limits() {
        assert_eq!(
            packet_sizes(PayloadCodec::Vp8, 100, 1),
            vec![min_packet_len(PayloadCodec::Vp8).max(100)]
        );
        let s = packet_sizes(PayloadCodec::Vp8, 6250, 1);
        assert!(s.iter().all(|&l| l <= MAX_PAYLOAD) && s.len() == 6);
        assert_eq!(packet_sizes(PayloadCodec::H264, 10, 2).len(), 2);
    }
}
