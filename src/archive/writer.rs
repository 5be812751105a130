//! The writer thread: the only code that touches recording files. It takes the room
//! tasks' outputs in order, appends each fragment to its file as it comes (so a crash
//! loses at most the fragment being written), and rewrites a recording's
//! `manifest.json` (write, then rename) whenever a file starts or ends.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Instant, UNIX_EPOCH};

use metrics::{counter, Counter};
use parking_lot::Mutex;
use str0m::media::{MediaKind, Mid};
use tracing::{info, warn};

use super::{disk, rfc3339, ArchiveConfig, Registry, WallClock, DISK_CHECK};
use crate::ids::ParticipantId;
use crate::metrics::names;
use crate::record::manifest::{FileInfo, RecordingInfo, RecordingState};
use crate::record::track::TrackOutput;
use crate::record::CodecConfig;
use crate::room::RecordOutput;
use crate::webhook::Webhooks;

/// What the room tasks send the writer, in order.
pub(super) enum Op {
    /// A recording was listed: make its folder and first manifest.
    Begin { id: Arc<str> },
    /// An output of one of its track recorders.
    Output(RecordOutput),
    /// It stopped: close its files; `error` when it failed (its room task did).
    End { id: Arc<str>, error: Option<String> },
}

/// One track file being written.
struct OpenFile {
    file: File,
    /// Its entry in the recording's `files`.
    entry: usize,
}

/// A recording being written.
struct Rec {
    dir: PathBuf,
    /// Why writing stopped; its outputs are dropped from then on.
    failed: Option<String>,
    open: HashMap<(ParticipantId, Mid, u32), OpenFile>,
    /// Files started per publisher track, for unique names across its recorders.
    starts: HashMap<(ParticipantId, Mid), u32>,
}

pub(super) struct Writer {
    config: ArchiveConfig,
    registry: Arc<Mutex<Registry>>,
    queued: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    clock: WallClock,
    webhooks: Webhooks,
    recs: HashMap<Arc<str>, Rec>,
    last_disk_check: Option<Instant>,
    bytes: Counter,
    files: Counter,
    disk_drops: Counter,
}

impl Writer {
    pub(super) fn new(
        config: ArchiveConfig,
        registry: Arc<Mutex<Registry>>,
        queued: Arc<AtomicUsize>,
        written: Arc<AtomicU64>,
        clock: WallClock,
        webhooks: Webhooks,
    ) -> Self {
        Writer {
            config,
            registry,
            queued,
            written,
            clock,
            webhooks,
            recs: HashMap::new(),
            last_disk_check: None,
            bytes: counter!(names::RECORDING_BYTES),
            files: counter!(names::RECORDING_FILES),
            disk_drops: counter!(names::RECORDING_DROPPED, "reason" => "disk"),
        }
    }

    /// Until every sender is gone. `release` frees a recording's place once it ended.
    pub(super) fn run(mut self, ops: mpsc::Receiver<Op>, release: impl Fn()) {
        while let Ok(op) = ops.recv() {
            match op {
                Op::Begin { id } => self.begin(id),
                Op::Output(o) => {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    self.output(o);
                }
                Op::End { id, error } => {
                    self.end(&id, error);
                    release();
                }
            }
        }
    }

    fn begin(&mut self, id: Arc<str>) {
        let Some(path) = self.registry.lock().get_mut(&id).map(|r| r.path.clone()) else {
            return;
        };
        let dir = self.config.dir.join(path);
        let mut rec = Rec {
            dir,
            failed: None,
            open: HashMap::new(),
            starts: HashMap::new(),
        };
        if let Err(e) = std::fs::create_dir_all(&rec.dir) {
            rec.failed = Some(format!("cannot create the recording's folder: {e}"));
        }
        self.recs.insert(Arc::clone(&id), rec);
        if let Some(why) = self.recs[&id].failed.clone() {
            self.fail(&id, why);
        } else {
            self.save(&id);
        }
        if let Some(info) = self.info(&id) {
            info!(room = %info.room, recording = %id, "recording started");
            self.webhooks.recording_started(&info);
        }
    }

