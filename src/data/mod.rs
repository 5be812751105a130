//! The data channel relay of one room: messages routed by topic like RTP is routed by
//! track. Sans-IO and owned by the room; it never touches an `Rtc`, never reads the
//! clock (`now` is monotonic and passed in).
//!
//! A data channel's label is its topic (`docs/conference.md`, "Data channels"; RFC 8831
//! channels over SCTP over DTLS, opened in-band with DCEP, RFC 8832). A participant's
//! message on a topic goes to every other identity of the room with a channel of that
//! label open (on the channel it opened last), or only to the identities of its `to`;
//! never back to the sender's identity. Each receiver gets it on its own channel,
//! whatever reliability that channel has: the sender's channel decides the first hop,
//! the receiver's the second. The server itself sends with
//! [`DataRelay::send_from_server`]; the topic [`EVENTS_TOPIC`] carries the room's
//! events and refuses messages.
//!
//! Bounds: messages larger than [`DataLimits::max_message`] and past a sender's
//! token bucket are refused (counted, answered with an error at most
//! [`DataLimits::error_replies`] times a second); a session opens at most
//! [`DataLimits::max_channels`] channels. What a receiver's SCTP buffer holds is bounded
//! by the session's write ([`DataLimits::buffer_limit`]); a reliable channel whose
//! receiver stays over it for [`DataLimits::congested_close_after`] is closed.

pub(crate) mod message;
mod meters;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::ids::ParticipantId;
pub use message::Refusal;
pub use meters::{DataMeters, WriteDrop};

/// The topic on which the server sends the room's events (the SSE stream's, as
/// `{"from": "server", "topic": "_events", "data": {"event": …, "data": …}}`).
pub const EVENTS_TOPIC: &str = "_events";

/// A data channel of a session, by its SCTP stream id (RFC 8831 §6.5: one stream id
/// names the channel in both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey(pub u16);

/// The `from` of messages the server sends.
pub const SERVER_IDENTITY: &str = "server";

/// Limits of the relay, per room.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataLimits {
    /// Largest message accepted, bytes: 16 KiB (what every browser can send in one
    /// message, RFC 8831 §6.6).
    pub max_message: usize,
    /// Messages per second a session may send, on average.
    pub rate: f64,
    /// Messages a session may send in a burst.
    pub burst: f64,
    /// Error replies per second a session gets at most (refusals past it are only
    /// counted), so that a flood of bad messages is not answered in kind.
    pub error_replies: f64,
    /// Channels a session may have open.
    pub max_channels: usize,
    /// Recipients a `to` may name.
    pub max_recipients: usize,
    /// Bytes a receiver's SCTP send buffer may hold, by the channel's reliability
    /// (reliable, unreliable): a message that would go past it is not written to that
    /// receiver.
    pub buffer_limit: (usize, usize),
    /// A reliable channel whose receiver refuses writes this long is closed.
    pub congested_close_after: Duration,
}

impl Default for DataLimits {
    fn default() -> Self {
        DataLimits {
            max_message: 16 * 1024,
            rate: 50.0,
            burst: 100.0,
            error_replies: 2.0,
            max_channels: 16,
            max_recipients: 64,
            buffer_limit: (1024 * 1024, 16 * 1024),
            congested_close_after: Duration::from_secs(5),
        }
    }
}

/// What the relay asks of the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutput {
    /// Write `text` on channel `channel` of session `to`, within the buffer limit of its
    /// reliability; report the result with [`DataRelay::handle_write`].
    Deliver {
        /// The receiving session.
        to: ParticipantId,
        /// Its channel of the topic.
        channel: ChannelKey,
        /// The receiver's channel is reliable (ordered, no retransmit limit).
        reliable: bool,
        /// The JSON text.
        text: Arc<str>,
    },
    /// Close channel `channel` of session `session`: its receiver stayed too slow.
    Close {
        /// The session.
        session: ParticipantId,
        /// The channel.
        channel: ChannelKey,
    },
}

/// How a session's write of a [`DataOutput::Deliver`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteResult {
    /// Handed to SCTP.
    Written,
    /// Not written: the receiver's buffer is over the limit.
    Full,
    /// Not written: the channel or session is gone.
    Gone,
}

