//! The `data` scenario's peer side: a data-only WHEP session with two channels, `chat`
//! (ordered, reliable) and `pos` (unordered, `maxRetransmits: 0`), as
//! `docs/conference.md` ("Data channels") has them. Once told to, a [`DataPeer`] sends
//! `--rate` messages a second on each topic, each `{"data":{"seq":k,"t":µs}}` (`seq`
//! from 0 per topic, `t` the send time in µs since the tool's epoch, an optional `pad`
//! string for size); as a receiver it checks every relayed message
//! (`{"from","name","topic","data"}`) per (sender, topic) [`Flow`]: delivered,
//! duplicated, out of order, latency (receive time − `t`), and counts the server's
//! `{"error": …}` replies.
//!
//! Sans-IO and clock-free: the driver ([`crate::driver`]) passes `now` in, asks which
//! topics are [`due`](DataPeer::due), writes each [`message`](DataPeer::message) on
//! the topic's channel with `rtc.channel(id).write(false, …)` and reports whether str0m
//! took it ([`written`](DataPeer::written)). Senders are staggered by participant
//! index over one interval so that N participants do not all write at the same instant.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use str0m::channel::ChannelId;
use switchboard_kit::peer::ChannelSpec;
use switchboard_kit::recv::Histogram;

/// Highest `seq` a receiver tracks; a message claiming more is unreadable (bounds the
/// per-flow bitmap against a bogus sender).
const MAX_SEQ: u64 = 1 << 22;
/// Most messages of one topic a late task writes at once to catch up; a longer backlog
/// is skipped (counted), so a stalled task never bursts into the server's rate limit.
const MAX_CATCH_UP: u64 = 5;

/// The two topics (channel labels) of the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `chat`: ordered, reliable. Every gap is a loss, and a bug.
    Chat,
    /// `pos`: unordered, `maxRetransmits: 0`, like cursors. Drops are allowed.
    Pos,
}

impl Topic {
    /// Both, in offer order (their index is [`Topic::index`]).
    pub const ALL: [Topic; 2] = [Topic::Chat, Topic::Pos];

    /// The channel label (the server's topic).
    pub fn label(self) -> &'static str {
        match self {
            Topic::Chat => "chat",
            Topic::Pos => "pos",
        }
    }

    /// Ordered and reliable.
    pub fn reliable(self) -> bool {
        self == Topic::Chat
    }

    /// Position in [`Topic::ALL`] and in per-topic arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The channel of the offer.
    pub fn channel(self) -> ChannelSpec {
        ChannelSpec {
            label: self.label().to_owned(),
            reliable: self.reliable(),
        }
    }
}

/// What the `data` scenario sends (from the command line).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DataConfig {
    /// Messages per second per topic per participant.
    pub rate: f64,
    /// Bytes of `pad` in every message.
    pub padding: usize,
    /// Participants in the room (senders are `p0` … `p{n-1}`).
    pub participants: u32,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            rate: 10.0,
            padding: 0,
            participants: 0,
        }
    }
}

/// The text of message `seq` sent at `t_us` with `pad` (empty: no `pad` field).
pub fn message(seq: u64, t_us: u64, pad: &str) -> String {
    if pad.is_empty() {
        format!(r#"{{"data":{{"seq":{seq},"t":{t_us}}}}}"#)
    } else {
        format!(r#"{{"data":{{"seq":{seq},"t":{t_us},"pad":"{pad}"}}}}"#)
    }
}

/// What arrived of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// First time, in order (`seq` above every one before).
    InOrder,
    /// First time, but after a higher `seq`.
    OutOfOrder,
    /// Already received.
    Duplicate,
}

/// One (sender, topic) at one receiver: which `seq`s arrived, how.
#[derive(Clone, Debug, Default)]
pub struct Flow {
    /// Bitmap of the `seq`s received.
    seen: Vec<u64>,
    /// Distinct messages received.
    pub delivered: u64,
    /// Messages received again.
    pub duplicated: u64,
    /// Messages received after one with a higher `seq`.
    pub out_of_order: u64,
    /// Highest `seq` received.
    pub highest: Option<u64>,
}

impl Flow {
    /// Record `seq` (at most [`MAX_SEQ`]).
    pub fn record(&mut self, seq: u64) -> Arrival {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
            return Arrival::Duplicate;
        }
        self.seen[word] |= bit;
        self.delivered += 1;
        match self.highest {
            Some(h) if seq < h => {
                self.out_of_order += 1;
                Arrival::OutOfOrder
            }
            _ => {
                self.highest = Some(seq);
                Arrival::InOrder
            }
        }
    }

    /// `seq`s below the highest received that never arrived (gaps; a late message
    /// fills its gap).
    pub fn gaps(&self) -> u64 {
        self.highest.map_or(0, |h| h + 1 - self.delivered)
    }

    /// Messages lost of the `sent` the sender wrote: the gaps and the missing tail.
    pub fn lost(&self, sent: u64) -> u64 {
        let through = self.highest.map_or(0, |h| h + 1);
        self.gaps() + sent.saturating_sub(through)
    }
}