    fn output(&mut self, o: RecordOutput) {
        let id = o.recording;
        let Some(rec) = self.recs.get_mut(&id) else {
            return;
        };
        if rec.failed.is_some() {
            self.disk_drops.increment(1);
            return;
        }
        let t = &o.track;
        match o.output {
            TrackOutput::FileStart {
                index,
                config,
                init,
                first_timestamp,
                started_at,
            } => {
                let n = rec.starts.entry((t.participant, t.mid)).or_insert(0);
                let kind = if t.kind == MediaKind::Audio {
                    "audio"
                } else {
                    "video"
                };
                let name = format!(
                    "{}-p{}-m{}-{}-{}.mp4",
                    disk::component(&t.identity),
                    t.participant.0,
                    disk::component(&t.mid.to_string()),
                    kind,
                    n
                );
                *n += 1;
                let file = match File::create(rec.dir.join(&name)) {
                    Ok(f) => f,
                    Err(e) => return self.fail(&id, format!("cannot create {name}: {e}")),
                };
                let start = self.clock.system(started_at);
                let (codec, width, height, clock_rate) = describe(&config);
                let entry = {
                    let mut reg = self.registry.lock();
                    let Some(r) = reg.get_mut(&id) else { return };
                    r.files.push(FileInfo {
                        name,
                        identity: t.identity.to_string(),
                        mid: t.mid.to_string(),
                        kind: kind.to_owned(),
                        codec: codec.to_owned(),
                        width,
                        height,
                        started_at: rfc3339(start),
                        start_unix_micros: start
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros() as u64),
                        first_timestamp,
                        clock_rate,
                        bytes: 0,
                        samples: 0,
                        duration_seconds: 0.0,
                        complete: false,
                    });
                    r.files.len() - 1
                };
                rec.open
                    .insert((t.participant, t.mid, index), OpenFile { file, entry });
                self.files.increment(1);
                if self.append(&id, (t.participant, t.mid, index), &init) {
                    self.save(&id);
                }
            }
            TrackOutput::Bytes { index, bytes } => {
                self.append(&id, (t.participant, t.mid, index), &bytes);
            }
            TrackOutput::FileEnd { index, totals, .. } => {
                let Some(f) = rec.open.remove(&(t.participant, t.mid, index)) else {
                    return;
                };
                if let Some(file) = self
                    .registry
                    .lock()
                    .get_mut(&id)
                    .and_then(|r| r.files.get_mut(f.entry))
                {
                    file.samples = totals.samples;
                    file.duration_seconds = if totals.timescale == 0 {
                        0.0
                    } else {
                        totals.duration as f64 / f64::from(totals.timescale)
                    };
                    file.complete = true;
                }
                drop(f);
                self.save(&id);
            }
            TrackOutput::RequestKeyframe => {}
        }
    }

    /// Append `data` to an open file, within the budget and the free-space margin.
    /// Returns `false` when nothing was written (no such file, or the recording failed).
    fn append(&mut self, id: &Arc<str>, key: (ParticipantId, Mid, u32), data: &[u8]) -> bool {
        let len = data.len() as u64;
        if let Some(max) = self.config.max_bytes {
            if self.written.load(Ordering::Relaxed) + len > max {
                let why = format!("the recording budget of {} MiB is spent", max >> 20);
                self.fail(id, why);
                return false;
            }
        }
        if let Some(why) = self.disk_low() {
            self.fail(id, why);
            return false;
        }
        let Some(rec) = self.recs.get_mut(id) else {
            return false;
        };
        let Some(f) = rec.open.get_mut(&key) else {
            return false;
        };
        if let Err(e) = f.file.write_all(data) {
            let why = format!("write failed: {e}");
            self.fail(id, why);
            return false;
        }
        let entry = f.entry;
        self.written.fetch_add(len, Ordering::Relaxed);
        self.bytes.increment(len);
        if let Some(r) = self.registry.lock().get_mut(id) {
            r.bytes += len;
            if let Some(file) = r.files.get_mut(entry) {
                file.bytes += len;
            }
        }
        true
    }

    /// Why writing must stop for lack of space: less than half of `--record-min-free-mib`
    /// left (new recordings are refused below all of it). Checked at most every
    /// [`DISK_CHECK`].
    fn disk_low(&mut self) -> Option<String> {
        let now = Instant::now();
        if self
            .last_disk_check
            .is_some_and(|at| now.duration_since(at) < DISK_CHECK)
        {
            return None;
        }
        self.last_disk_check = Some(now);
        let free = disk::free_bytes(&self.config.dir).ok()?;
        (free < self.config.min_free / 2)
            .then(|| format!("the disk is nearly full ({} MiB free)", free >> 20))
    }

    /// Stop writing recording `id`: its open files end where they are (each is readable
    /// up to its last complete fragment).
    fn fail(&mut self, id: &Arc<str>, why: String) {
        warn!(recording = %id, "recording failed: {why}");
        self.disk_drops.increment(1);
        if let Some(rec) = self.recs.get_mut(id) {
            rec.open.clear();
            rec.failed = Some(why.clone());
        }
        if let Some(r) = self.registry.lock().get_mut(id) {
            r.state = RecordingState::Failed;
            r.error = Some(why);
        }
        self.save(id);
    }

    fn end(&mut self, id: &Arc<str>, error: Option<String>) {
        if let Some(why) = error {
            self.fail(id, why);
        }
        if let Some(rec) = self.recs.get_mut(id) {
            rec.open.clear();
        }
        {
            let mut reg = self.registry.lock();
            if let Some(r) = reg.get_mut(id) {
                if r.state != RecordingState::Failed {
                    r.state = RecordingState::Finished;
                }
            }
            reg.trim();
        }
        self.save(id);
        self.recs.remove(id);
        if let Some(info) = self.info(id) {
            info!(room = %info.room, recording = %id, files = info.files.len(), bytes = info.bytes, "recording finished");
            self.webhooks.recording_finished(&info);
        }
    }

    fn info(&self, id: &str) -> Option<RecordingInfo> {
        self.registry.lock().get_mut(id).map(|r| r.clone())
    }

    /// Write the recording's `manifest.json` (to a temporary name, then renamed over).
    fn save(&self, id: &str) {
        let (Some(rec), Some(info)) = (self.recs.get(id), self.info(id)) else {
            return;
        };
        let Ok(json) = serde_json::to_vec_pretty(&info) else {
            return;
        };
        let tmp = rec.dir.join("manifest.json.tmp");
        let res = std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, rec.dir.join("manifest.json")));
        if let Err(e) = res {
            warn!(recording = %id, "cannot write the manifest: {e}");
        }
    }
}

/// Codec name, video size and RTP clock rate of a file's configuration.
fn describe(config: &CodecConfig) -> (&'static str, Option<u16>, Option<u16>, u32) {
    match *config {
        CodecConfig::Vp8 { width, height } => ("vp8", Some(width), Some(height), 90_000),
        CodecConfig::Vp9 { width, height, .. } => ("vp9", Some(width), Some(height), 90_000),
        CodecConfig::H264 { width, height, .. } => ("h264", Some(width), Some(height), 90_000),
        CodecConfig::Av1 { width, height, .. } => ("av1", Some(width), Some(height), 90_000),
        CodecConfig::Opus { .. } => ("opus", None, None, 48_000),
    }
}
