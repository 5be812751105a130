//! Multi-node rooms: which node owns which room, and which nodes are alive.
//!
//! A room lives on exactly one node (its media never crosses nodes). The [`Directory`]
//! records node heartbeats and room claims; [`Cluster`] uses it to place a WHIP/WHEP
//! POST: on this node, on the room's owner (proxied or redirected by the API), or nowhere
//! for now (503 with `Retry-After`) when the directory cannot be reached.
//!
//! Two directories: [`MemoryDirectory`] (the default: one node, nothing external) and
//! [`redis::RedisDirectory`] (`--redis-url`): node records with a heartbeat TTL, room
//! claims with `SET NX PX` refreshed by a compare-and-refresh script. The directory is
//! never on a media path; live rooms keep running whatever it does.

pub mod k8s;
mod node;
pub(crate) mod redis;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use node::{Cluster, ClusterConfig, Placement};

/// A node as other nodes see it (JSON in the directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// `--node-id`.
    pub id: String,
    /// Base URL of its internal listener (`--internal-addr`), for proxied requests.
    pub internal_url: String,
    /// Base URL clients use to reach it (for `--routing redirect`).
    pub public_url: String,
    /// Its ICE candidate addresses (`ip:port`).
    pub ice: Vec<String>,
    /// Live WHIP/WHEP sessions on it.
    pub participants: u64,
    /// Live rooms on it.
    pub rooms: u64,
    /// Draining: place no new room there.
    pub draining: bool,
}

/// The directory could not answer (unreachable, timed out, or answered garbage).
#[derive(Debug, Clone, thiserror::Error)]
#[error("room directory unavailable: {0}")]
pub struct DirectoryError(pub String);

/// A boxed future of a directory operation.
pub type DirFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DirectoryError>> + Send + 'a>>;

/// Where nodes and room claims are recorded. Every operation may fail with
/// [`DirectoryError`]; callers treat that as "unknown", never as "absent".
pub trait Directory: Send + Sync + 'static {
    /// Publish `node`'s record, alive for `ttl` unless refreshed.
    fn heartbeat<'a>(&'a self, node: &'a NodeRecord, ttl: Duration) -> DirFuture<'a, ()>;
    /// Records of the nodes alive now.
    fn nodes(&self) -> DirFuture<'_, Vec<NodeRecord>>;
    /// Remove a node's record (it is shutting down).
    fn remove_node<'a>(&'a self, id: &'a str) -> DirFuture<'a, ()>;
    /// Claim `room` for `node` for `lease` unless another node holds it (`SET NX PX`).
    /// Returns the owner after the call: `node` itself when the claim holds (a claim it
    /// already had is refreshed).
    fn claim<'a>(&'a self, room: &'a str, node: &'a str, lease: Duration) -> DirFuture<'a, String>;
    /// The node holding `room`, if any.
    fn owner<'a>(&'a self, room: &'a str) -> DirFuture<'a, Option<String>>;
    /// Extend `node`'s claim on `room` by `lease`; `false` when `node` no longer holds it.
    fn refresh<'a>(&'a self, room: &'a str, node: &'a str, lease: Duration) -> DirFuture<'a, bool>;
    /// Drop `node`'s claim on `room` (no-op when another node holds it).
    fn release<'a>(&'a self, room: &'a str, node: &'a str) -> DirFuture<'a, ()>;
}

/// One node, no external service: every room is this node's. Keeps real records and
/// leases, so the placement code runs the same way as with Redis.
#[derive(Default)]
pub struct MemoryDirectory {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    nodes: HashMap<String, (NodeRecord, Instant)>,
    rooms: HashMap<String, (String, Instant)>,
}

impl MemoryDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> DirFuture<'a, T> {
    Box::pin(std::future::ready(Ok(v)))
}

impl Directory for MemoryDirectory {
    fn heartbeat<'a>(&'a self, node: &'a NodeRecord, ttl: Duration) -> DirFuture<'a, ()> {
        let until = Instant::now() + ttl;
        self.state
            .lock()
            .nodes
            .insert(node.id.clone(), (node.clone(), until));
        ready(())
    }

    fn nodes(&self) -> DirFuture<'_, Vec<NodeRecord>> {
        let now = Instant::now();
        let mut s = self.state.lock();
        s.nodes.retain(|_, (_, until)| *until > now);
        let out = s.nodes.values().map(|(n, _)| n.clone()).collect();
        ready(out)
    }

    fn remove_node<'a>(&'a self, id: &'a str) -> DirFuture<'a, ()> {
        self.state.lock().nodes.remove(id);
        ready(())
    }

    fn claim<'a>(&'a self, room: &'a str, node: &'a str, lease: Duration) -> DirFuture<'a, String> {
        let now = Instant::now();
        let mut s = self.state.lock();
        let owner = match s.rooms.get(room) {
            Some((owner, until)) if *until > now && owner != node => owner.clone(),
            _ => {
                s.rooms
                    .insert(room.to_owned(), (node.to_owned(), now + lease));
                node.to_owned()
            }
        };
        ready(owner)
    }

    fn owner<'a>(&'a self, room: &'a str) -> DirFuture<'a, Option<String>> {
        let now = Instant::now();
        let s = self.state.lock();
        let owner = s
            .rooms
            .get(room)
            .filter(|(_, until)| *until > now)
            .map(|(o, _)| o.clone());
        ready(owner)
    }

    fn refresh<'a>(&'a self, room: &'a str, node: &'a str, lease: Duration) -> DirFuture<'a, bool> {
        let now = Instant::now();
        let mut s = self.state.lock();
        let held = match s.rooms.get_mut(room) {
            Some((owner, until)) if owner == node && *until > now => {
                *until = now + lease;
                true
            }
            _ => false,
        };
        ready(held)
    }

    fn release<'a>(&'a self, room: &'a str, node: &'a str) -> DirFuture<'a, ()> {
        let mut s = self.state.lock();
        if s.rooms.get(room).is_some_and(|(o, _)| o == node) {
            s.rooms.remove(room);
        }
        ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_claim_is_exclusive_until_released() {
        let d = MemoryDirectory::new();
        assert_eq!(d.claim("r", "a", LEASE).await.unwrap(), "a");
        assert_eq!(d.claim("r", "b", LEASE).await.unwrap(), "a");
        assert_eq!(d.owner("r").await.unwrap().as_deref(), Some("a"));
        assert!(d.refresh("r", "a", LEASE).await.unwrap());
        assert!(!d.refresh("r", "b", LEASE).await.unwrap());
        d.release("r", "b").await.unwrap();
        assert_eq!(d.owner("r").await.unwrap().as_deref(), Some("a"));
        d.release("r", "a").await.unwrap();
        assert_eq!(d.owner("r").await.unwrap(), None);
        assert_eq!(d.claim("r", "b", LEASE).await.unwrap(), "b");
    }

    #[tokio::test]
    async fn claims_and_nodes_expire() {
        let d = MemoryDirectory::new();
        let short = Duration::from_millis(20);
        d.claim("r", "a", short).await.unwrap();
        let n = NodeRecord {
            id: "a".into(),
            internal_url: String::new(),
            public_url: String::new(),
            ice: vec![],
            participants: 0,
            rooms: 0,
            draining: false,
        };
        d.heartbeat(&n, short).await.unwrap();
        assert_eq!(d.nodes().await.unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(d.owner("r").await.unwrap(), None);
        assert!(d.nodes().await.unwrap().is_empty());
        assert_eq!(d.claim("r", "b", LEASE).await.unwrap(), "b");
    }
}
