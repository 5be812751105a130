//! RTP payloads to access units: one [`Depacketizer`] per recorded track turns the
//! packets of a frame, in sequence order (from [`super::jitter`]), into one [`Frame`] in
//! the form an MP4 sample stores it, and learns the track's [`CodecConfig`] from its key
//! frames.
//!
//! ```text
//! Packet ─► push ─► per-codec assembler ─► Output::Config (before the key frame using it)
//!           lost ─┘  (vp8, vp9, h264,       Output::Frame  (one per recorded frame)
//!           flush ┘   av1, opus)            Output::Dropped(reason) (one per dropped frame)
//! ```
//!
//! Frame boundaries: a video frame ends at the RTP marker bit (RFC 3550 §5.1), or, when
//! the marker never came, at the first packet of another RTP timestamp; an Opus frame is
//! one packet (RFC 7587 §4.2). A packet carrying the timestamp of a frame that already
//! ended is a stray: its frame was output without it, so it is dropped
//! ([`DropReason::AfterFrameEnd`]) and the stream waits for a key frame.
//!
//! Key frame discipline: the first frame output is a key frame whose [`CodecConfig`] is
//! known. After any dropped frame (a reported gap, a malformed payload, a frame over its
//! size bound …) every frame is dropped until the next key frame, since a decoder cannot
//! use frames that refer to missing data; [`Depacketizer::needs_keyframe`] says so, for
//! the caller to send a PLI (RFC 4585 §6.3.1). A key frame is only accepted when its first
//! packet provably starts it (e.g. VP8 S=1 with PID 0), so a key frame whose first packets
//! were lost is not taken for a whole one.
//!
//! Owns: the RTP timestamp extension to 64 bits (RFC 3550 §A.1 style: each timestamp is
//! placed within ±2³¹ of the highest one seen), the frame in progress and, per codec,
//! what outlives a frame (H.264 parameter sets, the AV1 sequence header).
//!
//! Never: panics on any payload or call sequence, reads the clock, does IO, holds more than
//! [`MAX_VIDEO_FRAME`] (video) or [`MAX_AUDIO_FRAME`] (Opus) bytes for the frame in
//! progress (plus a few KiB of parameter sets): a frame that would exceed it is dropped
//! ([`DropReason::TooLarge`]), never grown.

mod av1;
mod h264;
mod opus;
mod vp8;
mod vp9;

use super::{CodecConfig, Frame, Packet};
use crate::codec::CodecKind;

/// Largest video frame kept, in bytes of sample data: 4 MiB. A 4K intra frame from a
/// real-time encoder is well under 2 MiB; anything larger is dropped and counted
/// ([`DropReason::TooLarge`]), so a hostile sender cannot grow a recorder's memory.
pub const MAX_VIDEO_FRAME: usize = 4 * 1024 * 1024;

/// Largest Opus frame kept, in bytes: 64 KiB. One RTP packet carries one Opus packet
/// (RFC 7587 §4.2), at most 48 frames of 1275 bytes (RFC 6716 §3.2.5), 61,440 bytes.
pub const MAX_AUDIO_FRAME: usize = 64 * 1024;

/// Largest width or height accepted from a bitstream, in pixels (as `codec::resolution`).
const MAX_DIMENSION: u32 = 16384;

