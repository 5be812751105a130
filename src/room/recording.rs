//! The room's recordings: each one is a subscriber of the forwarder without an `Rtc`.
//!
//! A recording subscribes a participant id of its own to every published track it selects
//! (every track of the room, now and as they come, or those of some identities). It never
//! has a bandwidth estimate, so the forwarder gives it each track's top active simulcast
//! layer (a subscriber without an estimate gets the top of every ladder, `bwe::policy`).
//! The forwarder's packets for it (munged: one sequence number and timestamp space across
//! layer switches) go to one [`TrackRecorder`] per source track instead of a session; its
//! keyframe requests go to the publisher through the forwarder's throttle like a viewer's.
//!
//! A source track that ends (its publisher left or reconnected) finishes its files; the
//! publisher's new track gets new files, each with its own start time, so the files of one
//! recording stay alignable on the wall clock.
//!
//! Owns: which tracks each recording records, their recorders, the outputs not handed out.
//! Never: writes a file (the driver gets [`RecordOutput`]s), reads the clock, decodes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt};

use super::Room;
use crate::forwarder::{codec_kind, ForwardRtp};
use crate::ids::{ParticipantId, TrackRef};
use crate::record::track::{TrackOptions, TrackOutput, TrackRecorder};
use crate::record::Packet;

/// The most recordings one room runs at once; one more is refused with
/// [`RecordingError::TooMany`].
pub const MAX_RECORDINGS_PER_ROOM: usize = 4;

/// Which tracks a recording records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every published track of the room, now and as they come.
    All,
    /// The tracks of these identities, now and as they come.
    Identities(Vec<Arc<str>>),
}

impl Selection {
    fn takes(&self, identity: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Identities(ids) => ids.iter().any(|i| &**i == identity),
        }
    }
}

/// Why a recording could not be started or stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    /// The room already runs [`MAX_RECORDINGS_PER_ROOM`] recordings (the API answers 503).
    #[error("the room already runs {MAX_RECORDINGS_PER_ROOM} recordings")]
    TooMany,
    /// No recording of that id in this room (404).
    #[error("no such recording")]
    NotFound,
}

/// One published track as a recording names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTrack {
    /// The publisher's identity.
    pub identity: Arc<str>,
    /// The publisher's session.
    pub participant: ParticipantId,
    /// The publisher's m-line.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
}

/// One output of a recording's track recorder, for the driver to write.
#[derive(Debug)]
pub struct RecordOutput {
    /// The recording.
    pub recording: Arc<str>,
    /// The track.
    pub track: Arc<RecordedTrack>,
    /// What to do: start a file, append bytes, end a file (see [`TrackOutput`]).
    pub output: TrackOutput,
}

/// The recordings of one room.
#[derive(Default)]
pub(crate) struct Recordings {
    list: Vec<Recording>,
    /// Outputs not handed out yet; filled only by the room's inputs, drained by
    /// [`Room::poll_output`] after each.
    pub(super) out: VecDeque<RecordOutput>,
    next: u64,
}

struct Recording {
    id: Arc<str>,
    selection: Selection,
    /// The participant id it subscribes with.
    pid: ParticipantId,
    tracks: Vec<RecTrack>,
    next_mid: u64,
}

struct RecTrack {
    info: Arc<RecordedTrack>,
    source: TrackRef,
    /// The recording's own subscribed m-line.
    mid: Mid,
    /// Made at the first packet, when its codec is known; replaced when the codec changes.
    recorder: Option<(Codec, TrackRecorder)>,
    /// The last payload type seen, with its codec and channel count (looked up in the
    /// publisher's parameters only when the payload type changes).
    format: Option<(Pt, Codec, u8)>,
}

impl Recordings {
    pub(super) fn owns(&self, pid: ParticipantId) -> bool {
        self.list.iter().any(|r| r.pid == pid)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.list
            .iter()
            .flat_map(|r| &r.tracks)
            .filter_map(|t| t.recorder.as_ref().and_then(|(_, r)| r.poll_timeout()))
            .min()
    }

    /// The ids of the running recordings, oldest first.
    pub(super) fn ids(&self) -> Vec<Arc<str>> {
        self.list.iter().map(|r| Arc::clone(&r.id)).collect()
    }
}

