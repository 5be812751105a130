//! How a [`Shard`] is driven: its one output, [`Shard::poll_output`], and [`drive`],
//! the loop that the shard's task (`runtime::shard_task`) and the simulation harness
//! both run after every input. The contract is the room's (see `room::output`): one
//! input with `now`, then [`drive`], then wait for the next input or the returned
//! instant.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::Transmit;

use super::{FromShard, Shard};

/// One thing a shard hands its driver ([`Shard::poll_output`]).
#[allow(clippy::large_enum_variant)]
pub enum ShardOutput {
    /// A datagram to send.
    Transmit(Transmit),
    /// A source address that a verified STUN request bound to one of the shard's
    /// sessions: the demux routes its datagrams to this shard from now on.
    Bind(SocketAddr),
    /// A report for the shard's room, in order.
    Report(FromShard),
    /// Nothing else to hand out: call `handle_timeout` at this instant unless another
    /// input comes first (`None`: no session has a timer).
    Timeout(Option<Instant>),
}

/// Where a driver puts what a shard hands out.
pub trait ShardSink {
    /// A datagram to send.
    fn transmit(&mut self, t: Transmit);
    /// A source address bound to the shard.
    fn bind(&mut self, source: SocketAddr);
    /// A report for the room.
    fn report(&mut self, report: FromShard);
}

/// Hand everything `shard` has to `sink`, in [`ShardOutput`] order, and return when
/// `handle_timeout` is next due. Call after every input.
pub fn drive(shard: &mut Shard, sink: &mut impl ShardSink) -> Option<Instant> {
    loop {
        match shard.poll_output() {
            ShardOutput::Transmit(t) => sink.transmit(t),
            ShardOutput::Bind(source) => sink.bind(source),
            ShardOutput::Report(r) => sink.report(r),
            ShardOutput::Timeout(at) => return at,
        }
    }
}

impl Shard {
    /// The next thing to hand out: datagrams, then bindings, then reports; ends with
    /// [`ShardOutput::Timeout`] when nothing else is waiting.
    pub fn poll_output(&mut self) -> ShardOutput {
        if let Some(t) = self.sessions.out.transmits.pop_front() {
            return ShardOutput::Transmit(t);
        }
        if self.bindings.is_empty() {
            self.bindings = self.sessions.take_bindings();
        }
        if let Some(source) = self.bindings.pop() {
            return ShardOutput::Bind(source);
        }
        if let Some(report) = self.reports.pop_front() {
            return ShardOutput::Report(report);
        }
        ShardOutput::Timeout(self.poll_timeout())
    }
}
