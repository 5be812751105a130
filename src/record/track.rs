//! The recorder of one track: its RTP packets in, MP4 file bytes and key frame requests
//! out, sans-IO.
//!
//! ```text
//! handle_packet ─► JitterBuffer ─► Depacketizer ─► Mp4Writer ─► poll_output:
//!                  (reorder, wait    (frames, key     (init,       FileStart, Bytes, FileEnd,
//!                   max_wait for      frame            fragments)   RequestKeyframe
//!                   NACK repair)      discipline)
//! ```
//!
//! Files: a file starts at the first key frame whose [`CodecConfig`] is known, and ends at
//! [`TrackRecorder::finish`] or when a key frame brings a configuration the open file's
//! sample entry cannot describe ([`Mp4Writer::accepts`]: a publisher's new SPS or AV1
//! sequence header, another codec; a VP8 or VP9 size change after a simulcast layer
//! switch stays in the file, whose key frames code their size). Then the open file's last
//! fragment and its [`TrackOutput::FileEnd`] come first, and a new file index starts. The
//! caller names the files, writes the bytes in order and keeps the manifest.
//!
//! Discontinuities need nothing special: a forwarder's layer switch keeps one munged
//! sequence and timestamp space; a publisher that reconnects makes the sequence continue
//! or jump (the jitter buffer resynchronises after a jump past its window, reporting a
//! gap) and the timestamps jump (the writer takes a jump as a discontinuity, see
//! [`super::mp4`]).
//!
//! Key frames: while the depacketizer drops frames for want of a key frame (at the start
//! in mid-stream, after a gap that broke a frame, after a malformed frame), the recorder
//! asks for one with [`TrackOutput::RequestKeyframe`], for the room to send a PLI (RFC 4585
//! §6.3.1). It asks when such a frame is dropped, at most once per
//! [`TrackOptions::keyframe_retry`]; it repeats only while frames keep being dropped, so a
//! paused track costs no PLIs. A stream that starts with a key frame asks for none. Audio
//! never asks: every Opus packet decodes on its own, a gap is only counted.
//!
//! Owns: the per-track pipeline, the open file, the output queue, the counters.
//!
//! Never: reads the clock (`now` is passed in; an earlier `now` than the last counts as
//! the last), writes a file, panics on any packet or call sequence.
//!
//! # Memory bound
//!
//! Every stage is bounded: the jitter buffer holds at most [`TrackOptions::max_packets`]
//! packets, the depacketizer one frame of at most 4 MiB, the writer one fragment (see
//! [`FragmentLimits`]). The output queue is filled lazily, like str0m's `Rtc`: each
//! `handle_*` call and each [`TrackRecorder::poll_output`] on an empty queue move packets
//! through the pipeline only while the queue holds fewer than [`MAX_QUEUED`] outputs and
//! fewer bytes than [`FragmentLimits::max_bytes`]; one step may pass that by what one packet
//! ends (two frames: at most four fragments, two init segments, two file ends, one request).
//! A caller that stops polling therefore holds at most that queue and a full jitter buffer;
//! further packets are refused and counted (`full`). Drain [`TrackRecorder::poll_output`]
//! until `None` after every `handle_*` call and [`TrackRecorder::finish`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::depacketize::{Depacketizer, DropReason, NewError, Output};
use super::jitter::{JitterBuffer, Out};
use super::mp4::{FragmentLimits, Mp4Writer, Totals};
use super::{CodecConfig, Frame, Packet};
use crate::codec::CodecKind;

/// Default [`TrackOptions::max_wait`]: 500 ms. The ingress (str0m 0.25) NACKs a hole
/// within 33 ms of seeing the packet after it (`NACK_MIN_INTERVAL`), the retransmission
/// arrives one publisher RTT later, and an unanswered NACK is repeated every RTT + 5 ms up
/// to 5 times (`register_nack.rs`). 500 ms covers the first repair up to a 450 ms RTT and a
/// second attempt up to about 230 ms. A recording is not watched live, so the wait costs
/// only the packets it holds (well under [`DEFAULT_MAX_PACKETS`] at a few Mbit/s).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(500);

