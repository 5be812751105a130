//! AV1 (AOM "RTP Payload Format for AV1" v1.0, §4.4–4.5): each payload starts with the
//! aggregation header `|Z|Y| W |N|-|-|-|`, then OBU elements. With W = 0 every element is
//! preceded by its LEB128 length; with W = 1, 2 or 3 there are exactly W elements and only
//! the last has no length (it runs to the end of the packet). Z=1: the first element
//! continues an OBU begun in the previous packet; Y=1: the last element continues in the
//! next one. An OBU element is an OBU whose `obu_size` field may be absent.
//!
//! The sample is the temporal unit's OBUs in the low-overhead format with
//! `obu_has_size_field` = 1 (AV1 ISOBMFF binding §2.4; AV1 spec §5.3): each element is
//! written raw (fragments concatenated), then rewritten in place when whole: the header's
//! has-size bit set and the LEB128 size inserted after the header (and extension), or, when
//! the element already has its size field, that field checked against the element's
//! length. Dropped: temporal delimiters (type 2, the sample delimits the temporal unit),
//! tile lists (8, large scale tile only) and padding (15).
//!
//! Key frame (AV1 ISOBMFF binding §2.4 sync sample): a sequence header OBU comes before the
//! first frame header of the temporal unit, and that frame header (type 3, or the header of
//! a frame OBU, type 6) has `show_existing_frame` = 0, `frame_type` = KEY_FRAME and
//! `show_frame` = 1 (AV1 spec §5.9.2; always so with `reduced_still_picture_header`). The
//! N bit (first packet of a coded video sequence) only marks a frame start. The last
//! sequence header (rewritten, with its size field) is [`CodecConfig::Av1`], its size from
//! `max_frame_width_minus_1` / `max_frame_height_minus_1` (AV1 spec §5.5.1).
//!
//! Refused ([`DropReason::Malformed`]): a bad LEB128 length, an element overrunning the
//! packet or empty, a W count that does not match, Z=1 continuing nothing, the forbidden bit,
//! an `obu_size` that disagrees with the element, a sequence header that does not parse;
//! Z=0 while an OBU is unfinished, or a frame ending with one ([`DropReason::Incomplete`]);
//! a reserved profile, a size over 16384 or a sequence header over
//! [`MAX_SEQUENCE_HEADER`] bytes ([`DropReason::Unsupported`]).

use super::bits::{read_leb128, write_leb128, BitReader};
use super::{dimension, Assemble, DropReason, Finished, FrameBuf};
use crate::record::CodecConfig;

const Z: u8 = 0x80;
const Y: u8 = 0x40;
const N: u8 = 0x08;

/// OBU header (AV1 spec §5.3.2): `|forbidden|type (4)|extension_flag|has_size_field|reserved|`.
const OBU_FORBIDDEN: u8 = 0x80;
const OBU_EXTENSION: u8 = 0x04;
const OBU_HAS_SIZE: u8 = 0x02;

/// OBU types (AV1 spec §6.2.2).
const SEQUENCE_HEADER: u8 = 1;
const TEMPORAL_DELIMITER: u8 = 2;
const FRAME_HEADER: u8 = 3;
const METADATA: u8 = 5;
const FRAME: u8 = 6;
const TILE_LIST: u8 = 8;
const PADDING: u8 = 15;

/// Largest sequence header OBU kept, in bytes. The largest possible one (32 operating
/// points with decoder models) is a few hundred bytes.
pub(super) const MAX_SEQUENCE_HEADER: usize = 1024;

/// What the assembler keeps of a sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sequence {
    /// The OBU, with its size field.
    obu: Vec<u8>,
    width: u16,
    height: u16,
    /// Frame headers then have no `show_existing_frame` / `frame_type` fields.
    reduced_still_picture_header: bool,
}

/// AV1 assembler.
#[derive(Debug, Default)]
pub(super) struct Av1 {
    /// The last sequence header seen. Outlives frames.
    sequence: Option<Sequence>,
    /// Offset in the sample of an OBU element that continues in the next packet (Y=1).
    open: Option<usize>,
    /// A sequence header came before any frame header in this temporal unit.
    sequence_first: bool,
    /// Whether the first frame header of the temporal unit is a shown key frame; `None`
    /// until one is seen.
    first_frame_key: Option<bool>,
}

impl Assemble for Av1 {
    fn starts_frame(&self, payload: &[u8]) -> bool {
        let Some((&aggregation, rest)) = payload.split_first() else {
            return false;
        };
        if aggregation & Z != 0 {
            return false;
        }
        if aggregation & N != 0 {
            return true;
        }
        let element = if (aggregation >> 4) & 0x03 == 1 {
            Some(rest)
        } else {
            read_leb128(rest).and_then(|(_, n)| rest.get(n..))
        };
        // What a temporal unit may begin with (AV1 spec §7.5): not a tile group, tile list
        // or redundant frame header.
        element.and_then(|e| e.first()).is_some_and(|&h| {
            matches!(
                (h >> 3) & 0x0f,
                SEQUENCE_HEADER | TEMPORAL_DELIMITER | FRAME_HEADER | METADATA | FRAME
            )
        })
    }

