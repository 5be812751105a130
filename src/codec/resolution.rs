//! Frame size (width × height in pixels) from the first RTP packet of a video keyframe.
//!
//! An SFU uses this to cap what a viewer receives by resolution. Both entry points take an
//! RTP *payload* (the RTP header already removed), never allocate, never panic, and answer
//! `None` when the packet does not carry a frame size or is malformed. The SPS itself is
//! parsed by [`super::h264`].

use super::h264;

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
    pub(super) fn checked(width: u64, height: u64) -> Option<Self> {
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
            h264::parse_seq_parameter_set_data(payload.get(2..)?).map(|sps| sps.resolution)
        }
        _ => None,
    }
}

/// H.264 sequence parameter set, ITU-T H.264 §7.3.2.1.1, given as a whole NAL unit: the
/// 1-byte NAL header (type 7, forbidden bit 0) followed by the escaped RBSP. Emulation
/// prevention bytes (§7.4.1) are skipped while reading; the VUI and anything after the
/// cropping fields are not needed and may be missing. The frame size of
/// [`h264::parse_sps`], which has the other fields.
///
/// Returns the displayed (cropped, §7.4.2.1.1) size in pixels. `None` when the NAL is not an
/// SPS, is truncated, holds out-of-range syntax elements, or yields a side of 0 or > 16384.
#[must_use]
pub fn parse_h264_sps(nal: &[u8]) -> Option<Resolution> {
    h264::parse_sps(nal).map(|sps| sps.resolution)
}

#[cfg(test)]
#[path = "resolution_tests.rs"]
mod tests;
