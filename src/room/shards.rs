//! The room's side of its subscriber shards (see [`super::shard`]): where a new WHEP
//! session goes, the sessions that live in a shard, and what is waiting to be
//! delivered to each shard at the end of the room's wake-up.

use std::collections::HashMap;
use std::sync::Arc;

use str0m::bwe::Bitrate;

use crate::data::ChannelKey;
use crate::forwarder::ForwardRtp;
use crate::ids::{ParticipantId, SessionId};
use crate::limits::ShardPolicy;
use crate::net::RoomKey;
use crate::session::{EndReason, Participant, PtMatcher};
use crate::shard::ToShard;

/// Where a new WHEP session goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// The room drives it.
    Home,
    /// The shard with this index.
    Shard(usize),
    /// A new shard is needed first ([`Shards::add_shard`]).
    NewShard,
}

/// Which of `home` (the room's own count) and `shards` (each shard's count) takes the
/// next WHEP session: the room until it has `policy.after`, then each shard in turn
/// until it has as many (a new one while fewer than `policy.max` exist), then the
/// least loaded shard. The room takes no more than `policy.after` itself: its core
/// also receives and routes every packet for every viewer, so it is the first to fill.
/// A lost shard (`None`: its task is gone) takes nobody and does not count towards
/// `policy.max`.
pub(crate) fn place(policy: ShardPolicy, home: usize, shards: &[Option<usize>]) -> Placement {
    let after = policy.after as usize;
    if after == 0 || policy.max == 0 || home < after {
        return Placement::Home;
    }
    let live = || {
        shards
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((i, (*n)?)))
    };
    if let Some((i, _)) = live().find(|&(_, n)| n < after) {
        return Placement::Shard(i);
    }
    if live().count() < policy.max as usize {
        return Placement::NewShard;
    }
    match live().min_by_key(|&(_, n)| n) {
        Some((i, _)) => Placement::Shard(i),
        None => Placement::Home,
    }
}

/// A WHEP session that lives in a shard, as the room keeps it.
#[derive(Debug)]
pub(crate) struct Remote {
    /// Index of its shard.
    pub shard: usize,
    /// Its session id.
    pub session: SessionId,
    /// Its negotiated payload types (slot assignment needs them).
    pub pts: PtMatcher,
    /// Set once it ended (closed by the room, or reported ended by its shard).
    pub ended: Option<EndReason>,
}

/// One shard as the room sees it.
struct Slot {
    key: RoomKey,
    live: usize,
    /// Its task is gone (see [`Shards::lost`]).
    lost: bool,
    commands: Vec<ToShard>,
    packets: Vec<ForwardRtp>,
}

/// The room's shards and the sessions in them.
#[derive(Default)]
pub(crate) struct Shards {
    policy: ShardPolicy,
    shards: Vec<Slot>,
    remotes: HashMap<ParticipantId, Remote>,
    /// Shards with something to deliver.
    pending: Vec<usize>,
}

impl Shards {
    /// No shard yet.
    pub(crate) fn new(policy: ShardPolicy) -> Self {
        Shards {
            policy,
            ..Default::default()
        }
    }

    /// Where the next WHEP session goes, given the room's own WHEP session count.
    pub(crate) fn place(&self, home: usize) -> Placement {
        let counts: Vec<Option<usize>> = self
            .shards
            .iter()
            .map(|s| (!s.lost).then_some(s.live))
            .collect();
        place(self.policy, home, &counts)
    }

    /// Register a started shard; returns its index.
    pub(crate) fn add_shard(&mut self, key: RoomKey) -> usize {
        self.shards.push(Slot {
            key,
            live: 0,
            lost: false,
            commands: Vec::new(),
            packets: Vec::new(),
        });
        self.shards.len() - 1
    }

    /// The key of shard `i` (its sessions' ufrag prefix).
    pub(crate) fn key(&self, i: usize) -> Option<RoomKey> {
        self.shards.get(i).map(|s| s.key)
    }

    /// Sessions in shards.
    pub(crate) fn len(&self) -> usize {
        self.remotes.len()
    }

