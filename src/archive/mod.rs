//! Recordings on disk (`--record-dir`): admission against the server's limits, the
//! writer thread that turns a room's [`RecordOutput`]s into MP4 files and a
//! `manifest.json` per recording, and the list the room API answers from.
//!
//! A room records through the sans-IO [`crate::record`] pipeline inside its own task; all
//! this module gets is bytes to append. The room task hands them to an [`ArchiveSink`],
//! which queues them for one writer thread and never waits: a full queue drops the
//! fragment (counted as `writer_busy`; a fragmented MP4 file stays readable around the
//! hole). Control messages (a recording begins, ends) are never dropped.
//!
//! Layout: `{record-dir}/{room}/{id}/manifest.json` and one file per track and start,
//! `{identity}-p{participant}-m{mid}-{kind}-{n}.mp4` (each part reduced to `[A-Za-z0-9_-]`).
//!
//! Limits: at most `--max-recordings` recordings at once (a new one is refused with 503);
//! none starts while the disk has less than `--record-min-free-mib` free or the
//! recordings written since start exceed `--record-max-mib` (507). A recording that
//! reaches either while running fails: its files end at their last complete fragment.
//!
//! Owns: the registry of recordings (active, and the last [`KEEP_FINISHED`] finished),
//! the open files. Never: touches media, blocks a room task.

pub mod disk;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use metrics::{counter, gauge, Counter, Gauge};
use parking_lot::Mutex;

use crate::metrics::names;
use crate::record::manifest::{RecordingInfo, RecordingState};
use crate::room::{RecordOutput, Selection};
use crate::webhook::Webhooks;

/// Finished recordings kept in the list (`GET …/recordings`) after they end; older ones
/// are only on disk.
pub const KEEP_FINISHED: usize = 256;
/// Fragments queued for the writer before the next one is dropped.
const QUEUE: usize = 1024;

/// The recording settings (`--record-*`).
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Where recordings go (`--record-dir`); created if missing.
    pub dir: PathBuf,
    /// Recordings at once on this server (`--max-recordings`).
    pub max_recordings: usize,
    /// Bytes all recordings may write while the server runs (`--record-max-mib`);
    /// `None`: no budget.
    pub max_bytes: Option<u64>,
    /// Bytes the disk must keep free (`--record-min-free-mib`).
    pub min_free: u64,
    /// Record every room from its first participant on (`--record-all-rooms`).
    pub all_rooms: bool,
}

/// Why a recording cannot start here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// No `--record-dir` (the API answers 503).
    #[error("recording is not enabled on this server (start it with --record-dir)")]
    Disabled,
    /// `--max-recordings` are running (503).
    #[error("{0} recordings are running, the most this server runs at once")]
    TooMany(usize),
    /// The disk is (nearly) full or the budget is spent (507).
    #[error("not enough storage: {0}")]
    Storage(String),
}

/// The server's recordings: cheap to clone; disabled without `--record-dir`.
#[derive(Clone, Default)]
pub struct Archive {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    config: ArchiveConfig,
    ops: mpsc::Sender<writer::Op>,
    /// Fragments queued for the writer ([`QUEUE`] at most).
    queued: Arc<AtomicUsize>,
    /// Bytes written since start, for `max_bytes`.
    written: Arc<AtomicU64>,
    /// Recordings admitted and not finished (slots included).
    active: AtomicUsize,
    registry: Arc<Mutex<Registry>>,
    clock: WallClock,
    meters: Meters,
}

#[derive(Clone)]
struct Meters {
    active: Gauge,
    writer_busy: Counter,
}

/// Maps the monotonic instants of the media path to wall-clock time, from one pair
/// read together at start.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    instant: Instant,
    system: SystemTime,
}