/// Why a frame (or a stray packet) was dropped instead of recorded. One value per dropped
/// frame, reported by [`Output::Dropped`] when the frame ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// A payload breaks its RTP payload format or codec syntax (a truncated descriptor, a
    /// fragment that continues nothing, an unparsable key frame header or parameter set).
    #[error("malformed payload")]
    Malformed,
    /// A valid payload this recorder does not handle: H.264 interleaved mode (STAP-B, MTAP,
    /// FU-B, RFC 6184 §5.4), more than 8 VP9 frames in one picture, an AV1 reserved profile,
    /// a size over 16384 pixels, an oversized parameter set.
    #[error("unsupported payload")]
    Unsupported,
    /// The frame would exceed [`MAX_VIDEO_FRAME`] or [`MAX_AUDIO_FRAME`] bytes.
    #[error("frame too large")]
    TooLarge,
    /// Packets of the frame were lost ([`Depacketizer::lost`]).
    #[error("packets lost")]
    Loss,
    /// The stream waits for a key frame (at the start, or after a dropped frame) and this
    /// frame is not one, or its first packets are missing.
    #[error("waiting for a key frame")]
    WaitingForKeyframe,
    /// A key frame arrived before the codec configuration it needs: an H.264 IDR without
    /// an SPS and PPS seen (RFC 6184 §8.4), an AV1 key frame before any sequence header.
    #[error("codec configuration unknown")]
    MissingConfig,
    /// A packet with the timestamp of a frame that already ended (after its marker).
    #[error("packet after the end of its frame")]
    AfterFrameEnd,
    /// The frame ended inside a fragmented H.264 NAL unit (FU-A) or AV1 OBU (Y bit).
    #[error("frame ended inside a fragment")]
    Incomplete,
    /// The frame held nothing to record (e.g. only AV1 temporal delimiters or H.264 access
    /// unit delimiters). The only reason that does not make the stream wait for a key frame.
    #[error("frame is empty")]
    Empty,
}

impl DropReason {
    /// Metric label (snake case, stable).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Unsupported => "unsupported",
            DropReason::TooLarge => "too_large",
            DropReason::Loss => "loss",
            DropReason::WaitingForKeyframe => "waiting_for_keyframe",
            DropReason::MissingConfig => "missing_config",
            DropReason::AfterFrameEnd => "after_frame_end",
            DropReason::Incomplete => "incomplete",
            DropReason::Empty => "empty",
        }
    }
}

/// Why [`Depacketizer::new`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NewError {
    /// No depacketizer for this codec (H.265, other).
    #[error("no depacketizer for {0:?}")]
    UnsupportedCodec(CodecKind),
    /// Opus with a channel count other than 1 or 2.
    #[error("unsupported Opus channel count {0}")]
    UnsupportedChannels(u8),
}

/// One result of [`Depacketizer::push`] or [`Depacketizer::flush`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The codec configuration changed (the first one included); it applies to the
    /// [`Output::Frame`] that follows (always a key frame) and every later frame.
    Config(CodecConfig),
    /// A frame to record.
    Frame(Frame),
    /// A frame was dropped (or stray packets were), and why.
    Dropped(DropReason),
}

/// The outputs of one call, oldest first: at most four (two frames ended by one packet,
/// each possibly preceded by a new configuration). Iterate it to the end.
#[derive(Debug, Default)]
#[must_use = "the outputs carry the frames to record"]
pub struct Outputs {
    items: [Option<Output>; 4],
    len: usize,
    next: usize,
}

impl Outputs {
    fn push(&mut self, output: Output) {
        // Never full: one call ends at most two frames, each adding at most two outputs.
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some(output);
            self.len += 1;
        }
    }
}

impl Iterator for Outputs {
    type Item = Output;

    fn next(&mut self) -> Option<Output> {
        let item = self.items.get_mut(self.next)?.take()?;
        self.next += 1;
        Some(item)
    }
}

/// Depacketizer of one track (see the module docs).
///
/// Use: [`push`](Self::push) every packet the jitter buffer releases, in sequence order;
/// [`lost`](Self::lost) for every gap it reports; [`flush`](Self::flush) at the end. Each
/// returns [`Outputs`] to write in order. Ask for a key frame while
/// [`needs_keyframe`](Self::needs_keyframe).
#[derive(Debug)]
pub struct Depacketizer {
    kind: CodecKind,
    codec: Codec,
    buf: FrameBuf,
    clock: Extender,
    /// The frame in progress.
    current: Option<Current>,
    /// Extended timestamp of the frame that ended last.
    closed: Option<u64>,
    /// Dropping frames until a key frame.
    waiting: bool,
    /// Configuration of the last key frame output.
    config: Option<CodecConfig>,
}

