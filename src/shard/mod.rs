//! A subscriber shard: the sans-IO owner of some of a big room's WHEP sessions.
//!
//! A room whose viewers outgrow one core keeps its publishers, its forwarder (routing,
//! munging, layer selection, allocation) and its conference on its own task, and moves
//! further subscribers' `Rtc`s to shards, each driven by a task of its own
//! (`runtime::shard_task`). Per forwarded packet the room only routes and munges;
//! what costs a core per few hundred viewers — str0m's pacing, SRTP, the RTCP, TWCC and
//! NACK traffic of each viewer, the send — happens on the shard's core.
//!
//! A shard never decides anything: it queues the packets the room routed
//! ([`Shard::handle_rtp`]), applies the room's [`ToShard`] commands, handles its
//! sessions' datagrams (the demux sends them here by the shard's ufrag prefix) and
//! timers, and reports each session's events and end back as [`FromShard`]. Same rules
//! as the room: `now` comes in, no clock, no socket.
//!
//! Data channels of its sessions are relayed by the room (`crate::data`): their events
//! go up like any other, and the room's deliveries come down as
//! [`ToShard::WriteChannel`]; the shard writes them, counts them, and reports only what
//! the relay must act on ([`FromShard::Written`]: a full or gone receiver, and the
//! first write that went through after a full one).

mod output;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::bwe::Bitrate;
use tracing::debug;

use crate::data::{ChannelKey, DataMeters, WriteResult};
use crate::forwarder::ForwardRtp;
use crate::ids::ParticipantId;
use crate::metrics::Meters;
use crate::net::{Datagram, RoomKey};
use crate::session::{EndReason, Participant, ParticipantEvent, SessionSet};
pub use output::{drive, ShardOutput, ShardSink};

/// A command from the room to one of its shards. Delivered in order, never dropped.
pub enum ToShard {
    /// Take over a subscriber whose offer the room accepted. Its ICE ufrag starts with
    /// this shard's [`RoomKey`], so its STUN checks reach the shard.
    Add(Box<Participant>),
    /// Tell a subscriber's bandwidth estimator what to sustain and probe for.
    SetBitrate {
        /// The subscriber.
        subscriber: ParticipantId,
        /// Rate to sustain with padding.
        minimum: Bitrate,
        /// Everything it could use.
        desired: Bitrate,
    },
    /// Write a relayed data channel message (JSON text) to a subscriber's channel,
    /// unless its SCTP send buffer holds `limit` bytes or more already.
    WriteChannel {
        /// The subscriber.
        subscriber: ParticipantId,
        /// Its channel.
        channel: ChannelKey,
        /// Whether the channel is reliable (which counter the write goes to).
        reliable: bool,
        /// The message, shared by every receiver.
        text: Arc<str>,
        /// Buffered bytes past which the message is dropped for this receiver.
        limit: usize,
    },
    /// Close a subscriber's data channel (too many channels, or a receiver too slow).
    CloseChannel {
        /// The subscriber.
        subscriber: ParticipantId,
        /// Its channel.
        channel: ChannelKey,
    },
    /// Restart a subscriber's ICE with these credentials (the room chose the server's
    /// and answered the client already; see `Participant::restart_ice`).
    RestartIce {
        /// The subscriber.
        subscriber: ParticipantId,
        /// The server's new credentials (the ufrag keeps this shard's prefix).
        local: str0m::IceCreds,
        /// The client's new credentials.
        remote: str0m::IceCreds,
    },
    /// End a subscriber (DELETE, room API, replaced): RTCP BYE and DTLS close_notify.
    Close {
        /// The subscriber.
        subscriber: ParticipantId,
        /// Why.
        reason: EndReason,
    },
}

/// What a shard reports to its room.
#[derive(Debug)]
// The large variant of the event (RTP) is never sent by a shard.
#[allow(clippy::large_enum_variant)]
pub enum FromShard {
    /// A subscriber's event (connected, bandwidth estimate, keyframe request).
    Event(ParticipantId, ParticipantEvent),
    /// A subscriber ended here (timeout, error, the peer closed, or a [`ToShard::Close`]).
    Ended(ParticipantId, EndReason),
    /// How a [`ToShard::WriteChannel`] went, when the relay must know: every
    /// [`WriteResult::Full`] and [`WriteResult::Gone`], and [`WriteResult::Written`]
    /// only for the first write to a channel after a full one.
    Written {
        /// The subscriber.
        subscriber: ParticipantId,
        /// Its channel.
        channel: ChannelKey,
        /// The write's result.
        result: WriteResult,
    },
}

/// One shard's subscribers.
pub struct Shard {
    key: RoomKey,
    sessions: SessionSet,
    /// Bindings taken from the sessions and not handed out yet.
    bindings: Vec<SocketAddr>,
    reports: VecDeque<FromShard>,
    meters: Meters,
    data_meters: DataMeters,
    /// Channels whose last write was refused as full (see [`FromShard::Written`]).
    full: HashSet<(ParticipantId, ChannelKey)>,
}

