//! [`SessionSet`]: the sessions one task drives — a room's own, or one subscriber
//! shard's. The room and the shards own their sessions the same way (receive a batch of
//! datagrams, queue forwarded RTP, flush once per batch, advance timers, remove what
//! ended), so they share this one type rather than two copies of the logic.
//!
//! Sans-IO: every input carries `now` (monotonic); what the sessions send and raise is
//! collected in [`SessionSet::out`] for the owner to hand out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::addrs::{AddrBook, Lookup};
use super::{EndReason, Outbox, Participant, RestartError};
use crate::forwarder::ForwardRtp;
use crate::ids::ParticipantId;
use crate::metrics::{DropReason, Meters};
use crate::net::Datagram;

/// The sessions of one owner, indexed by id and by ICE ufrag / bound source address.
#[derive(Default)]
pub struct SessionSet {
    participants: HashMap<ParticipantId, Participant>,
    addrs: AddrBook,
    /// Sessions with RTP queued and not yet flushed (see [`Participant::queue_rtp`]).
    unflushed: Vec<ParticipantId>,
    /// What the sessions sent and raised since the owner last took it.
    pub out: Outbox,
}

impl SessionSet {
    // ---- getters ----

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.participants.len()
    }

    /// No live session.
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Whether session `id` is live here.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.participants.contains_key(&id)
    }

    /// Session `id`.
    pub fn get(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.get(&id)
    }

    /// Session `id`, to give it an input whose output goes to [`SessionSet::out`].
    pub fn get_mut(&mut self, id: ParticipantId) -> Option<(&mut Participant, &mut Outbox)> {
        self.participants.get_mut(&id).map(|p| (p, &mut self.out))
    }

    /// Every live session, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    /// Ids of every live session.
    pub fn ids(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.keys().copied()
    }

    /// When [`SessionSet::handle_timeout`] is next due; `None` without sessions.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.participants.values().map(|p| p.poll_timeout()).min()
    }

    /// Sessions that ended and are not removed yet, with why.
    pub fn ended(&self) -> Vec<(ParticipantId, EndReason)> {
        self.participants
            .values()
            .filter_map(|p| p.ended().map(|r| (p.id(), r)))
            .collect()
    }

    // ---- inputs ----

    /// Take over a session: its datagrams are found by its ufrag from now on.
    pub fn insert(&mut self, p: Participant) {
        self.addrs.insert(p.ufrag().to_owned(), p.id());
        self.participants.insert(p.id(), p);
    }

    /// Restart ICE on session `id` (see [`Participant::restart_ice`]); its STUN checks
    /// are found by the new ufrag from now on. Errors: `Gone` when `id` is not here, or
    /// why the session refused (it goes on as before).
    pub fn restart_ice(
        &mut self,
        now: Instant,
        id: ParticipantId,
        local: str0m::IceCreds,
        remote: str0m::IceCreds,
    ) -> Result<(), RestartError> {
        let p = self.participants.get_mut(&id).ok_or(RestartError::Gone)?;
        let new = local.ufrag.clone();
        let old = p.restart_ice(now, local, remote, &mut self.out)?;
        self.addrs.replace_ufrag(id, &old, new);
        Ok(())
    }

    /// One datagram for these sessions: found by source address or STUN username
    /// (RFC 7983 demultiplexing), then given to its session. A datagram that finds no
    /// session, or that its session refuses, is counted in `meters` and dropped.
    pub fn receive(&mut self, now: Instant, d: &Datagram, meters: &Meters) {
        let participants = &self.participants;
        let found = self
            .addrs
            .lookup(d, |id| participants.get(&id).is_some_and(|p| p.verifies(d)));
        let id = match found.participant() {
            Ok(id) => id,
            Err(reason) => {
                meters.dropped(reason);
                return;
            }
        };
        let Some(p) = self.participants.get_mut(&id) else {
            meters.dropped(DropReason::UnknownSource);
            return;
        };
        if matches!(found, Lookup::Moved(_)) {
            p.follow_move(now, &mut self.out);
        }
        if !p.handle_receive(now, d, &mut self.out) {
            meters.dropped(DropReason::Rejected);
        }
    }

    /// Every session whose timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in self.participants.values_mut() {
            if now >= p.poll_timeout() {
                p.handle_timeout(now, &mut self.out);
            }
        }
    }

    /// Queue a forwarded packet on its subscriber's send stream, to be sent at the next
    /// [`SessionSet::flush`]. Returns the payload bytes queued, `None` when the
    /// subscriber is not here or the packet was not queued.
    pub fn queue_forward(&mut self, now: Instant, f: ForwardRtp) -> Option<u64> {
        let id = f.subscriber;
        let p = self.participants.get_mut(&id)?;
        let len = f.payload.len() as u64;
        let first = p.queue_forward(now, f)?;
        if first {
            self.unflushed.push(id);
        }
        Some(len)
    }

    /// Whether RTP is queued and not flushed.
    pub fn has_unflushed(&self) -> bool {
        !self.unflushed.is_empty()
    }

    /// Drive each session that had RTP queued since the last flush, once.
    pub fn flush(&mut self, now: Instant) {
        for id in std::mem::take(&mut self.unflushed) {
            if let Some(p) = self.participants.get_mut(&id) {
                p.flush(now, &mut self.out);
            }
        }
    }

    /// Remove session `id`, which ended for `reason`. A session that ended on its own
    /// (timeout, error, the peer closed) says goodbye to its peer first (RTCP BYE and
    /// DTLS close_notify); one ended by the server already did. `None` when unknown.
    pub fn remove(&mut self, id: ParticipantId, reason: EndReason) -> Option<Participant> {
        let mut p = self.participants.remove(&id)?;
        if !matches!(
            reason,
            EndReason::Delete | EndReason::Removed | EndReason::Replaced
        ) {
            p.close(reason, &mut self.out);
        }
        self.addrs.remove(id, p.ufrag());
        Some(p)
    }

    /// End every session (the owner is going away): each says goodbye to its peer.
    pub fn close_all(&mut self, reason: EndReason) {
        for p in self.participants.values_mut() {
            p.close(reason, &mut self.out);
        }
    }

    // ---- outputs ----

    /// Source addresses that a verified STUN message bound to a session since the last
    /// call: the demux routes them to this set's owner from now on.
    pub fn take_bindings(&mut self) -> Vec<SocketAddr> {
        self.addrs.take_bindings()
    }
}