#[derive(Debug)]
struct Current {
    timestamp: u64,
    /// Its first packet provably starts a frame.
    starts: bool,
    /// Why it will be dropped; its further packets are then ignored.
    failed: Option<DropReason>,
}

impl Depacketizer {
    /// A depacketizer for `kind`: VP8, VP9, H.264, AV1 or Opus. `channels` is Opus's
    /// channel count, 1 or 2 (from the SDP's `stereo`; RFC 7587 §7), ignored for video.
    ///
    /// # Errors
    ///
    /// [`NewError::UnsupportedCodec`] for H.265 and other codecs;
    /// [`NewError::UnsupportedChannels`] for Opus with `channels` not 1 or 2.
    pub fn new(kind: CodecKind, channels: u8) -> Result<Self, NewError> {
        let (codec, limit) = match kind {
            CodecKind::Vp8 => (Codec::Vp8(vp8::Vp8::default()), MAX_VIDEO_FRAME),
            CodecKind::Vp9 => (Codec::Vp9(vp9::Vp9::default()), MAX_VIDEO_FRAME),
            CodecKind::H264 => (Codec::H264(h264::H264::default()), MAX_VIDEO_FRAME),
            CodecKind::Av1 => (Codec::Av1(av1::Av1::default()), MAX_VIDEO_FRAME),
            CodecKind::Opus => {
                if !(1..=2).contains(&channels) {
                    return Err(NewError::UnsupportedChannels(channels));
                }
                (Codec::Opus(opus::Opus::new(channels)), MAX_AUDIO_FRAME)
            }
            CodecKind::H265 | CodecKind::Other => return Err(NewError::UnsupportedCodec(kind)),
        };
        Ok(Self {
            kind,
            codec,
            buf: FrameBuf::new(limit),
            clock: Extender::default(),
            current: None,
            closed: None,
            waiting: true,
            config: None,
        })
    }

