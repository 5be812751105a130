//! This node's side of the cluster: placing rooms, keeping its record and claims alive.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{info, warn};

use super::{Directory, NodeRecord};
use crate::runtime::Rooms;

/// Settings of this node's membership.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `--node-id`.
    pub node_id: String,
    /// Base URL of this node's internal listener (`http://ip:port`), or empty.
    pub internal_url: String,
    /// Base URL clients reach this node at.
    pub public_url: String,
    /// ICE candidate addresses.
    pub ice: Vec<String>,
    /// More than one node may share rooms (a Redis directory): session URLs name their
    /// node, and requests for rooms owned elsewhere are proxied or redirected.
    pub multi_node: bool,
    /// How long a room claim lives without refresh.
    pub room_lease: Duration,
    /// How long a node record lives without heartbeat.
    pub node_ttl: Duration,
}

impl ClusterConfig {
    /// Default lease and TTL: a crashed node's rooms move after at most 6 s.
    pub const ROOM_LEASE: Duration = Duration::from_secs(6);
    /// A node missing this long is dead.
    pub const NODE_TTL: Duration = Duration::from_secs(5);
}

/// Where a new WHIP/WHEP session goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Here.
    Local,
    /// On another node: proxy or redirect the request there.
    Remote(NodeRecord),
    /// Nowhere now (directory unreachable, owner dead but its claim not yet expired, or
    /// no node ready): 503 with `Retry-After` seconds.
    Unavailable {
        /// Seconds.
        retry_after: u32,
    },
}

/// This node in the cluster. See the [module documentation](super).
pub struct Cluster {
    config: ClusterConfig,
    directory: Arc<dyn Directory>,
    rooms: Arc<Rooms>,
    ready: Arc<AtomicBool>,
    sessions: Arc<AtomicI64>,
    /// Rooms this node claimed and has not released.
    claimed: Mutex<HashSet<String>>,
    /// The nodes seen at the last heartbeat.
    nodes: Mutex<Vec<NodeRecord>>,
}

