//! Codec payload inspection for forwarding decisions: "does this RTP packet start a keyframe?",
//! the VP8 payload descriptor, and the temporal layer id of VP8/VP9 packets; and the parsers
//! of the codec headers that the forwarder and the recorder read.
//!
//! Owns: bounds-checked reading of the first bytes of an RTP payload (the bytes after the RTP
//! header, padding already removed) for VP8, VP9, H.264, H.265 and AV1 (this file); the frame
//! size of a keyframe's first packet ([`resolution`]); one parser per bitstream structure,
//! each read in one pass: the H.264 sequence parameter set ([`h264`]), the AV1 OBU header,
//! sequence header and frame header key frame bits ([`av1`]), the VP9 uncompressed header
//! ([`vp9`]), over one bit reader with Exp-Golomb, `uvlc()` and LEB128 ([`bits`]).
//!
//! Never: depacketizes (reassembling frames from packets is `crate::record::depacketize`'s),
//! decodes, rewrites or allocates; never panics on any input bytes (every read is
//! `get`-checked, truncated or garbage input yields `false`/`None`); never depends on a
//! WebRTC library (the caller maps its codec enum onto [`CodecKind`]).

pub mod av1;
pub mod bits;
pub mod h264;
pub mod resolution;
pub mod vp9;

/// The codecs the forwarder distinguishes. The caller maps its WebRTC library's codec enum here;
/// anything without a payload inspector below is [`CodecKind::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// Opus audio (RFC 7587). Every packet is independently decodable.
    Opus,
    /// VP8 video (RFC 7741).
    Vp8,
    /// VP9 video (RFC 9628).
    Vp9,
    /// H.264 video (RFC 6184).
    H264,
    /// H.265 video (RFC 7798).
    H265,
    /// AV1 video (AOM "RTP Payload Format For AV1").
    Av1,
    /// Anything else (other audio codecs, unknown video).
    Other,
}

/// Returns true if this RTP payload starts (or, for aggregation packets, contains the start of)
/// a keyframe — a point where a subscriber can begin decoding.
///
/// Per codec:
/// - VP8: S=1, PID=0 and the VP8 payload header's P bit is 0 (RFC 7741 §4.2, §4.3; RFC 6386 §9.1).
/// - VP9: P=0 and B=1 and, if layer indices are present, SID=0 (RFC 9628 §4.2).
/// - H.264: an IDR slice (type 5) or SPS (type 7), as a single NAL unit, inside a STAP-A, or as the
///   first fragment of an FU-A (RFC 6184 §5.6–5.8). SPS counts because SPS/PPS precede an IDR.
/// - H.265: an IRAP NAL unit (types 16–21) or VPS/SPS (32/33), as a single NAL unit, inside an
///   aggregation packet (48) or as the first fragment of a fragmentation unit (49) (RFC 7798 §4.4).
/// - AV1: the aggregation header's N bit (first packet of a coded video sequence) (AV1 RTP §4.4).
/// - Opus / Other: always false (audio packets are all decodable on their own).
pub fn is_keyframe_start(codec: CodecKind, payload: &[u8]) -> bool {
    match codec {
        CodecKind::Vp8 => vp8_keyframe_start(payload),
        CodecKind::Vp9 => vp9_keyframe_start(payload),
        CodecKind::H264 => h264_keyframe_start(payload),
        CodecKind::H265 => h265_keyframe_start(payload),
        CodecKind::Av1 => payload.first().is_some_and(|&b| b & AV1_N != 0),
        CodecKind::Opus | CodecKind::Other => false,
    }
}

