//! Fragmented MP4 writer for one recorded track: [`Frame`]s in, file bytes out.
//!
//! A file holds one track (a recording writes one file per track). Its layout is that of a
//! fragmented ISO BMFF file (ISO/IEC 14496-12 §8.8):
//!
//! ```text
//! ftyp moov(mvhd trak(… stsd: one sample entry) mvex(trex))   ← Mp4Writer::new
//! moof(mfhd traf(tfhd tfdt trun)) mdat                          ← push / fragment / finish
//! moof … mdat
//! ```
//!
//! Owns: the sample entry of a [`CodecConfig`] (`entry`, with the parameter-set fields
//! read by [`crate::codec`]'s parsers), the Opus TOC duration (`bits`), sample durations,
//! fragment cutting, the running totals.
//!
//! Never: writes a file (the caller writes the returned bytes in order), reads the clock,
//! panics on any frame or config.
//!
//! # Timing
//!
//! The timescale is the RTP clock: 90 000 for video, 48 000 for Opus. A sample lasts until
//! the next frame's timestamp, so the newest frame is held back until its successor
//! arrives (or [`Mp4Writer::finish`], where it gets its Opus TOC duration, RFC 6716 §3.1,
//! else the previous duration, else 1/30 s or 20 ms). A step that is not forward, or longer
//! than [`FragmentLimits::max_step`], is a discontinuity (a publisher restart): the sample
//! gets that fallback duration and the file's timeline continues without the jump. The
//! first sample is at time 0; [`Totals::first_timestamp`] is its RTP timestamp, for
//! aligning the files of one recording. Opus pre-skip is 0: a recording joins the stream
//! after the encoder's priming, and without an edit list a pre-skip would shift the audio
//! against the video file by 6.5 ms.
//!
//! # Fragments
//!
//! A fragment is cut before the next frame when the pending samples reach
//! [`FragmentLimits::max_duration`] (default 1 s), before a video key frame (so each key
//! frame starts a fragment, where a player can seek to), and when adding the next frame
//! would pass [`FragmentLimits::max_bytes`] or [`FragmentLimits::max_samples`]. Every
//! sample carries its own duration, size and sync flags in the `trun`.
//! [`Mp4Writer::fragment`] cuts on demand.
//!
//! # Configuration changes
//!
//! A file has one sample entry, written before any fragment. When the publisher's
//! configuration changes so that the entry would differ (resolution, profile, parameter
//! sets, sequence header, channel count; see [`Mp4Writer::accepts`]), the caller finishes
//! this file and starts a new one with a new writer. That is the simplest correct option:
//! a second `stsd` entry would need the init segment rewritten after the fact.
//!
//! # Memory bound
//!
//! At most [`FragmentLimits::max_bytes`] of pending sample data plus one held frame (a
//! frame over `max_bytes` is refused), and 12 bytes per pending sample, at most
//! [`FragmentLimits::max_samples`] of them; `max_bytes` is clamped to 1 GiB.
//!
//! # The muxer crate
//!
//! The boxes come from [`shiguredo_mp4`] 2026.3 (Apache-2.0, no dependencies, sans-IO,
//! `no_std`): it has `vp08`/`vp09`+`vpcC`, `avc1`+`avcC`, `av01`+`av1C`, `Opus`+`dOps` and the
//! fragment boxes, each with an encoder and a bounds-checked decoder (the tests read the
//! output back with it). `mp4` lacks the `vp08`, `av01` and `Opus` sample entries; `muxide`
//! lacks VP8. Its box layer is used rather than its `Fmp4SegmentMuxer`, which learns the
//! track from the first media segment (so its init segment cannot be written first), keeps
//! a `tfra` entry per fragment forever and clones its state on every fragment (memory and
//! time grow with the recording's length). Assembling `moof` + `mdat` from its boxes is
//! the few lines of [`Mp4Writer::fragment`].

mod bits;
mod entry;

use std::time::Duration;

use shiguredo_mp4::boxes::{
    MdatBox, MfhdBox, MoofBox, SampleEntry, TfdtBox, TfhdBox, TrafBox, TrunBox, TrunSample,
};
use shiguredo_mp4::{BoxHeader, BoxSize, Encode, SampleFlags};

use super::{CodecConfig, Frame};

/// Hard ceiling on [`FragmentLimits::max_bytes`]: keeps every sample size and `mdat` a
/// 32-bit quantity with room to spare.
const MAX_FRAGMENT_BYTES: usize = 1 << 30;

