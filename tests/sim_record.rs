//! Recording in deterministic virtual time: a room records a simulcast publisher (VP8 on
//! three RIDs, and Opus) for 30 s while the publisher's uplink loses 5 % of its packets
//! (the ingress repairs them by NACK and RTX), its top layer stops from 8 s to 13 s (the
//! recording switches to the middle layer and back, in the same file) and, at 20 s, the
//! publisher reconnects with a new session.
//!
//! Checks, per track recorder: each file starts (`FileStart`, with the top layer's size
//! for video), grows by fragments and ends (`FileEnd`) in order; the first session's files
//! end when it leaves and the new session's start after it; the frames in each file match
//! what the publisher sent over the file's time (video at 30 fps, audio at 50 packets per
//! second, with the repairs, so at most a few frames are missing), with no timestamp going
//! back (no discontinuity) and nothing dropped for loss; and a recording stopped by the
//! room API ends every file; each file, read back with the kit's MP4 reader, starts with a
//! key frame and its decode times run on without a gap or a step back. A second test
//! stops the publisher's top simulcast layer for 5 s and brings it back: the recording
//! switches layer, not file. Prints the figures (run with `--nocapture`).

mod sim;

use std::collections::BTreeMap;
use std::time::Duration;

use sim::link::LinkConfig;
use sim::media::SIMULCAST;
use sim::{secs, Failures, Sim};
use str0m::media::MediaKind;
use switchboard::record::mp4::Totals;
use switchboard::record::track::TrackOutput;
use switchboard::record::CodecConfig;
use switchboard::room::{RecordingError, Selection};
use switchboard_kit::mp4::{read_file, ReadFile};

const S: Duration = Duration::from_secs(1);
const DELAY: Duration = Duration::from_millis(20);
const LOSS: f64 = 0.05;
const TOP_STOPS_AT: Duration = Duration::from_secs(8);
const TOP_RETURNS_AT: Duration = Duration::from_secs(13);
/// Frames a file may miss for the two layer switches (each waits for a key frame of the
/// layer it switches to, after the forwarder noticed the top layer gone).
const SWITCH_FRAMES: f64 = 45.0;
const RECONNECT_AT: Duration = Duration::from_secs(20);
const END: Duration = Duration::from_secs(30);

/// One file as the room's outputs describe it.
#[derive(Debug, Default)]
struct File {
    kind: Option<MediaKind>,
    config: Option<CodecConfig>,
    participant: u64,
    fragments: usize,
    bytes: usize,
    /// Its bytes: the init segment and every fragment.
    data: Vec<u8>,
    totals: Option<Totals>,
    /// Outputs out of order for this file (bytes before the start, after the end).
    disorder: usize,
}

/// The files of the recording, by (publisher session, its m-line, file index).
fn files(sim: &Sim) -> BTreeMap<(u64, String, u32), File> {
    let mut files: BTreeMap<(u64, String, u32), File> = BTreeMap::new();
    for r in &sim.records {
        let t = &r.track;
        let index = match &r.output {
            TrackOutput::FileStart { index, .. }
            | TrackOutput::Bytes { index, .. }
            | TrackOutput::FileEnd { index, .. } => *index,
            TrackOutput::RequestKeyframe => continue,
        };
        let f = files
            .entry((t.participant.0, t.mid.to_string(), index))
            .or_default();
        match &r.output {
            TrackOutput::FileStart { config, init, .. } => {
                if f.config.is_some() {
                    f.disorder += 1;
                }
                f.kind = Some(t.kind);
                f.participant = t.participant.0;
                f.config = Some(config.clone());
                f.bytes += init.len();
                f.data.extend_from_slice(init);
            }
            TrackOutput::Bytes { bytes, .. } => {
                if f.config.is_none() || f.totals.is_some() {
                    f.disorder += 1;
                }
                f.fragments += 1;
                f.bytes += bytes.len();
                f.data.extend_from_slice(bytes);
            }
            TrackOutput::FileEnd { totals, .. } => {
                if f.config.is_none() || f.totals.is_some() {
                    f.disorder += 1;
                }
                f.totals = Some(*totals);
            }
            TrackOutput::RequestKeyframe => {}
        }
    }
    files
}

