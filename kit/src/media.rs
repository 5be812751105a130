//! The one synthetic media format of Switchboard's client side: every RTP payload the
//! tests, the simulations and the load tool send is `codec header | body | filler`.
//!
//! - The codec header is what a real encoder's packetizer writes ([`crate::codec`]), so
//!   a forwarding server's codec inspection (keyframe detection, resolution, VP8
//!   temporal layers and PictureID rewriting) sees ordinary media.
//! - The [`Body`] (28 bytes) carries a magic byte, the stream byte (simulcast layer in
//!   the high nibble, temporal id in the low one; [`AUDIO_STREAM`] for audio), the
//!   publisher id, a frame number, a packet counter and the send time in
//!   microseconds. A receiver needs neither RID nor SSRC to tell layers and publishers
//!   apart, and measures latency from the send time.
//! - The filler runs to the payload's total length (written in the body) with bytes
//!   derived from the counter ([`filler_byte`]), so [`verify`] tells, byte for byte,
//!   whether a forwarded payload is the one the publisher wrote.
//!
//! Never does I/O, never reads the clock, never panics on received bytes.

use crate::codec::{self, PayloadError, Vp8Descriptor};

/// Magic first byte of every body.
pub const MAGIC: u8 = 0x5b;
/// Bytes of the body that follows the codec header.
pub const BODY_LEN: usize = 28;
/// Largest RTP payload [`packet_sizes`] plans, in bytes (fits a 1200-byte MTU with the
/// RTP header, its extensions and the SRTP tag).
pub const MAX_PAYLOAD: usize = 1100;
/// Stream byte of an audio stream.
pub const AUDIO_STREAM: u8 = 0xff;

/// Codec of a payload, as a receiver maps it from the payload type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadCodec {
    /// VP8 video (RFC 7741).
    Vp8,
    /// H.264 video (RFC 6184, packetization mode 1).
    H264,
    /// Opus audio (RFC 7587).
    Opus,
}

impl PayloadCodec {
    /// Video, not audio.
    pub fn is_video(self) -> bool {
        self != PayloadCodec::Opus
    }
}

/// The stream byte of simulcast layer `layer` (0..=14) and temporal layer `tid` (0..=15).
pub fn stream_byte(layer: u8, tid: u8) -> u8 {
    (layer.min(14) << 4) | (tid & 0x0f)
}

/// The simulcast layer a stream byte names; `None` for [`AUDIO_STREAM`].
pub fn stream_layer(stream: u8) -> Option<u8> {
    (stream != AUDIO_STREAM).then_some(stream >> 4)
}

/// What follows the codec header in every payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// [`stream_byte`] for video, [`AUDIO_STREAM`] for audio.
    pub stream: u8,
    /// The publisher that sent it.
    pub publisher: u32,
    /// Frame number within the stream (audio: packet number).
    pub frame: u32,
    /// Packet counter: the sender numbers its packets, the receiver finds gaps.
    pub counter: u64,
    /// Send time in microseconds since an epoch the sender and receiver share.
    pub send_us: u64,
}