/// Why the writer refused a config or a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    /// The config cannot make a sample entry; the text says which part (see
    /// [`Mp4Writer::new`]).
    #[error("invalid codec config: {0}")]
    InvalidConfig(&'static str),
    /// A frame without bytes; dropped.
    #[error("empty frame")]
    EmptySample,
    /// A frame over [`FragmentLimits::max_bytes`]; dropped.
    #[error("frame larger than a fragment may be")]
    SampleTooLarge,
    /// The MP4 crate refused to encode a box (not expected; the pending samples of the
    /// fragment are dropped, the timeline goes on).
    #[error("mp4 encoding failed: {0}")]
    Encode(String),
}

impl Mp4Error {
    /// Metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mp4Error::InvalidConfig(_) => "invalid_config",
            Mp4Error::EmptySample => "empty_sample",
            Mp4Error::SampleTooLarge => "sample_too_large",
            Mp4Error::Encode(_) => "encode",
        }
    }

    fn encode(error: shiguredo_mp4::Error) -> Self {
        Mp4Error::Encode(error.to_string())
    }
}

/// When fragments are cut, and the memory bound (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentLimits {
    /// Cut once the pending samples last this long (media time). Default 1 s.
    pub max_duration: Duration,
    /// Cut before the pending sample data would pass this many bytes; a bigger frame is
    /// refused. Default 8 MiB, clamped to 1..=1 GiB.
    pub max_bytes: usize,
    /// Cut at this many pending samples (bounds the `trun`). Default 1024, at least 1.
    pub max_samples: usize,
    /// The longest step between two frames' timestamps taken as real time; a longer or
    /// backward step is a discontinuity. Default 10 minutes.
    pub max_step: Duration,
}

impl Default for FragmentLimits {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(1),
            max_bytes: 8 << 20,
            max_samples: 1024,
            max_step: Duration::from_secs(600),
        }
    }
}

/// Running totals of one file, for the recording manifest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Bytes returned so far: the init segment and every fragment.
    pub bytes: u64,
    /// Samples in the returned fragments.
    pub samples: u64,
    /// Fragments returned.
    pub fragments: u64,
    /// Sum of the returned samples' durations, in `timescale` units.
    pub duration: u64,
    /// Ticks per second of `duration` (the RTP clock rate).
    pub timescale: u32,
    /// The extended RTP timestamp of the first sample (file time 0); `None` before one.
    pub first_timestamp: Option<u64>,
    /// Timestamp steps taken as discontinuities (see the module docs).
    pub discontinuities: u64,
}

/// A pending sample's `trun` fields; its bytes are in [`Mp4Writer::payload`].
#[derive(Clone, Copy, Debug)]
struct PendingSample {
    size: u32,
    duration: u32,
    keyframe: bool,
}

/// Writes one track as a fragmented MP4 file (see the module docs).
#[derive(Debug)]
pub struct Mp4Writer {
    /// The config the file started with (its sample entry's).
    config: CodecConfig,
    entry: SampleEntry,
    video: bool,
    limits: FragmentLimits,
    /// `limits.max_duration` and `limits.max_step` in timescale ticks.
    max_duration_ticks: u64,
    max_step_ticks: u64,
    /// The newest frame, held until the next one gives its duration.
    held: Option<Frame>,
    /// The duration given to the previous sample.
    last_duration: Option<u32>,
    /// The pending samples and their bytes, in order.
    samples: Vec<PendingSample>,
    payload: Vec<u8>,
    pending_duration: u64,
    /// `baseMediaDecodeTime` of the next fragment.
    decode_time: u64,
    /// `sequence_number` of the last fragment (`mfhd`, starts at 1).
    sequence: u32,
    totals: Totals,
}

impl Mp4Writer {
    /// A writer for a track of this config, and the init segment (`ftyp` + `moov`) to
    /// write first. Sample entries: `vp08`/`vp09` with `vpcC`, `avc1` with `avcC` (from
    /// the SPS/PPS), `av01` with `av1C` (from the sequence header), `Opus` with `dOps`
    /// (pre-skip 0, input rate 48 kHz): see the module docs and `entry.rs` for the specs.
    ///
    /// # Errors
    ///
    /// [`Mp4Error::InvalidConfig`]: a zero or over-32767 dimension, an SPS or AV1
    /// sequence header that does not parse, a parameter set over 65535 bytes, a VP9
    /// profile over 3 or bit depth not 8/10/12, an Opus channel count other than 1 or 2.
    pub fn new(config: &CodecConfig, limits: FragmentLimits) -> Result<(Self, Vec<u8>), Mp4Error> {
        let entry = entry::sample_entry(config)?;
        let timescale = entry::timescale(config);
        let init = entry::init_segment(&entry, timescale)?;
        let limits = FragmentLimits {
            max_bytes: limits.max_bytes.clamp(1, MAX_FRAGMENT_BYTES),
            max_samples: limits.max_samples.max(1),
            ..limits
        };
        let ticks = |d: Duration| {
            let t = d.as_nanos().saturating_mul(u128::from(timescale)) / 1_000_000_000;
            u64::try_from(t).unwrap_or(u64::MAX)
        };
        let writer = Self {
            config: config.clone(),
            video: entry.video_resolution().is_some(),
            entry,
            max_duration_ticks: ticks(limits.max_duration),
            max_step_ticks: ticks(limits.max_step).min(u64::from(u32::MAX)),
            limits,
            held: None,
            last_duration: None,
            samples: Vec::new(),
            payload: Vec::new(),
            pending_duration: 0,
            decode_time: 0,
            sequence: 0,
            totals: Totals {
                bytes: init.len() as u64,
                timescale,
                ..Totals::default()
            },
        };
        Ok((writer, init))
    }

