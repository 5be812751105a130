//! Recording without transcoding: a track's RTP packets become the samples of an MP4 file.
//!
//! The path of one recorded packet, each step sans-IO (`now` is monotonic and passed in):
//!
//! ```text
//! RTP packet ─► jitter::JitterBuffer ─► depacketize::Depacketizer ─► mp4 writer
//!               (reorder, wait briefly     (RTP payloads of one frame   (fragmented MP4:
//!                for NACK repair, give      → one access unit in its     init segment, then
//!                up on a gap)               MP4 sample form)             moof+mdat fragments)
//! ```
//!
//! Owns: the shapes that pass between those steps ([`Frame`], [`CodecConfig`]).
//!
//! Never: decodes or re-encodes media; reads the clock; touches a file (the caller writes
//! the bytes it is handed); trusts a payload (every parser is bounds-checked, bounded in
//! memory and never panics: see `fuzz/fuzz_targets/depacketize.rs`).

pub mod depacketize;
pub mod jitter;
pub mod manifest;
pub mod mp4;
pub mod track;

use std::sync::Arc;

/// One RTP packet of a recorded track, as the forwarder hands it to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Extended sequence number (never wraps; continuous across the forwarder's layer
    /// switches because it is the subscriber's munged number).
    pub seq: u64,
    /// RTP timestamp (RFC 3550 §5.1), 32 bits as on the wire; the depacketizer extends it.
    pub timestamp: u32,
    /// RTP marker bit: the last packet of a video frame (RFC 3550 §5.1, RFC 7741 §4.1).
    pub marker: bool,
    /// The payload after the RTP header, padding removed; shared, not copied.
    pub payload: Arc<[u8]>,
}

/// One depacketized access unit (a whole video frame or one audio packet), in the form an
/// MP4 sample stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp of the frame, extended to 64 bits so it never wraps, in the codec's
    /// clock rate (90 kHz for video, 48 kHz for Opus; RFC 7587 §4.1).
    pub timestamp: u64,
    /// True when a decoder can start at this frame: a VP8/VP9 key frame, an H.264 IDR
    /// access unit, an AV1 key frame with its sequence header. Always true for audio.
    pub keyframe: bool,
    /// The sample bytes, per the codec's MP4 binding:
    /// - VP8, VP9: the compressed frame (VP Codec ISO-BMFF binding §4);
    /// - H.264: NAL units each prefixed by a 4-byte big-endian length (ISO/IEC 14496-15
    ///   §5.3.2), SPS and PPS kept in the sample as well as in [`CodecConfig::H264`];
    /// - AV1: low-overhead OBUs with `obu_has_size_field` = 1, temporal delimiters removed
    ///   (AV1 ISOBMFF binding §2.4);
    /// - Opus: one Opus packet (RFC 7845 §3 framing, Opus in ISOBMFF §4.3).
    pub data: Vec<u8>,
}

/// What a track's MP4 sample entry needs, learnt from the media itself (a key frame or a
/// parameter set), never from the SDP alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecConfig {
    /// VP8: the key frame's size in pixels (RFC 6386 §9.1).
    Vp8 {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
    /// VP9: the key frame's uncompressed header (VP9 bitstream spec §6.2).
    Vp9 {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
        /// `profile` 0–3.
        profile: u8,
        /// Bits per sample: 8, 10 or 12.
        bit_depth: u8,
    },
    /// H.264: the most recent sequence and picture parameter sets (ITU-T H.264 §7.3.2),
    /// each a whole NAL unit without start code or length prefix.
    H264 {
        /// Width in pixels (cropped, from the SPS).
        width: u16,
        /// Height in pixels (cropped, from the SPS).
        height: u16,
        /// The SPS NAL unit (type 7).
        sps: Vec<u8>,
        /// The PPS NAL unit (type 8).
        pps: Vec<u8>,
    },
    /// AV1: the sequence header OBU (AV1 spec §5.5), with its size field.
    Av1 {
        /// Width in pixels (`max_frame_width_minus_1 + 1`).
        width: u16,
        /// Height in pixels (`max_frame_height_minus_1 + 1`).
        height: u16,
        /// The sequence header OBU.
        sequence_header: Vec<u8>,
    },
    /// Opus (RFC 7587: always a 48 kHz RTP clock).
    Opus {
        /// Channel count, 1 or 2 (from the SDP's `sprop-stereo`/`stereo`; 2 by RFC 7587 §7).
        channels: u8,
    },
}
