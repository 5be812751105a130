//! `Room` and its subscriber shards (see [`crate::shard`]): starting one when the
//! placement asks for it, ending a session wherever it lives, taking the shards'
//! reports in and handing their deliveries out. Same rules as the rest of the room.

use std::time::Instant;

use tracing::warn;

use super::Room;
use crate::ids::ParticipantId;
use crate::net::RoomKey;
use crate::room::shards::Placement;
use crate::session::participant::EndReason;
use crate::shard::FromShard;

impl Room {
    /// Whether the next WHEP session needs a new shard: the room and every shard have
    /// their share and fewer than the maximum exist. The actor then starts one and
    /// calls [`Room::add_shard`] before the join.
    pub fn wants_shard(&self) -> bool {
        self.shards.place(self.home_subscribers()) == Placement::NewShard
    }

    /// Register a started shard whose sessions' ufrags start with `key`; returns its
    /// index (the one a [`super::ShardDelivery`] names).
    pub fn add_shard(&mut self, key: RoomKey) -> usize {
        self.shards.add_shard(key)
    }

    /// What shards reported: their subscribers' events, as if raised here, ends, and
    /// the data channel writes the relay must know of.
    /// Reports about a session this room already removed (a shard can report before
    /// it sees the room's Close) are dropped.
    pub fn handle_shard_reports(
        &mut self,
        now: Instant,
        reports: impl IntoIterator<Item = FromShard>,
    ) {
        for report in reports {
            match report {
                FromShard::Event(id, event) if self.shards.get(id).is_some() => {
                    self.home.out.events.push_back((id, event));
                }
                FromShard::Event(..) => {}
                FromShard::Ended(id, reason) => self.shards.mark_ended(id, reason),
                FromShard::Written {
                    subscriber,
                    channel,
                    result,
                } => {
                    self.data.handle_write(now, subscriber, channel, result);
                }
            }
        }
        // A receiver that stayed full closes its channel (`DataOutput::Close`).
        self.deliver_data(now);
        self.process(now);
    }

    /// Shard `i`'s task is gone (it panicked): its sessions end (`error`) and are
    /// removed like any other, so their clients, the room API and the metrics see them
    /// go; later viewers are placed elsewhere.
    pub fn handle_shard_lost(&mut self, now: Instant, i: usize) {
        let n = self.shards.lost(i);
        warn!(room = %self.name, shard = i, sessions = n, "subscriber shard lost");
        self.process(now);
    }

    /// End session `id` wherever it lives (the room or a shard). No-op when unknown.
    pub(super) fn close_member(&mut self, id: ParticipantId, reason: EndReason) {
        match self.home.get_mut(id) {
            Some((p, out)) => p.close(reason, out),
            None => {
                self.shards.close(id, reason);
            }
        }
    }

    /// Every live session, in the room or a shard.
    pub(super) fn member_ids(&self) -> Vec<ParticipantId> {
        let mut ids: Vec<ParticipantId> = self.home.ids().collect();
        ids.extend(self.shards.live());
        ids
    }
}