    /// True when frames of `config` can go on in this file. False (another codec, profile,
    /// bit depth, parameter set, sequence header or channel count, or an invalid config)
    /// means: finish this file and start a new writer.
    ///
    /// A VP8 or VP9 key frame of another size is accepted: both codecs code the frame
    /// size in every key frame (RFC 6386 §9.1; VP9 bitstream §6.2 `frame_size()`), so a
    /// decoder follows a simulcast layer switch within the file, and the sample entry
    /// keeps the size the file started with. H.264 and AV1 keep the size in the
    /// parameter sets the sample entry carries, so a new size starts a new file.
    pub fn accepts(&self, config: &CodecConfig) -> bool {
        match (&self.config, config) {
            (CodecConfig::Vp8 { .. }, CodecConfig::Vp8 { width, height }) => {
                *width > 0 && *height > 0
            }
            (
                CodecConfig::Vp9 {
                    profile, bit_depth, ..
                },
                CodecConfig::Vp9 {
                    profile: p,
                    bit_depth: b,
                    width,
                    height,
                },
            ) => profile == p && bit_depth == b && *width > 0 && *height > 0,
            _ => entry::sample_entry(config).is_ok_and(|entry| entry == self.entry),
        }
    }

    /// Adds a frame (the [`Frame`] docs give its byte form per codec). Returns a fragment
    /// (`moof` + `mdat` bytes to append to the file) when the frame starts a new one.
    ///
    /// # Errors
    ///
    /// [`Mp4Error::EmptySample`], [`Mp4Error::SampleTooLarge`] (the frame is dropped, the
    /// writer goes on); [`Mp4Error::Encode`] (the pending fragment is dropped, the frame
    /// is kept).
    pub fn push(&mut self, frame: Frame) -> Result<Option<Vec<u8>>, Mp4Error> {
        if frame.data.is_empty() {
            return Err(Mp4Error::EmptySample);
        }
        if frame.data.len() > self.limits.max_bytes {
            return Err(Mp4Error::SampleTooLarge);
        }
        self.totals.first_timestamp.get_or_insert(frame.timestamp);
        let mut fragment = Ok(None);
        if let Some(previous) = self.held.take() {
            let duration = match frame.timestamp.checked_sub(previous.timestamp) {
                Some(step) if step > 0 && step <= self.max_step_ticks => step as u32,
                _ => {
                    self.totals.discontinuities += 1;
                    self.fallback_duration(&previous)
                }
            };
            self.append(previous, duration);
            if self.cuts_before(&frame) {
                fragment = self.fragment();
            }
        }
        self.held = Some(frame);
        fragment
    }

