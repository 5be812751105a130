//! What a recording is, as the API lists it and as its `manifest.json` keeps it: one
//! entry per file, each with the wall-clock time of its first sample so that the files of
//! one recording (audio and video, participants, a publisher's reconnects) can be aligned
//! and mixed later.

use serde::Serialize;

/// A recording's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Recording the selected tracks, now and as they come.
    Active,
    /// Stopped (DELETE, or its room closed): the last fragments are being written.
    Stopping,
    /// Every file is complete.
    Finished,
    /// Writing failed (the disk budget was reached or a write failed); the files written
    /// so far are readable up to their last complete fragment.
    Failed,
}

/// One recording: `GET /api/rooms/{room}/recordings/{id}` and its `manifest.json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingInfo {
    /// The recording's id (hex).
    #[schema(example = "5f0c2a9d13b4e7f80001")]
    pub id: String,
    /// The room.
    pub room: String,
    /// Its state.
    pub state: RecordingState,
    /// The identities it records; absent: every participant of the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<String>>,
    /// When it started: RFC 3339, UTC, milliseconds.
    #[schema(example = "2026-12-06T10:00:00.000Z")]
    pub started_at: String,
    /// When it stopped; absent while active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Why it failed, when `state` is `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its folder, relative to `--record-dir`: `{room}/{id}`.
    pub path: String,
    /// Bytes written to all its files.
    pub bytes: u64,
    /// Its files, in the order they started.
    pub files: Vec<FileInfo>,
}

/// One MP4 file of a recording: one track of one publisher, from a key frame on.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// The file's name in the recording's folder.
    #[schema(example = "alice-p1-m0-video-0.mp4")]
    pub name: String,
    /// The publisher's identity.
    pub identity: String,
    /// The publisher's m-line (MID) the track came in on.
    pub mid: String,
    /// `audio` or `video`.
    pub kind: String,
    /// `vp8`, `vp9`, `h264`, `av1` or `opus`.
    pub codec: String,
    /// Video only: the width of the first key frame, pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
    /// Video only: the height of the first key frame, pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
    /// Wall-clock time of the file's first sample (file time 0): RFC 3339, UTC,
    /// milliseconds.
    pub started_at: String,
    /// The same in microseconds since the Unix epoch, for alignment arithmetic.
    pub start_unix_micros: u64,
    /// The RTP timestamp of the first sample, extended to 64 bits, in `clockRate` units.
    pub first_timestamp: u64,
    /// The RTP clock rate: 90000 for video, 48000 for Opus.
    pub clock_rate: u32,
    /// Bytes written.
    pub bytes: u64,
    /// Samples (frames) written.
    pub samples: u64,
    /// Seconds of media (the sum of the samples' durations); known once complete.
    pub duration_seconds: f64,
    /// `true` once the file ended cleanly (its last fragment written).
    pub complete: bool,
}