/// Default [`TrackOptions::max_packets`]: 1024 packets, about 1.2 MB of 1200-byte
/// payloads; 4 s of a 2.5 Mbit/s video, so the 500 ms wait is never cut short below about
/// 16 Mbit/s (a full buffer gives up on its head hole at once).
pub const DEFAULT_MAX_PACKETS: usize = 1024;

/// Default [`TrackOptions::keyframe_retry`]: 1 s, a PLI's round trip plus an encoder's key
/// frame with room to spare, and libwebrtc's own bound on repeated key frame requests.
pub const DEFAULT_KEYFRAME_RETRY: Duration = Duration::from_secs(1);

/// Outputs after which the pipeline waits for the caller to poll (see the module docs).
pub const MAX_QUEUED: usize = 64;

/// The labels of [`DropCounts`], in its order. Per packet: `too_old`, `duplicate`, `full`
/// (the jitter buffer's [`super::jitter::PushError`]) and `finished` (after
/// [`TrackRecorder::finish`]). Per frame: the depacketizer's [`DropReason`] labels,
/// `empty_sample`, `sample_too_large`, `invalid_config` (the writer's
/// [`super::mp4::Mp4Error`] labels; `invalid_config` counts a config no file could be
/// started for) and `no_file` (a frame with no open file, after an `invalid_config`). Per
/// fragment: `encode`. `other` for a label not listed.
pub const DROP_LABELS: [&str; 19] = [
    "malformed",
    "unsupported",
    "too_large",
    "loss",
    "waiting_for_keyframe",
    "missing_config",
    "after_frame_end",
    "incomplete",
    "empty",
    "too_old",
    "duplicate",
    "full",
    "finished",
    "empty_sample",
    "sample_too_large",
    "invalid_config",
    "encode",
    "no_file",
    "other",
];

/// How a [`TrackRecorder`] waits, buffers and cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackOptions {
    /// How long a missing packet is waited for (NACK repair) once a later one arrived,
    /// before it is given up on as a gap. Default [`DEFAULT_MAX_WAIT`].
    pub max_wait: Duration,
    /// The most packets the jitter buffer holds (at least 1); also its reorder window, in
    /// sequence numbers, past which a packet resynchronises it. Default
    /// [`DEFAULT_MAX_PACKETS`].
    pub max_packets: usize,
    /// When fragments are cut; also bounds the queued bytes. Default
    /// [`FragmentLimits::default`].
    pub limits: FragmentLimits,
    /// The least time between two [`TrackOutput::RequestKeyframe`]. Default
    /// [`DEFAULT_KEYFRAME_RETRY`].
    pub keyframe_retry: Duration,
}

impl Default for TrackOptions {
    fn default() -> Self {
        Self {
            max_wait: DEFAULT_MAX_WAIT,
            max_packets: DEFAULT_MAX_PACKETS,
            limits: FragmentLimits::default(),
            keyframe_retry: DEFAULT_KEYFRAME_RETRY,
        }
    }
}

/// What the caller does next, from [`TrackRecorder::poll_output`]. For each file index, in
/// order: one `FileStart`, its `Bytes`, one `FileEnd`; files never overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackOutput {
    /// A new file begins with these bytes (`ftyp` + `moov`). Indices count from 0.
    FileStart {
        /// The file's index.
        index: u32,
        /// The configuration of its first frame, which its sample entry describes; later
        /// key frames may differ where [`Mp4Writer::accepts`] allows (a VP8/VP9 size).
        config: CodecConfig,
        /// The init segment: the file's first bytes.
        init: Vec<u8>,
        /// The extended RTP timestamp of its first frame (file time 0), in the codec's
        /// clock rate (90 kHz video, 48 kHz Opus).
        first_timestamp: u64,
        /// When its first frame went through the pipeline: the arrival of the packet
        /// that completed it, later by up to [`TrackOptions::max_wait`] when it waited for
        /// a repair (or until the next poll, for a caller that fell behind). The caller
        /// maps it to wall-clock time for the manifest.
        started_at: Instant,
    },
    /// A fragment (`moof` + `mdat`) to append to file `index`.
    Bytes {
        /// The file's index.
        index: u32,
        /// The fragment.
        bytes: Vec<u8>,
    },
    /// File `index` is complete (after its last `Bytes`).
    FileEnd {
        /// The file's index.
        index: u32,
        /// Its totals: bytes, samples, duration, first timestamp, discontinuities.
        totals: Totals,
        /// As in its `FileStart`.
        started_at: Instant,
    },
    /// The recorder needs a key frame: send the publisher a PLI (RFC 4585 §6.3.1).
    RequestKeyframe,
}

