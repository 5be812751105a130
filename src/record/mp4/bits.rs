//! The few header fields a sample entry needs that [`CodecConfig`](crate::record::CodecConfig)
//! does not carry, read from the parameter sets it does carry:
//!
//! - H.264: profile, level and (for the high profiles) chroma format and bit depths from
//!   the SPS (ITU-T H.264 §7.3.2.1.1), for `avcC` (ISO/IEC 14496-15 §5.3.3.1);
//! - AV1: profile, level, tier and colour format from the sequence header OBU (AV1
//!   bitstream spec §5.5), for `av1C` (AV1-ISOBMFF §2.3.3);
//! - Opus: a packet's duration from its TOC byte (RFC 6716 §3.1), for the last sample.
//!
//! Every read is bounds-checked: truncated or garbage input yields `None`, never a panic.
//! Nothing here allocates except the SPS's RBSP copy (at most the SPS's own length).

/// Reads big-endian bit fields from a byte slice (H.264 §7.2, AV1 §4.10 `f(n)`).
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// `n` ≤ 32 bits as an unsigned number.
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..n.min(32) {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Some(value)
    }

    fn flag(&mut self) -> Option<bool> {
        self.bit()
    }

    /// Unsigned Exp-Golomb `ue(v)` (H.264 §9.1); `None` past 31 leading zeros.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// AV1 `uvlc()` (AV1 §4.10.3); the value is only skipped, so its size is what counts.
    fn skip_uvlc(&mut self) -> Option<()> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                // The spec's value is then 2^32 - 1 with no further bits.
                return Some(());
            }
        }
        self.bits(zeros).map(|_| ())
    }
}

/// The `avcC` fields read from an SPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AvcSps {
    /// `profile_idc` (H.264 §7.4.2.1.1): `AVCProfileIndication`.
    pub(super) profile_idc: u8,
    /// The byte of `constraint_set0..5_flag` and reserved bits: `profile_compatibility`.
    pub(super) constraint_flags: u8,
    /// `level_idc`: `AVCLevelIndication`.
    pub(super) level_idc: u8,
    /// `chroma_format_idc` (0–3); 1 (4:2:0) when the profile does not code it.
    pub(super) chroma_format_idc: u8,
    /// `bit_depth_luma_minus8` (0–6); 0 when not coded.
    pub(super) bit_depth_luma_minus8: u8,
    /// `bit_depth_chroma_minus8` (0–6); 0 when not coded.
    pub(super) bit_depth_chroma_minus8: u8,
}

/// The profiles whose SPS codes `chroma_format_idc` and the bit depths (H.264 §7.3.2.1.1).
const AVC_HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Reads an SPS NAL unit (with its one-byte NAL header, no start code or length prefix).
/// `None` when it is not an SPS (`nal_unit_type` 7) or is truncated or out of range.
pub(super) fn parse_avc_sps(nal: &[u8]) -> Option<AvcSps> {
    let (&header, body) = nal.split_first()?;
    if header & 0x80 != 0 || header & 0x1f != 7 {
        return None;
    }
    let rbsp = unescape_rbsp(body);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let _seq_parameter_set_id = r.ue()?;
    let mut sps = AvcSps {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc: 1,
        bit_depth_luma_minus8: 0,
        bit_depth_chroma_minus8: 0,
    };
    if AVC_HIGH_PROFILES.contains(&profile_idc) {
        let chroma = r.ue()?;
        if chroma > 3 {
            return None;
        }
        if chroma == 3 {
            let _separate_colour_plane_flag = r.flag()?;
        }
        let luma = r.ue()?;
        let chroma_depth = r.ue()?;
        if luma > 6 || chroma_depth > 6 {
            return None;
        }
        sps.chroma_format_idc = chroma as u8;
        sps.bit_depth_luma_minus8 = luma as u8;
        sps.bit_depth_chroma_minus8 = chroma_depth as u8;
    }
    Some(sps)
}