    fn push(&mut self, payload: &[u8], _first: bool, buf: &mut FrameBuf) -> Result<(), DropReason> {
        let (&aggregation, mut rest) = payload.split_first().ok_or(DropReason::Malformed)?;
        let continues = aggregation & Z != 0;
        match (continues, self.open.is_some()) {
            (true, false) => return Err(DropReason::Malformed),
            (false, true) => return Err(DropReason::Incomplete),
            _ => {}
        }
        let count = usize::from((aggregation >> 4) & 0x03);
        let mut index = 0usize;
        while !rest.is_empty() {
            index += 1;
            let element;
            if count != 0 && index == count {
                element = rest;
                rest = &[];
            } else {
                let (len, n) = read_leb128(rest).ok_or(DropReason::Malformed)?;
                let after = rest.get(n..).ok_or(DropReason::Malformed)?;
                element = after.get(..len).ok_or(DropReason::Malformed)?;
                rest = after.get(len..).ok_or(DropReason::Malformed)?;
            }
            if element.is_empty() {
                return Err(DropReason::Malformed);
            }
            let start = match self.open.take() {
                Some(start) if index == 1 => start,
                _ => buf.len(),
            };
            buf.extend(element)?;
            if rest.is_empty() && aggregation & Y != 0 {
                self.open = Some(start);
            } else {
                self.close(start, buf)?;
            }
        }
        if index == 0 || (count != 0 && index != count) {
            return Err(DropReason::Malformed);
        }
        Ok(())
    }

    fn finish(&mut self, _buf: &mut FrameBuf) -> Result<Finished, DropReason> {
        if self.open.is_some() {
            return Err(DropReason::Incomplete);
        }
        let keyframe = self.sequence_first && self.first_frame_key == Some(true);
        let config = self
            .sequence
            .as_ref()
            .filter(|_| keyframe)
            .map(|s| CodecConfig::Av1 {
                width: s.width,
                height: s.height,
                sequence_header: s.obu.clone(),
            });
        Ok(Finished { keyframe, config })
    }

    fn reset(&mut self) {
        self.open = None;
        self.sequence_first = false;
        self.first_frame_key = None;
    }
}