/// What one data peer sent and received (its part of the report).
#[derive(Clone, Debug, Default)]
pub struct DataStats {
    /// Its participant index.
    pub participant: u32,
    /// Messages str0m took, per topic.
    pub sent: [u64; 2],
    /// Bytes of those messages, per topic.
    pub sent_bytes: [u64; 2],
    /// Messages str0m refused (channel not open, send buffer full), per topic.
    pub unsent: [u64; 2],
    /// Messages skipped because the task fell more than [`MAX_CATCH_UP`] behind.
    pub skipped: [u64; 2],
    /// The topic's channel is open.
    pub open: [bool; 2],
    /// When the topic's channel opened.
    pub opened_at: [Option<Instant>; 2],
    /// The topic's channel closed (by the server: `slow_receiver`, `too_many_channels`).
    pub closed: [u64; 2],
    /// Per sender participant, per topic.
    pub flows: Vec<[Flow; 2]>,
    /// Receive time − `t` of every message received the first time, µs, per topic.
    pub latency_us: [Histogram; 2],
    /// The server's error replies, by `error`.
    pub errors: BTreeMap<String, u64>,
    /// Messages `from` this participant's own identity (the server must send none).
    pub own: u64,
    /// Messages from an identity that is not a participant (e.g. `server`).
    pub foreign: u64,
    /// Messages whose `topic` is not the label of the channel they came on.
    pub wrong_topic: u64,
    /// Messages that do not parse as a relayed message or an error reply.
    pub unreadable: u64,
}

/// A relayed message or an error reply, as far as a receiver reads it.
#[derive(Deserialize)]
struct Incoming {
    from: Option<String>,
    topic: Option<String>,
    data: Option<Body>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    seq: u64,
    t: u64,
}

/// A data-only peer: its channels, its send schedule, what it received.
#[derive(Debug)]
pub struct DataPeer {
    /// The figures.
    pub stats: DataStats,
    /// The offer's channels, by topic.
    channels: [Option<ChannelId>; 2],
    /// The next message of each topic is due (sending).
    next: [Option<Instant>; 2],
    interval: Duration,
    participants: u32,
    pad: String,
}

impl DataPeer {
    /// Participant `participant` with the offer's channels `offered` (in
    /// [`Topic::ALL`] order).
    pub fn new(participant: u32, cfg: DataConfig, offered: &[ChannelId]) -> Self {
        let rate = if cfg.rate.is_finite() && cfg.rate > 0.0 {
            cfg.rate
        } else {
            1.0
        };
        DataPeer {
            stats: DataStats {
                participant,
                flows: vec![Default::default(); cfg.participants as usize],
                ..Default::default()
            },
            channels: [offered.first().copied(), offered.get(1).copied()],
            next: [None; 2],
            interval: Duration::from_secs_f64(1.0 / rate),
            participants: cfg.participants.max(1),
            pad: "x".repeat(cfg.padding),
        }
    }

    /// str0m opened channel `id` at `now`: whether it is one of this peer's topics (the
    /// offer's channel of that label), newly open.
    pub fn opened(&mut self, id: ChannelId, label: &str, now: Instant) -> bool {
        match self.topic_of(id) {
            Some(t) if t.label() == label => {
                let i = t.index();
                self.stats.opened_at[i].get_or_insert(now);
                !std::mem::replace(&mut self.stats.open[i], true)
            }
            _ => false,
        }
    }

