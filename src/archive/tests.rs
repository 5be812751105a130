use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{MediaKind, Mid};

use super::*;
use crate::ids::ParticipantId;
use crate::record::mp4::Totals;
use crate::record::track::TrackOutput;
use crate::record::CodecConfig;
use crate::room::RecordedTrack;

/// A folder of its own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("sb-archive-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &TempDir) -> ArchiveConfig {
    ArchiveConfig {
        dir: dir.0.clone(),
        max_recordings: 2,
        max_bytes: None,
        min_free: 0,
        all_rooms: false,
    }
}

fn track(identity: &str, mid: &str, kind: MediaKind) -> Arc<RecordedTrack> {
    Arc::new(RecordedTrack {
        identity: identity.into(),
        participant: ParticipantId(3),
        mid: Mid::from(mid),
        kind,
    })
}

fn out(id: &Arc<str>, t: &Arc<RecordedTrack>, output: TrackOutput) -> RecordOutput {
    RecordOutput {
        recording: Arc::clone(id),
        track: Arc::clone(t),
        output,
    }
}

fn start(index: u32, at: Instant) -> TrackOutput {
    TrackOutput::FileStart {
        index,
        config: CodecConfig::Vp8 {
            width: 640,
            height: 360,
        },
        init: b"INIT".to_vec(),
        first_timestamp: 90_000,
        started_at: at,
    }
}

fn end(index: u32, at: Instant) -> TrackOutput {
    TrackOutput::FileEnd {
        index,
        totals: Totals {
            bytes: 10,
            samples: 30,
            fragments: 1,
            duration: 90_000,
            timescale: 90_000,
            first_timestamp: Some(90_000),
            discontinuities: 0,
        },
        started_at: at,
    }
}

