//! The runtime: the only async media code. The registry of live rooms (cold path:
//! touched on join and leave only), the commands the API sends a room, the task that
//! drives each [`Room`](crate::room::Room) ([`room_task`]) and the task that drives each
//! of its subscriber [`Shard`](crate::shard::Shard)s ([`shard_task`]). These tasks read
//! the clock, await I/O and hand everything to the sans-IO core through its drive
//! protocol; they make no decisions.

pub(crate) mod room_task;
pub(crate) mod shard_task;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::conference::{info, SlotPreference};
use crate::ids::{SessionId, SessionKind};
use crate::metrics::Meters;
use crate::net::{DatagramTx, HostCandidates, RoomKey, RoomTable, TcpIce, UdpEndpoint};
use crate::room::{admin, ledger, JoinError, Joined, SessionTags};

/// Capacity of a room's datagram queue. When full, the receive loop drops and counts
/// (`room_busy`) rather than block every other room.
const DATAGRAM_QUEUE: usize = 4096;
/// Capacity of a room's command queue.
const COMMAND_QUEUE: usize = 64;

/// A request to a room actor. Each carries the channel its answer goes back on.
#[derive(Debug)]
pub enum Command {
    /// Add a participant from an SDP offer.
    Join {
        /// Publisher (WHIP) or subscriber (WHEP).
        kind: SessionKind,
        /// The SDP offer text.
        offer: String,
        /// Identity, display name, source, who to watch.
        opts: info::JoinOptions,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Joined, JoinError>>,
    },
    /// Remove a session (DELETE). Replies whether it existed.
    Leave {
        /// The session.
        session: SessionId,
        /// `true` if it existed and was removed.
        reply: oneshot::Sender<bool>,
    },
    /// A WHEP viewer's layer preference. Replies `None` for an unknown session.
    SetLayer {
        /// The (subscriber) session.
        session: SessionId,
        /// The video m-line, or every video track.
        mid: Option<String>,
        /// What the viewer wants.
        pref: crate::forwarder::preferences::LayerPreference,
        /// Outcome.
        reply: oneshot::Sender<Option<Result<(), crate::forwarder::preferences::PreferenceError>>>,
    },
    /// What a WHEP viewer receives. Replies `None` for an unknown session.
    Stats {
        /// The (subscriber) session.
        session: SessionId,
        /// The report.
        reply: oneshot::Sender<Option<crate::forwarder::preferences::SubscriberStats>>,
    },
    /// A WHEP viewer's slot preferences and caps. Replies `None` for an unknown
    /// session, `Some(Err(why))` when refused (422).
    Preferences {
        /// The (subscriber) session.
        session: SessionId,
        /// Pins and pauses.
        prefs: Vec<SlotPreference>,
        /// Resolution caps.
        caps: Vec<admin::SlotCap>,
        /// Outcome.
        reply: oneshot::Sender<Option<Result<(), crate::conference::SlotRefusal>>>,
    },
    /// Open a WHEP session's event stream. Replies `None` for an unknown session.
    Events {
        /// The (subscriber) session.
        session: SessionId,
        /// The current state and the receiver of later events.
        reply: oneshot::Sender<Option<EventFeed>>,
    },
    /// Room API: the room in one line.
    Summary {
        /// The summary.
        reply: oneshot::Sender<info::RoomSummary>,
    },
    /// Room API: the room with its participants.
    Detail {
        /// The detail.
        reply: oneshot::Sender<info::RoomDetail>,
    },
    /// Room API: end every session of an identity. Replies whether it had any.
    Remove {
        /// The identity.
        identity: String,
        /// `true` if it had sessions.
        reply: oneshot::Sender<bool>,
    },
    /// Room API: mute or unmute a published track. Replies whether it exists.
    Mute {
        /// The identity.
        identity: String,
        /// Track id (`camera-audio`, …).
        track: String,
        /// Mute (`true`) or unmute.
        muted: bool,
        /// `true` if the track exists.
        reply: oneshot::Sender<bool>,
    },
    /// Room API: a server message on the room's data channels. Replies how many
    /// receivers got it, or why it was refused.
    Data {
        /// The topic (channel label).
        topic: String,
        /// Any JSON value.
        data: Box<serde_json::value::RawValue>,
        /// Only these identities.
        to: Option<Vec<String>>,
        /// Receivers, or the refusal.
        reply: oneshot::Sender<Result<usize, crate::room::ServerMessageError>>,
    },
    /// Room API: start recording the selected tracks, in the place `slot` took.
    /// Replies the recording's id, or why the room refused.
    StartRecording {
        /// Which tracks.
        selection: crate::room::Selection,
        /// The server's place for it ([`crate::archive::Archive::admit`]).
        slot: crate::archive::Slot,
        /// The id, or the refusal.
        reply: oneshot::Sender<Result<Arc<str>, crate::room::RecordingError>>,
    },
    /// Room API: stop a recording; its files complete after the reply.
    StopRecording {
        /// The recording's id.
        id: String,
        /// `Err(NotFound)` when the room runs no such recording.
        reply: oneshot::Sender<Result<(), crate::room::RecordingError>>,
    },
    /// Room API: end every session. Replies how many ended.
    Close {
        /// Sessions ended.
        reply: oneshot::Sender<usize>,
    },
    /// Tests only: make the room's task panic, as a bug would.
    #[cfg(test)]
    InjectPanic {
        /// Never answered.
        reply: oneshot::Sender<()>,
    },
    /// Restart a session's ICE with the client's new credentials (PATCH, RFC 9725
    /// §4.3.2).
    IceRestart {
        /// The session.
        session: SessionId,
        /// The client's new ICE credentials.
        remote: str0m::IceCreds,
        /// The server's side of the new ICE session.
        reply: oneshot::Sender<Result<crate::room::IceRestarted, crate::room::IceRestartError>>,
    },
    /// Whether a session exists (for PATCH), with its ICE tags.
    Exists {
        /// The session.
        session: SessionId,
        /// Its tags if it exists.
        reply: oneshot::Sender<Option<SessionTags>>,
    },
}