/// Removes emulation prevention bytes: `00 00 03` → `00 00` (H.264 §7.4.1).
fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The `av1C` fields read from a sequence header (AV1-ISOBMFF §2.3.3 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Av1SequenceFields {
    /// `seq_profile` (0–2 defined; 3 bits).
    pub(super) seq_profile: u8,
    /// `seq_level_idx[0]` (5 bits).
    pub(super) seq_level_idx_0: u8,
    /// `seq_tier[0]`.
    pub(super) seq_tier_0: bool,
    /// `high_bitdepth`.
    pub(super) high_bitdepth: bool,
    /// `twelve_bit`.
    pub(super) twelve_bit: bool,
    /// `mono_chrome`.
    pub(super) monochrome: bool,
    /// `subsampling_x`.
    pub(super) chroma_subsampling_x: bool,
    /// `subsampling_y`.
    pub(super) chroma_subsampling_y: bool,
    /// `chroma_sample_position` (2 bits).
    pub(super) chroma_sample_position: u8,
}

/// `OBU_SEQUENCE_HEADER` (AV1 §6.2.2).
const OBU_SEQUENCE_HEADER: u8 = 1;

/// Reads a sequence header OBU (its OBU header, an optional extension byte and an optional
/// `leb128` size, then `sequence_header_obu()`, AV1 §5.3 and §5.5). `None` when it is not a
/// sequence header OBU or is truncated.
pub(super) fn parse_av1_sequence_header(obu: &[u8]) -> Option<Av1SequenceFields> {
    let (&header, mut rest) = obu.split_first()?;
    if header & 0x80 != 0 || (header >> 3) & 0x0f != OBU_SEQUENCE_HEADER {
        return None;
    }
    if header & 0x04 != 0 {
        rest = rest.get(1..)?; // obu_extension_header
    }
    if header & 0x02 != 0 {
        let (size, len) = read_leb128(rest)?;
        let size = usize::try_from(size).ok()?;
        rest = rest.get(len..)?.get(..size)?;
    }
    sequence_header_obu(&mut BitReader::new(rest))
}

/// `leb128()` (AV1 §4.10.5): the value and the bytes it took; at most 8 bytes.
fn read_leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// `sequence_header_obu()` up to the end of `color_config()` (AV1 §5.5.1, §5.5.2).
fn sequence_header_obu(r: &mut BitReader<'_>) -> Option<Av1SequenceFields> {
    let seq_profile = r.bits(3)? as u8;
    if seq_profile > 2 {
        return None; // reserved profiles
    }
    let _still_picture = r.flag()?;
    let reduced = r.flag()?;
    let (seq_level_idx_0, seq_tier_0);
    if reduced {
        seq_level_idx_0 = r.bits(5)? as u8;
        seq_tier_0 = false;
    } else {
        let timing_info_present = r.flag()?;
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if timing_info_present {
            r.bits(32)?; // num_units_in_display_tick
            r.bits(32)?; // time_scale
            if r.flag()? {
                r.skip_uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.flag()?;
            if decoder_model_info_present {
                buffer_delay_length = r.bits(5)? + 1;
                r.bits(32)?; // num_units_in_decoding_tick
                r.bits(5)?; // buffer_removal_time_length_minus_1
                r.bits(5)?; // frame_presentation_time_length_minus_1
            }
        }
        let initial_display_delay_present = r.flag()?;
        let operating_points = r.bits(5)? + 1;
        let mut first = None;
        for _ in 0..operating_points {
            r.bits(12)?; // operating_point_idc
            let level = r.bits(5)? as u8;
            let tier = level > 7 && r.flag()?;
            if decoder_model_info_present && r.flag()? {
                r.bits(buffer_delay_length)?; // decoder_buffer_delay
                r.bits(buffer_delay_length)?; // encoder_buffer_delay
                r.flag()?; // low_delay_mode_flag
            }
            if initial_display_delay_present && r.flag()? {
                r.bits(4)?; // initial_display_delay_minus_1
            }
            first.get_or_insert((level, tier));
        }
        (seq_level_idx_0, seq_tier_0) = first?;
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    r.bits(width_bits)?; // max_frame_width_minus_1
    r.bits(height_bits)?; // max_frame_height_minus_1
    if !reduced && r.flag()? {
        r.bits(4)?; // delta_frame_id_length_minus_2
        r.bits(3)?; // additional_frame_id_length_minus_1
    }
    r.bits(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        r.bits(4)?; // interintra_compound, masked_compound, warped_motion, dual_filter
        let enable_order_hint = r.flag()?;
        if enable_order_hint {
            r.bits(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let force_screen_content_tools = if r.flag()? { 2 } else { r.bits(1)? };
        if force_screen_content_tools > 0 && !r.flag()? {
            r.bits(1)?; // seq_force_integer_mv
        }
        if enable_order_hint {
            r.bits(3)?; // order_hint_bits_minus_1
        }
    }
    r.bits(3)?; // enable_superres, enable_cdef, enable_restoration
    color_config(r, seq_profile, seq_level_idx_0, seq_tier_0)
}

/// `color_config()` (AV1 §5.5.2).
fn color_config(
    r: &mut BitReader<'_>,
    seq_profile: u8,
    seq_level_idx_0: u8,
    seq_tier_0: bool,
) -> Option<Av1SequenceFields> {
    let high_bitdepth = r.flag()?;
    let twelve_bit = seq_profile == 2 && high_bitdepth && r.flag()?;
    let monochrome = seq_profile != 1 && r.flag()?;
    let (mut cp, mut tc, mut mc) = (2, 2, 2); // CP/TC/MC_UNSPECIFIED
    if r.flag()? {
        cp = r.bits(8)?;
        tc = r.bits(8)?;
        mc = r.bits(8)?;
    }
    let mut fields = Av1SequenceFields {
        seq_profile,
        seq_level_idx_0,
        seq_tier_0,
        high_bitdepth,
        twelve_bit,
        monochrome,
        chroma_subsampling_x: true,
        chroma_subsampling_y: true,
        chroma_sample_position: 0, // CSP_UNKNOWN
    };
    if monochrome {
        r.flag()?; // color_range
        return Some(fields);
    }
    // CP_BT_709, TC_SRGB, MC_IDENTITY: 4:4:4 with no further bits.
    if cp == 1 && tc == 13 && mc == 0 {
        fields.chroma_subsampling_x = false;
        fields.chroma_subsampling_y = false;
        return Some(fields);
    }
    r.flag()?; // color_range
    let (x, y) = match seq_profile {
        0 => (true, true),
        1 => (false, false),
        _ if twelve_bit => {
            let x = r.flag()?;
            (x, x && r.flag()?)
        }
        _ => (true, false),
    };
    fields.chroma_subsampling_x = x;
    fields.chroma_subsampling_y = y;
    if x && y {
        fields.chroma_sample_position = r.bits(2)? as u8;
    }
    Some(fields)
}

/// The duration of an Opus packet in 48 kHz samples, from its TOC byte and, for code 3,
/// its frame count byte (RFC 6716 §3.1, §3.2.5). `None` when truncated, when it holds no
/// frame, or when it would exceed the 120 ms a packet may hold.
pub(super) fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes in 48 kHz samples: SILK 10/20/40/60 ms, hybrid 10/20 ms,
    // CELT 2.5/5/10/20 ms (RFC 6716 §3.1, Table 2).
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1)? & 0x3f),
    };
    let total = frame * frames;
    (total > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
#[path = "bits_tests.rs"]
pub(super) mod tests;
