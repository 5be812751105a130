//! Reordering jitter buffer for one recorded track: packets in, packets out in sequence
//! order, with a bounded wait for retransmissions.
//!
//! The forwarder hands a recorder its subscriber's packets in arrival order. A lost packet
//! is being repaired upstream (NACK, RFC 4585 §6.2.1; RTX, RFC 4588), so its retransmission
//! arrives later, out of order. [`JitterBuffer`] holds the packets after a hole until the
//! hole is filled or has been missing for `max_wait`, then releases them in sequence order,
//! reporting an abandoned hole as one [`Out::Gap`].
//!
//! Owns: the reorder window of one track (extended sequence numbers, RFC 3550 §A.1, as
//! the forwarder's munger numbers them: continuous, never wrapping).
//!
//! Never: reads the clock (`now` is passed in and must be monotonic), allocates per
//! missing sequence number (a jump of 10⁹ costs one map entry), holds more than
//! `max_packets` packets, panics on any sequence of calls or numbers.
//!
//! Memory bound: at most `max_packets` entries in each of two ordered maps (the packets
//! by sequence number and their arrival instants), each entry holding an `Arc` to the
//! shared payload: `O(max_packets)` besides the payloads themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::Packet;

/// What [`JitterBuffer::pop`] releases, in strictly increasing sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// The next packet in sequence order.
    Packet(Packet),
    /// The next `lost` sequence numbers were given up on (they were missing for
    /// `max_wait` after a later packet arrived, the buffer was full, or the sequence
    /// jumped past the window); the packets after them follow. One `Gap` per run of
    /// missing numbers, `lost` ≥ 1.
    Gap {
        /// How many consecutive sequence numbers are missing.
        lost: u64,
    },
}

/// Why [`JitterBuffer::push`] refused a packet. The packet is dropped; nothing changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The sequence number is before the next one to release: it was released already,
    /// given up on in a [`Out::Gap`], or precedes the first packet (which defines the
    /// start). A late retransmission ends here.
    #[error("packet is before the next sequence number to release")]
    TooOld,
    /// A packet with this sequence number is already buffered.
    #[error("packet is already buffered")]
    Duplicate,
    /// The buffer holds `max_packets` packets: the caller has not popped what was ready.
    /// [`JitterBuffer::pop`] releases at once from a full buffer (giving up on a hole if
    /// need be); a caller that pops after every push never sees this.
    #[error("jitter buffer is full")]
    Full,
}

impl PushError {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            PushError::TooOld => "too_old",
            PushError::Duplicate => "duplicate",
            PushError::Full => "full",
        }
    }
}

/// A reordering buffer for the packets of one track (see the module docs).
///
/// Use: [`push`](Self::push) each packet as it arrives, then [`pop`](Self::pop) until it
/// returns `None`; arm a timer at [`poll_timeout`](Self::poll_timeout) and `pop` again
/// when it fires; at the end, [`flush`](Self::flush) until `None`.
#[derive(Debug)]
pub struct JitterBuffer {
    /// How long a hole at the head is waited for after a later packet arrived.
    max_wait: Duration,
    /// The most packets held (≥ 1); also the width of the window, in sequence numbers,
    /// beyond which a packet resynchronises the buffer.
    max_packets: usize,
    /// Next sequence number to release; `None` until the first packet. A `u128` so that
    /// releasing `u64::MAX` still leaves a number past every `u64`.
    next: Option<u128>,
    /// Holes below this sequence number are given up on without waiting (set by a jump
    /// past the window).
    give_up_below: u128,
    /// The buffered packets by sequence number, with their arrival instants.
    packets: BTreeMap<u64, (Instant, Packet)>,
    /// The same packets by arrival instant: the first one is when the head hole was first
    /// known missing.
    arrivals: BTreeSet<(Instant, u64)>,
}

impl JitterBuffer {
    /// A buffer that waits at most `max_wait` for a missing packet and holds at most
    /// `max_packets` packets (a `max_packets` of 0 counts as 1).
    ///
    /// A packet `max_packets` or more numbers past the next one to release cannot be
    /// waited for within that bound: the buffer gives up on everything before it (see
    /// [`push`](Self::push)).
    pub fn new(max_wait: Duration, max_packets: usize) -> Self {
        Self {
            max_wait,
            max_packets: max_packets.max(1),
            next: None,
            give_up_below: 0,
            packets: BTreeMap::new(),
            arrivals: BTreeSet::new(),
        }
    }

