//! VP9 uncompressed header (VP9 bitstream spec v0.6 §6.2): whether a frame is a key frame
//! and, for one, its profile, bit depth (`color_config()`, §6.2.2) and size
//! (`frame_size()`, §6.2.3), for the recorder's depacketizer (`vpcC`, the track size).
//!
//! Never panics, never allocates: truncated or garbage input yields `None`.

use super::bits::BitReader;

/// What a key frame's uncompressed header gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHeader {
    /// `Profile`, 0..=3, from `profile_low_bit` and `profile_high_bit`.
    pub profile: u8,
    /// `BitDepth`: 8 in profiles 0 and 1, else 10 or 12 (`ten_or_twelve_bit`).
    pub bit_depth: u8,
    /// `frame_width_minus_1 + 1`, in pixels, 1..=65536.
    pub width: u32,
    /// `frame_height_minus_1 + 1`, in pixels, 1..=65536.
    pub height: u32,
}

/// `frame_sync_code` (§6.2.1): 0x49, 0x83, 0x42.
const FRAME_SYNC_CODE: u32 = 0x49_83_42;
/// `CS_RGB` (§7.2.2), only allowed in profiles 1 and 3.
const CS_RGB: u32 = 7;

/// Reads the uncompressed header (VP9 bitstream spec §6.2) at the start of a frame (its
/// first byte is the header's first).
///
/// `Some(Some(header))` for a key frame, `Some(None)` for any other frame
/// (`show_existing_frame`, or `frame_type` = NON_KEY_FRAME); `None` when truncated before
/// `frame_height_minus_1` ends, or invalid: `frame_marker` not 2, a reserved bit set (profile
/// 3's `reserved_zero`, or in `color_config()`), a wrong `frame_sync_code`, `CS_RGB` in
/// profile 0 or 2.
#[must_use]
pub fn parse_key_header(frame: &[u8]) -> Option<Option<KeyHeader>> {
    let mut r = BitReader::new(frame);
    if r.bits(2)? != 2 {
        return None; // frame_marker
    }
    let low = u8::from(r.bit()?);
    let high = u8::from(r.bit()?);
    let profile = (high << 1) | low;
    if profile == 3 && r.bit()? {
        return None; // reserved_zero
    }
    if r.bit()? {
        return Some(None); // show_existing_frame
    }
    let non_key = r.bit()?; // frame_type: 0 = KEY_FRAME
    r.skip(2)?; // show_frame, error_resilient_mode
    if non_key {
        return Some(None);
    }
    if r.bits(24)? != FRAME_SYNC_CODE {
        return None;
    }
    // color_config() (§6.2.2)
    let bit_depth = if profile < 2 {
        8
    } else if r.bit()? {
        12 // ten_or_twelve_bit
    } else {
        10
    };
    let odd_profile = profile == 1 || profile == 3;
    let color_space = r.bits(3)?;
    if color_space != CS_RGB {
        r.skip(1)?; // color_range
        if odd_profile {
            r.skip(2)?; // subsampling_x, subsampling_y
            if r.bit()? {
                return None; // reserved_zero
            }
        }
    } else if odd_profile {
        if r.bit()? {
            return None; // reserved_zero
        }
    } else {
        return None; // CS_RGB needs profile 1 or 3
    }
    // frame_size() (§6.2.3)
    let width = r.bits(16)? + 1;
    let height = r.bits(16)? + 1;
    Some(Some(KeyHeader {
        profile,
        bit_depth,
        width,
        height,
    }))
}

#[cfg(test)]
#[path = "vp9_tests.rs"]
pub(crate) mod tests;