/// A WHEP session's event stream as the room actor hands it out: the state to start
/// with, then every later event for the session (the channel closes when the session
/// ends, or when the client reads too slowly — it then reconnects and starts over).
#[derive(Debug)]
pub struct EventFeed {
    /// The session's identity.
    pub identity: String,
    /// `participants`, `slots`, `active-speaker`, `viewers`.
    pub start: Vec<info::RoomEvent>,
    /// Later events.
    pub events: mpsc::Receiver<info::RoomEvent>,
}

/// Cheap handle to a live room actor.
#[derive(Clone)]
pub(crate) struct RoomHandle {
    key: RoomKey,
    commands: mpsc::Sender<Command>,
    /// How the room's task ended, once it has: see [`ledger::RoomGuard`].
    ended: tokio::sync::watch::Receiver<Option<bool>>,
}

impl RoomHandle {
    /// Whether the room's task failed (panicked). Called once its reply channel was
    /// dropped: waits (briefly) for the task's end to be published.
    async fn failed(&self) -> bool {
        let mut ended = self.ended.clone();
        let end = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            ended.wait_for(Option::is_some),
        )
        .await;
        matches!(end, Ok(Ok(v)) if *v == Some(true))
    }
}

/// The room actor is gone (it emptied and exited) or overloaded; the caller may retry
/// on a fresh room.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The actor ended before answering.
    #[error("room closed")]
    Closed,
    /// The room's command queue is full.
    #[error("room busy")]
    Busy,
    /// The room's task failed (a bug, logged): its sessions ended. Not retried: a new
    /// request opens a fresh room.
    #[error("room failed")]
    Failed,
}

/// Shared context every room needs: the socket and the metric handles.
#[derive(Clone)]
pub struct RoomContext {
    /// The UDP endpoint rooms send on and whose candidates they advertise.
    pub endpoint: Arc<UdpEndpoint>,
    /// ICE over TCP, when on: rooms advertise its passive candidates too.
    pub tcp: Option<Arc<TcpIce>>,
    /// Metric handles.
    pub meters: Meters,
    /// Per-room limits.
    pub limits: crate::limits::RoomLimits,
    /// Where rooms report joins, leaves and tracks (`--webhook-url`).
    pub webhooks: crate::webhook::Webhooks,
    /// Where recordings are written (`--record-dir`), and their limits.
    pub archive: crate::archive::Archive,
}