    /// Adds a packet that arrived at `now` (monotonic).
    ///
    /// The first packet ever pushed defines the start of the sequence. A packet
    /// `max_packets` or more numbers past the next one to release (a publisher restart,
    /// a long outage) is accepted and resynchronises the buffer: the packets before it are
    /// released without waiting for their holes, then one [`Out::Gap`] covers the jump.
    ///
    /// # Errors
    ///
    /// [`PushError::TooOld`], [`PushError::Duplicate`] or [`PushError::Full`]; the packet is
    /// dropped and the buffer is unchanged.
    pub fn push(&mut self, now: Instant, packet: Packet) -> Result<(), PushError> {
        let seq = packet.seq;
        let next = *self.next.get_or_insert(u128::from(seq));
        if u128::from(seq) < next {
            return Err(PushError::TooOld);
        }
        if self.packets.contains_key(&seq) {
            return Err(PushError::Duplicate);
        }
        if self.packets.len() >= self.max_packets {
            return Err(PushError::Full);
        }
        // The window starts at the next number to release, or at the last jump when that is
        // further on (so the packets right after a jump do not count as jumps themselves).
        // usize → u128 never truncates on any supported target.
        let window_end = next
            .max(self.give_up_below)
            .saturating_add(self.max_packets as u128);
        if u128::from(seq) >= window_end {
            self.give_up_below = self.give_up_below.max(u128::from(seq));
        }
        self.packets.insert(seq, (now, packet));
        self.arrivals.insert((now, seq));
        Ok(())
    }

    /// Releases the next packet in sequence order, or a [`Out::Gap`] when the next number
    /// has been missing for `max_wait` since a later packet arrived (measured at `now`),
    /// when the buffer is full, or after a jump past the window. `None` while waiting or
    /// empty. Call until `None` after each push and timer.
    pub fn pop(&mut self, now: Instant) -> Option<Out> {
        self.release(|buffer| buffer.give_up_at().is_some_and(|deadline| deadline <= now))
    }

    /// Like [`pop`](Self::pop) but never waits: every hole is given up on at once. For the
    /// end of a recording; call until `None`.
    pub fn flush(&mut self) -> Option<Out> {
        self.release(|_| true)
    }

    /// When a [`pop`](Self::pop) could next release something: an instant at or before the
    /// last `now` when it could release something already, the instant at which the head
    /// hole will be given up on otherwise, `None` when empty (or when that instant is past
    /// what `Instant` can represent; only a push changes anything then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (&first, (arrived, _)) = self.packets.first_key_value()?;
        let next = self.next?;
        if u128::from(first) == next || self.must_give_up(next) {
            return Some(*arrived);
        }
        self.give_up_at()
    }

    /// Number of packets held (at most `max_packets`).
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The next sequence number to release; `None` before the first packet (or after
    /// `u64::MAX` was released).
    pub fn next_seq(&self) -> Option<u64> {
        self.next.and_then(|next| u64::try_from(next).ok())
    }

    /// Releases the head packet, or a gap before it when it is missing and `expired` says
    /// (or the buffer must give up regardless).
    fn release(&mut self, expired: impl FnOnce(&Self) -> bool) -> Option<Out> {
        let next = self.next?;
        let first = *self.packets.keys().next()?;
        if u128::from(first) == next {
            let (arrived, packet) = self.packets.remove(&first)?;
            self.arrivals.remove(&(arrived, first));
            self.next = Some(next + 1);
            return Some(Out::Packet(packet));
        }
        if self.must_give_up(next) || expired(self) {
            // `first` > `next` (smaller numbers are refused), so the difference fits a u64.
            let lost = u64::try_from(u128::from(first) - next).unwrap_or(u64::MAX);
            self.next = Some(u128::from(first));
            return Some(Out::Gap { lost });
        }
        None
    }

    /// True when the hole at `next` must be given up on without waiting: the buffer is
    /// full, or a jump past the window was seen after it.
    fn must_give_up(&self, next: u128) -> bool {
        self.packets.len() >= self.max_packets || next < self.give_up_below
    }

    /// When the head hole is given up on: `max_wait` after the earliest arrival among the
    /// buffered packets (all of them come after the hole).
    fn give_up_at(&self) -> Option<Instant> {
        let (arrived, _) = self.arrivals.first()?;
        arrived.checked_add(self.max_wait)
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
