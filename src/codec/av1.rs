//! AV1 bitstream syntax (AV1 spec v1.0.0 with errata): the OBU header (§5.3.2–5.3.3), the
//! sequence header OBU (§5.5) and the first bits of a frame header (§5.9.2), for the
//! recorder's depacketizer (frame size, key frames) and its MP4 writer (`av1C`,
//! AV1-ISOBMFF §2.3.3: profile, level, tier, bit depth, colour format).
//!
//! Never panics, never allocates: truncated or garbage input yields `None`.

use super::bits::{read_leb128, BitReader};

/// OBU types (AV1 spec §6.2.2, `obu_type`).
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// `OBU_TEMPORAL_DELIMITER`.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// `OBU_FRAME_HEADER`.
pub const OBU_FRAME_HEADER: u8 = 3;
/// `OBU_TILE_GROUP`.
pub const OBU_TILE_GROUP: u8 = 4;
/// `OBU_METADATA`.
pub const OBU_METADATA: u8 = 5;
/// `OBU_FRAME` (a frame header and a tile group).
pub const OBU_FRAME: u8 = 6;
/// `OBU_REDUNDANT_FRAME_HEADER`.
pub const OBU_REDUNDANT_FRAME_HEADER: u8 = 7;
/// `OBU_TILE_LIST` (large scale tile decoding only).
pub const OBU_TILE_LIST: u8 = 8;
/// `OBU_PADDING`.
pub const OBU_PADDING: u8 = 15;

/// `obu_has_size_field` in the OBU header byte `|forbidden|type (4)|extension|has_size|reserved|`.
pub const OBU_HAS_SIZE_FIELD: u8 = 0x02;
const OBU_FORBIDDEN: u8 = 0x80;
const OBU_EXTENSION: u8 = 0x04;

/// `obu_type` of an OBU header byte (bits 6..3), whatever its other bits.
#[must_use]
pub fn obu_type(header_byte: u8) -> u8 {
    (header_byte >> 3) & 0x0f
}

/// An OBU header (AV1 spec §5.3.2): one byte, and the extension byte (§5.3.3) when
/// `obu_extension_flag` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObuHeader {
    /// `obu_type`, 0..=15.
    pub obu_type: u8,
    /// `obu_extension_flag`: the extension byte (temporal and spatial id) follows.
    pub has_extension: bool,
    /// `obu_has_size_field`: a `leb128()` `obu_size` follows the header.
    pub has_size_field: bool,
}

impl ObuHeader {
    /// Parses the header at the start of `obu`. `None` when `obu` is empty, the forbidden
    /// bit is set, or the extension byte is missing.
    #[must_use]
    pub fn parse(obu: &[u8]) -> Option<Self> {
        let &byte = obu.first()?;
        if byte & OBU_FORBIDDEN != 0 {
            return None;
        }
        let header = Self {
            obu_type: obu_type(byte),
            has_extension: byte & OBU_EXTENSION != 0,
            has_size_field: byte & OBU_HAS_SIZE_FIELD != 0,
        };
        obu.get(header.header_len() - 1)?;
        Some(header)
    }

    /// Bytes of header: 1, or 2 with the extension byte.
    #[must_use]
    pub fn header_len(self) -> usize {
        if self.has_extension {
            2
        } else {
            1
        }
    }
}

/// The fields of a sequence header OBU (AV1 spec §5.5.1, names as there) up to
/// `color_config()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceHeader {
    /// `seq_profile`, 0..=7; 0 (Main), 1 (High), 2 (Professional) are defined, the rest
    /// reserved.
    pub seq_profile: u8,
    /// `still_picture`.
    pub still_picture: bool,
    /// `reduced_still_picture_header`: frame headers then have no `show_existing_frame` /
    /// `frame_type` fields.
    pub reduced_still_picture_header: bool,
    /// `seq_level_idx[0]`, 0..=31 (the first operating point's level).
    pub seq_level_idx_0: u8,
    /// `seq_tier[0]` (only coded when `seq_level_idx[0]` > 7, else false).
    pub seq_tier_0: bool,
    /// `max_frame_width_minus_1 + 1`, in pixels, 1..=65536.
    pub max_frame_width: u32,
    /// `max_frame_height_minus_1 + 1`, in pixels, 1..=65536.
    pub max_frame_height: u32,
    /// `color_config()` (§5.5.2); `None` when the payload ends before it is complete, or
    /// the profile is reserved (its colour syntax is undefined).
    pub color: Option<ColorConfig>,
}