/// Waits for the writer thread to bring recording `id` to `state`.
fn wait_state(a: &Archive, room: &str, id: &str, state: RecordingState) -> RecordingInfo {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = a.get(room, id).expect("listed");
        if info.state == state || Instant::now() > deadline {
            return info;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn files_and_manifest_follow_the_outputs_in_order() {
    let dir = TempDir::new();
    let a = Archive::start(config(&dir), Webhooks::disabled()).unwrap();
    let mut sink = a.sink("my.room");
    let id: Arc<str> = "abc1".into();
    let t0 = Instant::now();
    sink.begin(a.admit().unwrap(), &id, &Selection::All, t0);
    let v = track("alice/../x", "1", MediaKind::Video);
    sink.record(out(&id, &v, start(0, t0 + Duration::from_millis(40))));
    sink.record(out(
        &id,
        &v,
        TrackOutput::Bytes {
            index: 0,
            bytes: b"MOOF1".to_vec(),
        },
    ));
    sink.record(out(
        &id,
        &v,
        TrackOutput::Bytes {
            index: 0,
            bytes: b"MOOF2".to_vec(),
        },
    ));
    sink.record(out(&id, &v, end(0, t0)));
    // A second file of the same track (after a codec change its recorder counts from 0
    // again): a new name, not an overwrite.
    sink.record(out(&id, &v, start(0, t0 + Duration::from_secs(2))));
    sink.record(out(
        &id,
        &v,
        TrackOutput::Bytes {
            index: 0,
            bytes: b"M".to_vec(),
        },
    ));
    sink.end(&id, t0 + Duration::from_secs(3));

    let info = wait_state(&a, "my.room", &id, RecordingState::Finished);
    assert_eq!(info.state, RecordingState::Finished);
    assert_eq!(info.path, "my_room/abc1");
    assert_eq!(info.files.len(), 2);
    let f = &info.files[0];
    assert_eq!(f.name, "alice____x-p3-m1-video-0.mp4");
    assert_eq!(
        (f.codec.as_str(), f.width, f.height),
        ("vp8", Some(640), Some(360))
    );
    assert_eq!((f.bytes, f.samples, f.complete), (14, 30, true));
    assert!((f.duration_seconds - 1.0).abs() < 1e-9);
    assert_eq!(info.files[1].name, "alice____x-p3-m1-video-1.mp4");
    // The second file never got its end: listed as incomplete.
    assert!(!info.files[1].complete);
    assert_eq!(info.bytes, 14 + 5);
    // Wall-clock starts keep the instants' spacing.
    assert_eq!(
        info.files[1].start_unix_micros - f.start_unix_micros,
        1_960_000
    );

    let folder = dir.0.join("my_room/abc1");
    assert_eq!(
        std::fs::read(folder.join(&f.name)).unwrap(),
        b"INITMOOF1MOOF2"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "finished");
    assert_eq!(manifest["files"][0]["clockRate"], 90_000);
    assert_eq!(manifest["files"][0]["firstTimestamp"], 90_000);
    assert!(!folder.join("manifest.json.tmp").exists());
    // Its place is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.inner.as_ref().unwrap().active.load(Ordering::Relaxed) != 0 {
        assert!(Instant::now() < deadline, "place not freed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn places_are_limited_and_freed_by_unused_slots() {
    let dir = TempDir::new();
    let a = Archive::start(config(&dir), Webhooks::disabled()).unwrap();
    let one = a.admit().unwrap();
    let two = a.admit().unwrap();
    assert_eq!(a.admit().err(), Some(AdmitError::TooMany(2)));
    // A clone shares its place; the place is freed when the last one goes.
    let again = two.clone();
    drop(two);
    assert!(a.admit().is_err());
    drop(again);
    let three = a.admit().unwrap();
    drop((one, three));
    assert!(Archive::disabled().admit().err() == Some(AdmitError::Disabled));
}

#[test]
fn storage_limits_refuse_with_their_reason() {
    let dir = TempDir::new();
    let mut c = config(&dir);
    c.min_free = u64::MAX;
    let a = Archive::start(c, Webhooks::disabled()).unwrap();
    assert!(matches!(a.admit(), Err(AdmitError::Storage(_))));

    let mut c = config(&dir);
    c.max_bytes = Some(8);
    let a = Archive::start(c, Webhooks::disabled()).unwrap();
    let mut sink = a.sink("r");
    let id: Arc<str> = "b1".into();
    let t0 = Instant::now();
    sink.begin(a.admit().unwrap(), &id, &Selection::All, t0);
    let v = track("bob", "0", MediaKind::Video);
    sink.record(out(&id, &v, start(0, t0)));
    sink.record(out(
        &id,
        &v,
        TrackOutput::Bytes {
            index: 0,
            bytes: vec![0; 4],
        },
    ));
    sink.record(out(
        &id,
        &v,
        TrackOutput::Bytes {
            index: 0,
            bytes: vec![0; 1],
        },
    ));
    let info = wait_state(&a, "r", &id, RecordingState::Failed);
    assert_eq!(info.state, RecordingState::Failed);
    assert!(
        info.error.as_deref().unwrap().contains("budget"),
        "{info:?}"
    );
    // What fit was written; the fragment past the budget was not.
    assert_eq!(info.bytes, 8);
    sink.end(&id, t0);
    // Spent: the next one is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match a.admit() {
            Err(AdmitError::Storage(why)) => {
                assert!(why.contains("budget"));
                break;
            }
            _ => assert!(Instant::now() < deadline),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_dropped_sink_ends_its_recordings() {
    let dir = TempDir::new();
    let a = Archive::start(config(&dir), Webhooks::disabled()).unwrap();
    let id: Arc<str> = "c1".into();
    {
        let mut sink = a.sink("r");
        sink.begin(a.admit().unwrap(), &id, &Selection::All, Instant::now());
    }
    let info = wait_state(&a, "r", &id, RecordingState::Finished);
    assert_eq!(info.state, RecordingState::Finished);
    assert!(info.ended_at.is_some());
}

#[test]
fn finished_recordings_are_forgotten_past_the_bound() {
    let mut reg = Registry::default();
    for i in 0..KEEP_FINISHED + 3 {
        reg.list.push(RecordingInfo {
            id: i.to_string(),
            room: "r".into(),
            state: if i == 1 {
                RecordingState::Active
            } else {
                RecordingState::Finished
            },
            identities: None,
            started_at: String::new(),
            ended_at: None,
            error: None,
            path: String::new(),
            bytes: 0,
            files: Vec::new(),
        });
    }
    reg.trim();
    assert_eq!(reg.list.len(), KEEP_FINISHED + 1);
    // The oldest finished went; the running one stays.
    assert_eq!(reg.list[0].id, "1");
    assert_eq!(reg.list[1].id, "3");
}
