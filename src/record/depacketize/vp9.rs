//! VP9 (RFC 9628 §4): each payload starts with a payload descriptor (§4.2), in flexible
//! (F=1) or non-flexible (F=0) mode; the rest is VP9 frame data. A picture (one RTP
//! timestamp) holds one frame per spatial layer; each frame starts at a packet with B=1
//! and ends at one with E=1 (§4.2), the last frame at the marker bit.
//!
//! ```text
//!        +-+-+-+-+-+-+-+-+
//!        |I|P|L|F|B|E|V|Z| (REQUIRED)
//!        +-+-+-+-+-+-+-+-+
//!   I:   |M| PICTURE ID  | (7 bits, or 15 with M=1 and a second byte)
//!   L:   | TID |U| SID |D| then, when F=0, | TL0PICIDX |
//!   F&P: | P_DIFF      |N| up to 3 times (N=1: another follows)
//!   V:   | SS ...        | scalability structure (§4.2.1)
//! ```
//!
//! The sample is the picture's frames concatenated; when there are several (spatial
//! layers), a superframe index is appended (VP9 bitstream spec Annex B) so that a decoder
//! finds each frame (VP codec ISO-BMFF binding §4: a sample is a superframe). At most 8
//! frames per picture (the index's limit); more is [`DropReason::Unsupported`]. The
//! E bit is not checked (the jitter buffer reports any missing packet).
//!
//! Key frame: the first packet has P=0, B=1 and SID=0 (§4.2, as
//! [`crate::codec::is_keyframe_start`]) and the first frame's uncompressed header (VP9
//! bitstream spec §6.2, parsed by [`crate::codec::vp9::parse_key_header`]) says
//! `frame_type` = KEY_FRAME. Its configuration: profile and bit depth from that header
//! (`color_config()`, §6.2.2); width and height from the scalability structure (Y=1) for the
//! highest spatial layer present in the picture, else from the header's `frame_size()`
//! (§6.2.3).

use super::{dimension, Assemble, DropReason, Finished, FrameBuf};
use crate::codec::vp9::parse_key_header;
use crate::codec::{self, CodecKind};
use crate::record::CodecConfig;

/// Most frames in one picture: a superframe index counts 3 bits (VP9 spec Annex B).
const MAX_FRAMES: usize = 8;
/// Most spatial layers in a scalability structure (N_S has 3 bits).
const MAX_LAYERS: usize = 8;

/// The payload descriptor fields the assembler uses.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Descriptor {
    /// B: the packet starts a frame.
    pub(super) begin: bool,
    /// Spatial layer id, when layer indices are present (L=1).
    pub(super) sid: Option<u8>,
    /// The scalability structure's sizes (width, height) per spatial layer, when V=1 and
    /// Y=1; entries past the layer count are `None`.
    pub(super) sizes: Option<[Option<(u16, u16)>; MAX_LAYERS]>,
    /// Bytes of descriptor; the frame data starts here.
    pub(super) len: usize,
}

/// Parses the RFC 9628 §4.2 payload descriptor, `None` when truncated or when flexible
/// mode lists more than 3 reference indices.
pub(super) fn parse_descriptor(payload: &[u8]) -> Option<Descriptor> {
    let b0 = *payload.first()?;
    let flag = |mask: u8| b0 & mask != 0;
    let (i_bit, p_bit, l_bit, f_bit, b_bit, v_bit) = (
        flag(0x80),
        flag(0x40),
        flag(0x20),
        flag(0x10),
        flag(0x08),
        flag(0x02),
    );
    let mut d = Descriptor {
        begin: b_bit,
        ..Descriptor::default()
    };
    let mut at = 1usize;
    let mut next = || -> Option<u8> {
        let byte = *payload.get(at)?;
        at += 1;
        Some(byte)
    };
    if i_bit && next()? & 0x80 != 0 {
        next()?; // M=1: 15-bit picture id
    }
    if l_bit {
        d.sid = Some((next()? >> 1) & 0x07);
        if !f_bit {
            next()?; // TL0PICIDX, non-flexible mode only
        }
    }
    if f_bit && p_bit {
        // Reference indices: |P_DIFF|N|, at most 3.
        let mut count = 0;
        while next()? & 0x01 != 0 {
            count += 1;
            if count >= 3 {
                return None;
            }
        }
    }
    if v_bit {
        // Scalability structure (§4.2.1): |N_S|Y|G|-|-|-|, sizes, picture group.
        let ss = next()?;
        let layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            let mut sizes = [None; MAX_LAYERS];
            for slot in sizes.iter_mut().take(layers) {
                let width = u16::from_be_bytes([next()?, next()?]);
                let height = u16::from_be_bytes([next()?, next()?]);
                *slot = Some((width, height));
            }
            d.sizes = Some(sizes);
        }
        if ss & 0x08 != 0 {
            let pictures = next()?;
            for _ in 0..pictures {
                // |TID|U| R |-|-|, then R reference P_DIFF bytes.
                let references = (next()? >> 2) & 0x03;
                for _ in 0..references {
                    next()?;
                }
            }
        }
    }
    d.len = at;
    Some(d)
}