/// The fields of `color_config()` (AV1 spec §5.5.2) up to `chroma_sample_position`
/// (`separate_uv_delta_q` and `film_grain_params_present` are not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorConfig {
    /// `high_bitdepth`.
    pub high_bitdepth: bool,
    /// `twelve_bit` (only coded in profile 2 with `high_bitdepth`, else false).
    pub twelve_bit: bool,
    /// `BitDepth`: 8, 10 or 12.
    pub bit_depth: u8,
    /// `mono_chrome` (never in profile 1).
    pub mono_chrome: bool,
    /// `color_primaries` (ISO/IEC 23091-2); 2 (unspecified) when not coded.
    pub color_primaries: u8,
    /// `transfer_characteristics`; 2 (unspecified) when not coded.
    pub transfer_characteristics: u8,
    /// `matrix_coefficients`; 2 (unspecified) when not coded.
    pub matrix_coefficients: u8,
    /// `color_range`: full range (true for sRGB, where it is not coded).
    pub color_range: bool,
    /// `subsampling_x`.
    pub subsampling_x: bool,
    /// `subsampling_y`.
    pub subsampling_y: bool,
    /// `chroma_sample_position`, 0..=3 (only coded for 4:2:0, else 0, `CSP_UNKNOWN`).
    pub chroma_sample_position: u8,
}

/// Parses a whole sequence header OBU: its OBU header (type 1), the extension byte if
/// flagged, the `leb128()` `obu_size` if flagged (the payload is then that long; bytes
/// after it are ignored), then the payload as [`parse_sequence_header`].
///
/// `None` when it is not a sequence header OBU, or is truncated before the maximum frame
/// size.
#[must_use]
pub fn parse_sequence_header_obu(obu: &[u8]) -> Option<SequenceHeader> {
    let header = ObuHeader::parse(obu)?;
    if header.obu_type != OBU_SEQUENCE_HEADER {
        return None;
    }
    let mut payload = obu.get(header.header_len()..)?;
    if header.has_size_field {
        let (size, n) = read_leb128(payload)?;
        payload = payload.get(n..)?.get(..size)?;
    }
    parse_sequence_header(payload)
}

/// Parses `sequence_header_obu()` (AV1 spec §5.5.1–5.5.5), the payload of a sequence
/// header OBU (after its OBU header and size).
///
/// `None` when the payload ends before `max_frame_height_minus_1`; a payload that ends
/// later (or a reserved `seq_profile`) has [`SequenceHeader::color`] `None`.
#[must_use]
pub fn parse_sequence_header(payload: &[u8]) -> Option<SequenceHeader> {
    let mut r = BitReader::new(payload);
    let seq_profile = r.bits_u8(3)?;
    let still_picture = r.bit()?;
    let reduced_still_picture_header = r.bit()?;
    let (seq_level_idx_0, seq_tier_0) = if reduced_still_picture_header {
        (r.bits_u8(5)?, false)
    } else {
        operating_points(&mut r)?
    };
    let width_bits = r.bits(4)? + 1; // frame_width_bits_minus_1
    let height_bits = r.bits(4)? + 1; // frame_height_bits_minus_1
    let max_frame_width = r.bits(width_bits)? + 1; // at most 16 bits
    let max_frame_height = r.bits(height_bits)? + 1;
    let color = (seq_profile <= 2)
        .then(|| tools_and_color(&mut r, seq_profile, reduced_still_picture_header))
        .flatten();
    Some(SequenceHeader {
        seq_profile,
        still_picture,
        reduced_still_picture_header,
        seq_level_idx_0,
        seq_tier_0,
        max_frame_width,
        max_frame_height,
        color,
    })
}

/// From `timing_info_present_flag` to the end of the operating points loop (§5.5.1,
/// timing_info() §5.5.3, decoder_model_info() §5.5.4, operating_parameters_info() §5.5.5):
/// the first operating point's `(seq_level_idx, seq_tier)`.
fn operating_points(r: &mut BitReader<'_>) -> Option<(u8, bool)> {
    let mut decoder_model_info_present = false;
    let mut buffer_delay_length = 0;
    if r.bit()? {
        // timing_info_present_flag: timing_info()
        r.skip(32)?; // num_units_in_display_tick
        r.skip(32)?; // time_scale
        if r.bit()? {
            r.uvlc()?; // equal_picture_interval: num_ticks_per_picture_minus_1
        }
        decoder_model_info_present = r.bit()?;
        if decoder_model_info_present {
            buffer_delay_length = r.bits(5)? + 1;
            r.skip(32)?; // num_units_in_decoding_tick
            r.skip(5)?; // buffer_removal_time_length_minus_1
            r.skip(5)?; // frame_presentation_time_length_minus_1
        }
    }
    let initial_display_delay_present = r.bit()?;
    let operating_points = r.bits(5)? + 1;
    let mut first = None;
    for _ in 0..operating_points {
        r.skip(12)?; // operating_point_idc[i]
        let level = r.bits_u8(5)?;
        let tier = level > 7 && r.bit()?;
        if decoder_model_info_present && r.bit()? {
            r.skip(buffer_delay_length)?; // decoder_buffer_delay[i]
            r.skip(buffer_delay_length)?; // encoder_buffer_delay[i]
            r.skip(1)?; // low_delay_mode_flag[i]
        }
        if initial_display_delay_present && r.bit()? {
            r.skip(4)?; // initial_display_delay_minus_1[i]
        }
        first.get_or_insert((level, tier));
    }
    first
}