/// End `rec`'s track and count what it dropped, by reason.
fn finish(rec: &mut TrackRecorder, now: Instant) {
    rec.finish(now);
    for (reason, n) in rec.stats().dropped.iter().filter(|(_, n)| *n > 0) {
        metrics::counter!(crate::metrics::names::RECORDING_DROPPED, "reason" => reason)
            .increment(n);
    }
}

/// Move what `track`'s recorder has into `out`; keyframe requests become the forwarder's.
fn drain(
    out: &mut VecDeque<RecordOutput>,
    recording: &Arc<str>,
    t: &mut RecTrack,
    mut keyframe: impl FnMut(Mid),
) {
    let Some((_, rec)) = t.recorder.as_mut() else {
        return;
    };
    while let Some(o) = rec.poll_output() {
        match o {
            TrackOutput::RequestKeyframe => keyframe(t.mid),
            output => out.push_back(RecordOutput {
                recording: Arc::clone(recording),
                track: Arc::clone(&t.info),
                output,
            }),
        }
    }
}

impl Room {
    /// Start recording `selection`; returns the recording's id. Tracks published later
    /// that the selection takes are recorded as they come.
    ///
    /// Errors: [`RecordingError::TooMany`] past [`MAX_RECORDINGS_PER_ROOM`].
    pub fn handle_start_recording(
        &mut self,
        now: Instant,
        selection: Selection,
    ) -> Result<Arc<str>, RecordingError> {
        if self.recordings.list.len() >= MAX_RECORDINGS_PER_ROOM {
            return Err(RecordingError::TooMany);
        }
        let pid = ParticipantId(self.next_id);
        self.next_id += 1;
        self.recordings.next += 1;
        let id: Arc<str> =
            format!("{:x}{:04x}", rand::random::<u64>(), self.recordings.next).into();
        self.recordings.list.push(Recording {
            id: Arc::clone(&id),
            selection,
            pid,
            tracks: Vec::new(),
            next_mid: 0,
        });
        self.sync_recordings(now);
        self.process(now);
        Ok(id)
    }

    /// Stop recording `id`: every track's last fragment and file end are handed out.
    ///
    /// Errors: [`RecordingError::NotFound`].
    pub fn handle_stop_recording(&mut self, now: Instant, id: &str) -> Result<(), RecordingError> {
        let i = self
            .recordings
            .list
            .iter()
            .position(|r| &*r.id == id)
            .ok_or(RecordingError::NotFound)?;
        let mut r = self.recordings.list.remove(i);
        for t in &mut r.tracks {
            if let Some((_, rec)) = t.recorder.as_mut() {
                finish(rec, now);
            }
            drain(&mut self.recordings.out, &r.id, t, |_| {});
        }
        self.forwarder.remove_participant(r.pid);
        self.process(now);
        Ok(())
    }

    /// The running recordings' ids.
    pub fn recording_ids(&self) -> Vec<Arc<str>> {
        self.recordings.ids()
    }