    /// The codec this depacketizer was made for.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// Adds the next packet in sequence order (gaps are reported with [`lost`](Self::lost)
    /// instead). Its timestamp is extended to 64 bits first.
    ///
    /// Returns what ended: the frame in progress when this packet has another timestamp,
    /// then this packet's frame when it carries the marker bit (or is Opus). Each ended frame
    /// gives one [`Output::Frame`] (after an [`Output::Config`] when a key frame changes the
    /// configuration) or one [`Output::Dropped`]. Never fails: a bad packet drops its frame.
    pub fn push(&mut self, packet: &Packet) -> Outputs {
        let mut out = Outputs::default();
        let timestamp = self.clock.extend(packet.timestamp);
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.timestamp != timestamp)
        {
            self.finish(&mut out);
        }
        let payload: &[u8] = &packet.payload;
        let first = self.current.is_none();
        if first {
            let starts = self.codec.get().starts_frame(payload);
            let failed = if self.closed == Some(timestamp) {
                Some(DropReason::AfterFrameEnd)
            } else if self.waiting && !starts {
                Some(DropReason::WaitingForKeyframe)
            } else {
                None
            };
            self.current = Some(Current {
                timestamp,
                starts,
                failed,
            });
        }
        if let Some(current) = &mut self.current {
            if current.failed.is_none() {
                if let Err(reason) = self.codec.get().push(payload, first, &mut self.buf) {
                    current.failed = Some(reason);
                    self.codec.get().reset();
                    self.buf.discard();
                }
            }
        }
        if packet.marker || self.kind == CodecKind::Opus {
            self.finish(&mut out);
        }
        out
    }

    /// The jitter buffer gave up on packets right before the next one pushed: the frame in
    /// progress is dropped ([`DropReason::Loss`], reported when it ends) and every frame
    /// after it until a key frame.
    pub fn lost(&mut self) {
        self.waiting = true;
        if let Some(current) = &mut self.current {
            if current.failed.is_none() {
                current.failed = Some(DropReason::Loss);
                self.codec.get().reset();
                self.buf.discard();
            }
        }
    }

    /// End of the stream: ends the frame in progress as if its marker had come.
    pub fn flush(&mut self) -> Outputs {
        let mut out = Outputs::default();
        self.finish(&mut out);
        out
    }

    /// True while frames are dropped until a key frame (at the start and after any dropped
    /// frame): the caller should ask the sender for one (PLI, RFC 4585 §6.3.1). Always false
    /// for Opus.
    pub fn needs_keyframe(&self) -> bool {
        self.waiting && self.kind != CodecKind::Opus
    }

    /// The configuration of the last key frame output; `None` before the first one.
    /// Changes are announced by [`Output::Config`].
    pub fn config(&self) -> Option<&CodecConfig> {
        self.config.as_ref()
    }

    /// Bytes allocated for the frame in progress; never more than
    /// [`max_frame_size`](Self::max_frame_size).
    pub fn buffered(&self) -> usize {
        self.buf.data.capacity()
    }

    /// The bound on a frame's size, in bytes: [`MAX_VIDEO_FRAME`] or [`MAX_AUDIO_FRAME`].
    pub fn max_frame_size(&self) -> usize {
        self.buf.limit
    }

    /// Ends the frame in progress, if any, adding its outputs to `out`.
    fn finish(&mut self, out: &mut Outputs) {
        let Some(current) = self.current.take() else {
            return;
        };
        self.closed = Some(current.timestamp);
        let result = match current.failed {
            Some(reason) => Err(reason),
            None => self.codec.get().finish(&mut self.buf),
        };
        self.codec.get().reset();
        let finished = match result {
            Ok(_) if self.buf.data.is_empty() => Err(DropReason::Empty),
            other => other,
        };
        let finished = match finished {
            Ok(finished) => finished,
            Err(reason) => return self.drop_frame(reason, out),
        };
        let keyframe = finished.keyframe && current.starts;
        if self.waiting && !keyframe {
            return self.drop_frame(DropReason::WaitingForKeyframe, out);
        }
        if keyframe {
            let Some(config) = finished.config else {
                return self.drop_frame(DropReason::MissingConfig, out);
            };
            if self.config.as_ref() != Some(&config) {
                out.push(Output::Config(config.clone()));
                self.config = Some(config);
            }
            self.waiting = false;
        }
        out.push(Output::Frame(Frame {
            timestamp: current.timestamp,
            keyframe,
            data: self.buf.take(),
        }));
    }

    fn drop_frame(&mut self, reason: DropReason, out: &mut Outputs) {
        self.buf.discard();
        if reason != DropReason::Empty {
            self.waiting = true;
        }
        out.push(Output::Dropped(reason));
    }
}

// ---------------------------------------------------------------------------------------------
// What the codecs implement.

/// The per-codec half of a depacketizer. The driver above owns frame boundaries, loss and
/// key frame discipline; an assembler turns the payloads of one frame into sample bytes.
trait Assemble {
    /// Whether `payload`, the first packet seen with a new timestamp, provably begins a
    /// frame (false when the frame's first packets may have been lost).
    fn starts_frame(&self, payload: &[u8]) -> bool;

    /// Adds one packet's payload to the frame in `buf`; `first` for the frame's first packet.
    fn push(&mut self, payload: &[u8], first: bool, buf: &mut FrameBuf) -> Result<(), DropReason>;

    /// Every packet of the frame was pushed: complete the sample in `buf`, say whether it is a
    /// key frame and, for a key frame, the configuration it needs (`None` when unknown).
    fn finish(&mut self, buf: &mut FrameBuf) -> Result<Finished, DropReason>;

    /// Forgets the frame in progress (what outlives a frame, e.g. parameter sets, stays).
    fn reset(&mut self);
}

/// What [`Assemble::finish`] learnt about a complete frame.
struct Finished {
    keyframe: bool,
    config: Option<CodecConfig>,
}