/// VP9 assembler: the picture in progress.
#[derive(Debug, Default)]
pub(super) struct Vp9 {
    /// The first packet had P=0, B=1, SID=0.
    key_start: bool,
    /// Offsets in the sample where each frame starts.
    frames: [usize; MAX_FRAMES],
    /// How many of `frames` are used.
    frame_count: usize,
    /// Highest spatial layer id seen in the picture.
    max_sid: u8,
    /// Sizes from the picture's scalability structure.
    sizes: Option<[Option<(u16, u16)>; MAX_LAYERS]>,
}

impl Assemble for Vp9 {
    fn starts_frame(&self, payload: &[u8]) -> bool {
        parse_descriptor(payload).is_some_and(|d| d.begin && d.sid.unwrap_or(0) == 0)
    }

    fn push(&mut self, payload: &[u8], first: bool, buf: &mut FrameBuf) -> Result<(), DropReason> {
        let d = parse_descriptor(payload).ok_or(DropReason::Malformed)?;
        let data = payload.get(d.len..).ok_or(DropReason::Malformed)?;
        if first {
            self.key_start = codec::is_keyframe_start(CodecKind::Vp9, payload);
        }
        if let Some(sid) = d.sid {
            self.max_sid = self.max_sid.max(sid);
        }
        if d.sizes.is_some() {
            self.sizes = d.sizes;
        }
        if d.begin {
            let slot = self
                .frames
                .get_mut(self.frame_count)
                .ok_or(DropReason::Unsupported)?;
            *slot = buf.len();
            self.frame_count += 1;
        } else if self.frame_count == 0 {
            return Err(DropReason::Malformed); // data before any frame began
        }
        buf.extend(data)
    }

    fn finish(&mut self, buf: &mut FrameBuf) -> Result<Finished, DropReason> {
        let mut config = None;
        if self.key_start {
            let header = parse_key_header(buf.bytes()).ok_or(DropReason::Malformed)?;
            if let Some(key) = header {
                let layer_size = self
                    .sizes
                    .and_then(|sizes| sizes.get(usize::from(self.max_sid)).copied().flatten())
                    .map(|(w, h)| (u32::from(w), u32::from(h)));
                let (width, height) = layer_size.unwrap_or((key.width, key.height));
                config = Some(CodecConfig::Vp9 {
                    width: dimension(width).ok_or(DropReason::Unsupported)?,
                    height: dimension(height).ok_or(DropReason::Unsupported)?,
                    profile: key.profile,
                    bit_depth: key.bit_depth,
                });
            }
        }
        if self.frame_count > 1 {
            self.append_superframe_index(buf)?;
        }
        Ok(Finished {
            keyframe: config.is_some(),
            config,
        })
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

impl Vp9 {
    /// Appends the superframe index (VP9 bitstream spec Annex B): a marker byte
    /// `0b110 | bytes_per_framesize_minus_1 (2) | frames_in_superframe_minus_1 (3)`, each
    /// frame's size little-endian in that many bytes, the marker byte again.
    fn append_superframe_index(&self, buf: &mut FrameBuf) -> Result<(), DropReason> {
        let starts = self
            .frames
            .get(..self.frame_count)
            .ok_or(DropReason::Malformed)?;
        let mut sizes = [0u32; MAX_FRAMES];
        for (i, (size, &start)) in sizes.iter_mut().zip(starts).enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(buf.len());
            let len = end.checked_sub(start).ok_or(DropReason::Malformed)?;
            if len == 0 {
                return Err(DropReason::Malformed); // a frame without bytes
            }
            *size = u32::try_from(len).map_err(|_| DropReason::TooLarge)?;
        }
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let magnitude: usize = match largest {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xff_ffff => 3,
            _ => 4,
        };
        let marker = 0xc0
            | (u8::try_from(magnitude - 1).map_err(|_| DropReason::Malformed)? << 3)
            | u8::try_from(self.frame_count - 1).map_err(|_| DropReason::Unsupported)?;
        buf.extend(&[marker])?;
        for size in sizes.iter().take(self.frame_count) {
            let bytes = size.to_le_bytes();
            buf.extend(bytes.get(..magnitude).ok_or(DropReason::Malformed)?)?;
        }
        buf.extend(&[marker])
    }
}

#[cfg(test)]
#[path = "vp9_tests.rs"]
mod tests;
