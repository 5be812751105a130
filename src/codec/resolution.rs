//! Frame size (width × height in pixels) from the first RTP packet of a video keyframe.
//!
//! An SFU uses this to cap what a viewer receives by resolution. Both entry points take an
//! RTP *payload* (the RTP header already removed), never allocate, never panic, and answer
//! `None` when the packet does not carry a frame size or is malformed.

/// Largest width or height accepted, in pixels; anything above is treated as malformed.
const MAX_DIMENSION: u16 = 16384;

/// Width and height in pixels of a coded video frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resolution {
    /// Width in pixels (1..=16384).
    pub width: u16,
    /// Height in pixels (1..=16384).
    pub height: u16,
}

impl Resolution {
    /// `Some` only when both sides are within 1..=[`MAX_DIMENSION`] pixels.
    fn checked(width: u64, height: u64) -> Option<Self> {
        let side = |v| {
            u16::try_from(v)
                .ok()
                .filter(|v| (1..=MAX_DIMENSION).contains(v))
        };
        Some(Self {
            width: side(width)?,
            height: side(height)?,
        })
    }
}

/// VP8: from the first packet of a keyframe (RFC 7741 §4.2 payload descriptor, then the
/// VP8 payload header and keyframe header, RFC 6386 §9.1: 3-byte frame tag, start code
/// 0x9d 0x01 0x2a, then 16-bit little-endian width and height whose top 2 bits are the
/// scaling mode — masked off here).
///
/// Returns the size in pixels. `None` when the packet does not start a frame (S bit clear or
/// partition index not 0), is not a keyframe (P bit set), lacks the start code, is
/// truncated, or codes a zero width or height.
#[must_use]
pub fn vp8_keyframe_resolution(payload: &[u8]) -> Option<Resolution> {
    let frame = payload.get(vp8_descriptor_len(payload)?..)?;
    // RFC 6386 §9.1 frame tag: bit 0 of the first byte is 0 for a key frame.
    if frame.first()? & 0x01 != 0 {
        return None;
    }
    if frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let le14 = |at: usize| -> Option<u64> {
        let raw = u16::from_le_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        Some(u64::from(raw & 0x3fff))
    };
    Resolution::checked(le14(6)?, le14(8)?)
}

/// Length in bytes of the RFC 7741 §4.2 payload descriptor, `None` unless the packet starts
/// partition 0 of a frame (S = 1, PID = 0).
fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return None;
    }
    if first & 0x80 == 0 {
        return Some(1);
    }
    let ext = *payload.get(1)?;
    let mut len = 2;
    if ext & 0x80 != 0 {
        // I: PictureID, 15 bits when its M bit is set, else 7 bits.
        len += if payload.get(len)? & 0x80 != 0 { 2 } else { 1 };
    }
    if ext & 0x40 != 0 {
        len += 1; // L: TL0PICIDX
    }
    if ext & 0x30 != 0 {
        len += 1; // T or K: TID/Y/KEYIDX
    }
    Some(len)
}

/// H.264: from an RTP payload (RFC 6184) that is a single NAL unit (§5.6), a STAP-A (type 24,
/// §5.7.1; every aggregated NAL unit is examined) or the first fragment of an FU-A (type 28,
/// §5.8; only when it starts an SPS), find the sequence parameter set (NAL type 7) and
/// decode the cropped frame size from it, see [`parse_h264_sps`].
///
/// Returns the size in pixels. `None` when the payload holds no SPS (an IDR slice alone, a
/// PPS, a later FU-A fragment …), or the SPS is truncated or malformed.
#[must_use]
pub fn h264_sps_resolution(payload: &[u8]) -> Option<Resolution> {
    let header = *payload.first()?;
    match header & 0x1f {
        7 => parse_h264_sps(payload),
        24 => {
            let mut rest = payload.get(1..)?;
            while let Some(size) = rest.get(..2) {
                let size = usize::from(u16::from_be_bytes([*size.first()?, *size.get(1)?]));
                let nal = rest.get(2..2 + size)?;
                if let Some(found) = parse_h264_sps(nal) {
                    return Some(found);
                }
                rest = rest.get(2 + size..)?;
            }
            None
        }
        28 => {
            // FU header: S(tart) E(nd) R Type. Only a starting fragment of an SPS helps.
            let fu = *payload.get(1)?;
            if header & 0x80 != 0 || fu & 0x80 == 0 || fu & 0x1f != 7 {
                return None;
            }
            sps_rbsp_resolution(payload.get(2..)?)
        }
        _ => None,
    }
}