impl Av1 {
    /// The OBU element from offset `start` to the end of `buf` is whole: rewrite it with its
    /// size field, or remove it, and note what it means for the temporal unit.
    fn close(&mut self, start: usize, buf: &mut FrameBuf) -> Result<(), DropReason> {
        let element = buf.bytes().get(start..).ok_or(DropReason::Malformed)?;
        let &header = element.first().ok_or(DropReason::Malformed)?;
        if header & OBU_FORBIDDEN != 0 {
            return Err(DropReason::Malformed);
        }
        let obu_type = (header >> 3) & 0x0f;
        let header_len = if header & OBU_EXTENSION != 0 { 2 } else { 1 };
        let after_header = element.get(header_len..).ok_or(DropReason::Malformed)?;
        if matches!(obu_type, TEMPORAL_DELIMITER | TILE_LIST | PADDING) {
            buf.truncate(start);
            return Ok(());
        }
        let payload_start = if header & OBU_HAS_SIZE != 0 {
            let (size, n) = read_leb128(after_header).ok_or(DropReason::Malformed)?;
            if after_header.len().checked_sub(n) != Some(size) {
                return Err(DropReason::Malformed);
            }
            start + header_len + n // within the buffer, so no overflow
        } else {
            let (size, n) = write_leb128(after_header.len()).ok_or(DropReason::TooLarge)?;
            let size = size.get(..n).ok_or(DropReason::Malformed)?;
            buf.overwrite(start, &[header | OBU_HAS_SIZE])?;
            buf.insert(start + header_len, size)?;
            start + header_len + n
        };
        let obu = buf.bytes().get(start..).ok_or(DropReason::Malformed)?;
        let payload = buf
            .bytes()
            .get(payload_start..)
            .ok_or(DropReason::Malformed)?;
        match obu_type {
            SEQUENCE_HEADER => {
                if obu.len() > MAX_SEQUENCE_HEADER {
                    return Err(DropReason::Unsupported);
                }
                if self.sequence.as_ref().is_none_or(|s| s.obu != obu) {
                    let parsed = parse_sequence_header(payload)?;
                    self.sequence = Some(Sequence {
                        obu: obu.to_vec(),
                        ..parsed
                    });
                }
                if self.first_frame_key.is_none() {
                    self.sequence_first = true;
                }
            }
            FRAME_HEADER | FRAME if self.first_frame_key.is_none() => {
                let reduced = self
                    .sequence
                    .as_ref()
                    .is_some_and(|s| s.reduced_still_picture_header);
                self.first_frame_key = Some(shown_key_frame(payload, reduced)?);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether a frame header OBU's payload (AV1 spec §5.9.2 `uncompressed_header()`) starts a
/// shown key frame: `show_existing_frame` f(1) = 0, `frame_type` f(2) = KEY_FRAME (0),
/// `show_frame` f(1) = 1; with `reduced_still_picture_header` every frame is one.
fn shown_key_frame(payload: &[u8], reduced_still_picture_header: bool) -> Result<bool, DropReason> {
    if reduced_still_picture_header {
        return Ok(true);
    }
    let mut r = BitReader::new(payload);
    let mut read = || r.bits(1).ok_or(DropReason::Malformed);
    if read()? == 1 {
        return Ok(false); // show_existing_frame
    }
    let frame_type = (read()? << 1) | read()?;
    let show_frame = read()?;
    Ok(frame_type == 0 && show_frame == 1)
}

/// Parses a sequence header OBU's payload (AV1 spec §5.5.1) up to the maximum frame size;
/// `obu` is left empty for the caller.
///
/// # Errors
///
/// [`DropReason::Malformed`] when truncated; [`DropReason::Unsupported`] for a reserved
/// `seq_profile` (> 2) or a size over 16384 pixels.
fn parse_sequence_header(payload: &[u8]) -> Result<Sequence, DropReason> {
    let fields = read_sequence_header(payload).ok_or(DropReason::Malformed)?;
    if fields.seq_profile > 2 {
        return Err(DropReason::Unsupported);
    }
    Ok(Sequence {
        obu: Vec::new(),
        width: dimension(fields.width).ok_or(DropReason::Unsupported)?,
        height: dimension(fields.height).ok_or(DropReason::Unsupported)?,
        reduced_still_picture_header: fields.reduced_still_picture_header,
    })
}

/// The sequence header fields the recorder needs.
#[derive(Debug, PartialEq, Eq)]
struct SequenceFields {
    seq_profile: u32,
    reduced_still_picture_header: bool,
    /// `max_frame_width_minus_1 + 1`, 1..=65536.
    width: u32,
    /// `max_frame_height_minus_1 + 1`, 1..=65536.
    height: u32,
}

/// Reads `sequence_header_obu()` (AV1 spec §5.5.1–5.5.5) up to `max_frame_height_minus_1`;
/// `None` when the payload ends first.
fn read_sequence_header(payload: &[u8]) -> Option<SequenceFields> {
    let mut r = BitReader::new(payload);
    let seq_profile = r.bits(3)?;
    r.skip(1)?; // still_picture
    let reduced_still_picture_header = r.bit()?;
    if reduced_still_picture_header {
        r.skip(5)?; // seq_level_idx[0]
    } else {
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if r.bit()? {
            // timing_info_present_flag: timing_info() (§5.5.3)
            r.skip(32)?; // num_units_in_display_tick
            r.skip(32)?; // time_scale
            if r.bit()? {
                r.uvlc()?; // equal_picture_interval: num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.bit()?;
            if decoder_model_info_present {
                // decoder_model_info() (§5.5.4)
                buffer_delay_length = r.bits(5)? + 1;
                r.skip(32)?; // num_units_in_decoding_tick
                r.skip(5)?; // buffer_removal_time_length_minus_1
                r.skip(5)?; // frame_presentation_time_length_minus_1
            }
        }
        let initial_display_delay_present = r.bit()?;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.skip(12)?; // operating_point_idc[i]
            if r.bits(5)? > 7 {
                r.skip(1)?; // seq_tier[i], when seq_level_idx[i] > 7
            }
            if decoder_model_info_present && r.bit()? {
                // operating_parameters_info() (§5.5.5)
                r.skip(buffer_delay_length)?; // decoder_buffer_delay[i]
                r.skip(buffer_delay_length)?; // encoder_buffer_delay[i]
                r.skip(1)?; // low_delay_mode_flag[i]
            }
            if initial_display_delay_present && r.bit()? {
                r.skip(4)?; // initial_display_delay_minus_1[i]
            }
        }
    }
    let width_bits = r.bits(4)? + 1; // frame_width_bits_minus_1
    let height_bits = r.bits(4)? + 1; // frame_height_bits_minus_1
    let width = r.bits(width_bits)? + 1; // max_frame_width_minus_1, at most 16 bits
    let height = r.bits(height_bits)? + 1;
    Some(SequenceFields {
        seq_profile,
        reduced_still_picture_header,
        width,
        height,
    })
}

#[cfg(test)]
#[path = "av1_tests.rs"]
mod tests;