#[derive(Debug)]
enum Codec {
    Vp8(vp8::Vp8),
    Vp9(vp9::Vp9),
    H264(h264::H264),
    Av1(av1::Av1),
    Opus(opus::Opus),
}

impl Codec {
    fn get(&mut self) -> &mut dyn Assemble {
        match self {
            Codec::Vp8(c) => c,
            Codec::Vp9(c) => c,
            Codec::H264(c) => c,
            Codec::Av1(c) => c,
            Codec::Opus(c) => c,
        }
    }
}

/// The bytes of the frame in progress, never more than `limit`: every growth is checked
/// first, and capacity grows by doubling up to `limit` exactly.
#[derive(Debug)]
struct FrameBuf {
    data: Vec<u8>,
    limit: usize,
}

/// Capacity a discarded frame's buffer may keep for reuse.
const KEEP_CAPACITY: usize = 64 * 1024;

impl FrameBuf {
    fn new(limit: usize) -> Self {
        Self {
            data: Vec::new(),
            limit,
        }
    }

    fn len(&self) -> usize {
        self.data.len()
    }

    fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Makes room for `additional` more bytes, or [`DropReason::TooLarge`].
    fn reserve(&mut self, additional: usize) -> Result<(), DropReason> {
        let needed = self
            .data
            .len()
            .checked_add(additional)
            .filter(|&n| n <= self.limit)
            .ok_or(DropReason::TooLarge)?;
        if needed > self.data.capacity() {
            let target = needed
                .max(self.data.capacity().saturating_mul(2))
                .min(self.limit);
            self.data
                .reserve_exact(target.saturating_sub(self.data.len()));
        }
        Ok(())
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), DropReason> {
        self.reserve(bytes.len())?;
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    /// Inserts `bytes` at offset `at` (≤ the length).
    fn insert(&mut self, at: usize, bytes: &[u8]) -> Result<(), DropReason> {
        if at > self.data.len() {
            return Err(DropReason::Malformed);
        }
        self.reserve(bytes.len())?;
        self.data.splice(at..at, bytes.iter().copied());
        Ok(())
    }

    /// Overwrites bytes from offset `at` (the range must exist).
    fn overwrite(&mut self, at: usize, bytes: &[u8]) -> Result<(), DropReason> {
        let end = at.checked_add(bytes.len()).ok_or(DropReason::Malformed)?;
        self.data
            .get_mut(at..end)
            .ok_or(DropReason::Malformed)?
            .copy_from_slice(bytes);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.data.truncate(len);
    }

    /// The frame's bytes, leaving the buffer empty.
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// Forgets the frame's bytes, keeping a small allocation for reuse.
    fn discard(&mut self) {
        if self.data.capacity() > KEEP_CAPACITY {
            self.data = Vec::new();
        } else {
            self.data.clear();
        }
    }
}

/// RTP timestamp extension to 64 bits (the idea of RFC 3550 §A.1 for sequence numbers):
/// each 32-bit timestamp is placed within ±2³¹ of the highest extended one so far. The
/// first is taken as is; one that would fall below 0 is 0.
#[derive(Debug, Default)]
struct Extender {
    highest: Option<u64>,
}

impl Extender {
    fn extend(&mut self, timestamp: u32) -> u64 {
        let Some(highest) = self.highest else {
            self.highest = Some(u64::from(timestamp));
            return u64::from(timestamp);
        };
        // Truncation intended: the low 32 bits of the highest are its wire value.
        let delta = timestamp.wrapping_sub(highest as u32) as i32;
        let extended = highest
            .checked_add_signed(i64::from(delta))
            .unwrap_or(if delta < 0 { 0 } else { u64::MAX });
        self.highest = Some(highest.max(extended));
        extended
    }
}

/// A width or height in 1..=[`MAX_DIMENSION`] pixels, as `u16`.
fn dimension(value: u32) -> Option<u16> {
    if (1..=MAX_DIMENSION).contains(&value) {
        u16::try_from(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
