//! Subscriber shards in the simulation (`switchboard::shard`): the driver plays both
//! tasks of production (`runtime::room_task`, `runtime::shard_task`) in one thread, with
//! the same drive loops (`room::drive`, `shard::drive`; see `tests/drive_loop.rs`).
//!
//! A shard is started (key `RoomKey(1000 + index)`) and registered with the room when
//! the room asks for one before a WHEP join ([`Sim::start_shard_if_wanted`]). Each peer's
//! uplink goes to the owner of its session: the room, or the shard that was handed its
//! participant ([`Sim::shard_of`]). After every room or shard step [`Sim::pump`] moves
//! everything until nothing is left: the room's deliveries to its shards (commands
//! first, then routed packets), the shards' reports to the room, every datagram the room
//! or a shard sends onto the downlink of the peer it is addressed to, and the room's
//! events into [`Sim::events`]. Without a shard policy the pump does exactly what the
//! driver did before shards: keep the room's events, then send its datagrams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::Transmit;
use switchboard::conference::info::{Audience, RoomEvent};
use switchboard::conference::notices::Notice;
use switchboard::forwarder::ForwardRtp;
use switchboard::metrics::Meters;
use switchboard::net::{Datagram, RoomKey};
use switchboard::room::{self, RecordOutput, RoomSink, ShardDelivery};
use switchboard::shard::{self, FromShard, Shard, ShardSink, ToShard};

use super::conference::SimEvent;
use super::Sim;

/// Key of the first shard; shard `i` has `RoomKey(FIRST_SHARD_KEY + i)`.
pub const FIRST_SHARD_KEY: u32 = 1000;

impl Sim {
    /// The shard that drives peer `index`'s session, `None` when the room does (or the
    /// peer is unknown).
    pub fn shard_of(&self, index: usize) -> Option<usize> {
        self.shard_of.get(index).copied().flatten()
    }

    /// Shard `i` dies as a panicking task would: its sessions' `Rtc`s vanish without a
    /// word to their peers, and the room learns that the shard is lost (what the room
    /// actor does when the shard's channel closes). Datagrams still routed to it are
    /// dropped as from an unknown source.
    pub fn lose_shard(&mut self, i: usize) {
        let key = self.shards[i].key();
        self.shards[i] = Shard::new(key, Meters::new());
        self.room.handle_shard_lost(self.now, i);
        self.last_room_timeout = None;
        self.pump();
    }

    /// Before a WHEP join: if the room wants a new shard, start one and register it
    /// (what the room actor does before handing the room a subscriber's join).
    pub(super) fn start_shard_if_wanted(&mut self) {
        if !self.room.wants_shard() {
            return;
        }
        let key = RoomKey(FIRST_SHARD_KEY + self.shards.len() as u32);
        self.shards.push(Shard::new(key, Meters::new()));
        self.last_shard_timeouts.push(None);
        let index = self.room.add_shard(key);
        assert_eq!(
            index + 1,
            self.shards.len(),
            "room and sim disagree on shards"
        );
    }