/// The temporal layer id (TID) of a packet, when the payload descriptor carries one:
/// VP8 when the T bit of the extension byte is set (RFC 7741 §4.2), VP9 when the L bit is set
/// (RFC 9628 §4.2, layer indices byte). `None` for every other codec, or when absent/truncated.
pub fn temporal_id(codec: CodecKind, payload: &[u8]) -> Option<u8> {
    match codec {
        CodecKind::Vp8 => parse_vp8_descriptor(payload)?.tid,
        CodecKind::Vp9 => vp9_layer_indices(payload).map(|l| l >> 5),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// VP8 (RFC 7741)

/// The VP8 payload descriptor (RFC 7741 §4.2) of one RTP packet.
///
/// ```text
///       0 1 2 3 4 5 6 7
///      +-+-+-+-+-+-+-+-+
///      |X|R|N|S|R| PID | (REQUIRED)
///      +-+-+-+-+-+-+-+-+
/// X:   |I|L|T|K| RSV   | (OPTIONAL)
///      +-+-+-+-+-+-+-+-+
/// I:   |M| PictureID   | (OPTIONAL, 7 bits, or 15 bits when M=1 with a second byte)
///      +-+-+-+-+-+-+-+-+
/// L:   |   TL0PICIDX   | (OPTIONAL)
///      +-+-+-+-+-+-+-+-+
/// T/K: |TID|Y| KEYIDX  | (OPTIONAL)
///      +-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// PictureID (I bit): 7-bit (0..=127) or 15-bit (0..=32767) value.
    pub picture_id: Option<u16>,
    /// True when the PictureID was sent in its 15-bit form (M bit set).
    pub picture_id_15bit: bool,
    /// TL0PICIDX (L bit): running index of the base temporal layer frames.
    pub tl0picidx: Option<u8>,
    /// Temporal layer id, 0..=3 (T bit).
    pub tid: Option<u8>,
    /// Layer sync bit Y; only meaningful (and only ever true) when `tid` is present.
    pub layer_sync: bool,
    /// KEYIDX, 0..=31 (K bit).
    pub key_idx: Option<u8>,
    /// S bit: this packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: partition index, 0..=7.
    pub partition_id: u8,
    /// Length of the descriptor in bytes (1..=6); the VP8 payload header starts here.
    pub header_len: usize,
}

const VP8_X: u8 = 0x80;
const VP8_S: u8 = 0x10;
const VP8_PID: u8 = 0x07;
const VP8_I: u8 = 0x80;
const VP8_L: u8 = 0x40;
const VP8_T: u8 = 0x20;
const VP8_K: u8 = 0x10;
const VP8_M: u8 = 0x80;
const VP8_Y: u8 = 0x20;
/// Frame tag bit 0, "inverse key frame" (RFC 6386 §9.1, RFC 7741 §4.3).
const VP8_INVERSE_KEY: u8 = 0x01;

/// Parses the VP8 payload descriptor (RFC 7741 §4.2) at the start of `payload`.
///
/// Returns `None` if the descriptor is truncated. Only the descriptor is checked: a descriptor
/// followed by zero payload bytes parses (with `header_len == payload.len()`).
pub fn parse_vp8_descriptor(payload: &[u8]) -> Option<Vp8Descriptor> {
    let b0 = *payload.first()?;
    let mut d = Vp8Descriptor {
        start_of_partition: b0 & VP8_S != 0,
        partition_id: b0 & VP8_PID,
        ..Vp8Descriptor::default()
    };
    let mut i = 1;
    if b0 & VP8_X != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & VP8_I != 0 {
            let hi = *payload.get(i)?;
            i += 1;
            if hi & VP8_M != 0 {
                let lo = *payload.get(i)?;
                i += 1;
                d.picture_id = Some(u16::from(hi & 0x7F) << 8 | u16::from(lo));
                d.picture_id_15bit = true;
            } else {
                d.picture_id = Some(u16::from(hi));
            }
        }
        if x & VP8_L != 0 {
            d.tl0picidx = Some(*payload.get(i)?);
            i += 1;
        }
        if x & (VP8_T | VP8_K) != 0 {
            let tk = *payload.get(i)?;
            i += 1;
            if x & VP8_T != 0 {
                d.tid = Some(tk >> 6);
                d.layer_sync = tk & VP8_Y != 0;
            }
            if x & VP8_K != 0 {
                d.key_idx = Some(tk & 0x1F);
            }
        }
    }
    d.header_len = i;
    Some(d)
}

fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(d) = parse_vp8_descriptor(payload) else {
        return false;
    };
    d.start_of_partition
        && d.partition_id == 0
        && payload
            .get(d.header_len)
            .is_some_and(|&tag| tag & VP8_INVERSE_KEY == 0)
}

// ---------------------------------------------------------------------------------------------
// VP9 (RFC 9628 §4.2): first byte |I|P|L|F|B|E|V|Z|

const VP9_I: u8 = 0x80;
const VP9_P: u8 = 0x40;
const VP9_L: u8 = 0x20;
const VP9_B: u8 = 0x08;
const VP9_M: u8 = 0x80;