impl Shard {
    /// An empty shard whose sessions' ufrags start with `key`.
    pub fn new(key: RoomKey, meters: Meters) -> Self {
        Shard {
            key,
            sessions: SessionSet::default(),
            bindings: Vec::new(),
            reports: VecDeque::new(),
            meters,
            data_meters: DataMeters::new(),
            full: HashSet::new(),
        }
    }

    // ---- getters ----

    /// The key in its sessions' ufrags.
    pub fn key(&self) -> RoomKey {
        self.key
    }

    /// Live subscribers.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No live subscriber.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// When [`Shard::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions.poll_timeout()
    }

    // ---- inputs ----

    /// Commands from the room, in order.
    pub fn handle_commands(&mut self, now: Instant, commands: impl IntoIterator<Item = ToShard>) {
        for cmd in commands {
            match cmd {
                ToShard::Add(p) => self.sessions.insert(*p),
                ToShard::SetBitrate {
                    subscriber,
                    minimum,
                    desired,
                } => {
                    if let Some((p, out)) = self.sessions.get_mut(subscriber) {
                        p.set_bitrate(now, minimum, desired, out);
                    }
                }
                ToShard::WriteChannel {
                    subscriber,
                    channel,
                    reliable,
                    text,
                    limit,
                } => self.write_channel(now, subscriber, channel, reliable, &text, limit),
                ToShard::CloseChannel {
                    subscriber,
                    channel,
                } => {
                    self.full.remove(&(subscriber, channel));
                    if let Some((p, out)) = self.sessions.get_mut(subscriber) {
                        p.close_channel(now, channel, out);
                    }
                }
                ToShard::RestartIce {
                    subscriber,
                    local,
                    remote,
                } => {
                    // The room answered already; a refusal leaves the old ICE session.
                    if let Err(e) = self.sessions.restart_ice(now, subscriber, local, remote) {
                        debug!(shard = self.key.0, participant = subscriber.0, error = %e, "ICE restart not applied");
                    }
                }
                ToShard::Close { subscriber, reason } => {
                    if let Some((p, out)) = self.sessions.get_mut(subscriber) {
                        p.close(reason, out);
                    }
                }
            }
        }
        self.process(now);
    }

    /// Packets the room routed to this shard's subscribers: each is queued on its
    /// subscriber's send stream, then every subscriber that got one is flushed once
    /// (as the room does for its own, see [`Participant::queue_rtp`]). A packet for a
    /// subscriber that already ended here is dropped.
    pub fn handle_rtp(&mut self, now: Instant, packets: impl IntoIterator<Item = ForwardRtp>) {
        let (mut count, mut bytes) = (0u64, 0u64);
        for f in packets {
            if let Some(len) = self.sessions.queue_forward(now, f) {
                count += 1;
                bytes += len;
            }
        }
        if count > 0 {
            self.meters.rtp_out_packets.increment(count);
            self.meters.rtp_out_bytes.increment(bytes);
        }
        self.process(now);
    }

    /// Datagrams from the network for this shard's sessions.
    pub fn handle_datagrams(
        &mut self,
        now: Instant,
        datagrams: impl IntoIterator<Item = Datagram>,
    ) {
        for d in datagrams {
            self.sessions.receive(now, &d, &self.meters);
        }
        self.process(now);
    }

    /// Advance time: the subscribers' timers and liveness.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sessions.handle_timeout(now);
        self.process(now);
    }

    /// End every subscriber (the room is gone): each says goodbye to its peer.
    pub fn close_all(&mut self, now: Instant) {
        self.sessions.close_all(EndReason::Closed);
        self.process(now);
    }

    // ---- internals ----

    /// A [`ToShard::WriteChannel`]: write, count, report what the relay needs.
    fn write_channel(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        channel: ChannelKey,
        reliable: bool,
        text: &str,
        limit: usize,
    ) {
        let result = match self.sessions.get_mut(subscriber) {
            Some((p, out)) => p.write_channel(now, channel, text, limit, out),
            None => WriteResult::Gone,
        };
        self.data_meters.written(reliable, result);
        let key = (subscriber, channel);
        let report = match result {
            WriteResult::Written => self.full.remove(&key),
            WriteResult::Full => {
                self.full.insert(key);
                true
            }
            WriteResult::Gone => {
                self.full.remove(&key);
                true
            }
        };
        if report {
            self.reports.push_back(FromShard::Written {
                subscriber,
                channel,
                result,
            });
        }
    }

    /// Flush what was queued, pass events on to the room, and remove ended subscribers
    /// (reporting each).
    fn process(&mut self, now: Instant) {
        self.sessions.flush(now);
        for (id, event) in self.sessions.out.events.drain(..) {
            // A WHEP session receives only; RTP from one is ignored, as in the room.
            if !matches!(event, ParticipantEvent::Rtp { .. }) {
                self.reports.push_back(FromShard::Event(id, event));
            }
        }
        for (id, reason) in self.sessions.ended() {
            if self.sessions.remove(id, reason).is_none() {
                continue;
            }
            debug!(
                shard = self.key.0,
                participant = id.0,
                reason = reason.as_str(),
                "subscriber left shard"
            );
            self.full.retain(|(s, _)| *s != id);
            self.reports.push_back(FromShard::Ended(id, reason));
        }
        // Closing drains; anything it raised is of no use to the room any more.
        self.sessions.out.events.clear();
    }
}