    /// No session in a shard.
    pub(crate) fn is_empty(&self) -> bool {
        self.remotes.is_empty()
    }

    /// The session `id`, if it lives in a shard.
    pub(crate) fn get(&self, id: ParticipantId) -> Option<&Remote> {
        self.remotes.get(&id)
    }

    /// Hand `p` to shard `shard`.
    pub(crate) fn insert(&mut self, shard: usize, p: Participant, pts: PtMatcher) {
        let id = p.id();
        let remote = Remote {
            shard,
            session: p.session().clone(),
            pts,
            ended: None,
        };
        self.remotes.insert(id, remote);
        self.shards[shard].live += 1;
        self.command(shard, ToShard::Add(Box::new(p)));
    }

    /// Queue a routed packet for its subscriber's shard; `false` (and the packet
    /// dropped) if the subscriber is not in a shard or already ended.
    pub(crate) fn forward(&mut self, f: ForwardRtp) -> bool {
        let Some(i) = self.live_shard_of(f.subscriber) else {
            return false;
        };
        let slot = &mut self.shards[i];
        if slot.packets.is_empty() && slot.commands.is_empty() {
            self.pending.push(i);
        }
        slot.packets.push(f);
        true
    }

    /// Pass a bitrate request on; `false` if `subscriber` is not in a shard.
    pub(crate) fn set_bitrate(
        &mut self,
        subscriber: ParticipantId,
        minimum: Bitrate,
        desired: Bitrate,
    ) -> bool {
        let Some(i) = self.live_shard_of(subscriber) else {
            return false;
        };
        let cmd = ToShard::SetBitrate {
            subscriber,
            minimum,
            desired,
        };
        self.command(i, cmd);
        true
    }

    /// Pass a data channel write on (see [`ToShard::WriteChannel`]); `false` if
    /// `subscriber` is not live in a shard.
    pub(crate) fn write_channel(
        &mut self,
        subscriber: ParticipantId,
        channel: ChannelKey,
        reliable: bool,
        text: Arc<str>,
        limit: usize,
    ) -> bool {
        let Some(i) = self.live_shard_of(subscriber) else {
            return false;
        };
        let cmd = ToShard::WriteChannel {
            subscriber,
            channel,
            reliable,
            text,
            limit,
        };
        self.command(i, cmd);
        true
    }

    /// Close a data channel of a session in a shard; `false` if it is not live in one.
    pub(crate) fn close_channel(&mut self, subscriber: ParticipantId, channel: ChannelKey) -> bool {
        let Some(i) = self.live_shard_of(subscriber) else {
            return false;
        };
        self.command(
            i,
            ToShard::CloseChannel {
                subscriber,
                channel,
            },
        );
        true
    }

    /// Pass an ICE restart on (see [`ToShard::RestartIce`]); `false` if `subscriber`
    /// is not live in a shard.
    pub(crate) fn restart_ice(
        &mut self,
        subscriber: ParticipantId,
        local: str0m::IceCreds,
        remote: str0m::IceCreds,
    ) -> bool {
        let Some(i) = self.live_shard_of(subscriber) else {
            return false;
        };
        let cmd = ToShard::RestartIce {
            subscriber,
            local,
            remote,
        };
        self.command(i, cmd);
        true
    }

    /// End a session that lives in a shard; `false` if it does not.
    pub(crate) fn close(&mut self, subscriber: ParticipantId, reason: EndReason) -> bool {
        let Some(i) = self.live_shard_of(subscriber) else {
            return self.remotes.contains_key(&subscriber);
        };
        if let Some(r) = self.remotes.get_mut(&subscriber) {
            r.ended = Some(reason);
        }
        self.command(i, ToShard::Close { subscriber, reason });
        true
    }

    /// The shard reported that `id` ended.
    pub(crate) fn mark_ended(&mut self, id: ParticipantId, reason: EndReason) {
        if let Some(r) = self.remotes.get_mut(&id) {
            r.ended.get_or_insert(reason);
        }
    }

    /// Sessions that ended and are still listed.
    pub(crate) fn ended(&self) -> Vec<(ParticipantId, EndReason)> {
        self.remotes
            .iter()
            .filter_map(|(id, r)| r.ended.map(|e| (*id, e)))
            .collect()
    }

