//! H.264 sequence parameter set (ITU-T H.264 §7.3.2.1.1): the fields a forwarder (frame
//! size, [`super::resolution`]) and a recorder (`avcC`, ISO/IEC 14496-15 §5.3.3.1: profile,
//! constraint flags, level, chroma format, bit depths) read, in one pass over the escaped
//! bytes ([`BitReader::rbsp`] drops emulation prevention bytes, §7.4.1).
//!
//! Read up to the frame cropping fields; `vui_parameters()` and anything after are neither
//! needed nor required. Never panics, never allocates.

use super::bits::BitReader;
use super::resolution::Resolution;

/// `nal_unit_type` of a sequence parameter set (H.264 Table 7-1).
pub const NAL_SPS: u8 = 7;

/// The fields of an SPS (names as H.264 §7.4.2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sps {
    /// `profile_idc` (66 baseline, 77 main, 100 high, …): `avcC` `AVCProfileIndication`.
    pub profile_idc: u8,
    /// The byte after `profile_idc`: `constraint_set0_flag`..`constraint_set5_flag` and
    /// `reserved_zero_2bits`, MSB first: `avcC` `profile_compatibility`.
    pub constraint_flags: u8,
    /// `level_idc` (10 × the level number, e.g. 31 for 3.1): `avcC` `AVCLevelIndication`.
    pub level_idc: u8,
    /// `seq_parameter_set_id`, 0..=31.
    pub seq_parameter_set_id: u8,
    /// `chroma_format_idc`, 0..=3 (monochrome, 4:2:0, 4:2:2, 4:4:4); 1 when the profile
    /// does not code it.
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag` (only ever set with `chroma_format_idc` 3).
    pub separate_colour_plane: bool,
    /// `bit_depth_luma_minus8`, 0..=6; 0 when not coded.
    pub bit_depth_luma_minus8: u8,
    /// `bit_depth_chroma_minus8`, 0..=6; 0 when not coded.
    pub bit_depth_chroma_minus8: u8,
    /// The displayed (cropped, §7.4.2.1.1) frame size in pixels, each side 1..=16384.
    pub resolution: Resolution,
}

/// `profile_idc` values whose SPS carries the chroma format, bit depth and scaling matrix
/// fields (§7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses an SPS NAL unit: the 1-byte NAL unit header (forbidden bit 0, type 7), then the
/// escaped RBSP; no start code or length prefix.
///
/// `None` when the NAL unit is not an SPS, is truncated before the cropping fields, holds
/// an out-of-range syntax element (`seq_parameter_set_id` over 31, `chroma_format_idc` over
/// 3, a bit depth over 14, `log2_max_frame_num_minus4` or
/// `log2_max_pic_order_cnt_lsb_minus4` over 12, `pic_order_cnt_type` over 2, more than 255
/// reference frames in a POC cycle, a scaling list delta outside −128..=127, a `ue(v)` over
/// 2³² − 2), or codes a side of 0 or over 16384 pixels.
#[must_use]
pub fn parse_sps(nal: &[u8]) -> Option<Sps> {
    let (&header, rbsp) = nal.split_first()?;
    if header & 0x80 != 0 || header & 0x1f != NAL_SPS {
        return None;
    }
    parse_seq_parameter_set_data(rbsp)
}

/// Parses `seq_parameter_set_data()` (§7.3.2.1.1) from the escaped bytes that follow the
/// NAL unit header (as an FU-A start fragment carries them, RFC 6184 §5.8). `None` as
/// [`parse_sps`].
#[must_use]
pub fn parse_seq_parameter_set_data(escaped: &[u8]) -> Option<Sps> {
    let mut r = BitReader::rbsp(escaped);
    let profile_idc = r.bits_u8(8)?;
    let constraint_flags = r.bits_u8(8)?;
    let level_idc = r.bits_u8(8)?;
    let seq_parameter_set_id = u8::try_from(r.ue()?).ok().filter(|&id| id <= 31)?;
    let mut sps = Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        seq_parameter_set_id,
        chroma_format_idc: 1,
        separate_colour_plane: false,
        bit_depth_luma_minus8: 0,
        bit_depth_chroma_minus8: 0,
        resolution: Resolution {
            width: 0,
            height: 0,
        },
    };
    if HIGH_PROFILES.contains(&profile_idc) {
        sps.chroma_format_idc = u8::try_from(r.ue()?).ok().filter(|&c| c <= 3)?;
        if sps.chroma_format_idc == 3 {
            sps.separate_colour_plane = r.bit()?;
        }
        let depth = |v: u32| u8::try_from(v).ok().filter(|&d| d <= 6);
        sps.bit_depth_luma_minus8 = depth(r.ue()?)?;
        sps.bit_depth_chroma_minus8 = depth(r.ue()?)?;
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            // seq_scaling_matrix_present_flag: six 4x4 lists, then two or six 8x8 lists.
            let lists = if sps.chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
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
    sps.resolution = cropped_size(&mut r, &sps)?;
    Some(sps)
}

/// Reads `pic_width_in_mbs_minus1` through the frame cropping offsets and returns the
/// cropped size (§7.4.2.1.1, Table 6-1): ChromaArrayType 0 (monochrome or separate planes)
/// crops in luma samples; 4:2:0 in 2×2, 4:2:2 in 2×1, 4:4:4 in 1×1. Fields
/// (`frame_mbs_only_flag` 0) double the vertical unit and the map unit height.
fn cropped_size(r: &mut BitReader<'_>, sps: &Sps) -> Option<Resolution> {
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let mut crop = [0u64; 4]; // left, right, top, bottom
    if r.bit()? {
        for offset in &mut crop {
            *offset = u64::from(r.ue()?);
        }
    }
    let chroma_array_type = if sps.separate_colour_plane {
        0
    } else {
        sps.chroma_format_idc
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
/// scale to 0 ends the explicit list early. `None` when truncated or a delta is outside
/// −128..=127.
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

#[cfg(test)]
#[path = "h264_tests.rs"]
pub(crate) mod tests;
