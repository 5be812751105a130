//! H.264 (RFC 6184), packetization modes 0 and 1 (non-interleaved, §6.2–6.3): a payload
//! is a single NAL unit (types 1–23, §5.6), a STAP-A (type 24, §5.7.1: repeated 16-bit
//! size + NAL unit) or an FU-A fragment (type 28, §5.8: FU indicator, FU header
//! `|S|E|R|Type|`, fragment). The access unit's NAL units are written as an AVCC sample:
//! each prefixed by its 4-byte big-endian length (ISO/IEC 14496-15 §5.3.2). An FU-A NAL
//! unit is written in place and its length patched when its E fragment arrives.
//!
//! Kept: every NAL unit, SPS (7) and PPS (8) included. Dropped: access unit delimiters
//! (9, redundant in MP4, whose samples delimit access units) and filler data (12,
//! padding). The last SPS and PPS seen (any frame's) are remembered; an access unit with
//! an IDR slice (type 5) is a key frame, with [`CodecConfig::H264`] built from them (the
//! size by [`crate::codec::h264::parse_sps`]), or
//! [`DropReason::MissingConfig`] when either was never seen. One SPS and one PPS are kept:
//! streams switching between several parameter set ids are not supported.
//!
//! Refused: a NAL unit with the forbidden bit set (§5.3), types 0, 30, 31 and a nested
//! aggregation or fragment ([`DropReason::Malformed`]); STAP-B, MTAP16, MTAP24 and FU-B,
//! interleaved mode only ([`DropReason::Unsupported`]); an FU-A that continues nothing or
//! a start fragment that also ends ([`DropReason::Malformed`], §5.8); a fragmented NAL
//! unit left unfinished by the next packet or the frame's end ([`DropReason::Incomplete`]);
//! an SPS that does not parse ([`DropReason::Malformed`]); a parameter set over
//! [`MAX_PARAMETER_SET`] bytes ([`DropReason::Unsupported`]).

use super::{Assemble, DropReason, Finished, FrameBuf};
use crate::codec::h264;
use crate::codec::resolution::Resolution;
use crate::record::CodecConfig;

/// NAL unit header forbidden_zero_bit (ITU-T H.264 §7.3.1).
const FORBIDDEN: u8 = 0x80;
const TYPE_MASK: u8 = 0x1f;
const SLICE: u8 = 1;
const SLICE_PARTITION_A: u8 = 2;
const IDR: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;
const AUD: u8 = 9;
const FILLER: u8 = 12;
const STAP_A: u8 = 24;
const STAP_B: u8 = 25;
const MTAP16: u8 = 26;
const MTAP24: u8 = 27;
const FU_A: u8 = 28;
const FU_B: u8 = 29;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// Largest SPS or PPS kept, in bytes. Real ones are tens of bytes; a PPS with explicit
/// slice group maps (FMO, never used by WebRTC encoders) is the only large kind.
pub(super) const MAX_PARAMETER_SET: usize = 4096;

/// H.264 assembler.
#[derive(Debug, Default)]
pub(super) struct H264 {
    /// The last SPS seen, with the size it codes. Outlives frames.
    sps: Option<(Vec<u8>, Resolution)>,
    /// The last PPS seen. Outlives frames.
    pps: Option<Vec<u8>>,
    /// The access unit holds an IDR slice.
    idr: bool,
    /// A fragmented NAL unit is open.
    fragment: Option<Fragment>,
}

#[derive(Debug, Clone, Copy)]
enum Fragment {
    /// Being written; its 4-byte length prefix is at this offset of the sample.
    Keep(usize),
    /// Dropped (an access unit delimiter or filler data).
    Skip,
}

impl Assemble for H264 {
    fn starts_frame(&self, payload: &[u8]) -> bool {
        let Some(&header) = payload.first() else {
            return false;
        };
        match header & TYPE_MASK {
            STAP_A => {
                // The first aggregated NAL unit: size at 1..3, unit from 3.
                let Some(&[hi, lo]) = payload.get(1..3) else {
                    return false;
                };
                let size = usize::from(u16::from_be_bytes([hi, lo]));
                match payload.get(3..).and_then(|rest| rest.get(..size)) {
                    Some([nal_header, rest @ ..]) => {
                        begins_access_unit(nal_header & TYPE_MASK, rest.first())
                    }
                    _ => false,
                }
            }
            FU_A => match payload.get(1..) {
                Some([fu, rest @ ..]) => {
                    fu & FU_START != 0 && begins_access_unit(fu & TYPE_MASK, rest.first())
                }
                _ => false,
            },
            nal_type => begins_access_unit(nal_type, payload.get(1)),
        }
    }

    fn push(&mut self, payload: &[u8], _first: bool, buf: &mut FrameBuf) -> Result<(), DropReason> {
        let (&header, rest) = payload.split_first().ok_or(DropReason::Malformed)?;
        if header & FORBIDDEN != 0 {
            return Err(DropReason::Malformed);
        }
        let payload_type = header & TYPE_MASK;
        if payload_type != FU_A && self.fragment.is_some() {
            return Err(DropReason::Incomplete);
        }
        match payload_type {
            1..=23 => self.nal_unit(payload, buf),
            STAP_A => {
                if rest.is_empty() {
                    return Err(DropReason::Malformed);
                }
                let mut rest = rest;
                while let Some((size, tail)) = rest.split_first_chunk::<2>() {
                    let size = usize::from(u16::from_be_bytes(*size));
                    let nal = tail.get(..size).ok_or(DropReason::Malformed)?;
                    self.nal_unit(nal, buf)?;
                    rest = tail.get(size..).unwrap_or_default();
                }
                if rest.is_empty() {
                    Ok(())
                } else {
                    Err(DropReason::Malformed) // one stray byte
                }
            }
            FU_A => self.fragment(header, rest, buf),
            STAP_B | MTAP16 | MTAP24 | FU_B => Err(DropReason::Unsupported),
            _ => Err(DropReason::Malformed), // 0, 30, 31: undefined
        }
    }

