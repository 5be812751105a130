//! Rooms: the registry of live rooms (cold path: touched on join and leave only), the
//! commands the API sends a room, and the room's parts — the actor that does its I/O
//! ([`actor`]), the sans-IO [`Room`](room::Room), its [`participant`]s, the SDP glue
//! in [`signaling`], and the subscriber shards a big room spreads its viewers over
//! ([`shard`], [`shards`], [`shard_actor`]).

pub mod actor;
mod addrs;
pub use room::admin;
pub mod conference;
pub mod info;
pub mod ledger;
pub mod offer_limits;
pub mod participant;
#[allow(clippy::module_inception)]
pub mod room;
pub mod session_end;
pub mod shard;
pub mod shard_actor;
pub mod shards;
pub mod signaling;
pub mod slots;
pub mod speaker;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Meters;
use crate::net::{DatagramTx, RoomKey, RoomTable, UdpEndpoint};

/// Capacity of a room's datagram queue. When full, the receive loop drops and counts
/// (`room_busy`) rather than block every other room.
const DATAGRAM_QUEUE: usize = 4096;
/// Capacity of a room's command queue.
const COMMAND_QUEUE: usize = 64;

/// A session's id: 128 bits from the OS CSPRNG, as 32 lowercase hex digits. It is the
/// last path segment of the session resource URL, so it must be unguessable
/// (RFC 9725 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        let v: u128 = rand::random();
        SessionId(format!("{v:032x}"))
    }

    /// Parse an id from a URL segment: exactly 32 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| SessionId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant's id, unique within its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// What a session does in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// WHIP: sends media.
    Publisher,
    /// WHEP: receives media.
    Subscriber,
}

impl SessionKind {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Publisher => "publisher",
            SessionKind::Subscriber => "subscriber",
        }
    }
}

/// A session that joined: what the API returns to the client.
#[derive(Debug)]
pub struct Joined {
    /// The new session's id.
    pub session: SessionId,
    /// The SDP answer.
    pub answer: String,
    /// Strong entity tag of the ICE session (RFC 9725 §4.3.1), quotes included.
    pub etag: String,
}

/// What a session resource's conditional requests compare against (RFC 9725 §4.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTags {
    /// The session's strong entity tag, quotes included: `"<server ufrag>"`.
    pub etag: String,
    /// The client's `a=ice-ufrag` from its offer; a trickle fragment with another one
    /// asks for an ICE restart.
    pub client_ufrag: Option<String>,
}

/// Why a join was refused.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The offer is not parseable SDP (400).
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    /// Parseable but not acceptable: direction, codecs, track count (422).
    #[error("unacceptable SDP offer: {0}")]
    Unacceptable(String),
    /// A room limit is reached (429).
    #[error("{0}")]
    RoomFull(String),
}

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
        prefs: Vec<conference::SlotPreference>,
        /// Resolution caps.
        caps: Vec<admin::SlotCap>,
        /// Outcome.
        reply: oneshot::Sender<Option<Result<(), String>>>,
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
pub struct RoomHandle {
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
    /// Metric handles.
    pub meters: Meters,
    /// Per-room limits.
    pub limits: info::RoomLimits,
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
        let shards = shard_actor::ShardFactory {
            table: Arc::clone(&self.table),
            ctx: self.ctx.clone(),
        };
        let gone = name.clone();
        tokio::spawn(async move {
            // Undoes the registry entry, the demux key and the rooms gauge however the
            // task ends; a panic drops it unfinished (the room failed).
            let guard = ledger::RoomGuard::new(end, move || registry.forget(&gone, key));
            actor::run(name, key, shards, cmd_rx, dgram_rx).await;
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
#[path = "failure_tests.rs"]
mod failure_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_hex() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
        assert_eq!(SessionId::parse("xyz"), None);
        assert_eq!(SessionId::parse(&"A".repeat(32)), None);
    }
}