/// The filler byte at offset `i` after the body of packet `counter`.
pub fn filler_byte(counter: u64, i: usize) -> u8 {
    let k = (counter.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8;
    k ^ (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8).wrapping_mul(7)
}

impl Body {
    /// Append the body and filler to `out` until it is `total` bytes (the body is
    /// written whole even when `total` is smaller).
    pub fn write(&self, out: &mut Vec<u8>, total: usize) {
        out.push(MAGIC);
        out.push(self.stream);
        out.extend_from_slice(&(total as u16).to_be_bytes());
        out.extend_from_slice(&self.publisher.to_be_bytes());
        out.extend_from_slice(&self.frame.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.send_us.to_be_bytes());
        let n = total.saturating_sub(out.len());
        out.extend((0..n).map(|i| filler_byte(self.counter, i)));
    }

    fn read(b: &[u8], total: usize) -> Result<Body, ParseError> {
        let b = b.get(..BODY_LEN).ok_or(ParseError::Short)?;
        if b[0] != MAGIC {
            return Err(ParseError::NoBody);
        }
        let declared = u16::from_be_bytes([b[2], b[3]]) as usize;
        if declared != total {
            return Err(ParseError::Length {
                declared,
                present: total,
            });
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
    /// A codec header this kit never writes.
    Codec,
    /// No body where one should be (not from this kit).
    NoBody,
    /// The payload length differs from the one the publisher wrote.
    Length {
        /// Bytes the body says the payload has.
        declared: usize,
        /// Bytes it has.
        present: usize,
    },
    /// A filler byte differs from what the publisher wrote.
    Filler {
        /// The packet's counter.
        counter: u64,
        /// Offset of the first differing byte after the body.
        offset: usize,
    },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Short => f.write_str("payload shorter than its headers"),
            ParseError::Codec => f.write_str("a codec header this kit never writes"),
            ParseError::NoBody => f.write_str("no body after the codec header"),
            ParseError::Length { declared, present } => {
                write!(f, "payload of {present} bytes, the body says {declared}")
            }
            ParseError::Filler { counter, offset } => {
                write!(f, "packet {counter}: filler differs at byte {offset}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

impl From<PayloadError> for ParseError {
    fn from(e: PayloadError) -> Self {
        match e {
            PayloadError::Short => ParseError::Short,
            PayloadError::Codec(_) => ParseError::Codec,
        }
    }
}

/// How the packets of one video frame are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    /// VP8 or H.264 ([`PayloadCodec::Opus`] writes an Opus TOC byte per packet).
    pub codec: PayloadCodec,
    /// A keyframe: VP8 P bit clear with start code and size; H.264 STAP-A then IDR.
    pub keyframe: bool,
    /// VP8: the extended descriptor's fields, `None` for the one-byte descriptor.
    pub vp8: Option<Vp8Descriptor>,
    /// VP8 keyframe `(width, height)` in pixels.
    pub size: (u16, u16),
}

impl FrameSpec {
    /// A frame of `codec` with the short VP8 descriptor and the kit's default size.
    pub fn new(codec: PayloadCodec, keyframe: bool) -> Self {
        FrameSpec {
            codec,
            keyframe,
            vp8: None,
            size: (codec::VP8_WIDTH, codec::VP8_HEIGHT),
        }
    }
}

/// VP8 first partition size written into frame tags, bytes (synthetic: any works).
const VP8_FIRST_PARTITION: u32 = 400;

/// Build the payloads of one video frame: `sizes[i]` bytes for packet `i` (each at
/// least [`min_packet_len`]; H.264 needs two packets, three for a keyframe), the body
/// of packet `i` from `body(i)`.
pub fn video_frame(
    spec: &FrameSpec,
    sizes: &[usize],
    mut body: impl FnMut(usize) -> Body,
) -> Vec<Vec<u8>> {
    let n = sizes.len();
    let key = spec.keyframe;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut p = Vec::with_capacity(len);
            match spec.codec {
                PayloadCodec::Vp8 => {
                    codec::write_vp8_descriptor(&mut p, i == 0, spec.vp8);
                    if i == 0 {
                        codec::write_vp8_frame_header(&mut p, key, VP8_FIRST_PARTITION, spec.size);
                    }
                }
                PayloadCodec::H264 if key && i == 0 => codec::write_h264_stap_a(&mut p, len),
                PayloadCodec::H264 => {
                    // FU-A of an IDR (keyframe) or non-IDR slice; a keyframe's first
                    // packet is the STAP-A, so its slice starts at packet 1.
                    let start = usize::from(key);
                    codec::write_h264_fu_a(&mut p, key, i == start, i == n - 1);
                }
                PayloadCodec::Opus => p.push(codec::OPUS_TOC),
            }
            body(i).write(&mut p, len);
            p
        })
        .collect()
}

/// One Opus payload of `len` bytes (at least `1 + BODY_LEN`).
pub fn opus_packet(body: Body, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    p.push(codec::OPUS_TOC);
    body.write(&mut p, len);
    p
}

/// The smallest packet a frame may have for `codec` (headers plus body), bytes.
pub fn min_packet_len(codec: PayloadCodec) -> usize {
    match codec {
        // Extended descriptor (6) + keyframe payload header (10) + body.
        PayloadCodec::Vp8 => 16 + BODY_LEN,
        // STAP-A header with SPS, PPS and the SEI's size and header + body.
        PayloadCodec::H264 => codec::H264_STAP_A_HEADER_LEN + BODY_LEN,
        PayloadCodec::Opus => 1 + BODY_LEN,
    }
}

/// Split `bytes` of a frame into packet sizes of at most [`MAX_PAYLOAD`] and at least
/// [`min_packet_len`], at least `min_packets` packets.
pub fn packet_sizes(codec: PayloadCodec, bytes: usize, min_packets: usize) -> Vec<usize> {
    let min_len = min_packet_len(codec);
    let n = bytes.div_ceil(MAX_PAYLOAD).max(min_packets).max(1);
    let each = (bytes / n).clamp(min_len, MAX_PAYLOAD);
    vec![each; n]
}

/// What a receiver reads from one payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The body.
    pub body: Body,
    /// The packet starts a frame (VP8: S=1 and PID 0; H.264: a STAP-A, a single NAL
    /// unit or an FU-A start).
    pub frame_start: bool,
    /// The packet starts a keyframe (VP8: frame start, P bit 0; H.264: SPS or IDR start).
    pub starts_keyframe: bool,
    /// Offset of the body in the payload.
    pub body_at: usize,
}

/// Read a received payload of `codec`: its headers, body and length, not its filler.
pub fn parse(codec: PayloadCodec, p: &[u8]) -> Result<Parsed, ParseError> {
    let (body_at, starts_keyframe) = match codec {
        PayloadCodec::Vp8 => codec::vp8_body_offset(p)?,
        PayloadCodec::H264 => codec::h264_body_offset(p)?,
        PayloadCodec::Opus => (1, false),
    };
    let frame_start = match codec {
        PayloadCodec::Vp8 => p[0] & 0x10 != 0 && p[0] & 0x07 == 0,
        PayloadCodec::H264 => match p[0] & 0x1f {
            28 => p.get(1).is_some_and(|fu| fu & 0x80 != 0),
            _ => true,
        },
        PayloadCodec::Opus => false,
    };
    let body = Body::read(p.get(body_at..).ok_or(ParseError::Short)?, p.len())?;
    Ok(Parsed {
        body,
        frame_start,
        starts_keyframe,
        body_at,
    })
}

/// [`parse`], and check every filler byte: `Ok` only for the payload exactly as the
/// publisher wrote it.
pub fn verify(codec: PayloadCodec, p: &[u8]) -> Result<Parsed, ParseError> {
    match read(codec, p)? {
        (parsed, None) => Ok(parsed),
        (_, Some(filler)) => Err(filler),
    }
}

/// [`parse`] and the filler check in one reading: the payload and, when a filler byte
/// differs from what the publisher wrote, that mismatch (a `ParseError::Filler`).
pub fn read(codec: PayloadCodec, p: &[u8]) -> Result<(Parsed, Option<ParseError>), ParseError> {
    let parsed = parse(codec, p)?;
    let counter = parsed.body.counter;
    let filler = &p[parsed.body_at + BODY_LEN..];
    let mismatch = filler
        .iter()
        .enumerate()
        .position(|(i, b)| *b != filler_byte(counter, i))
        .map(|offset| ParseError::Filler { counter, offset });
    Ok((parsed, mismatch))
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
