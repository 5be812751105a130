//! VP8 (RFC 7741 §4): each payload starts with a payload descriptor of 1 to 6 bytes
//! (§4.2, parsed by [`crate::codec::parse_vp8_descriptor`]); the frame is the
//! concatenation of the bytes after the descriptor of all its packets, in sequence order
//! (§4: partitions follow each other in order; PID and S only say where they start).
//!
//! The frame's first packet has S=1 and PID=0 (§4.2). It is a key frame when the VP8
//! payload header's P bit (bit 0 of the frame tag, RFC 6386 §9.1; RFC 7741 §4.3) is 0;
//! its size comes from the key frame header after the start code (RFC 6386 §9.1, parsed by
//! [`crate::codec::resolution::vp8_keyframe_resolution`]). A key frame whose header is
//! missing from its first packet or unparsable is [`DropReason::Malformed`].
//!
//! Kept: every payload byte after the descriptor. Ignored: the descriptor's PictureID,
//! TL0PICIDX, TID and KEYIDX (frames are recorded as the forwarder delivers them).

use super::{Assemble, DropReason, Finished, FrameBuf};
use crate::codec::resolution::{self, Resolution};
use crate::codec::{self, CodecKind};
use crate::record::CodecConfig;

/// VP8 assembler: what the frame's first packet said.
#[derive(Debug, Default)]
pub(super) struct Vp8 {
    /// The key frame's size; `Some` only for a key frame.
    key_size: Option<Resolution>,
}

impl Assemble for Vp8 {
    fn starts_frame(&self, payload: &[u8]) -> bool {
        codec::parse_vp8_descriptor(payload)
            .is_some_and(|d| d.start_of_partition && d.partition_id == 0)
    }

    fn push(&mut self, payload: &[u8], first: bool, buf: &mut FrameBuf) -> Result<(), DropReason> {
        let descriptor = codec::parse_vp8_descriptor(payload).ok_or(DropReason::Malformed)?;
        let data = payload
            .get(descriptor.header_len..)
            .ok_or(DropReason::Malformed)?;
        if first && codec::is_keyframe_start(CodecKind::Vp8, payload) {
            let size = resolution::vp8_keyframe_resolution(payload).ok_or(DropReason::Malformed)?;
            self.key_size = Some(size);
        }
        buf.extend(data)
    }

    fn finish(&mut self, _buf: &mut FrameBuf) -> Result<Finished, DropReason> {
        Ok(Finished {
            keyframe: self.key_size.is_some(),
            config: self.key_size.map(|size| CodecConfig::Vp8 {
                width: size.width,
                height: size.height,
            }),
        })
    }

    fn reset(&mut self) {
        self.key_size = None;
    }
}