    /// Subscribe every recording to the published tracks it selects and does not record
    /// yet, and finish the tracks whose source is gone. Called after joins and leaves.
    pub(super) fn sync_recordings(&mut self, now: Instant) {
        if self.recordings.is_empty() {
            return;
        }
        let published = self.forwarder.published_tracks();
        let Room {
            recordings,
            forwarder,
            conference,
            commands,
            ..
        } = self;
        for r in &mut recordings.list {
            // Sources that are gone: finish their files, drop the subscription.
            let mut k = 0;
            while k < r.tracks.len() {
                if published.iter().any(|(t, _)| *t == r.tracks[k].source) {
                    k += 1;
                    continue;
                }
                let mut t = r.tracks.swap_remove(k);
                if let Some((_, rec)) = t.recorder.as_mut() {
                    finish(rec, now);
                }
                drain(&mut recordings.out, &r.id, &mut t, |_| {});
                forwarder.remove_subscribed(TrackRef {
                    participant: r.pid,
                    mid: t.mid,
                });
            }
            let mut added = false;
            for &(source, kind) in &published {
                if r.tracks.iter().any(|t| t.source == source) {
                    continue;
                }
                let Some(member) = conference.member(source.participant) else {
                    continue;
                };
                if !r.selection.takes(&member.identity) {
                    continue;
                }
                let mid = Mid::from(r.next_mid.to_string().as_str());
                r.next_mid += 1;
                let track = TrackRef {
                    participant: r.pid,
                    mid,
                };
                let key = forwarder.add_subscribed(track, kind, rand::random(), rand::random());
                // Payload types pass through unchanged: the recorder reads the codec off
                // the publisher's own negotiated parameters.
                let pt_map = forwarder
                    .published_params(source)
                    .map(|ps| ps.iter().map(|p| (p.pt(), p.pt())).collect())
                    .unwrap_or_default();
                forwarder.bind(now, key, source, pt_map, commands);
                r.tracks.push(RecTrack {
                    info: Arc::new(RecordedTrack {
                        identity: Arc::clone(&member.identity),
                        participant: source.participant,
                        mid: source.mid,
                        kind,
                    }),
                    source,
                    mid,
                    recorder: None,
                    format: None,
                });
                added = true;
            }
            if added {
                // No estimate ever comes: the bandwidth policy gives a subscriber without
                // one every track's top active layer (`bwe::policy`).
                forwarder.handle_connected(now, r.pid, commands);
            }
        }
    }

    /// One packet the forwarder routed to a recording (`f.subscriber` is one of theirs).
    pub(super) fn record_rtp(&mut self, now: Instant, f: ForwardRtp) {
        let Room {
            recordings,
            forwarder,
            commands,
            ..
        } = self;
        let Some(r) = recordings.list.iter_mut().find(|r| r.pid == f.subscriber) else {
            return;
        };
        let Some(t) = r.tracks.iter_mut().find(|t| t.mid == f.mid) else {
            return;
        };
        let (codec, channels) = match t.format {
            Some((pt, codec, channels)) if pt == f.pt => (codec, channels),
            _ => {
                let Some(params) = forwarder.published_params(t.source) else {
                    return;
                };
                let Some(p) = params.iter().find(|p| p.pt() == f.pt) else {
                    return;
                };
                let format = &p.spec().format;
                let stereo = format.stereo == Some(true) || format.sprop_stereo == Some(true);
                let channels = if stereo { 2 } else { 1 };
                t.format = Some((f.pt, p.spec().codec, channels));
                (p.spec().codec, channels)
            }
        };
        if t.recorder.as_ref().is_some_and(|(c, _)| *c != codec) {
            // The publisher switched codecs: this file ends, the next one starts.
            if let Some((_, rec)) = t.recorder.as_mut() {
                finish(rec, now);
            }
            drain(&mut recordings.out, &r.id, t, |_| {});
            t.recorder = None;
        }
        if t.recorder.is_none() {
            match TrackRecorder::new(codec_kind(codec), channels, TrackOptions::default()) {
                Ok(rec) => t.recorder = Some((codec, rec)),
                Err(_) => return,
            }
        }
        if let Some((_, rec)) = t.recorder.as_mut() {
            rec.handle_packet(
                now,
                Packet {
                    seq: f.seq,
                    timestamp: f.ts,
                    marker: f.marker,
                    payload: f.payload,
                },
            );
        }
        let pid = r.pid;
        drain(&mut recordings.out, &r.id, t, |mid| {
            forwarder.handle_keyframe_request(now, pid, mid, KeyframeRequestKind::Pli, commands);
        });
    }

    /// The recorders' timers (jitter buffer waits, keyframe request retries).
    pub(super) fn handle_recordings_timeout(&mut self, now: Instant) {
        let Room {
            recordings,
            forwarder,
            commands,
            ..
        } = self;
        for r in &mut recordings.list {
            let pid = r.pid;
            for t in &mut r.tracks {
                let Some((_, rec)) = t.recorder.as_mut() else {
                    continue;
                };
                if rec.poll_timeout().is_some_and(|at| now >= at) {
                    rec.handle_timeout(now);
                }
                drain(&mut recordings.out, &r.id, t, |mid| {
                    forwarder.handle_keyframe_request(
                        now,
                        pid,
                        mid,
                        KeyframeRequestKind::Pli,
                        commands,
                    );
                });
            }
        }
    }
}
