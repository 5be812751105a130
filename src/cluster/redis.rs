//! [`Directory`] on Redis (`--redis-url`).
//!
//! Keys (prefix `switchboard:`):
//! * `node:{id}` — the node's JSON [`NodeRecord`], `PX` = heartbeat TTL; `nodes` — a set of
//!   node ids (members whose record expired are pruned when read).
//! * `room:{name}` — the owning node id, claimed with `SET NX PX` (lease), extended and
//!   released only by its owner through compare-and-act scripts, so a node that lost its
//!   claim (it stalled past the lease) can never extend or delete another node's.
//!
//! The connection is lazy and reconnects by itself (redis `ConnectionManager`); every call
//! is bounded by a short timeout so a dead Redis costs a request 0.5 s, not a hang.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{DirFuture, Directory, DirectoryError, NodeRecord};

const PREFIX: &str = "switchboard:";
/// Bound on each Redis round trip and on each connection attempt.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Extend the claim `KEYS[1]` by `ARGV[2]` ms if `ARGV[1]` holds it; 1 if extended.
const REFRESH: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";
/// Delete the claim `KEYS[1]` if `ARGV[1]` holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Room claims and node records in Redis.
pub(crate) struct RedisDirectory {
    conn: ConnectionManager,
    refresh: Script,
    release: Script,
}

fn err(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(e.to_string())
}

impl RedisDirectory {
    /// A directory on the Redis at `url` (`redis://host:port/db`). Does not connect yet:
    /// fails only on a malformed URL.
    pub(crate) fn new(url: &str) -> Result<Self, DirectoryError> {
        let client = redis::Client::open(url).map_err(err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(err)?;
        Ok(RedisDirectory {
            conn,
            refresh: Script::new(REFRESH),
            release: Script::new(RELEASE),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// `SET key value NX PX lease`: whether it was set.
async fn set_nx_px(
    c: &mut ConnectionManager,
    key: &str,
    value: &str,
    lease: Duration,
) -> Result<bool, DirectoryError> {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("NX")
        .arg("PX")
        .arg(ms(lease))
        .query_async(c)
        .await
        .map_err(err)?;
    Ok(set.is_some())
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

impl Directory for RedisDirectory {
    fn heartbeat<'a>(&'a self, node: &'a NodeRecord, ttl: Duration) -> DirFuture<'a, ()> {
        Box::pin(async move {
            let json = serde_json::to_string(node).map_err(err)?;
            let mut c = self.conn();
            redis::pipe()
                .cmd("SET")
                .arg(format!("{PREFIX}node:{}", node.id))
                .arg(json)
                .arg("PX")
                .arg(ms(ttl))
                .ignore()
                .sadd(format!("{PREFIX}nodes"), &node.id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
                .map_err(err)
        })
    }

    fn nodes(&self) -> DirFuture<'_, Vec<NodeRecord>> {
        Box::pin(async move {
            let mut c = self.conn();
            let ids: Vec<String> = c.smembers(format!("{PREFIX}nodes")).await.map_err(err)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|i| format!("{PREFIX}node:{i}")).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut c)
                .await
                .map_err(err)?;
            let mut out = Vec::new();
            for (id, v) in ids.iter().zip(values) {
                match v.and_then(|j| serde_json::from_str::<NodeRecord>(&j).ok()) {
                    Some(n) => out.push(n),
                    None => {
                        let _: Result<(), _> = c.srem(format!("{PREFIX}nodes"), id).await;
                    }
                }
            }
            Ok(out)
        })
    }

    fn remove_node<'a>(&'a self, id: &'a str) -> DirFuture<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn();
            redis::pipe()
                .del(format!("{PREFIX}node:{id}"))
                .ignore()
                .srem(format!("{PREFIX}nodes"), id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
                .map_err(err)
        })
    }

    fn claim<'a>(&'a self, room: &'a str, node: &'a str, lease: Duration) -> DirFuture<'a, String> {
        Box::pin(async move {
            let key = format!("{PREFIX}room:{room}");
            let mut c = self.conn();
            // SET NX, else read the holder; a claim that expires between the two is
            // tried once more.
            for _ in 0..2 {
                if set_nx_px(&mut c, &key, node, lease).await? {
                    return Ok(node.to_owned());
                }
                let owner: Option<String> = c.get(&key).await.map_err(err)?;
                match owner {
                    Some(o) if o == node => {
                        self.refresh(room, node, lease).await?;
                        return Ok(o);
                    }
                    Some(o) => return Ok(o),
                    None => continue,
                }
            }
            Err(DirectoryError(
                "room claim raced with its expiry twice".into(),
            ))
        })
    }

    fn owner<'a>(&'a self, room: &'a str) -> DirFuture<'a, Option<String>> {
        Box::pin(async move {
            let mut c = self.conn();
            c.get(format!("{PREFIX}room:{room}")).await.map_err(err)
        })
    }

    fn refresh<'a>(&'a self, room: &'a str, node: &'a str, lease: Duration) -> DirFuture<'a, bool> {
        Box::pin(async move {
            let mut c = self.conn();
            let n: i64 = self
                .refresh
                .key(format!("{PREFIX}room:{room}"))
                .arg(node)
                .arg(ms(lease))
                .invoke_async(&mut c)
                .await
                .map_err(err)?;
            Ok(n == 1)
        })
    }

    fn release<'a>(&'a self, room: &'a str, node: &'a str) -> DirFuture<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn();
            let _: i64 = self
                .release
                .key(format!("{PREFIX}room:{room}"))
                .arg(node)
                .invoke_async(&mut c)
                .await
                .map_err(err)?;
            Ok(())
        })
    }
}
