//! A session: one WHIP or WHEP client's `Rtc` (str0m, RTP mode) and what the room or a
//! shard needs around it — the index that finds a session from a datagram's source or
//! STUN username ([`addrs`]) and why a session ended ([`end`]). Below the room and the
//! shards, which both own sessions; above the forwarder, whose packets it sends.

pub(crate) mod addrs;
pub(crate) mod end;
pub mod participant;
mod set;

pub use end::{DtlsFailure, EndReason};
pub use participant::{Outbox, Participant, ParticipantEvent, PtMatcher, RestartError};
pub use set::SessionSet;