/// Reads `file` back and checks what every file must be: its first sample a key frame
/// (a sync sample), each fragment's decode time where the one before it ended, and as
/// many samples as its totals say.
fn check_readable(f: &mut Failures, name: &str, file: &File) -> ReadFile {
    let read = read_file(&file.data);
    let totals = file.totals.unwrap_or_default();
    f.check(
        read.samples().next().is_some_and(|s| s.sync),
        format!("{name}: does not start with a key frame"),
    );
    f.check(
        read.samples().count() as u64 == totals.samples,
        format!(
            "{name}: {} samples read, {} written",
            read.samples().count(),
            totals.samples
        ),
    );
    let mut next = read.fragments.first().map_or(0, |x| x.base_decode_time);
    for frag in &read.fragments {
        f.check(
            frag.base_decode_time == next,
            format!(
                "{name}: fragment {} at {}, want {next}",
                frag.sequence, frag.base_decode_time
            ),
        );
        next = frag.base_decode_time
            + frag
                .samples
                .iter()
                .map(|s| u64::from(s.duration))
                .sum::<u64>();
        f.check(
            frag.samples.iter().all(|s| s.duration > 0),
            format!(
                "{name}: a sample of zero duration in fragment {}",
                frag.sequence
            ),
        );
    }
    read
}

/// The size a VP8 key frame codes (RFC 6386 §9.1: after the 3-byte tag and the start code).
fn vp8_key_size(frame: &[u8]) -> Option<(u16, u16)> {
    let d = frame.get(..10)?;
    let w = u16::from_le_bytes([d[6], d[7]]) & 0x3fff;
    let h = u16::from_le_bytes([d[8], d[9]]) & 0x3fff;
    (d[3..6] == [0x9d, 0x01, 0x2a]).then_some((w, h))
}

/// The sizes of a VP8 file's key frames in order, repeats folded.
fn key_sizes(read: &ReadFile) -> Vec<(u16, u16)> {
    let mut sizes: Vec<(u16, u16)> = Vec::new();
    for s in read.samples().filter(|s| s.sync) {
        if let Some(size) = vp8_key_size(&s.data) {
            if sizes.last() != Some(&size) {
                sizes.push(size);
            }
        }
    }
    sizes
}

