//! The relay's counters, registered once per room (`docs/security.md` lists them).

use metrics::{counter, Counter};

use super::{Refusal, WriteResult};
use crate::metrics::names::{DATA_CHANNELS_CLOSED, DATA_DELIVERED, DATA_DROPPED, DATA_RECEIVED};

/// Why a relayed message was not written to one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteDrop {
    /// The receiver's buffer was over its limit.
    ReceiverFull,
    /// The receiver's channel or session was gone.
    ReceiverGone,
}

const REFUSALS: [Refusal; 6] = [
    Refusal::TooLarge,
    Refusal::Binary,
    Refusal::Invalid,
    Refusal::UnknownRecipient,
    Refusal::RateLimited,
    Refusal::Reserved,
];

/// Pre-registered handles.
#[derive(Clone)]
pub struct DataMeters {
    received: [Counter; 2],
    delivered: [Counter; 2],
    refused: [Counter; 6],
    write_drops: [Counter; 2],
    closed_slow: Counter,
    closed_too_many: Counter,
}

fn kind(reliable: bool) -> usize {
    usize::from(!reliable)
}

impl DataMeters {
    /// Register (or look up) every handle.
    pub fn new() -> Self {
        let kinds = ["reliable", "unreliable"];
        DataMeters {
            received: kinds.map(|k| counter!(DATA_RECEIVED, "kind" => k)),
            delivered: kinds.map(|k| counter!(DATA_DELIVERED, "kind" => k)),
            refused: REFUSALS.map(|r| counter!(DATA_DROPPED, "reason" => r.as_str())),
            write_drops: ["receiver_full", "receiver_gone"]
                .map(|r| counter!(DATA_DROPPED, "reason" => r)),
            closed_slow: counter!(DATA_CHANNELS_CLOSED, "reason" => "slow_receiver"),
            closed_too_many: counter!(DATA_CHANNELS_CLOSED, "reason" => "too_many_channels"),
        }
    }

    /// A message arrived on a channel of this reliability.
    pub fn received(&self, reliable: bool) {
        self.received[kind(reliable)].increment(1);
    }

    /// A message was written to a receiver's channel of this reliability.
    pub fn delivered(&self, reliable: bool) {
        self.delivered[kind(reliable)].increment(1);
    }

    /// How a delivery's write went: delivered, or dropped as full or gone.
    pub fn written(&self, reliable: bool, result: WriteResult) {
        match result {
            WriteResult::Written => self.delivered(reliable),
            WriteResult::Full => self.write_dropped(WriteDrop::ReceiverFull),
            WriteResult::Gone => self.write_dropped(WriteDrop::ReceiverGone),
        }
    }

    /// A message was refused.
    pub fn refused(&self, why: Refusal) {
        let i = REFUSALS.iter().position(|r| *r == why).unwrap_or(0);
        self.refused[i].increment(1);
    }

    /// A message was not written to one receiver.
    pub fn write_dropped(&self, why: WriteDrop) {
        self.write_drops[why as usize].increment(1);
    }

    /// The server closed a channel: its receiver stayed too slow (`slow`), or its
    /// session had too many.
    pub fn closed(&self, slow: bool) {
        if slow {
            self.closed_slow.increment(1);
        } else {
            self.closed_too_many.increment(1);
        }
    }
}

impl Default for DataMeters {
    fn default() -> Self {
        Self::new()
    }
}
