//! The receiver's log: every RTP packet a test or simulated viewer got, read once.
//!
//! Reading a packet ([`Got::read`]) parses its codec header and body and checks its
//! filler byte for byte ([`crate::media::verify`]); the log ([`Received`]) keeps one
//! [`Got`] per readable packet, in arrival order per kind, and the reasons the rest could
//! not be read. Every view of what arrived is computed from these entries: the test
//! peers' per-kind summaries, the simulations' video timelines, [`super::RecvStats`].
//!
//! Pure bookkeeping: the arrival time comes in, nothing here reads the clock.

use std::time::Instant;

use str0m::rtp::{RtpHeader, RtpPacket, Ssrc};

use crate::media::{self, Body, ParseError, PayloadCodec};

/// One received RTP packet as the log keeps it: its header facts, arrival time and what
/// its payload says about itself.
#[derive(Clone, Copy, Debug)]
pub struct Got {
    /// Arrival time (monotonic; virtual in the simulations).
    pub at: Instant,
    /// The codec its payload type maps to.
    pub codec: PayloadCodec,
    /// SSRC in the header.
    pub ssrc: Ssrc,
    /// Payload type in the header.
    pub pt: u8,
    /// Extended sequence number (str0m unwraps rollover).
    pub seq: u64,
    /// RTP timestamp in the header.
    pub ts: u32,
    /// RTP marker bit.
    pub marker: bool,
    /// Payload length in bytes.
    pub len: usize,
    /// The sender's body: publisher, stream, frame, counter, send time.
    pub body: Body,
    /// The sender's packet counter (`body.counter`).
    pub counter: u64,
    /// Video: the simulcast layer the packet was encoded for, from the body's stream
    /// byte (0 for audio and single-stream video).
    pub layer: u8,
    /// Video: the packet starts a frame (VP8 S=1 and PID 0; H.264 a single NAL unit,
    /// STAP-A or FU-A start).
    pub frame_start: bool,
    /// Video: the packet starts a keyframe (VP8 P bit 0; H.264 SPS or IDR).
    pub keyframe_start: bool,
    /// Every filler byte is as the publisher wrote it.
    pub filler_ok: bool,
}

impl Got {
    /// Read `pkt`, received at `at`, whose payload type maps to `codec`.
    ///
    /// Errors: the payload's headers or body cannot be read ([`ParseError`] other than
    /// `Filler`); a filler mismatch is not an error but `filler_ok == false`.
    pub fn read(at: Instant, codec: PayloadCodec, pkt: &RtpPacket) -> Result<Got, ParseError> {
        Got::read_parts(at, codec, &pkt.header, *pkt.seq_no, &pkt.payload).map(|(got, _)| got)
    }

    /// [`Got::read`] from the packet's parts (`seq` is the extended sequence number), with
    /// the filler mismatch (`ParseError::Filler`) when there is one.
    pub fn read_parts(
        at: Instant,
        codec: PayloadCodec,
        header: &RtpHeader,
        seq: u64,
        payload: &[u8],
    ) -> Result<(Got, Option<ParseError>), ParseError> {
        let (parsed, filler) = media::read(codec, payload)?;
        let got = Got {
            at,
            codec,
            ssrc: header.ssrc,
            pt: *header.payload_type,
            seq,
            ts: header.timestamp,
            marker: header.marker,
            len: payload.len(),
            body: parsed.body,
            counter: parsed.body.counter,
            layer: media::stream_layer(parsed.body.stream).unwrap_or(0),
            frame_start: parsed.frame_start,
            keyframe_start: parsed.starts_keyframe,
            filler_ok: filler.is_none(),
        };
        Ok((got, filler))
    }

    /// The payload as [`media::Parsed`] (for [`super::RecvStats::record`]).
    pub fn parsed(&self) -> media::Parsed {
        media::Parsed {
            body: self.body,
            frame_start: self.frame_start,
            starts_keyframe: self.keyframe_start,
            body_at: 0,
        }
    }

    /// The header facts [`super::RecvStats::record`] takes; `now_us` is the arrival time
    /// in microseconds since the tool's epoch.
    pub fn arrival(&self, now_us: u64) -> super::Arrival {
        super::Arrival {
            ts: self.ts,
            marker: self.marker,
            len: self.len,
            now_us,
        }
    }
}

/// A packet that could not be read, or was read with a damaged filler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// Extended sequence number.
    pub seq: u64,
    /// The codec its payload type maps to.
    pub codec: PayloadCodec,
    /// What was wrong.
    pub error: ParseError,
}

/// What a viewer received: every packet, read once, in arrival order per kind.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// Video packets whose payload could be read, in arrival order (a damaged filler
    /// included: see [`Got::filler_ok`]).
    pub video: Vec<Got>,
    /// Audio packets whose payload could be read, in arrival order.
    pub audio: Vec<Got>,
    /// Packets that could not be read or whose filler differs, in arrival order.
    pub corrupt: Vec<Corrupt>,
    /// Packets of a payload type that maps to no codec of the kit.
    pub unknown: u64,
}

impl Received {
    /// Log `pkt`, received at `at`; `codec` is what its payload type maps to (`None`:
    /// an unknown payload type). Returns the entry logged, if the payload was readable.
    pub fn record(
        &mut self,
        at: Instant,
        codec: Option<PayloadCodec>,
        pkt: &RtpPacket,
    ) -> Result<Got, Option<Corrupt>> {
        self.record_parts(at, codec, &pkt.header, *pkt.seq_no, &pkt.payload)
    }

    /// [`Received::record`] from the packet's parts (`seq` is the extended sequence
    /// number).
    pub fn record_parts(
        &mut self,
        at: Instant,
        codec: Option<PayloadCodec>,
        header: &RtpHeader,
        seq: u64,
        payload: &[u8],
    ) -> Result<Got, Option<Corrupt>> {
        let Some(codec) = codec else {
            self.unknown += 1;
            return Err(None);
        };
        match Got::read_parts(at, codec, header, seq, payload) {
            Ok((got, filler)) => {
                if let Some(error) = filler {
                    self.corrupt.push(Corrupt { seq, codec, error });
                }
                if codec.is_video() {
                    self.video.push(got);
                } else {
                    self.audio.push(got);
                }
                Ok(got)
            }
            Err(error) => {
                let c = Corrupt { seq, codec, error };
                self.corrupt.push(c);
                Err(Some(c))
            }
        }
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