#[test]
fn a_recording_survives_loss_a_layer_switch_and_a_publisher_reconnect() {
    let mut sim = Sim::new();
    let lossy = LinkConfig::ideal(DELAY).with_loss(LOSS, 7);
    let first = sim.join_publisher("alice", &SIMULCAST, lossy, LinkConfig::ideal(DELAY));
    sim.run_until_connected(first, sim.at(2 * S));
    let id = sim
        .room
        .handle_start_recording(sim.now, Selection::All)
        .expect("a recording starts");
    assert_eq!(sim.room.recording_ids(), vec![id.clone()]);
    sim.run_until(sim.at(TOP_STOPS_AT));
    assert!(
        sim.peers[first].set_layer_paused(2, true),
        "the top layer stops"
    );
    sim.run_until(sim.at(TOP_RETURNS_AT));
    assert!(
        sim.peers[first].set_layer_paused(2, false),
        "and comes back"
    );
    sim.run_until(sim.at(RECONNECT_AT));
    sim.leave(first);
    let second = sim.join_publisher("alice", &SIMULCAST, lossy, LinkConfig::ideal(DELAY));
    sim.run_until_connected(second, sim.at(RECONNECT_AT + 2 * S));
    sim.run_until(sim.at(END));
    let stopped_at = sim.now;
    sim.room
        .handle_stop_recording(sim.now, &id)
        .expect("the recording stops");
    sim.pump();
    assert_eq!(
        sim.room.handle_stop_recording(sim.now, &id),
        Err(RecordingError::NotFound)
    );
    assert!(sim.room.recording_ids().is_empty());

    let files = files(&sim);
    let first_session = files.values().map(|x| x.participant).min();
    let mut f = Failures::default();
    for ((session, mid, index), file) in &files {
        // The first session's video went through the two layer switches.
        let switched = Some(*session) == first_session && file.kind == Some(MediaKind::Video);
        let totals = file.totals.unwrap_or_default();
        let secs_long = totals.duration as f64 / f64::from(totals.timescale.max(1));
        let per_second = match file.kind {
            Some(MediaKind::Video) => 30.0,
            _ => 50.0,
        };
        println!(
            "session {session} mid {mid} file {index}: {:?} {:?}, {} fragments, {} bytes, \
             {} samples over {secs_long:.2} s ({:.1}/s), {} discontinuities",
            file.kind,
            file.config,
            file.fragments,
            file.bytes,
            totals.samples,
            totals.samples as f64 / secs_long.max(0.001),
            totals.discontinuities,
        );
        f.check(
            file.disorder == 0,
            format!("{session}/{mid}/{index}: outputs out of order"),
        );
        let read = check_readable(&mut f, &format!("{session}/{mid}/{index}"), file);
        f.check(
            file.totals.is_some(),
            format!("{session}/{mid}/{index}: never ended"),
        );
        f.check(
            totals.discontinuities == 0,
            format!("{session}/{mid}/{index}: timestamps jumped"),
        );
        let expected = secs_long * per_second;
        // Video is repaired (NACK and RTX); audio is not (str0m sends Opus without
        // retransmission, as browsers do), so its lost packets are missing samples.
        let kept = match file.kind {
            Some(MediaKind::Video) => 0.97,
            _ => 1.0 - 2.0 * LOSS,
        };
        let allowance = if switched { SWITCH_FRAMES } else { 0.0 };
        f.check(
            totals.samples as f64 >= expected * kept - allowance
                && totals.samples as f64 <= expected + 2.0,
            format!(
                "{session}/{mid}/{index}: {} samples over {secs_long:.2} s, want about {expected:.0}",
                totals.samples
            ),
        );
        if switched {
            // The key frames' sizes, repeats folded: the top layer, the middle one while
            // the top is away, the top again; all in this one file.
            let sizes = key_sizes(&read);
            println!("session {session} key frame sizes {sizes:?}");
            let (top, middle) = (SIMULCAST[2].size, SIMULCAST[1].size);
            f.check(
                sizes.ends_with(&[top, middle, top]),
                format!("{session}: key frame sizes {sizes:?}, want the top, {middle:?}, the top"),
            );
            f.check(
                matches!(file.config, Some(CodecConfig::Vp8 { .. })),
                format!("{session}/{mid}/{index}: {:?}, want VP8", file.config),
            );
        } else if file.kind == Some(MediaKind::Video) {
            // The top layer's rate: the recorder gets the top active layer (a layer
            // switch at the start, while the publisher's layers come up, stays in the
            // file: VP8 key frames code their size).
            let bps = file.bytes as f64 * 8.0 / secs_long.max(0.001);
            let top = SIMULCAST[2].delta_bps(30) as f64;
            f.check(
                bps > top * 0.9 && bps < top * 1.5,
                format!("{session}/{mid}/{index}: {bps:.0} bit/s, want the top layer's {top:.0}"),
            );
            f.check(
                matches!(file.config, Some(CodecConfig::Vp8 { .. })),
                format!("{session}/{mid}/{index}: {:?}, want VP8", file.config),
            );
        }
    }
    // Each session: one audio file and one video file, the first ending at the
    // reconnect and the second going on to the stop.
    let sessions: Vec<u64> = {
        let mut s: Vec<u64> = files.values().map(|f| f.participant).collect();
        s.dedup();
        s
    };
    f.check(
        sessions.len() == 2,
        format!("files of {} sessions, want 2", sessions.len()),
    );
    for s in &sessions {
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let n = files
                .values()
                .filter(|x| x.participant == *s && x.kind == Some(kind))
                .count();
            f.check(n == 1, format!("session {s}: {n} {kind:?} files, want 1"));
        }
    }
    let covered: f64 = files
        .values()
        .filter(|x| x.kind == Some(MediaKind::Video))
        .filter_map(|x| x.totals.as_ref())
        .map(|t| t.duration as f64 / f64::from(t.timescale.max(1)))
        .sum();
    println!(
        "video recorded {covered:.2} s of {} (publisher away for its reconnect)",
        secs(stopped_at.saturating_duration_since(sim.t0))
    );
    f.check(
        covered > 25.0,
        format!("video covers {covered:.2} s, want > 25 s"),
    );
    f.finish();
}