    /// Cuts a fragment of the pending samples now (the held newest frame stays). `None`
    /// when nothing is pending.
    ///
    /// # Errors
    ///
    /// [`Mp4Error::Encode`]: the pending samples are dropped, the timeline goes on.
    pub fn fragment(&mut self) -> Result<Option<Vec<u8>>, Mp4Error> {
        if self.samples.is_empty() {
            return Ok(None);
        }
        let samples = std::mem::take(&mut self.samples);
        let payload = std::mem::take(&mut self.payload);
        let duration = std::mem::take(&mut self.pending_duration);
        let base = self.decode_time;
        self.decode_time = base.saturating_add(duration);
        self.sequence = self.sequence.wrapping_add(1).max(1);

        let moof = |data_offset: i32| MoofBox {
            mfhd_box: MfhdBox {
                sequence_number: self.sequence,
            },
            traf_boxes: vec![TrafBox {
                tfhd_box: TfhdBox {
                    track_id: entry::TRACK_ID,
                    base_data_offset: None,
                    sample_description_index: None,
                    default_sample_duration: None,
                    default_sample_size: None,
                    default_sample_flags: None,
                    duration_is_empty: false,
                    default_base_is_moof: true,
                },
                tfdt_box: Some(TfdtBox {
                    version: 1,
                    base_media_decode_time: base,
                }),
                trun_boxes: vec![TrunBox {
                    data_offset: Some(data_offset),
                    first_sample_flags: None,
                    samples: samples.iter().map(trun_sample).collect(),
                }],
                unknown_boxes: Vec::new(),
            }],
            unknown_boxes: Vec::new(),
        };
        let mdat_header = BoxHeader {
            box_type: MdatBox::TYPE,
            box_size: BoxSize::with_payload_size(MdatBox::TYPE, payload.len() as u64),
        }
        .encode_to_vec()
        .map_err(Mp4Error::encode)?;
        // `trun.data_offset` counts from the start of the `moof` (default-base-is-moof,
        // ISO/IEC 14496-12 §8.8.7.1) to the first sample byte; its size does not depend on
        // its value, so one trial encoding gives the `moof` size.
        let moof_len = moof(0).encode_to_vec().map_err(Mp4Error::encode)?.len();
        let data_offset = i32::try_from(moof_len + mdat_header.len())
            .map_err(|_| Mp4Error::Encode("moof too large".into()))?;
        let moof = moof(data_offset)
            .encode_to_vec()
            .map_err(Mp4Error::encode)?;

        let mut out = Vec::with_capacity(moof.len() + mdat_header.len() + payload.len());
        out.extend_from_slice(&moof);
        out.extend_from_slice(&mdat_header);
        out.extend_from_slice(&payload);
        self.totals.bytes += out.len() as u64;
        self.totals.samples += samples.len() as u64;
        self.totals.fragments += 1;
        self.totals.duration = self.decode_time;
        Ok(Some(out))
    }

    /// Ends the file: the held frame becomes the last sample (with its Opus TOC duration,
    /// else the previous duration, else 1/30 s or 20 ms) and the last fragment is returned
    /// (`None` if nothing was pending). Frames pushed afterwards would continue the same
    /// timeline; a caller starts a new writer instead.
    ///
    /// # Errors
    ///
    /// [`Mp4Error::Encode`], as for [`fragment`](Self::fragment).
    pub fn finish(&mut self) -> Result<Option<Vec<u8>>, Mp4Error> {
        if let Some(last) = self.held.take() {
            let duration = self.fallback_duration(&last);
            self.append(last, duration);
        }
        self.fragment()
    }

    /// The totals so far (bytes returned, samples, duration; see [`Totals`]).
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Adds a frame with its duration to the pending fragment.
    fn append(&mut self, frame: Frame, duration: u32) {
        self.samples.push(PendingSample {
            // At most `MAX_FRAGMENT_BYTES`, checked in `push`.
            size: u32::try_from(frame.data.len()).unwrap_or(u32::MAX),
            duration,
            keyframe: frame.keyframe || !self.video,
        });
        self.payload.extend_from_slice(&frame.data);
        self.pending_duration = self.pending_duration.saturating_add(u64::from(duration));
        self.last_duration = Some(duration);
    }

    /// True when a fragment is cut before `next` (see the module docs).
    fn cuts_before(&self, next: &Frame) -> bool {
        !self.samples.is_empty()
            && ((self.video && next.keyframe)
                || self.pending_duration >= self.max_duration_ticks
                || self.payload.len().saturating_add(next.data.len()) > self.limits.max_bytes
                || self.samples.len() >= self.limits.max_samples)
    }

    /// A sample's duration when the next timestamp does not give it.
    fn fallback_duration(&self, frame: &Frame) -> u32 {
        let toc = match self.entry {
            SampleEntry::Opus(_) => bits::opus_packet_samples(&frame.data),
            _ => None,
        };
        let default = if self.video { 3000 } else { 960 };
        toc.or(self.last_duration).unwrap_or(default)
    }
}

/// A sample's `trun` entry: duration, size and flags (ISO/IEC 14496-12 §8.8.8; flags
/// §8.8.3.1: a sync sample "depends on no other", a non-sync one "depends on others" and
/// has `sample_is_non_sync_sample` set).
fn trun_sample(sample: &PendingSample) -> TrunSample {
    let flags = if sample.keyframe {
        SampleFlags::from_fields(0, 2, 0, 0, 0, false, 0)
    } else {
        SampleFlags::from_fields(0, 1, 0, 0, 0, true, 0)
    };
    TrunSample {
        duration: Some(sample.duration),
        size: Some(sample.size),
        flags: Some(flags),
        composition_time_offset: None,
    }
}

#[cfg(test)]
#[path = "mp4_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
pub(crate) mod probe_tests;
