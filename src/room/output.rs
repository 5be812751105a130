//! How a [`Room`] is driven: its one output, [`Room::poll_output`], and [`drive`], the
//! loop that the room's task (`runtime::room_task`) and the simulation harness both run
//! after every input, so that an output added here cannot be forgotten by either.
//!
//! # The contract (the shape of str0m's `Rtc`)
//!
//! 1. Give the room one input: `handle_join`, `handle_datagrams`, `handle_timeout`,
//!    `handle_shard_reports`, `handle_shard_lost` or a room API call — each with `now`,
//!    monotonic, never earlier than the last.
//! 2. Call [`drive`] (or [`Room::poll_output`] until it returns
//!    [`RoomOutput::Timeout`]): events, then notices, then datagrams, then source
//!    bindings, then shard deliveries, then recording outputs, and last the instant at
//!    which to call `handle_timeout` if no other input comes first.
//! 3. Wait for the next input or that instant, and start over.
//!
//! Before a WHEP join, a driver that runs shards asks [`Room::wants_shard`] and, when
//! it does, starts one and registers it with [`Room::add_shard`] (the join then places
//! the viewer there).

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::Transmit;

use super::recording::RecordOutput;
use super::Room;
use crate::conference::info::{Audience, RoomEvent};
use crate::conference::notices::Notice;
use crate::forwarder::ForwardRtp;
use crate::shard::ToShard;

/// What one shard must get from its room after an input: the commands first, in order
/// and never dropped, then the routed packets.
pub struct ShardDelivery {
    /// The shard's index ([`Room::add_shard`]'s answer).
    pub shard: usize,
    /// Commands, to deliver in order.
    pub commands: Vec<ToShard>,
    /// Packets routed to the shard's subscribers.
    pub packets: Vec<ForwardRtp>,
}

/// One thing a room hands its driver ([`Room::poll_output`]).
// One output at a time; boxing the delivery would allocate per wake-up.
#[allow(clippy::large_enum_variant)]
pub enum RoomOutput {
    /// A room event for the event streams of `Audience` (SSE, in order).
    Event(Audience, RoomEvent),
    /// A participant joined or left, a track was published or unpublished (for the
    /// webhooks, in order).
    Notice(Notice),
    /// A datagram to send.
    Transmit(Transmit),
    /// A source address that a verified STUN request bound to one of the room's own
    /// sessions: the demux routes its datagrams to this room from now on.
    Bind(SocketAddr),
    /// What one shard must get now.
    Deliver(ShardDelivery),
    /// A recording's file starts, grows or ends: write it (in order, per file).
    Record(RecordOutput),
    /// Nothing else to hand out: call `handle_timeout` at this instant unless another
    /// input comes first (`None`: no timer runs).
    Timeout(Option<Instant>),
}

/// Where a driver puts what a room hands out: the room's task sends, binds and
/// delivers for real; the simulation moves them over its virtual links.
pub trait RoomSink {
    /// A room event for `audience`.
    fn event(&mut self, audience: Audience, event: RoomEvent);
    /// A join, leave, publish or unpublish.
    fn notice(&mut self, notice: Notice);
    /// A datagram to send.
    fn transmit(&mut self, t: Transmit);
    /// A source address bound to the room (see [`RoomOutput::Bind`]).
    fn bind(&mut self, source: SocketAddr);
    /// What one shard must get.
    fn deliver(&mut self, delivery: ShardDelivery);
    /// A recording's output, to write in order.
    fn record(&mut self, output: RecordOutput);
}

/// Hand everything `room` has to `sink`, in [`RoomOutput`] order, and return when
/// `handle_timeout` is next due. Call after every input.
pub fn drive(room: &mut Room, sink: &mut impl RoomSink) -> Option<Instant> {
    loop {
        match room.poll_output() {
            RoomOutput::Event(audience, event) => sink.event(audience, event),
            RoomOutput::Notice(n) => sink.notice(n),
            RoomOutput::Transmit(t) => sink.transmit(t),
            RoomOutput::Bind(source) => sink.bind(source),
            RoomOutput::Deliver(d) => sink.deliver(d),
            RoomOutput::Record(r) => sink.record(r),
            RoomOutput::Timeout(at) => return at,
        }
    }
}

impl Room {
    /// The next thing to hand out, in the order of the module's contract; ends with
    /// [`RoomOutput::Timeout`] when nothing else is waiting (call again after the next
    /// input). Never blocks, never reads the clock.
    pub fn poll_output(&mut self) -> RoomOutput {
        if let Some((audience, event)) = self.events.pop_front() {
            return RoomOutput::Event(audience, event);
        }
        if let Some(n) = self.notices.pop_front() {
            return RoomOutput::Notice(n);
        }
        if let Some(t) = self.home.out.transmits.pop_front() {
            return RoomOutput::Transmit(t);
        }
        if self.bindings.is_empty() {
            self.bindings = self.home.take_bindings();
        }
        if let Some(source) = self.bindings.pop() {
            return RoomOutput::Bind(source);
        }
        if let Some((shard, commands, packets)) = self.shards.poll_delivery() {
            return RoomOutput::Deliver(ShardDelivery {
                shard,
                commands,
                packets,
            });
        }
        if let Some(r) = self.recordings.out.pop_front() {
            return RoomOutput::Record(r);
        }
        RoomOutput::Timeout(self.poll_timeout())
    }
}