#[test]
fn a_room_runs_a_bounded_number_of_recordings() {
    let mut sim = Sim::new();
    let p = sim.join_publisher(
        "bob",
        &SIMULCAST,
        LinkConfig::ideal(DELAY),
        LinkConfig::ideal(DELAY),
    );
    sim.run_until_connected(p, sim.at(2 * S));
    let mut ids = Vec::new();
    for _ in 0..switchboard::room::MAX_RECORDINGS_PER_ROOM {
        ids.push(
            sim.room
                .handle_start_recording(sim.now, Selection::All)
                .expect("within the limit"),
        );
    }
    assert_eq!(
        sim.room.handle_start_recording(sim.now, Selection::All),
        Err(RecordingError::TooMany)
    );
    // A selection of another identity records nothing of bob's.
    let stopped = ids.remove(0);
    sim.room.handle_stop_recording(sim.now, &stopped).unwrap();
    let carol = sim
        .room
        .handle_start_recording(sim.now, Selection::Identities(vec!["carol".into()]))
        .expect("a slot is free again");
    sim.run_until(sim.at(4 * S));
    for id in &ids {
        sim.room.handle_stop_recording(sim.now, id).unwrap();
    }
    sim.room.handle_stop_recording(sim.now, &carol).unwrap();
    sim.pump();
    let by_recording = |id: &str| sim.records.iter().filter(|r| &*r.recording == id).count();
    assert_eq!(
        by_recording(&carol),
        0,
        "carol's recording wrote bob's media"
    );
    for id in &ids {
        assert!(by_recording(id) > 0, "recording {id} wrote nothing");
    }
}

#[test]
fn a_recording_switches_layer_not_file_when_the_top_layer_stops() {
    let mut sim = Sim::new();
    let ideal = LinkConfig::ideal(DELAY);
    let p = sim.join_publisher("dora", &SIMULCAST, ideal, ideal);
    sim.run_until_connected(p, sim.at(2 * S));
    let id = sim
        .room
        .handle_start_recording(sim.now, Selection::All)
        .expect("a recording starts");
    sim.run_until(sim.at(6 * S));
    assert!(
        sim.peers[p].set_layer_paused(2, true),
        "the top layer stops"
    );
    sim.run_until(sim.at(11 * S));
    assert!(sim.peers[p].set_layer_paused(2, false), "and comes back");
    sim.run_until(sim.at(16 * S));
    sim.room.handle_stop_recording(sim.now, &id).unwrap();
    sim.pump();

    let files = files(&sim);
    let video: Vec<(&(u64, String, u32), &File)> = files
        .iter()
        .filter(|(_, f)| f.kind == Some(MediaKind::Video))
        .collect();
    assert_eq!(video.len(), 1, "one video file: {:?}", files.keys());
    let (_, file) = video[0];
    let mut f = Failures::default();
    let read = check_readable(&mut f, "video", file);
    // The key frames' sizes in order, repeats folded: the top layer, the middle one
    // while the top is away, the top again.
    let sizes = key_sizes(&read);
    let totals = file.totals.unwrap_or_default();
    let secs_long = totals.duration as f64 / f64::from(totals.timescale.max(1));
    println!(
        "key frame sizes {sizes:?}; {} samples over {secs_long:.2} s, {} discontinuities",
        totals.samples, totals.discontinuities
    );
    let top = SIMULCAST[2].size;
    let mid = SIMULCAST[1].size;
    f.check(
        sizes.ends_with(&[top, mid, top]),
        format!("key frame sizes {sizes:?}, want the top layer, {mid:?}, the top again"),
    );
    f.check(
        totals.discontinuities == 0,
        "timestamps jumped at a switch".to_string(),
    );
    // A frame for nearly every frame time: the switches cost a key frame's wait each.
    f.check(
        totals.samples as f64 >= secs_long * 30.0 * 0.9,
        format!("{} samples over {secs_long:.2} s", totals.samples),
    );
    f.finish();
}