/// A token bucket: `rate` per second, at most `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn full(burst: f64) -> Self {
        Bucket {
            tokens: burst,
            at: None,
        }
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        if let Some(at) = self.at {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One open channel of a session.
#[derive(Debug, Clone)]
struct Channel {
    id: ChannelKey,
    topic: Arc<str>,
    reliable: bool,
    /// Opened as the `n`-th channel of the room: a later one wins for its identity.
    order: u64,
    /// Since when writes to it are refused as full.
    congested_since: Option<Instant>,
}

/// A session with data channels.
#[derive(Debug)]
struct Session {
    identity: Arc<str>,
    name: Arc<str>,
    channels: Vec<Channel>,
    sent: Bucket,
    errors: Bucket,
}

/// What a message did, for the room's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// Delivered to this many receivers (written or not: see [`DataRelay::handle_write`]).
    To(usize),
    /// Refused.
    Refused(Refusal),
}

/// The relay of one room.
#[derive(Debug)]
pub struct DataRelay {
    limits: DataLimits,
    sessions: HashMap<ParticipantId, Session>,
    next_order: u64,
    out: VecDeque<DataOutput>,
}

impl DataRelay {
    /// An empty relay.
    pub fn new(limits: DataLimits) -> Self {
        DataRelay {
            limits,
            sessions: HashMap::new(),
            next_order: 0,
            out: VecDeque::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &DataLimits {
        &self.limits
    }

    /// Session `session` of `identity` (display `name`) opened channel `channel` with
    /// label `topic`; `reliable`: ordered without a retransmit or lifetime limit.
    /// Returns false, and keeps nothing, when the session already has
    /// [`DataLimits::max_channels`] open (the caller closes the channel).
    pub fn handle_open(
        &mut self,
        session: ParticipantId,
        identity: Arc<str>,
        name: Arc<str>,
        channel: ChannelKey,
        topic: &str,
        reliable: bool,
    ) -> bool {
        let limits = self.limits;
        let s = self.sessions.entry(session).or_insert_with(|| Session {
            identity,
            name,
            channels: Vec::new(),
            sent: Bucket::full(limits.burst),
            errors: Bucket::full(limits.error_replies.max(1.0)),
        });
        s.channels.retain(|c| c.id != channel);
        if s.channels.len() >= limits.max_channels {
            return false;
        }
        s.channels.push(Channel {
            id: channel,
            topic: topic.into(),
            reliable,
            order: self.next_order,
            congested_since: None,
        });
        self.next_order += 1;
        true
    }

    /// Channel `channel` of `session` closed.
    pub fn handle_close(&mut self, session: ParticipantId, channel: ChannelKey) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.channels.retain(|c| c.id != channel);
        }
    }

    /// The session ended: it neither sends nor receives any more.
    pub fn remove(&mut self, session: ParticipantId) {
        self.sessions.remove(&session);
    }

    /// Whether `session`'s channel `channel` is reliable; `None` when it is not open.
    pub fn is_reliable(&self, session: ParticipantId, channel: ChannelKey) -> Option<bool> {
        let s = self.sessions.get(&session)?;
        s.channels
            .iter()
            .find(|c| c.id == channel)
            .map(|c| c.reliable)
    }