    /// Channel `id` closed.
    pub fn closed(&mut self, id: ChannelId) {
        if let Some(t) = self.topic_of(id) {
            self.stats.open[t.index()] = false;
            self.stats.closed[t.index()] += 1;
        }
    }

    fn topic_of(&self, id: ChannelId) -> Option<Topic> {
        Topic::ALL
            .into_iter()
            .find(|t| self.channels[t.index()] == Some(id))
    }

    /// The topic's channel, when open.
    pub fn channel(&self, t: Topic) -> Option<ChannelId> {
        self.channels[t.index()].filter(|_| self.stats.open[t.index()])
    }

    /// Start sending at `now`: this participant's `chat` message is due at its share of
    /// the interval (participant / participants), `pos` half an interval later.
    pub fn start(&mut self, now: Instant) {
        let share =
            f64::from(self.stats.participant % self.participants) / f64::from(self.participants);
        for t in Topic::ALL {
            let offset = (share + 0.5 * t.index() as f64).fract();
            self.next[t.index()] = Some(now + self.interval.mul_f64(offset));
        }
    }

    /// Stop sending.
    pub fn stop(&mut self) {
        self.next = [None; 2];
    }

    /// When the next message is due (`None`: not sending).
    pub fn next_due(&self) -> Option<Instant> {
        self.next.iter().flatten().min().copied()
    }

    /// The topics of the messages due at `now`, one entry per message (at most
    /// [`MAX_CATCH_UP`] per topic; an older backlog is skipped and counted).
    pub fn due(&mut self, now: Instant) -> Vec<Topic> {
        let mut out = Vec::new();
        for t in Topic::ALL {
            let i = t.index();
            let Some(mut next) = self.next[i] else {
                continue;
            };
            let mut n = 0;
            while next <= now && n < MAX_CATCH_UP {
                out.push(t);
                next += self.interval;
                n += 1;
            }
            if next <= now {
                let behind = (now - next).as_secs_f64() / self.interval.as_secs_f64();
                let skip = behind.floor() as u64 + 1;
                self.stats.skipped[i] += skip;
                next += self.interval.mul_f64(skip as f64);
            }
            self.next[i] = Some(next);
        }
        out
    }

    /// The next message of `t`, stamped `t_us` (µs since the tool's epoch).
    pub fn message(&self, t: Topic, t_us: u64) -> String {
        message(self.stats.sent[t.index()], t_us, &self.pad)
    }

    /// Whether str0m took the message of `t` of `len` bytes (its `seq` is used only
    /// when it did).
    pub fn written(&mut self, t: Topic, len: usize, ok: bool) {
        let i = t.index();
        if ok {
            self.stats.sent[i] += 1;
            self.stats.sent_bytes[i] += len as u64;
        } else {
            self.stats.unsent[i] += 1;
        }
    }

    /// A message on channel `id` at `now_us`: whether it was a message of another
    /// participant received for the first time.
    pub fn receive(&mut self, id: ChannelId, data: &[u8], now_us: u64) -> bool {
        let topic = self.topic_of(id);
        let s = &mut self.stats;
        let Ok(msg) = serde_json::from_slice::<Incoming>(data) else {
            s.unreadable += 1;
            return false;
        };
        if let Some(e) = msg.error {
            *s.errors.entry(e).or_default() += 1;
            return false;
        }
        let (Some(from), Some(body)) = (msg.from, msg.data) else {
            s.unreadable += 1;
            return false;
        };
        let Some(topic) = topic else {
            s.unreadable += 1;
            return false;
        };
        if msg.topic.as_deref() != Some(topic.label()) {
            s.wrong_topic += 1;
        }
        let sender = from.strip_prefix('p').and_then(|n| n.parse::<u32>().ok());
        let Some(flows) = sender.and_then(|p| s.flows.get_mut(p as usize)) else {
            s.foreign += 1;
            return false;
        };
        if sender == Some(s.participant) {
            s.own += 1;
            return false;
        }
        if body.seq > MAX_SEQ {
            s.unreadable += 1;
            return false;
        }
        let i = topic.index();
        if flows[i].record(body.seq) == Arrival::Duplicate {
            return false;
        }
        s.latency_us[i].record(now_us.saturating_sub(body.t));
        true
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
