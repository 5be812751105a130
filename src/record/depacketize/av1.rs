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
//! `max_frame_width_minus_1` / `max_frame_height_minus_1` (AV1 spec §5.5.1). The OBU header,
//! the sequence header and the frame header's key frame bits are parsed by
//! [`crate::codec::av1`]; only the fields up to the maximum frame size are required here
//! (the MP4 writer needs the colour format too, and checks it).
//!
//! Refused ([`DropReason::Malformed`]): a bad LEB128 length, an element overrunning the
//! packet or empty, a W count that does not match, Z=1 continuing nothing, the forbidden bit,
//! an `obu_size` that disagrees with the element, a sequence header that does not parse;
//! Z=0 while an OBU is unfinished, or a frame ending with one ([`DropReason::Incomplete`]);
//! a reserved profile, a size over 16384 or a sequence header over
//! [`MAX_SEQUENCE_HEADER`] bytes ([`DropReason::Unsupported`]).

use super::{dimension, Assemble, DropReason, Finished, FrameBuf};
use crate::codec::av1::{
    self, ObuHeader, OBU_FRAME, OBU_FRAME_HEADER, OBU_HAS_SIZE_FIELD, OBU_METADATA, OBU_PADDING,
    OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER, OBU_TILE_LIST,
};
use crate::codec::bits::{read_leb128, write_leb128};
use crate::record::CodecConfig;

const Z: u8 = 0x80;
const Y: u8 = 0x40;
const N: u8 = 0x08;

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
                av1::obu_type(h),
                OBU_SEQUENCE_HEADER
                    | OBU_TEMPORAL_DELIMITER
                    | OBU_FRAME_HEADER
                    | OBU_METADATA
                    | OBU_FRAME
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
        let obu_header = ObuHeader::parse(element).ok_or(DropReason::Malformed)?;
        let header_len = obu_header.header_len();
        let after_header = element.get(header_len..).ok_or(DropReason::Malformed)?;
        if matches!(
            obu_header.obu_type,
            OBU_TEMPORAL_DELIMITER | OBU_TILE_LIST | OBU_PADDING
        ) {
            buf.truncate(start);
            return Ok(());
        }
        let payload_start = if obu_header.has_size_field {
            let (size, n) = read_leb128(after_header).ok_or(DropReason::Malformed)?;
            if after_header.len().checked_sub(n) != Some(size) {
                return Err(DropReason::Malformed);
            }
            start + header_len + n // within the buffer, so no overflow
        } else {
            let (size, n) = write_leb128(after_header.len()).ok_or(DropReason::TooLarge)?;
            let size = size.get(..n).ok_or(DropReason::Malformed)?;
            buf.overwrite(start, &[header | OBU_HAS_SIZE_FIELD])?;
            buf.insert(start + header_len, size)?;
            start + header_len + n
        };
        let obu = buf.bytes().get(start..).ok_or(DropReason::Malformed)?;
        let payload = buf
            .bytes()
            .get(payload_start..)
            .ok_or(DropReason::Malformed)?;
        match obu_header.obu_type {
            OBU_SEQUENCE_HEADER => {
                if obu.len() > MAX_SEQUENCE_HEADER {
                    return Err(DropReason::Unsupported);
                }
                if self.sequence.as_ref().is_none_or(|s| s.obu != obu) {
                    let fields = parse_sequence_header(payload)?;
                    self.sequence = Some(Sequence {
                        obu: obu.to_vec(),
                        ..fields
                    });
                }
                if self.first_frame_key.is_none() {
                    self.sequence_first = true;
                }
            }
            OBU_FRAME_HEADER | OBU_FRAME if self.first_frame_key.is_none() => {
                let reduced = self
                    .sequence
                    .as_ref()
                    .is_some_and(|s| s.reduced_still_picture_header);
                let key = av1::is_shown_key_frame(payload, reduced).ok_or(DropReason::Malformed)?;
                self.first_frame_key = Some(key);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Parses a sequence header OBU's payload (AV1 spec §5.5.1) up to the maximum frame size;
/// `obu` is left empty for the caller.
///
/// # Errors
///
/// [`DropReason::Malformed`] when truncated before the maximum frame size;
/// [`DropReason::Unsupported`] for a reserved `seq_profile` (> 2) or a size over 16384
/// pixels.
fn parse_sequence_header(payload: &[u8]) -> Result<Sequence, DropReason> {
    let fields = av1::parse_sequence_header(payload).ok_or(DropReason::Malformed)?;
    if fields.seq_profile > 2 {
        return Err(DropReason::Unsupported);
    }
    Ok(Sequence {
        obu: Vec::new(),
        width: dimension(fields.max_frame_width).ok_or(DropReason::Unsupported)?,
        height: dimension(fields.max_frame_height).ok_or(DropReason::Unsupported)?,
        reduced_still_picture_header: fields.reduced_still_picture_header,
    })
}

#[cfg(test)]
#[path = "av1_tests.rs"]
mod tests;