/// Dropped packets, frames and fragments by label (see [`DROP_LABELS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    counts: [u64; DROP_LABELS.len()],
}

impl DropCounts {
    /// The count for `label` (0 for a label not in [`DROP_LABELS`]).
    pub fn get(&self, label: &str) -> u64 {
        DROP_LABELS
            .iter()
            .position(|&l| l == label)
            .and_then(|i| self.counts.get(i).copied())
            .unwrap_or(0)
    }

    /// Every label with its count, in [`DROP_LABELS`] order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DROP_LABELS.iter().copied().zip(self.counts.iter().copied())
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0, |sum, &n| sum.saturating_add(n))
    }

    fn add(&mut self, label: &str) {
        let other = DROP_LABELS.len() - 1;
        let i = DROP_LABELS
            .iter()
            .position(|&l| l == label)
            .unwrap_or(other);
        if let Some(count) = self.counts.get_mut(i) {
            *count = count.saturating_add(1);
        }
    }
}

/// Counters of one track, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackStats {
    /// Packets handed to [`TrackRecorder::handle_packet`].
    pub packets: u64,
    /// Frames given to a file's writer.
    pub frames: u64,
    /// Bytes handed out: init segments and fragments.
    pub bytes_written: u64,
    /// What was dropped, and why.
    pub dropped: DropCounts,
    /// Holes the jitter buffer gave up on.
    pub gaps: u64,
    /// Sequence numbers in those holes.
    pub lost_packets: u64,
    /// [`TrackOutput::RequestKeyframe`]s output.
    pub keyframe_requests: u64,
    /// Files started.
    pub files: u64,
}

/// The file being written.
#[derive(Debug)]
struct OpenFile {
    index: u32,
    writer: Mp4Writer,
    started_at: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Recording,
    /// [`TrackRecorder::finish`] was called; the pipeline is being flushed.
    Finishing,
    Finished,
}

/// The recorder of one track (see the module docs).
///
/// Use: [`handle_packet`](Self::handle_packet) for each RTP packet of the track as the
/// forwarder hands it over (munged sequence numbers), [`handle_timeout`](Self::handle_timeout)
/// at [`poll_timeout`](Self::poll_timeout), [`finish`](Self::finish) at the end; after each,
/// [`poll_output`](Self::poll_output) until `None`.
#[derive(Debug)]
pub struct TrackRecorder {
    kind: CodecKind,
    options: TrackOptions,
    jitter: JitterBuffer,
    depacketizer: Depacketizer,
    /// A configuration announced by the depacketizer, for the frame that follows it.
    pending_config: Option<CodecConfig>,
    file: Option<OpenFile>,
    next_index: u32,
    queue: VecDeque<TrackOutput>,
    queued_bytes: usize,
    /// The latest `now` seen; `None` before the first call.
    now: Option<Instant>,
    /// A frame was dropped for want of a key frame since the last request.
    want_keyframe: bool,
    last_request: Option<Instant>,
    state: State,
    stats: TrackStats,
}

impl TrackRecorder {
    /// A recorder for a track of `kind` (VP8, VP9, H.264, AV1 or Opus); `channels` is
    /// Opus's channel count, 1 or 2 (from the SDP, RFC 7587 §7), ignored for video.
    ///
    /// # Errors
    ///
    /// [`NewError`] for another codec or an Opus channel count other than 1 or 2.
    pub fn new(kind: CodecKind, channels: u8, options: TrackOptions) -> Result<Self, NewError> {
        Ok(Self {
            kind,
            options,
            jitter: JitterBuffer::new(options.max_wait, options.max_packets),
            depacketizer: Depacketizer::new(kind, channels)?,
            pending_config: None,
            file: None,
            next_index: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            now: None,
            want_keyframe: false,
            last_request: None,
            state: State::Recording,
            stats: TrackStats::default(),
        })
    }

