//! Per-room limits and policies: plain values that configuration sets and the
//! conference (admission) and the room (shard placement) read.

/// Per-room limits (`--max-publishers`, `--max-participants`; 0: none) and when a room
/// spreads its viewers over subscriber shards (`--shard-after`, `--max-shards`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoomLimits {
    /// Most identities with a WHIP session.
    pub max_publishers: u32,
    /// Most identities.
    pub max_participants: u32,
    /// Most sessions of one identity (`--max-sessions-per-identity`): one identity is
    /// one participant for `max_participants`, so without this it could open any
    /// number of sessions.
    pub max_sessions_per_identity: u32,
    /// Subscriber shards (default: none).
    pub shards: ShardPolicy,
}

/// When a room spreads its viewers over shards (`--shard-after`, `--max-shards`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardPolicy {
    /// WHEP sessions the room drives itself, and each shard takes before the next one
    /// starts. 0: never shard.
    pub after: u32,
    /// Most shards per room. 0: never shard.
    pub max: u32,
}
