//! Opus (RFC 7587): the RTP payload is exactly one Opus packet (§4.2), so every RTP
//! packet is one frame, independently decodable (a key frame for the driver). The frame is
//! the payload as is; the configuration is the channel count given at construction (the
//! RTP clock is always 48 kHz, §4.1). An empty payload is not an Opus packet (RFC 6716
//! §3.4, requirement R1: at least one byte) and is [`DropReason::Malformed`].

use super::{Assemble, DropReason, Finished, FrameBuf};
use crate::record::CodecConfig;

/// Opus assembler; stateless besides the channel count.
#[derive(Debug)]
pub(super) struct Opus {
    channels: u8,
}

impl Opus {
    /// `channels`: 1 or 2, checked by the caller.
    pub(super) fn new(channels: u8) -> Self {
        Self { channels }
    }
}

impl Assemble for Opus {
    fn starts_frame(&self, _payload: &[u8]) -> bool {
        true
    }

    fn push(&mut self, payload: &[u8], _first: bool, buf: &mut FrameBuf) -> Result<(), DropReason> {
        if payload.is_empty() {
            return Err(DropReason::Malformed);
        }
        buf.extend(payload)
    }

    fn finish(&mut self, _buf: &mut FrameBuf) -> Result<Finished, DropReason> {
        Ok(Finished {
            keyframe: true,
            config: Some(CodecConfig::Opus {
                channels: self.channels,
            }),
        })
    }

    fn reset(&mut self) {}
}
