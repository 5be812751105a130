//! Codec packetization of synthetic media, as real encoders' packetizers write it, and
//! the receiver's reading of it: the one place the client side of Switchboard's tests
//! and tools knows the payload formats.
//!
//! - VP8 (RFC 7741 §4.2, §4.3): the payload descriptor in its short form or with the
//!   extension byte (15-bit PictureID, TL0PICIDX, TID/Y/KEYIDX); the first packet of a
//!   frame then carries the 3-byte frame tag, and a keyframe the start code and its
//!   dimensions (RFC 6386 §9.1).
//! - H.264 (RFC 6184, packetization mode 1): a keyframe starts with a STAP-A (§5.7.1) of
//!   SPS, PPS and an SEI unit that runs to the end of the packet (where the caller puts
//!   its body), then FU-A fragments (§5.8) of an IDR slice; a delta frame is FU-A
//!   fragments of a non-IDR slice.
//! - Opus (RFC 6716 §3.1): one TOC byte.
//!
//! Never allocates beyond the caller's buffer, never panics on received bytes.

/// VP8 keyframe width, pixels (the payload is synthetic: any value works).
pub const VP8_WIDTH: u16 = 640;
/// VP8 keyframe height, pixels.
pub const VP8_HEIGHT: u16 = 360;

/// An SPS for constrained baseline, level 3.1 (profile-level-id 42e01f).
pub const H264_SPS: &[u8] = &[
    0x67, 0x42, 0xe0, 0x1f, 0x8d, 0x68, 0x05, 0x00, 0x5b, 0xa1, 0x00, 0x00, 0x03, 0x00, 0x01,
];
/// A PPS matching [`H264_SPS`].
pub const H264_PPS: &[u8] = &[0x68, 0xce, 0x06, 0xe2];

/// Opus TOC byte: config 31 (CELT fullband, 20 ms), stereo, one frame.
pub const OPUS_TOC: u8 = 0xfc;

/// Bytes of a STAP-A keyframe packet before the SEI unit's body: the STAP-A header,
/// SPS and PPS with their sizes, the SEI's size and NAL header.
pub const H264_STAP_A_HEADER_LEN: usize = 1 + 2 + H264_SPS.len() + 2 + H264_PPS.len() + 2 + 1;

/// The extended VP8 payload descriptor fields (RFC 7741 §4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// 15-bit PictureID.
    pub picture_id: u16,
    /// TL0PICIDX: index of the latest TID 0 frame.
    pub tl0_pic_idx: u8,
    /// Temporal layer id (0..=2).
    pub tid: u8,
    /// Layer sync bit.
    pub layer_sync: bool,
    /// 5-bit keyframe index.
    pub key_idx: u8,
}

/// Append a VP8 payload descriptor: the short form (one byte) with `ext: None`, else
/// the extended form with every optional field. `first`: the frame's first packet
/// (S=1, partition 0).
pub fn write_vp8_descriptor(p: &mut Vec<u8>, first: bool, ext: Option<Vp8Descriptor>) {
    let start = if first { 0x10 } else { 0 };
    let Some(d) = ext else {
        p.push(start);
        return;
    };
    // X=1, N=0, S, PID=0; then I=1, L=1, T=1, K=1.
    p.push(0x80 | start);
    p.push(0xf0);
    p.push(0x80 | ((d.picture_id >> 8) as u8 & 0x7f));
    p.push(d.picture_id as u8);
    p.push(d.tl0_pic_idx);
    p.push((d.tid & 0x03) << 6 | u8::from(d.layer_sync) << 5 | (d.key_idx & 0x1f));
}

/// Append the VP8 payload header of a frame's first packet (RFC 6386 §9.1): the frame
/// tag (P bit clear for a keyframe, version 0, show_frame, the first partition's size
/// in bytes), and for a keyframe the start code and its `(width, height)` in pixels
/// (14 bits each, no scaling; [`VP8_WIDTH`]×[`VP8_HEIGHT`] where any size does).
pub fn write_vp8_frame_header(
    p: &mut Vec<u8>,
    keyframe: bool,
    first_partition: u32,
    (width, height): (u16, u16),
) {
    let tag = u32::from(!keyframe) | (1 << 4) | (first_partition << 5);
    p.extend_from_slice(&tag.to_le_bytes()[..3]);
    if keyframe {
        p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&width.to_le_bytes());
        p.extend_from_slice(&height.to_le_bytes());
    }
}