    /// Sessions with at least one channel open.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// A message from `from` on its channel `channel` (`binary` as str0m reports it).
    /// `in_room` says whether an identity is in the room (for `to`). Queues the
    /// deliveries, or the error reply.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: ParticipantId,
        channel: ChannelKey,
        binary: bool,
        bytes: &[u8],
        in_room: impl Fn(&str) -> bool,
    ) -> Relayed {
        let limits = self.limits;
        let Some(sender) = self.sessions.get_mut(&from) else {
            return Relayed::Refused(Refusal::Invalid);
        };
        let Some(topic) = sender
            .channels
            .iter()
            .find(|c| c.id == channel)
            .map(|c| c.topic.clone())
        else {
            return Relayed::Refused(Refusal::Invalid);
        };
        let checked = if !sender.sent.take(now, limits.rate, limits.burst) {
            Err(Refusal::RateLimited)
        } else if bytes.len() > limits.max_message {
            Err(Refusal::TooLarge)
        } else if binary {
            Err(Refusal::Binary)
        } else if &*topic == EVENTS_TOPIC {
            Err(Refusal::Reserved)
        } else {
            message::parse(bytes, limits.max_recipients)
        };
        let msg = match checked {
            Ok(m) => m,
            Err(why) => {
                let reply = sender.errors.take(now, limits.error_replies, 1.0);
                if reply {
                    self.out.push_back(DataOutput::Deliver {
                        to: from,
                        channel,
                        reliable: true,
                        text: message::refusal(why).into(),
                    });
                }
                return Relayed::Refused(why);
            }
        };
        if let Some(to) = &msg.to {
            if to.iter().any(|id| !in_room(id)) {
                if sender.errors.take(now, limits.error_replies, 1.0) {
                    let reply = message::refusal(Refusal::UnknownRecipient);
                    self.out.push_back(DataOutput::Deliver {
                        to: from,
                        channel,
                        reliable: true,
                        text: reply.into(),
                    });
                }
                return Relayed::Refused(Refusal::UnknownRecipient);
            }
        }
        let (identity, name) = (sender.identity.clone(), sender.name.clone());
        let to: Option<Vec<&str>> = msg.to.as_ref().map(|t| t.iter().map(|s| &**s).collect());
        let text: Arc<str> =
            message::relayed(&identity, Some(&name), &topic, msg.to.as_deref(), msg.data).into();
        Relayed::To(self.fan_out(&topic, Some(&identity), to.as_deref(), text))
    }

    /// A message from the server on `topic` (`from` is [`SERVER_IDENTITY`]), to every
    /// session with the topic, or only to the identities in `to`. Returns the receivers.
    pub fn send_from_server(&mut self, topic: &str, data: &RawValue, to: Option<&[&str]>) -> usize {
        let owned: Option<Vec<std::borrow::Cow<'_, str>>> =
            to.map(|t| t.iter().map(|s| (*s).into()).collect());
        let text: Arc<str> =
            message::relayed(SERVER_IDENTITY, None, topic, owned.as_deref(), data).into();
        self.fan_out(topic, None, to, text)
    }

    /// A message from the server on `topic` to one session, on its latest channel of
    /// the topic (the room's per-viewer events). Returns whether it has one.
    pub fn send_to_session(
        &mut self,
        session: ParticipantId,
        topic: &str,
        data: &RawValue,
    ) -> bool {
        let Some(s) = self.sessions.get(&session) else {
            return false;
        };
        let Some(c) = s
            .channels
            .iter()
            .filter(|c| &*c.topic == topic)
            .max_by_key(|c| c.order)
        else {
            return false;
        };
        let text = message::relayed(SERVER_IDENTITY, None, topic, None, data).into();
        self.out.push_back(DataOutput::Deliver {
            to: session,
            channel: c.id,
            reliable: c.reliable,
            text,
        });
        true
    }

    /// Queue `text` for every identity but `except` with `topic` open (only those in
    /// `to`, when given), on its latest channel of the topic. Returns the receivers.
    fn fan_out(
        &mut self,
        topic: &str,
        except: Option<&str>,
        to: Option<&[&str]>,
        text: Arc<str>,
    ) -> usize {
        // The latest channel of the topic per identity.
        let mut best: HashMap<&str, (u64, ParticipantId, ChannelKey, bool)> = HashMap::new();
        for (&pid, s) in &self.sessions {
            let who = &*s.identity;
            if except == Some(who) || to.is_some_and(|t| !t.contains(&who)) {
                continue;
            }
            for c in s.channels.iter().filter(|c| &*c.topic == topic) {
                let entry = best.entry(who).or_insert((c.order, pid, c.id, c.reliable));
                if c.order > entry.0 {
                    *entry = (c.order, pid, c.id, c.reliable);
                }
            }
        }
        let mut receivers: Vec<_> = best.into_values().collect();
        // Deterministic order (the map's is not): by when the channel opened.
        receivers.sort_unstable_by_key(|r| r.0);
        let n = receivers.len();
        for (_, pid, channel, reliable) in receivers {
            self.out.push_back(DataOutput::Deliver {
                to: pid,
                channel,
                reliable,
                text: text.clone(),
            });
        }
        n
    }

    /// The result of a [`DataOutput::Deliver`] to `to`'s `channel`. A reliable channel
    /// that has refused writes as full for [`DataLimits::congested_close_after`] is
    /// queued for closing; returns true then.
    pub fn handle_write(
        &mut self,
        now: Instant,
        to: ParticipantId,
        channel: ChannelKey,
        result: WriteResult,
    ) -> bool {
        let close_after = self.limits.congested_close_after;
        let Some(s) = self.sessions.get_mut(&to) else {
            return false;
        };
        let Some(c) = s.channels.iter_mut().find(|c| c.id == channel) else {
            return false;
        };
        match result {
            WriteResult::Written => c.congested_since = None,
            WriteResult::Gone => {}
            WriteResult::Full => {
                let since = *c.congested_since.get_or_insert(now);
                if c.reliable && now.saturating_duration_since(since) >= close_after {
                    s.channels.retain(|c| c.id != channel);
                    self.out.push_back(DataOutput::Close {
                        session: to,
                        channel,
                    });
                    return true;
                }
            }
        }
        false
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<DataOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod relay_tests;