    /// The codec this recorder was made for.
    pub fn kind(&self) -> CodecKind {
        self.kind
    }

    /// A packet arrived at `now`. Refused packets (too old, duplicate, jitter buffer full,
    /// after [`finish`](Self::finish)) are counted in [`TrackStats::dropped`].
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) {
        let now = self.advance(now);
        self.stats.packets = self.stats.packets.saturating_add(1);
        if self.state != State::Recording {
            self.stats.dropped.add("finished");
            return;
        }
        if let Err(error) = self.jitter.push(now, packet) {
            self.stats.dropped.add(error.as_str());
        }
        self.drive();
    }

    /// Time passed: gives up on holes waited for long enough, repeats a key frame request.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.drive();
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the jitter buffer's
    /// deadline (possibly at or before the last `now`, meaning at once) or the next key
    /// frame request's; `None` when neither is due or after [`finish`](Self::finish).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state != State::Recording {
            return None;
        }
        let retry = (self.want_keyframe && self.depacketizer.needs_keyframe())
            .then(|| self.last_request?.checked_add(self.options.keyframe_retry))
            .flatten();
        match (self.jitter.poll_timeout(), retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The end of the track: every buffered packet is released (holes given up on), a
    /// frame still without its marker packet is dropped (counted as `loss`: its tail may be
    /// missing), the open file's last fragment and its [`TrackOutput::FileEnd`] follow.
    /// Later packets are refused. Idempotent.
    pub fn finish(&mut self, now: Instant) {
        self.advance(now);
        if self.state == State::Recording {
            self.state = State::Finishing;
        }
        self.drive();
    }

    /// True once [`finish`](Self::finish) completed and every output was polled.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished && self.queue.is_empty()
    }

    /// The next output, oldest first; `None` when there is nothing more until the next
    /// `handle_*` call (see the module docs on the queue's bound).
    pub fn poll_output(&mut self) -> Option<TrackOutput> {
        if self.queue.is_empty() {
            self.drive();
        }
        let output = self.queue.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(output_bytes(&output));
        Some(output)
    }

    /// The counters so far.
    pub fn stats(&self) -> TrackStats {
        self.stats
    }

    /// Outputs waiting to be polled.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Packets held by the jitter buffer (at most [`TrackOptions::max_packets`]).
    pub fn buffered_packets(&self) -> usize {
        self.jitter.len()
    }

    /// Records `now` if it is later than the last one, and returns the latest.
    fn advance(&mut self, now: Instant) -> Instant {
        let latest = self.now.map_or(now, |last| last.max(now));
        self.now = Some(latest);
        latest
    }

    /// Moves packets through the pipeline while the queue has room (see the module docs).
    fn drive(&mut self) {
        let Some(now) = self.now else {
            return;
        };
        let max_bytes = self.options.limits.max_bytes.clamp(1, 1 << 30);
        while self.queue.len() < MAX_QUEUED && self.queued_bytes < max_bytes && self.step(now) {}
        self.maybe_request_keyframe(now);
    }

    /// Releases one jitter buffer output through the pipeline; false when there was none.
    fn step(&mut self, now: Instant) -> bool {
        let released = match self.state {
            State::Recording => self.jitter.pop(now),
            State::Finishing => self.jitter.flush(),
            State::Finished => return false,
        };
        match released {
            Some(Out::Packet(packet)) => {
                for output in self.depacketizer.push(&packet) {
                    self.on_output(now, output);
                }
            }
            Some(Out::Gap { lost }) => {
                self.stats.gaps = self.stats.gaps.saturating_add(1);
                self.stats.lost_packets = self.stats.lost_packets.saturating_add(lost);
                self.depacketizer.lost();
            }
            None if self.state == State::Finishing => {
                // A frame still in progress never got its marker: its last packets may be
                // missing, so it is dropped (`loss`) rather than written truncated.
                self.depacketizer.lost();
                for output in self.depacketizer.flush() {
                    self.on_output(now, output);
                }
                self.close_file();
                self.pending_config = None;
                self.want_keyframe = false;
                self.state = State::Finished;
            }
            None => return false,
        }
        self.maybe_request_keyframe(now);
        true
    }

    fn on_output(&mut self, now: Instant, output: Output) {
        match output {
            Output::Config(config) => self.pending_config = Some(config),
            Output::Frame(frame) => self.record(now, frame),
            Output::Dropped(reason) => {
                self.stats.dropped.add(reason.as_str());
                if reason != DropReason::Empty {
                    self.want_keyframe = true;
                }
            }
        }
    }

    /// Writes a frame to the open file, first switching files when the frame brings a
    /// configuration the open file cannot take.
    fn record(&mut self, now: Instant, frame: Frame) {
        if let Some(config) = self.pending_config.take() {
            if !self
                .file
                .as_ref()
                .is_some_and(|f| f.writer.accepts(&config))
            {
                self.close_file();
                self.open_file(now, config, frame.timestamp);
            }
        }
        let Some(file) = &mut self.file else {
            self.stats.dropped.add("no_file");
            return;
        };
        let index = file.index;
        match file.writer.push(frame) {
            Ok(fragment) => {
                self.stats.frames = self.stats.frames.saturating_add(1);
                if let Some(bytes) = fragment {
                    self.emit(TrackOutput::Bytes { index, bytes });
                }
            }
            Err(error) => self.stats.dropped.add(error.as_str()),
        }
    }

    fn open_file(&mut self, now: Instant, config: CodecConfig, first_timestamp: u64) {
        let (writer, init) = match Mp4Writer::new(&config, self.options.limits) {
            Ok(made) => made,
            Err(error) => {
                self.stats.dropped.add(error.as_str());
                return;
            }
        };
        let index = self.next_index;
        self.next_index = self.next_index.wrapping_add(1);
        self.stats.files = self.stats.files.saturating_add(1);
        self.file = Some(OpenFile {
            index,
            writer,
            started_at: now,
        });
        self.emit(TrackOutput::FileStart {
            index,
            config,
            init,
            first_timestamp,
            started_at: now,
        });
    }

    /// Ends the open file, if any: its last fragment, then its end.
    fn close_file(&mut self) {
        let Some(mut file) = self.file.take() else {
            return;
        };
        let index = file.index;
        match file.writer.finish() {
            Ok(Some(bytes)) => self.emit(TrackOutput::Bytes { index, bytes }),
            Ok(None) => {}
            Err(error) => self.stats.dropped.add(error.as_str()),
        }
        self.emit(TrackOutput::FileEnd {
            index,
            totals: file.writer.totals(),
            started_at: file.started_at,
        });
    }

    /// Requests a key frame when a frame was dropped for want of one, the depacketizer
    /// still waits, and the last request is `keyframe_retry` old.
    fn maybe_request_keyframe(&mut self, now: Instant) {
        if !self.depacketizer.needs_keyframe() || self.state != State::Recording {
            self.want_keyframe = false;
            return;
        }
        let too_soon = self.last_request.is_some_and(|last| {
            last.checked_add(self.options.keyframe_retry)
                .is_none_or(|due| now < due)
        });
        if !self.want_keyframe || too_soon {
            return;
        }
        self.want_keyframe = false;
        self.last_request = Some(now);
        self.stats.keyframe_requests = self.stats.keyframe_requests.saturating_add(1);
        self.queue.push_back(TrackOutput::RequestKeyframe);
    }

    fn emit(&mut self, output: TrackOutput) {
        let bytes = output_bytes(&output);
        self.stats.bytes_written = self.stats.bytes_written.saturating_add(bytes as u64);
        self.queued_bytes = self.queued_bytes.saturating_add(bytes);
        self.queue.push_back(output);
    }
}

/// The file bytes an output carries.
fn output_bytes(output: &TrackOutput) -> usize {
    match output {
        TrackOutput::FileStart { init, .. } => init.len(),
        TrackOutput::Bytes { bytes, .. } => bytes.len(),
        TrackOutput::FileEnd { .. } | TrackOutput::RequestKeyframe => 0,
    }
}

#[cfg(test)]
#[path = "track_tests.rs"]
mod tests;