    /// Deadlines of the shards' timeouts, by shard index. A shard that keeps a deadline
    /// it was already called for is moved on by 1 ms, as the room is (see `next_due`).
    pub(super) fn shard_deadlines(&self) -> impl Iterator<Item = (usize, Instant)> + '_ {
        self.shards.iter().enumerate().filter_map(|(i, s)| {
            let t = s.poll_timeout()?;
            Some(match self.last_shard_timeouts[i] {
                Some(last) if t <= last => (i, last + Duration::from_millis(1)),
                _ => (i, t),
            })
        })
    }

    /// Shard `i`'s timeout is due.
    pub(super) fn shard_timeout(&mut self, i: usize) {
        let now = self.now;
        let last = self.last_shard_timeouts[i];
        if last.is_some_and(|l| self.shards[i].poll_timeout() <= Some(l)) {
            self.stats.shard_stalls += 1;
        }
        self.last_shard_timeouts[i] = Some(now);
        self.stats.shard_timeouts += 1;
        self.shards[i].handle_timeout(now);
        self.pump();
    }

    /// A datagram from a peer whose session shard `i` drives.
    pub(super) fn shard_datagram(&mut self, i: usize, d: Datagram) {
        // New input: a deadline at `now` is fresh, not a repeat.
        self.last_shard_timeouts[i] = None;
        self.stats.shard_datagrams += 1;
        self.shards[i].handle_datagrams(self.now, std::iter::once(d));
    }

    /// Move everything the room and the shards produced until nothing is left (see the
    /// module docs), with the drive loops production uses ([`room::drive`],
    /// [`shard::drive`]).
    pub fn pump(&mut self) {
        loop {
            let mut room_out = Collected::default();
            room::drive(&mut self.room, &mut room_out);
            for (audience, event) in room_out.events {
                self.events.push(SimEvent::new(self.now, audience, &event));
            }
            self.notices.append(&mut room_out.notices);
            self.records.append(&mut room_out.records);
            for t in room_out.transmits {
                self.send_down(t);
            }
            let mut more = !room_out.deliveries.is_empty();
            for d in room_out.deliveries {
                self.deliver(d.shard, d.commands, d.packets);
            }
            for i in 0..self.shards.len() {
                let mut shard_out = Collected::default();
                shard::drive(&mut self.shards[i], &mut shard_out);
                for t in shard_out.transmits {
                    self.send_down(t);
                }
                if !shard_out.reports.is_empty() {
                    // New input for the room, as a datagram is.
                    self.last_room_timeout = None;
                    self.room.handle_shard_reports(self.now, shard_out.reports);
                    more = true;
                }
            }
            if !more {
                return;
            }
        }
    }

    /// Hand shard `i` what the room queued for it: commands first, then packets. A
    /// participant it takes over is recorded as driven by it (peer index = id - 1); its
    /// ufrag must start with the shard's key, which is how production's demux finds the
    /// shard (the driver routes by owner instead).
    fn deliver(&mut self, i: usize, commands: Vec<ToShard>, packets: Vec<ForwardRtp>) {
        let now = self.now;
        self.last_shard_timeouts[i] = None;
        for cmd in &commands {
            if let ToShard::Add(p) = cmd {
                let prefix = self.shards[i].key().ufrag_prefix();
                assert!(
                    p.ufrag().starts_with(&prefix),
                    "participant {} handed to shard {i} has ufrag {}, not under {prefix}",
                    p.id().0,
                    p.ufrag()
                );
                // Participant ids count joins from 1, in the order of `peers`.
                let peer = p.id().0 as usize - 1;
                if self.shard_of.len() <= peer {
                    self.shard_of.resize(peer + 1, None);
                }
                self.shard_of[peer] = Some(i);
            }
        }
        if !commands.is_empty() {
            self.shards[i].handle_commands(now, commands);
        }
        if !packets.is_empty() {
            self.shards[i].handle_rtp(now, packets);
        }
    }
}

/// What one drive of the room or a shard handed out, kept in order by kind. Source
/// bindings are dropped: the driver routes each peer's datagrams by owner, not by
/// address (see the module docs).
#[derive(Default)]
struct Collected {
    events: Vec<(Audience, RoomEvent)>,
    notices: Vec<Notice>,
    records: Vec<RecordOutput>,
    transmits: Vec<Transmit>,
    deliveries: Vec<ShardDelivery>,
    reports: Vec<FromShard>,
}

impl RoomSink for Collected {
    fn event(&mut self, audience: Audience, event: RoomEvent) {
        self.events.push((audience, event));
    }

    fn notice(&mut self, notice: Notice) {
        self.notices.push(notice);
    }

    fn transmit(&mut self, t: Transmit) {
        self.transmits.push(t);
    }

    fn bind(&mut self, _source: SocketAddr) {}

    fn deliver(&mut self, delivery: ShardDelivery) {
        self.deliveries.push(delivery);
    }

    fn record(&mut self, output: RecordOutput) {
        self.records.push(output);
    }
}

impl ShardSink for Collected {
    fn transmit(&mut self, t: Transmit) {
        self.transmits.push(t);
    }

    fn bind(&mut self, _source: SocketAddr) {}

    fn report(&mut self, report: FromShard) {
        self.reports.push(report);
    }
}