/// Append a STAP-A of SPS, PPS and the header of an SEI unit whose body runs to the
/// end of a `total`-byte payload (the caller appends it).
pub fn write_h264_stap_a(p: &mut Vec<u8>, total: usize) {
    p.push(0x78); // F=0, NRI=3, type 24
    for unit in [H264_SPS, H264_PPS] {
        p.extend_from_slice(&(unit.len() as u16).to_be_bytes());
        p.extend_from_slice(unit);
    }
    let sei_len = total.saturating_sub(p.len() + 2);
    p.extend_from_slice(&(sei_len as u16).to_be_bytes());
    p.push(0x06); // SEI
}

/// Append the FU indicator and FU header of one fragment of an IDR slice (`idr`) or a
/// non-IDR slice, with its start and end bits.
pub fn write_h264_fu_a(p: &mut Vec<u8>, idr: bool, start: bool, end: bool) {
    let (nri, nal_type) = if idr { (3u8, 5u8) } else { (2, 1) };
    p.push((nri << 5) | 28);
    p.push(nal_type | if start { 0x80 } else { 0 } | if end { 0x40 } else { 0 });
}

/// Why a received payload could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// Shorter than its own headers say.
    Short,
    /// Not a packetization this kit writes (the NAL type, for H.264).
    Codec(u8),
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::Short => f.write_str("payload shorter than its headers"),
            PayloadError::Codec(t) => write!(f, "unexpected H264 NAL type {t}"),
        }
    }
}

impl std::error::Error for PayloadError {}

/// Length of a VP8 payload descriptor (RFC 7741 §4.2).
pub fn vp8_descriptor_len(p: &[u8]) -> Result<usize, PayloadError> {
    let b0 = *p.first().ok_or(PayloadError::Short)?;
    let mut d = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(1).ok_or(PayloadError::Short)?;
        d = 2;
        if x & 0x80 != 0 {
            let pid = *p.get(d).ok_or(PayloadError::Short)?;
            d += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            d += 1;
        }
        if x & 0x30 != 0 {
            d += 1;
        }
    }
    if d > p.len() {
        return Err(PayloadError::Short);
    }
    Ok(d)
}

/// Where the data after a VP8 packet's headers starts, and whether the packet starts a
/// keyframe (S=1, PID 0, P bit clear): after the descriptor, plus the frame header of
/// [`write_vp8_frame_header`] on a frame's first packet.
pub fn vp8_body_offset(p: &[u8]) -> Result<(usize, bool), PayloadError> {
    let d = vp8_descriptor_len(p)?;
    let frame_start = p[0] & 0x10 != 0 && p[0] & 0x07 == 0;
    if !frame_start {
        return Ok((d, false));
    }
    let tag = *p.get(d).ok_or(PayloadError::Short)?;
    let keyframe = tag & 0x01 == 0;
    Ok((d + if keyframe { 10 } else { 3 }, keyframe))
}

/// Where the data after an H.264 packet's headers starts (a single NAL unit's body,
/// the last aggregated unit's body of a STAP-A, an FU-A's fragment), and whether the
/// packet starts a keyframe (an IDR or SPS unit, or an IDR fragment's start).
pub fn h264_body_offset(p: &[u8]) -> Result<(usize, bool), PayloadError> {
    let b0 = *p.first().ok_or(PayloadError::Short)?;
    match b0 & 0x1f {
        t @ 1..=23 => Ok((1, t == 5 || t == 7)),
        24 => {
            let (mut off, mut last, mut key) = (1, None, false);
            while off < p.len() {
                let size = p
                    .get(off..off + 2)
                    .map(|s| u16::from_be_bytes([s[0], s[1]]) as usize)
                    .ok_or(PayloadError::Short)?;
                off += 2;
                let header = *p.get(off).ok_or(PayloadError::Short)?;
                key |= matches!(header & 0x1f, 5 | 7);
                if size == 0 || off + size > p.len() {
                    return Err(PayloadError::Short);
                }
                last = Some(off + 1);
                off += size;
            }
            Ok((last.ok_or(PayloadError::Short)?, key))
        }
        28 => {
            let fu = *p.get(1).ok_or(PayloadError::Short)?;
            Ok((2, fu & 0x80 != 0 && matches!(fu & 0x1f, 5 | 7)))
        }
        t => Err(PayloadError::Codec(t)),
    }
}