impl WallClock {
    /// The pair read now.
    pub fn now() -> Self {
        WallClock {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// The wall-clock time of `at` (`at` is monotonic).
    pub fn system(&self, at: Instant) -> SystemTime {
        if at >= self.instant {
            self.system + (at - self.instant)
        } else {
            self.system - (self.instant - at)
        }
    }
}

/// RFC 3339 in UTC with milliseconds.
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Every recording this server knows: the running ones and the last finished ones.
#[derive(Default)]
struct Registry {
    list: Vec<RecordingInfo>,
}

impl Registry {
    fn get_mut(&mut self, id: &str) -> Option<&mut RecordingInfo> {
        self.list.iter_mut().find(|r| r.id == id)
    }

    /// Forget the oldest finished recordings past [`KEEP_FINISHED`].
    fn trim(&mut self) {
        let done = |r: &RecordingInfo| {
            matches!(r.state, RecordingState::Finished | RecordingState::Failed)
        };
        let mut excess = self.list.iter().filter(|r| done(r)).count();
        if excess <= KEEP_FINISHED {
            return;
        }
        excess -= KEEP_FINISHED;
        self.list.retain(|r| {
            if excess > 0 && done(r) {
                excess -= 1;
                return false;
            }
            true
        });
    }
}

/// A place for one recording, taken by [`Archive::admit`] before the room is asked and
/// claimed by [`ArchiveSink::begin`] once it started; when every clone is dropped
/// unclaimed, the place is freed. Clones share the one place (a request to a room may
/// be retried).
#[derive(Clone)]
pub struct Slot(Arc<SlotPlace>);

struct SlotPlace {
    inner: Arc<Inner>,
    claimed: std::sync::atomic::AtomicBool,
}

impl Drop for SlotPlace {
    fn drop(&mut self) {
        if !self.claimed.load(Ordering::Relaxed) {
            self.inner.release();
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Inner {
    fn release(&self) {
        let n = self
            .active
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        self.meters.active.set(n as f64);
    }
}

impl Archive {
    /// No `--record-dir`: every recording is refused with [`AdmitError::Disabled`].
    pub fn disabled() -> Self {
        Archive::default()
    }

    /// Creates `config.dir` and starts the writer thread.
    ///
    /// Errors: the folder cannot be created or written, or the thread cannot start.
    pub fn start(config: ArchiveConfig, webhooks: Webhooks) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let probe = config.dir.join(".switchboard-write-test");
        std::fs::write(&probe, b"")?;
        std::fs::remove_file(&probe)?;
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let registry = Arc::new(Mutex::new(Registry::default()));
        let clock = WallClock::now();
        let w = writer::Writer::new(
            config.clone(),
            Arc::clone(&registry),
            Arc::clone(&queued),
            Arc::clone(&written),
            clock,
            webhooks,
        );
        let inner = Arc::new(Inner {
            config,
            ops: tx,
            queued,
            written,
            active: AtomicUsize::new(0),
            registry,
            clock,
            meters: Meters {
                active: gauge!(names::RECORDINGS_ACTIVE),
                writer_busy: counter!(names::RECORDING_DROPPED, "reason" => "writer_busy"),
            },
        });
        let done = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("recordings".into())
            .spawn(move || w.run(rx, move || done.release()))?;
        Ok(Archive { inner: Some(inner) })
    }

    /// Whether `--record-dir` is set.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether every room is recorded (`--record-all-rooms`).
    pub fn records_all_rooms(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.config.all_rooms)
    }

    /// Take a place for one more recording.
    ///
    /// Errors: [`AdmitError::Disabled`]; [`AdmitError::TooMany`] at `--max-recordings`;
    /// [`AdmitError::Storage`] when the disk has less than `--record-min-free-mib` free
    /// or the `--record-max-mib` budget is spent.
    pub fn admit(&self) -> Result<Slot, AdmitError> {
        let inner = self.inner.as_ref().ok_or(AdmitError::Disabled)?;
        let c = &inner.config;
        let refuse = |reason: &'static str, e: AdmitError| {
            counter!(names::RECORDINGS_REFUSED, "reason" => reason).increment(1);
            Err(e)
        };
        if let Some(max) = c.max_bytes {
            let written = inner.written.load(Ordering::Relaxed);
            if written >= max {
                let why = format!("the recording budget of {} MiB is spent", max >> 20);
                return refuse("disk", AdmitError::Storage(why));
            }
        }
        match disk::free_bytes(&c.dir) {
            Ok(free) if free < c.min_free => {
                let why = format!(
                    "{} MiB free, {} MiB must stay free",
                    free >> 20,
                    c.min_free >> 20
                );
                return refuse("disk", AdmitError::Storage(why));
            }
            Ok(_) => {}
            Err(e) => {
                let why = format!("the recording folder cannot be read: {e}");
                return refuse("disk", AdmitError::Storage(why));
            }
        }
        let taken = inner
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < c.max_recordings).then_some(n + 1)
            });
        match taken {
            Ok(n) => {
                inner.meters.active.set((n + 1) as f64);
                Ok(Slot(Arc::new(SlotPlace {
                    inner: Arc::clone(inner),
                    claimed: false.into(),
                })))
            }
            Err(n) => refuse("too_many", AdmitError::TooMany(n)),
        }
    }

    /// The recordings of `room` this server knows, oldest first.
    pub fn list(&self, room: &str) -> Vec<RecordingInfo> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        let reg = inner.registry.lock();
        reg.list
            .iter()
            .filter(|r| r.room == room)
            .cloned()
            .collect()
    }

    /// One recording of `room`.
    pub fn get(&self, room: &str, id: &str) -> Option<RecordingInfo> {
        let inner = self.inner.as_ref()?;
        let reg = inner.registry.lock();
        reg.list
            .iter()
            .find(|r| r.room == room && r.id == id)
            .cloned()
    }

    /// The sink a room task records through.
    pub fn sink(&self, room: &str) -> ArchiveSink {
        ArchiveSink {
            inner: self.inner.clone(),
            room: room.into(),
            open: Vec::new(),
        }
    }
}