    /// Forget an ended session.
    pub(crate) fn remove(&mut self, id: ParticipantId) -> Option<Remote> {
        let r = self.remotes.remove(&id)?;
        self.shards[r.shard].live -= 1;
        Some(r)
    }

    /// Ids of every live session in a shard.
    pub(crate) fn live(&self) -> Vec<ParticipantId> {
        self.remotes
            .iter()
            .filter(|(_, r)| r.ended.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Shard `i`'s task is gone (it panicked): every session in it ends with
    /// `EndReason::Error`, nothing more is delivered to it, and new viewers go elsewhere.
    /// Returns how many sessions it had.
    pub(crate) fn lost(&mut self, i: usize) -> usize {
        let Some(slot) = self.shards.get_mut(i) else {
            return 0;
        };
        slot.lost = true;
        slot.commands.clear();
        slot.packets.clear();
        let mut n = 0;
        for r in self.remotes.values_mut().filter(|r| r.shard == i) {
            r.ended.get_or_insert(EndReason::Error);
            n += 1;
        }
        n
    }

    /// What is waiting for one shard: (index, commands, packets), commands first.
    pub(crate) fn poll_delivery(&mut self) -> Option<(usize, Vec<ToShard>, Vec<ForwardRtp>)> {
        let i = self.pending.pop()?;
        let slot = &mut self.shards[i];
        Some((
            i,
            std::mem::take(&mut slot.commands),
            std::mem::take(&mut slot.packets),
        ))
    }

    fn live_shard_of(&self, id: ParticipantId) -> Option<usize> {
        self.remotes
            .get(&id)
            .filter(|r| r.ended.is_none())
            .map(|r| r.shard)
    }

    fn command(&mut self, i: usize, cmd: ToShard) {
        let slot = &mut self.shards[i];
        if slot.lost {
            return;
        }
        if slot.packets.is_empty() && slot.commands.is_empty() {
            self.pending.push(i);
        }
        slot.commands.push(cmd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ShardPolicy = ShardPolicy { after: 3, max: 2 };

    #[test]
    fn the_room_fills_first_then_each_shard_then_the_least_loaded() {
        assert_eq!(place(POLICY, 0, &[]), Placement::Home);
        assert_eq!(place(POLICY, 2, &[]), Placement::Home);
        assert_eq!(place(POLICY, 3, &[]), Placement::NewShard);
        assert_eq!(place(POLICY, 3, &[Some(2)]), Placement::Shard(0));
        assert_eq!(place(POLICY, 3, &[Some(3)]), Placement::NewShard);
        assert_eq!(place(POLICY, 3, &[Some(3), Some(1)]), Placement::Shard(1));
        // All full and no more shards allowed: the least loaded shard, never the room.
        assert_eq!(place(POLICY, 3, &[Some(3), Some(3)]), Placement::Shard(0));
        assert_eq!(place(POLICY, 3, &[Some(5), Some(4)]), Placement::Shard(1));
        // A viewer leaving the room brings the next one back to it.
        assert_eq!(place(POLICY, 2, &[Some(5), Some(5)]), Placement::Home);
    }

    #[test]
    fn a_lost_shard_takes_nobody_and_frees_its_place() {
        // The lost one had room to spare; a new shard replaces it.
        assert_eq!(place(POLICY, 3, &[None, Some(3)]), Placement::NewShard);
        assert_eq!(place(POLICY, 3, &[None, Some(2)]), Placement::Shard(1));
        assert_eq!(
            place(POLICY, 3, &[None, Some(4), Some(3)]),
            Placement::Shard(2)
        );
        assert_eq!(place(POLICY, 3, &[None]), Placement::NewShard);
    }

    #[test]
    fn no_shards_unless_both_limits_are_set() {
        let off = [
            ShardPolicy { after: 0, max: 4 },
            ShardPolicy { after: 3, max: 0 },
        ];
        for policy in off {
            assert_eq!(place(policy, 1000, &[]), Placement::Home);
        }
    }
}