/// The NAL unit types an H.264 payload carries: its own type for a single NAL unit,
/// each aggregated unit's of a STAP-A, the fragmented unit's of an FU-A. Empty for
/// anything else or a truncated payload.
pub fn h264_nal_types(p: &[u8]) -> Vec<u8> {
    let Some(&b0) = p.first() else {
        return Vec::new();
    };
    match b0 & 0x1f {
        t @ 1..=23 => vec![t],
        24 => {
            let mut types = Vec::new();
            let mut off = 1;
            while off + 2 < p.len() {
                let size = u16::from_be_bytes([p[off], p[off + 1]]) as usize;
                off += 2;
                match p.get(off) {
                    Some(h) if size > 0 => types.push(h & 0x1f),
                    _ => break,
                }
                off += size;
            }
            types
        }
        28 => p.get(1).map(|fu| vec![fu & 0x1f]).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stap_a_keyframe_reads_back_as_a_keyframe_with_its_body_at_the_sei() {
        let mut p = Vec::new();
        write_h264_stap_a(&mut p, 100);
        assert_eq!(p.len(), H264_STAP_A_HEADER_LEN);
        p.resize(100, 0xab);
        assert_eq!(h264_body_offset(&p), Ok((H264_STAP_A_HEADER_LEN, true)));
        assert_eq!(h264_nal_types(&p), vec![7, 8, 6]);
    }

    #[test]
    fn fu_a_fragments_start_a_keyframe_only_at_an_idr_start() {
        for (idr, start, key) in [
            (true, true, true),
            (true, false, false),
            (false, true, false),
        ] {
            let mut p = Vec::new();
            write_h264_fu_a(&mut p, idr, start, !start);
            p.push(0);
            assert_eq!(
                h264_body_offset(&p),
                Ok((2, key)),
                "idr {idr} start {start}"
            );
        }
    }

    #[test]
    fn vp8_descriptors_of_both_forms_and_frame_headers_read_back() {
        for ext in [None, Some(Vp8Descriptor::default())] {
            for keyframe in [true, false] {
                let mut p = Vec::new();
                write_vp8_descriptor(&mut p, true, ext);
                let d = p.len();
                write_vp8_frame_header(&mut p, keyframe, 500, (VP8_WIDTH, VP8_HEIGHT));
                let header = p.len();
                p.push(0x42);
                assert_eq!(vp8_body_offset(&p), Ok((header, keyframe)));
                assert_eq!(vp8_descriptor_len(&p), Ok(d));
            }
            let mut p = Vec::new();
            write_vp8_descriptor(&mut p, false, ext);
            let d = p.len();
            p.push(0x42);
            assert_eq!(vp8_body_offset(&p), Ok((d, false)));
        }
    }

    #[test]
    fn truncated_or_foreign_payloads_are_errors_not_panics() {
        assert_eq!(vp8_body_offset(&[]), Err(PayloadError::Short));
        assert_eq!(vp8_body_offset(&[0x90, 0x80]), Err(PayloadError::Short));
        assert_eq!(h264_body_offset(&[0x78, 0x00]), Err(PayloadError::Short));
        assert_eq!(h264_body_offset(&[0x1e]), Err(PayloadError::Codec(30)));
        assert!(h264_nal_types(&[0x78, 0x00, 0x09]).is_empty());
    }
}