/// H.264 sequence parameter set, ITU-T H.264 §7.3.2.1.1, given as a whole NAL unit: the
/// 1-byte NAL header (type 7, forbidden bit 0) followed by the escaped RBSP. Emulation
/// prevention bytes (§7.4.1) are skipped while reading; the VUI and anything after the
/// cropping fields are not needed and may be missing.
///
/// Returns the displayed (cropped, §7.4.2.1.1) size in pixels. `None` when the NAL is not an
/// SPS, is truncated, holds out-of-range syntax elements, or yields a side of 0 or > 16384.
#[must_use]
pub fn parse_h264_sps(nal: &[u8]) -> Option<Resolution> {
    let header = *nal.first()?;
    if header & 0x80 != 0 || header & 0x1f != 7 {
        return None;
    }
    sps_rbsp_resolution(nal.get(1..)?)
}

/// `profile_idc` values whose SPS carries the chroma / bit depth / scaling fields.
const HIGH_PROFILES: [u32; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Reads `seq_parameter_set_data()` from the escaped bytes after the NAL header.
fn sps_rbsp_resolution(escaped: &[u8]) -> Option<Resolution> {
    let mut r = BitReader {
        data: escaped,
        ..BitReader::default()
    };
    let profile_idc = r.bits(8)?;
    r.bits(8)?; // constraint_set0..5_flag, reserved_zero_2bits
    r.bits(8)?; // level_idc
    if r.ue()? > 31 {
        return None; // seq_parameter_set_id
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()? == 1;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            // seq_scaling_matrix_present_flag: six 4x4 lists, then two or six 8x8 lists.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    if r.ue()? > 12 {
        return None; // log2_max_frame_num_minus4
    }
    match r.ue()? {
        0 => {
            if r.ue()? > 12 {
                return None; // log2_max_pic_order_cnt_lsb_minus4
            }
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame[i]
            }
        }
        2 => {}
        _ => return None,
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let mut crop = [0u64; 4]; // left, right, top, bottom
    if r.bit()? == 1 {
        for offset in &mut crop {
            *offset = u64::from(r.ue()?);
        }
    }
    // §7.4.2.1.1, Table 6-1: ChromaArrayType 0 (monochrome or separate planes) crops in
    // luma samples; 4:2:0 in 2×2, 4:2:2 in 2×1, 4:4:4 in 1×1. Fields double the vertical unit.
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width, sub_height) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let [left, right, top, bottom] = crop;
    let width = (width_mbs * 16).checked_sub(sub_width * (left + right))?;
    let height = ((2 - frame_mbs_only) * height_map_units * 16)
        .checked_sub(sub_height * (2 - frame_mbs_only) * (top + bottom))?;
    Resolution::checked(width, height)
}

/// Skips one `scaling_list()` of `size` entries (§7.3.2.1.1.1); a delta that brings the next
/// scale to 0 ends the explicit list early.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return None;
            }
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// MSB-first bit reader over an escaped RBSP that drops each emulation prevention byte
/// (0x03 after two 0x00 bytes, §7.4.1) as it goes.
#[derive(Default)]
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    zeros: usize,
    current: u8,
    bits_left: u32,
}

impl BitReader<'_> {
    fn next_byte(&mut self) -> Option<u8> {
        let mut byte = *self.data.get(self.pos)?;
        self.pos += 1;
        if self.zeros >= 2 && byte == 0x03 {
            byte = *self.data.get(self.pos)?;
            self.pos += 1;
            self.zeros = 0;
        }
        self.zeros = if byte == 0 { self.zeros + 1 } else { 0 };
        Some(byte)
    }

    fn bit(&mut self) -> Option<u32> {
        if self.bits_left == 0 {
            self.current = self.next_byte()?;
            self.bits_left = 8;
        }
        self.bits_left -= 1;
        Some(u32::from(self.current >> self.bits_left) & 1)
    }

    /// `n` ≤ 32 bits as an unsigned number, u(n).
    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    /// Unsigned Exp-Golomb, ue(v) (§9.1); more than 31 leading zeros is malformed.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let value = (1u64 << zeros) - 1 + u64::from(self.bits(zeros)?);
        u32::try_from(value).ok()
    }

    /// Signed Exp-Golomb, se(v) (§9.1.1).
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
#[path = "resolution_tests.rs"]
mod tests;