/// The layer indices byte `|TID|U| SID |D|` (RFC 9628 §4.2), present when L=1; it follows the
/// optional picture id (1 byte, or 2 when its M bit is set).
fn vp9_layer_indices(payload: &[u8]) -> Option<u8> {
    let b0 = *payload.first()?;
    if b0 & VP9_L == 0 {
        return None;
    }
    let mut i = 1;
    if b0 & VP9_I != 0 {
        let pid = *payload.get(i)?;
        i += if pid & VP9_M != 0 { 2 } else { 1 };
    }
    payload.get(i).copied()
}

fn vp9_keyframe_start(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    if b0 & VP9_P != 0 || b0 & VP9_B == 0 {
        return false;
    }
    if b0 & VP9_L == 0 {
        return true;
    }
    // Spatial layers: only the lowest one (SID 0) starts a decodable picture.
    vp9_layer_indices(payload).is_some_and(|l| (l >> 1) & 0x07 == 0)
}

// ---------------------------------------------------------------------------------------------
// H.264 (RFC 6184)

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;
/// FU header start bit, shared by H.264 FU-A (RFC 6184 §5.8) and H.265 FU (RFC 7798 §4.4.3).
const FU_START: u8 = 0x80;

fn h264_is_key(nal_type: u8) -> bool {
    nal_type == H264_IDR || nal_type == H264_SPS
}

fn h264_keyframe_start(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1F {
        // STAP-A (§5.7.1): one-byte header, then repeated 16-bit size + NAL unit.
        H264_STAP_A => Aggregated(payload.get(1..).unwrap_or_default())
            .any(|nal| nal.first().is_some_and(|&h| h264_is_key(h & 0x1F))),
        // FU-A (§5.8): FU indicator, then FU header |S|E|R|Type|.
        H264_FU_A => payload
            .get(1)
            .is_some_and(|&fu| fu & FU_START != 0 && h264_is_key(fu & 0x1F)),
        nal_type => h264_is_key(nal_type),
    }
}

// ---------------------------------------------------------------------------------------------
// H.265 (RFC 7798): two-byte NAL unit header |F|  Type(6)  |LayerId(6)|TID(3)|

const H265_IRAP: std::ops::RangeInclusive<u8> = 16..=21;
const H265_VPS: u8 = 32;
const H265_SPS: u8 = 33;
const H265_AP: u8 = 48;
const H265_FU: u8 = 49;

fn h265_type(header_byte0: u8) -> u8 {
    (header_byte0 >> 1) & 0x3F
}

fn h265_is_key(nal_type: u8) -> bool {
    H265_IRAP.contains(&nal_type) || nal_type == H265_VPS || nal_type == H265_SPS
}

fn h265_keyframe_start(payload: &[u8]) -> bool {
    let [b0, _, rest @ ..] = payload else {
        return false; // shorter than the two-byte NAL unit / payload header
    };
    match h265_type(*b0) {
        // AP (§4.4.2): payload header, then repeated 16-bit size + NAL unit (no DONL: WebRTC
        // does not signal sprop-max-don-diff).
        H265_AP => {
            Aggregated(rest).any(|nal| nal.first().is_some_and(|&h| h265_is_key(h265_type(h))))
        }
        // FU (§4.4.3): payload header, then FU header |S|E|FuType(6)|.
        H265_FU => rest
            .first()
            .is_some_and(|&fu| fu & FU_START != 0 && h265_is_key(fu & 0x3F)),
        nal_type => h265_is_key(nal_type),
    }
}

/// Iterates the NAL units of an aggregation payload laid out as repeated
/// `16-bit big-endian size, NAL unit` (H.264 STAP-A, RFC 6184 §5.7.1; H.265 AP, RFC 7798 §4.4.2).
/// Stops at the first zero or overrunning size.
struct Aggregated<'a>(&'a [u8]);

impl<'a> Iterator for Aggregated<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let [hi, lo, rest @ ..] = self.0 else {
            return None;
        };
        let size = usize::from(u16::from_be_bytes([*hi, *lo]));
        let nal = rest.get(..size).filter(|nal| !nal.is_empty());
        self.0 = match nal {
            Some(_) => rest.get(size..).unwrap_or_default(),
            None => &[],
        };
        nal
    }
}

// ---------------------------------------------------------------------------------------------
// AV1 (AOM RTP payload format §4.4): aggregation header |Z|Y| W |N|-|-|-|

const AV1_N: u8 = 0x08;

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