    fn finish(&mut self, _buf: &mut FrameBuf) -> Result<Finished, DropReason> {
        if self.fragment.is_some() {
            return Err(DropReason::Incomplete);
        }
        let config = match (&self.sps, &self.pps) {
            (Some((sps, size)), Some(pps)) if self.idr => Some(CodecConfig::H264 {
                width: size.width,
                height: size.height,
                sps: sps.clone(),
                pps: pps.clone(),
            }),
            _ => None,
        };
        Ok(Finished {
            keyframe: self.idr,
            config,
        })
    }

    fn reset(&mut self) {
        self.idr = false;
        self.fragment = None;
    }
}

impl H264 {
    /// Writes one whole NAL unit (from a single NAL unit packet or a STAP-A).
    fn nal_unit(&mut self, nal: &[u8], buf: &mut FrameBuf) -> Result<(), DropReason> {
        let &header = nal.first().ok_or(DropReason::Malformed)?; // a size of 0
        let nal_type = header & TYPE_MASK;
        if header & FORBIDDEN != 0 || !(1..=23).contains(&nal_type) {
            return Err(DropReason::Malformed);
        }
        if nal_type == AUD || nal_type == FILLER {
            return Ok(());
        }
        let len = u32::try_from(nal.len()).map_err(|_| DropReason::TooLarge)?;
        buf.extend(&len.to_be_bytes())?;
        buf.extend(nal)?;
        self.complete(nal)
    }

    /// One FU-A packet (§5.8): `indicator` is its first byte, `rest` the FU header and the
    /// fragment.
    fn fragment(
        &mut self,
        indicator: u8,
        rest: &[u8],
        buf: &mut FrameBuf,
    ) -> Result<(), DropReason> {
        let (&fu, data) = rest.split_first().ok_or(DropReason::Malformed)?;
        let nal_type = fu & TYPE_MASK;
        if fu & FU_START != 0 {
            if self.fragment.is_some() {
                return Err(DropReason::Incomplete);
            }
            if fu & FU_END != 0 || !(1..=23).contains(&nal_type) {
                return Err(DropReason::Malformed);
            }
            if nal_type == AUD || nal_type == FILLER {
                self.fragment = Some(Fragment::Skip);
            } else {
                // The NAL unit header: F and NRI from the indicator, the type from the FU header.
                let nal_header = (indicator & 0xe0) | nal_type;
                self.fragment = Some(Fragment::Keep(buf.len()));
                buf.extend(&[0, 0, 0, 0, nal_header])?;
            }
        }
        let fragment = self.fragment.ok_or(DropReason::Malformed)?; // no start fragment
        if let Fragment::Keep(_) = fragment {
            buf.extend(data)?;
        }
        if fu & FU_END == 0 {
            return Ok(());
        }
        self.fragment = None;
        if let Fragment::Keep(at) = fragment {
            let nal_start = at.checked_add(4).ok_or(DropReason::Malformed)?;
            let len = buf
                .len()
                .checked_sub(nal_start)
                .ok_or(DropReason::Malformed)?;
            let len = u32::try_from(len).map_err(|_| DropReason::TooLarge)?;
            buf.overwrite(at, &len.to_be_bytes())?;
            let nal = buf.bytes().get(nal_start..).ok_or(DropReason::Malformed)?;
            self.complete(nal)?;
        }
        Ok(())
    }

    /// Notes what a complete NAL unit means for the access unit and the parameter sets.
    fn complete(&mut self, nal: &[u8]) -> Result<(), DropReason> {
        let nal_type = nal.first().map_or(0, |h| h & TYPE_MASK);
        match nal_type {
            IDR => self.idr = true,
            SPS => {
                if nal.len() > MAX_PARAMETER_SET {
                    return Err(DropReason::Unsupported);
                }
                if self
                    .sps
                    .as_ref()
                    .is_none_or(|(sps, _)| sps.as_slice() != nal)
                {
                    let sps = h264::parse_sps(nal).ok_or(DropReason::Malformed)?;
                    self.sps = Some((nal.to_vec(), sps.resolution));
                }
            }
            PPS => {
                if nal.len() > MAX_PARAMETER_SET {
                    return Err(DropReason::Unsupported);
                }
                if self.pps.as_deref() != Some(nal) {
                    self.pps = Some(nal.to_vec());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether a NAL unit of type `nal_type` whose payload starts with `first_byte` can only be
/// the first of an access unit's units that an RFC 6184 stream carries (ITU-T H.264
/// §7.4.1.2.3): SEI, SPS, PPS, access unit delimiter and types 13–18 come before the first
/// slice; a slice (types 1, 2, 5) begins the picture when `first_mb_in_slice` = 0, i.e.
/// when its slice header's first bit (a ue(v) of value 0 is the single bit 1) is set.
fn begins_access_unit(nal_type: u8, first_byte: Option<&u8>) -> bool {
    match nal_type {
        6..=9 | 13..=18 => true,
        SLICE | SLICE_PARTITION_A | IDR => first_byte.is_some_and(|b| b & 0x80 != 0),
        _ => false,
    }
}

#[cfg(test)]
#[path = "h264_tests.rs"]
mod tests;