/// From `frame_id_numbers_present_flag` to the end of `color_config()` (§5.5.1, §5.5.2),
/// for a defined `seq_profile` (0..=2).
fn tools_and_color(r: &mut BitReader<'_>, seq_profile: u8, reduced: bool) -> Option<ColorConfig> {
    if !reduced && r.bit()? {
        r.skip(4)?; // delta_frame_id_length_minus_2
        r.skip(3)?; // additional_frame_id_length_minus_1
    }
    r.skip(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        r.skip(4)?; // interintra_compound, masked_compound, warped_motion, dual_filter
        let enable_order_hint = r.bit()?;
        if enable_order_hint {
            r.skip(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        // seq_choose_screen_content_tools, else seq_force_screen_content_tools
        let force_screen_content_tools = if r.bit()? { 2 } else { r.bits(1)? };
        if force_screen_content_tools > 0 && !r.bit()? {
            r.skip(1)?; // seq_force_integer_mv, unless seq_choose_integer_mv
        }
        if enable_order_hint {
            r.skip(3)?; // order_hint_bits_minus_1
        }
    }
    r.skip(3)?; // enable_superres, enable_cdef, enable_restoration
    color_config(r, seq_profile)
}

/// `color_config()` (§5.5.2) up to `chroma_sample_position`.
fn color_config(r: &mut BitReader<'_>, seq_profile: u8) -> Option<ColorConfig> {
    let high_bitdepth = r.bit()?;
    let twelve_bit = seq_profile == 2 && high_bitdepth && r.bit()?;
    let bit_depth = match (high_bitdepth, twelve_bit) {
        (_, true) => 12,
        (true, false) => 10,
        (false, false) => 8,
    };
    let mono_chrome = seq_profile != 1 && r.bit()?;
    let mut c = ColorConfig {
        high_bitdepth,
        twelve_bit,
        bit_depth,
        mono_chrome,
        color_primaries: 2, // CP_UNSPECIFIED
        transfer_characteristics: 2,
        matrix_coefficients: 2,
        color_range: false,
        subsampling_x: true,
        subsampling_y: true,
        chroma_sample_position: 0, // CSP_UNKNOWN
    };
    if r.bit()? {
        // color_description_present_flag
        c.color_primaries = r.bits_u8(8)?;
        c.transfer_characteristics = r.bits_u8(8)?;
        c.matrix_coefficients = r.bits_u8(8)?;
    }
    if mono_chrome {
        c.color_range = r.bit()?;
        return Some(c);
    }
    // CP_BT_709, TC_SRGB, MC_IDENTITY: 4:4:4, full range, nothing coded.
    if (
        c.color_primaries,
        c.transfer_characteristics,
        c.matrix_coefficients,
    ) == (1, 13, 0)
    {
        c.color_range = true;
        c.subsampling_x = false;
        c.subsampling_y = false;
        return Some(c);
    }
    c.color_range = r.bit()?;
    (c.subsampling_x, c.subsampling_y) = match seq_profile {
        0 => (true, true),
        1 => (false, false),
        _ if twelve_bit => {
            let x = r.bit()?;
            (x, x && r.bit()?)
        }
        _ => (true, false),
    };
    if c.subsampling_x && c.subsampling_y {
        c.chroma_sample_position = r.bits_u8(2)?;
    }
    Some(c)
}

/// Whether a frame header OBU's payload (or a frame OBU's, which starts with the frame
/// header; AV1 spec §5.9.2 `uncompressed_header()`) starts a shown key frame:
/// `show_existing_frame` f(1) = 0, `frame_type` f(2) = KEY_FRAME (0), `show_frame` f(1) =
/// 1. With `reduced_still_picture_header` (from the sequence header) every frame is one.
///
/// `None` when fewer than the bits needed are present.
#[must_use]
pub fn is_shown_key_frame(frame_header: &[u8], reduced_still_picture_header: bool) -> Option<bool> {
    if reduced_still_picture_header {
        return Some(true);
    }
    let mut r = BitReader::new(frame_header);
    if r.bit()? {
        return Some(false); // show_existing_frame
    }
    let frame_type = r.bits(2)?;
    let show_frame = r.bit()?;
    Some(frame_type == 0 && show_frame)
}

#[cfg(test)]
#[path = "av1_tests.rs"]
pub(crate) mod tests;