impl Cluster {
    /// Membership of this node. `ready` is the drain flag; `sessions` the live session
    /// count (both owned elsewhere, read here).
    pub fn new(
        config: ClusterConfig,
        directory: Arc<dyn Directory>,
        rooms: Arc<Rooms>,
        ready: Arc<AtomicBool>,
        sessions: Arc<AtomicI64>,
    ) -> Arc<Self> {
        Arc::new(Cluster {
            config,
            directory,
            rooms,
            ready,
            sessions,
            claimed: Mutex::new(HashSet::new()),
            nodes: Mutex::new(Vec::new()),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Whether rooms may live on other nodes (see [`ClusterConfig::multi_node`]).
    pub fn multi_node(&self) -> bool {
        self.config.multi_node
    }

    /// This node's record as published now.
    pub fn record(&self) -> NodeRecord {
        NodeRecord {
            id: self.config.node_id.clone(),
            internal_url: self.config.internal_url.clone(),
            public_url: self.config.public_url.clone(),
            ice: self.config.ice.clone(),
            participants: self.sessions.load(Ordering::Relaxed).max(0) as u64,
            rooms: self.rooms.len() as u64,
            draining: !self.ready.load(Ordering::Relaxed),
        }
    }

    /// The record of node `id` (from the last heartbeat, else asked now).
    pub async fn node(&self, id: &str) -> Option<NodeRecord> {
        if let Some(n) = self.nodes.lock().iter().find(|n| n.id == id) {
            return Some(n.clone());
        }
        let nodes = self.directory.nodes().await.ok()?;
        let found = nodes.iter().find(|n| n.id == id).cloned();
        *self.nodes.lock() = nodes;
        found
    }

    /// Decide where a new session for `room` goes. `forwarded`: another node already
    /// placed it here (the request came through the internal listener).
    pub async fn place(&self, room: &str, forwarded: bool) -> Placement {
        let me = self.config.node_id.as_str();
        if self.rooms.contains(room) {
            // Live here: our claim is refreshed by `run`; media never waits on Redis.
            return Placement::Local;
        }
        let draining = !self.ready.load(Ordering::Relaxed);
        let owner = match self.directory.owner(room).await {
            Ok(o) => o,
            Err(e) => {
                warn!(room, error = %e, "cannot place a new room");
                return Placement::Unavailable { retry_after: 2 };
            }
        };
        match owner {
            Some(o) if o == me => return self.claim_here(room).await,
            Some(o) => {
                if forwarded {
                    // Another node sent it here, but a third owns it: let the client retry.
                    return Placement::Unavailable { retry_after: 1 };
                }
                return match self.node(&o).await {
                    Some(n) => Placement::Remote(n),
                    // Its owner died; the claim expires within the lease.
                    None => Placement::Unavailable {
                        retry_after: self.config.room_lease.as_secs().max(1) as u32,
                    },
                };
            }
            None => {}
        }
        if forwarded {
            return self.claim_here(room).await;
        }
        // A new room: the least loaded node that is ready, this one included.
        let mut candidates: Vec<NodeRecord> = match self.directory.nodes().await {
            Ok(n) => n,
            Err(_) => return Placement::Unavailable { retry_after: 2 },
        };
        *self.nodes.lock() = candidates.clone();
        candidates.retain(|n| !n.draining && n.id != me);
        if !draining {
            candidates.push(self.record());
        }
        candidates.sort_by_key(|n| (n.participants, n.rooms, n.id != me, n.id.clone()));
        match candidates.into_iter().next() {
            None => Placement::Unavailable { retry_after: 5 },
            Some(n) if n.id == me => self.claim_here(room).await,
            Some(n) if self.config.multi_node => Placement::Remote(n),
            Some(_) => Placement::Unavailable { retry_after: 5 },
        }
    }

    async fn claim_here(&self, room: &str) -> Placement {
        let me = self.config.node_id.as_str();
        match self.directory.claim(room, me, self.config.room_lease).await {
            Ok(owner) if owner == me => {
                self.claimed.lock().insert(room.to_owned());
                Placement::Local
            }
            Ok(other) => match self.node(&other).await {
                Some(n) => Placement::Remote(n),
                None => Placement::Unavailable { retry_after: 1 },
            },
            Err(_) => Placement::Unavailable { retry_after: 2 },
        }
    }

    /// Heartbeat, refresh the claims of live rooms, release those of rooms that ended.
    /// Runs until the process ends; directory errors are logged and retried.
    pub async fn run(self: Arc<Self>) {
        let every = (self.config.node_ttl / 4).max(Duration::from_millis(200));
        let mut healthy = true;
        loop {
            let ok = self.tick().await;
            if ok != healthy {
                if ok {
                    info!("room directory reachable again");
                } else {
                    warn!("room directory unreachable: new rooms get 503 until it returns");
                }
                healthy = ok;
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn tick(&self) -> bool {
        let me = self.config.node_id.clone();
        if self
            .directory
            .heartbeat(&self.record(), self.config.node_ttl)
            .await
            .is_err()
        {
            return false;
        }
        if let Ok(nodes) = self.directory.nodes().await {
            *self.nodes.lock() = nodes;
        }
        let mut live: HashSet<String> = self.rooms.names().into_iter().collect();
        if !self.ready.load(Ordering::Relaxed) {
            // Draining: a room whose participants will all move gives its claim up now,
            // so their new sessions open it on a ready node instead of being sent back
            // here (where they would stay until this node goes).
            let mut moving = Vec::new();
            for room in &live {
                if self.moves_on_drain(room).await {
                    moving.push(room.clone());
                }
            }
            for room in moving {
                live.remove(&room);
                if self.directory.release(&room, &me).await.is_ok() {
                    self.claimed.lock().remove(&room);
                }
            }
        }
        let claimed: Vec<String> = self.claimed.lock().iter().cloned().collect();
        for room in claimed.iter().filter(|r| !live.contains(*r)) {
            // Claimed for a first session that never came, or the room ended (or moves).
            if self.directory.release(room, &me).await.is_ok() {
                self.claimed.lock().remove(room);
            }
        }
        for room in &live {
            match self
                .directory
                .refresh(room, &me, self.config.room_lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Lost (Redis restarted, or this node stalled past the lease): take
                    // it back if free; a room has one home.
                    if let Ok(owner) = self
                        .directory
                        .claim(room, &me, self.config.room_lease)
                        .await
                    {
                        if owner != me {
                            warn!(room, owner, "room claimed by another node while live here");
                        }
                    }
                    self.claimed.lock().insert(room.clone());
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Whether `room`'s participants all move when this node drains: every identity that
    /// publishes also watches (a conference client: its WHEP event stream says
    /// `reconnect`, and it then sets up all its sessions again). A publisher that only
    /// publishes (an encoder, the publish page) learns nothing until this node goes, so
    /// its room keeps its claim here and new viewers still come to it. Only in a
    /// cluster: a single node has nowhere to move rooms to.
    async fn moves_on_drain(&self, room: &str) -> bool {
        if !self.config.multi_node {
            return false;
        }
        let detail = self
            .rooms
            .request(room, false, |reply| crate::runtime::Command::Detail {
                reply,
            })
            .await;
        match detail {
            Ok(Some(d)) => d.participants.iter().all(|p| !p.publishing || p.watching),
            // Gone meanwhile (released as ended above next time) or busy: ask again later.
            _ => false,
        }
    }

    /// Leave the cluster: drop this node's record and its claims (shutdown).
    pub async fn leave(&self) {
        let me = self.config.node_id.clone();
        let claimed: Vec<String> = self.claimed.lock().drain().collect();
        for room in claimed {
            let _ = self.directory.release(&room, &me).await;
        }
        let _ = self.directory.remove_node(&me).await;
    }
}