impl RoomContext {
    /// The host candidates every session advertises: the UDP endpoint's, then the
    /// ICE-TCP listener's when on.
    pub fn candidates(&self) -> HostCandidates {
        HostCandidates {
            udp: self.endpoint.candidates().to_vec(),
            tcp: self
                .tcp
                .as_ref()
                .map(|t| t.candidates().to_vec())
                .unwrap_or_default(),
        }
    }
}

/// The registry of live rooms by name. Its lock is held only to look up, insert or
/// remove a handle — on join and leave, never per packet.
pub struct Rooms {
    rooms: Mutex<HashMap<String, RoomHandle>>,
    table: Arc<RoomTable>,
    ctx: RoomContext,
}

impl Rooms {
    /// An empty registry. `table` is shared with the UDP demux.
    pub fn new(table: Arc<RoomTable>, ctx: RoomContext) -> Arc<Self> {
        Arc::new(Rooms {
            rooms: Mutex::new(HashMap::new()),
            table,
            ctx,
        })
    }

    /// Names of live rooms.
    pub fn names(&self) -> Vec<String> {
        self.rooms.lock().keys().cloned().collect()
    }

    /// How many rooms are live (a room closes when its last session ends).
    pub fn len(&self) -> usize {
        self.rooms.lock().len()
    }

    /// Whether the named room is live here.
    pub fn contains(&self, name: &str) -> bool {
        self.rooms
            .lock()
            .get(name)
            .is_some_and(|h| !h.commands.is_closed())
    }

    /// No room is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Send a command to the named room, creating the room when `create` and it does not
    /// exist (or its actor just exited). `make` builds the command around a reply channel.
    /// Returns `Ok(None)` when the room does not exist and `create` is false.
    pub async fn request<T>(
        self: &Arc<Self>,
        name: &str,
        create: bool,
        make: impl Fn(oneshot::Sender<T>) -> Command,
    ) -> Result<Option<T>, RoomError> {
        // A room actor exits when it empties; a command racing that exit sees a closed
        // channel or a dropped reply. Retry a few times on a fresh room.
        let mut last = RoomError::Closed;
        for _ in 0..3 {
            let handle = match self.handle(name, create) {
                Some(h) => h,
                None => return Ok(None),
            };
            let (tx, rx) = oneshot::channel();
            match handle.commands.try_send(make(tx)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => return Err(RoomError::Busy),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.forget(name, handle.key);
                    continue;
                }
            }
            match rx.await {
                Ok(v) => return Ok(Some(v)),
                Err(_) if handle.failed().await => return Err(RoomError::Failed),
                Err(_) => {
                    self.forget(name, handle.key);
                    last = RoomError::Closed;
                }
            }
        }
        Err(last)
    }

    fn handle(self: &Arc<Self>, name: &str, create: bool) -> Option<RoomHandle> {
        let mut rooms = self.rooms.lock();
        if let Some(h) = rooms.get(name) {
            if !h.commands.is_closed() {
                return Some(h.clone());
            }
            rooms.remove(name);
        }
        if !create {
            return None;
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (dgram_tx, dgram_rx): (DatagramTx, _) = mpsc::channel(DATAGRAM_QUEUE);
        let key = self.table.register(dgram_tx);
        let (end, ended) = tokio::sync::watch::channel(None);
        let handle = RoomHandle {
            key,
            commands: cmd_tx,
            ended,
        };
        rooms.insert(name.to_owned(), handle.clone());
        let registry = Arc::clone(self);
        let name = name.to_owned();
        let shards = shard_task::ShardFactory {
            table: Arc::clone(&self.table),
            ctx: self.ctx.clone(),
        };
        let gone = name.clone();
        tokio::spawn(async move {
            // Undoes the registry entry, the demux key and the rooms gauge however the
            // task ends; a panic drops it unfinished (the room failed).
            let guard = ledger::RoomGuard::new(end, move || registry.forget(&gone, key));
            room_task::run(name, key, shards, cmd_rx, dgram_rx).await;
            guard.finish();
        });
        Some(handle)
    }

    /// Remove the named room if it is still the instance `key`.
    fn forget(&self, name: &str, key: RoomKey) {
        let mut rooms = self.rooms.lock();
        if rooms.get(name).is_some_and(|h| h.key == key) {
            rooms.remove(name);
        }
        self.table.remove(key);
    }
}

#[cfg(test)]
mod failure_tests;