/// A room task's side: begins and ends its recordings and queues their outputs for the
/// writer, never waiting. Dropped with recordings still open (the room task failed),
/// it ends them as failed.
pub struct ArchiveSink {
    inner: Option<Arc<Inner>>,
    room: Arc<str>,
    /// Recordings begun and not ended.
    open: Vec<Arc<str>>,
}

impl ArchiveSink {
    /// Recording `id` of this room started at `now` (monotonic) with `selection`, in the
    /// place `slot` took. Lists it and sends the `recording.started` webhook.
    pub fn begin(&mut self, slot: Slot, id: &Arc<str>, selection: &Selection, now: Instant) {
        let Some(inner) = &self.inner else {
            return;
        };
        // The place now belongs to the recording: the writer frees it when it finishes.
        if slot.0.claimed.swap(true, Ordering::Relaxed) {
            return;
        }
        let info = RecordingInfo {
            id: id.to_string(),
            room: self.room.to_string(),
            state: RecordingState::Active,
            identities: match selection {
                Selection::All => None,
                Selection::Identities(ids) => Some(ids.iter().map(|i| i.to_string()).collect()),
            },
            started_at: rfc3339(inner.clock.system(now)),
            ended_at: None,
            error: None,
            path: format!("{}/{}", disk::component(&self.room), disk::component(id)),
            bytes: 0,
            files: Vec::new(),
        };
        {
            let mut reg = inner.registry.lock();
            reg.list.push(info);
            reg.trim();
        }
        self.open.push(Arc::clone(id));
        let _ = inner.ops.send(writer::Op::Begin { id: Arc::clone(id) });
    }

    /// One output of a running recording: queued, or dropped and counted when the writer
    /// is [`QUEUE`] fragments behind.
    pub fn record(&mut self, output: RecordOutput) {
        let Some(inner) = &self.inner else {
            return;
        };
        if inner.queued.load(Ordering::Relaxed) >= QUEUE {
            inner.meters.writer_busy.increment(1);
            return;
        }
        inner.queued.fetch_add(1, Ordering::Relaxed);
        let _ = inner.ops.send(writer::Op::Output(output));
    }

    /// Recording `id` stopped at `now`: after its outputs so far, the writer completes
    /// its files and manifest and sends `recording.finished`.
    pub fn end(&mut self, id: &str, now: Instant) {
        self.end_with(id, now, None);
    }

    fn end_with(&mut self, id: &str, now: Instant, error: Option<String>) {
        let Some(inner) = &self.inner else {
            return;
        };
        let Some(i) = self.open.iter().position(|o| &**o == id) else {
            return;
        };
        let id = self.open.swap_remove(i);
        if let Some(r) = inner.registry.lock().get_mut(&id) {
            if r.state == RecordingState::Active {
                r.state = RecordingState::Stopping;
            }
            r.ended_at = Some(rfc3339(inner.clock.system(now)));
        }
        let _ = inner.ops.send(writer::Op::End { id, error });
    }

    /// Recordings begun and not ended.
    pub fn open(&self) -> &[Arc<str>] {
        &self.open
    }
}

impl Drop for ArchiveSink {
    fn drop(&mut self) {
        let now = Instant::now();
        let error = std::thread::panicking().then(|| "the room failed".to_owned());
        for id in self.open.clone() {
            self.end_with(&id, now, error.clone());
        }
    }
}

/// How long the writer waits between free-space checks while writing.
const DISK_CHECK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
