//! The `data` scenario's part of the report ([`DataEntry`]): per topic what was sent,
//! delivered, lost, duplicated and reordered, with latency; the server's error
//! replies; and the server's cost — CPU per idle data-only participant (the idle
//! phase) and messages delivered per CPU-second (the window). Computes and formats;
//! does no I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::{Cli, Scenario};
use crate::data::{DataStats, Topic};
use crate::peer::Role;
use crate::report::Percentiles;
use crate::scenario::RunResult;
use crate::viewers::{pct, us_between};
use switchboard_kit::recv::Histogram;

/// One topic, summed over every (receiver, sender) pair.
#[derive(Clone, Debug, Serialize)]
pub struct TopicEntry {
    /// The label: `chat` or `pos`.
    pub topic: &'static str,
    /// Ordered and reliable (`chat`); else unordered, `maxRetransmits: 0` (`pos`).
    pub reliable: bool,
    /// Messages the participants wrote (str0m took them).
    pub sent: u64,
    /// Mean size of those, bytes.
    pub message_bytes: Option<f64>,
    /// Messages str0m refused (channel not open, send buffer full).
    pub unsent: u64,
    /// Messages skipped because a participant's task fell behind its schedule.
    pub skipped_late: u64,
    /// Messages that should have arrived: each sent message times the other
    /// participants with this topic's channel open.
    pub expected: u64,
    /// Distinct messages received.
    pub delivered: u64,
    /// Expected but never received (for `chat`, every one is a bug).
    pub lost: u64,
    /// Lost / expected, percent.
    pub lost_percent: Option<f64>,
    /// Messages received more than once (the extra copies).
    pub duplicated: u64,
    /// Messages received after a later one of the same sender.
    pub out_of_order: u64,
    /// Channels of this topic the server closed during the run.
    pub channels_closed: u64,
    /// Receive time − send time (`t`) of every message received the first time.
    pub latency_ms: Percentiles,
}

/// The server's cost of data-only participants, from /proc of `--server-pid`.
#[derive(Clone, Debug, Serialize)]
pub struct DataServerCost {
    /// Server CPU over the idle phase (channels open, nothing sent), seconds.
    pub idle_cpu_s: Option<f64>,
    /// The same as a share of one core, percent.
    pub idle_cpu_percent_of_one_core: Option<f64>,
    /// The same per connected data-only participant, percent of one core.
    pub idle_cpu_percent_per_participant: Option<f64>,
    /// Messages delivered (received by participants) in the window per server
    /// CPU-second in the window.
    pub messages_per_cpu_s: Option<f64>,
    /// Its inverse: server CPU per delivered message, µs.
    pub cpu_us_per_message: Option<f64>,
}

/// The `data` scenario's figures.
#[derive(Clone, Debug, Serialize)]
pub struct DataEntry {
    /// Participants planned.
    pub participants: u32,
    /// Messages per second each participant sends on each topic.
    pub rate_per_topic: f64,
    /// Bytes of padding per message.
    pub padding_bytes: u32,
    /// Channels of the connected sessions (two each).
    pub channels_expected: u64,
    /// Of those, open when sending started.
    pub channels_open: u64,
    /// End of the ramp (and warm-up) until every channel was open, ms; `null` when not
    /// all were within `--setup-timeout`.
    pub all_channels_open_ms: Option<f64>,
    /// Per session: POST → both of its channels open (str0m's `Event::ChannelOpen`).
    pub channels_open_ms: Percentiles,
    /// The idle phase, seconds.
    pub idle_s: f64,
    /// Messages sent per second, all participants, in the window.
    pub sent_per_s: f64,
    /// Messages delivered (received the first time) per second, all participants, in
    /// the window.
    pub delivered_per_s: f64,
    /// Messages delivered in the window.
    pub window_delivered: u64,
    /// `chat`, then `pos`.
    pub topics: Vec<TopicEntry>,
    /// The server's error replies received, by `error` (`rate_limited`, …).
    pub error_replies: BTreeMap<String, u64>,
    /// Messages from a participant's own identity (must be 0).
    pub own_messages: u64,
    /// Messages from an identity that is no participant (e.g. `server`).
    pub foreign_messages: u64,
    /// Messages whose `topic` is not the label of the channel they arrived on.
    pub wrong_topic_messages: u64,
    /// Messages that were neither a relayed message nor an error reply.
    pub unreadable_messages: u64,
    /// Server cost, with `--server-pid`.
    pub server: Option<DataServerCost>,
}

/// The data entry of `run` (`None` unless the scenario is `data`).
pub fn build(cli: &Cli, run: &RunResult) -> Option<DataEntry> {
    let Scenario::Data {
        participants,
        rate,
        padding,
        ..
    } = cli.scenario
    else {
        return None;
    };
    let phases = run.data.unwrap_or_default();
    let mut open_us = Histogram::default();
    let mut peers: Vec<&DataStats> = Vec::new();
    for r in run.sessions.iter().filter(|r| r.planned.role == Role::Data) {
        let (Ok(setup), Some(stats)) = (&r.setup, r.report.as_ref().and_then(|p| p.data.as_ref()))
        else {
            continue;
        };
        if let [Some(a), Some(b)] = stats.opened_at {
            open_us.record(us_between(setup.post_at, a.max(b)));
        }
        peers.push(stats);
    }
    let mut errors = BTreeMap::new();
    let (mut own, mut foreign, mut wrong, mut unreadable) = (0, 0, 0, 0);
    for p in &peers {
        for (e, n) in &p.errors {
            *errors.entry(e.clone()).or_default() += n;
        }
        own += p.own;
        foreign += p.foreign;
        wrong += p.wrong_topic;
        unreadable += p.unreadable;
    }
    let window_s = run.window.duration.as_secs_f64().max(1e-9);
    let server = cli.server_pid.map(|_| {
        let [idle0, idle1] = phases.server;
        let idle_s = phases.idle.as_secs_f64().max(1e-9);
        let idle_cpu = idle0.zip(idle1).map(|(a, b)| (b.cpu_s - a.cpu_s).max(0.0));
        let [_, start, end] = run.server;
        let cpu = start.zip(end).map(|(a, b)| (b.cpu_s - a.cpu_s).max(0.0));
        let delivered = run.window.data_received as f64;
        DataServerCost {
            idle_cpu_s: idle_cpu,
            idle_cpu_percent_of_one_core: idle_cpu.map(|c| c * 100.0 / idle_s),
            idle_cpu_percent_per_participant: idle_cpu
                .filter(|_| !peers.is_empty())
                .map(|c| c * 100.0 / idle_s / peers.len() as f64),
            messages_per_cpu_s: cpu.filter(|c| *c > 0.0).map(|c| delivered / c),
            cpu_us_per_message: cpu.filter(|_| delivered > 0.0).map(|c| c * 1e6 / delivered),
        }
    });
    Some(DataEntry {
        participants,
        rate_per_topic: rate,
        padding_bytes: padding,
        channels_expected: phases.channels_expected,
        channels_open: phases.channels_open,
        all_channels_open_ms: phases.all_open_after.map(|d| d.as_secs_f64() * 1e3),
        channels_open_ms: Percentiles::of_us(&open_us),
        idle_s: phases.idle.as_secs_f64(),
        sent_per_s: run.window.data_sent as f64 / window_s,
        delivered_per_s: run.window.data_received as f64 / window_s,
        window_delivered: run.window.data_received,
        topics: Topic::ALL.iter().map(|t| topic_entry(*t, &peers)).collect(),
        error_replies: errors,
        own_messages: own,
        foreign_messages: foreign,
        wrong_topic_messages: wrong,
        unreadable_messages: unreadable,
        server,
    })
}

/// Topic `t` over every receiver and every other participant as sender. A receiver
/// whose channel of `t` never opened expects nothing on it (its channel is missing
/// from `channels_open`).
pub fn topic_entry(t: Topic, peers: &[&DataStats]) -> TopicEntry {
    let i = t.index();
    let mut latency = Histogram::default();
    let (mut expected, mut delivered, mut lost, mut dup, mut ooo) = (0, 0, 0, 0, 0);
    for r in peers {
        latency.merge(&r.latency_us[i]);
        for s in peers {
            if s.participant == r.participant {
                continue;
            }
            let flow = r.flows.get(s.participant as usize).map(|f| &f[i]);
            delivered += flow.map_or(0, |f| f.delivered);
            dup += flow.map_or(0, |f| f.duplicated);
            ooo += flow.map_or(0, |f| f.out_of_order);
            if r.open[i] || r.closed[i] > 0 {
                expected += s.sent[i];
                lost += flow.map_or(s.sent[i], |f| f.lost(s.sent[i]));
            }
        }
    }
    let sent = peers.iter().map(|p| p.sent[i]).sum::<u64>();
    let bytes = peers.iter().map(|p| p.sent_bytes[i]).sum::<u64>();
    TopicEntry {
        topic: t.label(),
        reliable: t.reliable(),
        sent,
        message_bytes: (sent > 0).then(|| bytes as f64 / sent as f64),
        unsent: peers.iter().map(|p| p.unsent[i]).sum(),
        skipped_late: peers.iter().map(|p| p.skipped[i]).sum(),
        expected,
        delivered,
        lost,
        lost_percent: pct(lost, expected),
        duplicated: dup,
        out_of_order: ooo,
        channels_closed: peers.iter().map(|p| p.closed[i]).sum(),
        latency_ms: Percentiles::of_us(&latency),
    }
}

/// The table's rows of the data entry, each `(name, value)`.
pub fn rows(d: &DataEntry) -> Vec<(&'static str, String)> {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
    let num = |v: Option<f64>, unit: &str, digits: usize| {
        v.map_or("-".into(), |v| format!("{v:.digits$}{unit}"))
    };
    let o = &d.channels_open_ms;
    let mut out = vec![
        (
            "channels",
            format!(
                "{} of {} open (all open {} after the ramp); idle {:.1} s",
                d.channels_open,
                d.channels_expected,
                ms(d.all_channels_open_ms),
                d.idle_s
            ),
        ),
        (
            "  POST→channels open",
            format!("p50 {}  p99 {}  max {}", ms(o.p50), ms(o.p99), ms(o.max)),
        ),
        (
            "messages",
            format!(
                "{:.0} msg/s sent, {:.0} msg/s delivered (window)",
                d.sent_per_s, d.delivered_per_s
            ),
        ),
    ];
    for t in &d.topics {
        let name = if t.reliable {
            "chat (reliable)"
        } else {
            "pos (unreliable)"
        };
        out.push((
            name,
            format!(
                "{} sent ({} B each), {} of {} delivered, {} lost ({}), {} duplicated, {} out of order",
                t.sent,
                num(t.message_bytes, "", 0),
                t.delivered,
                t.expected,
                t.lost,
                num(t.lost_percent, " %", 3),
                t.duplicated,
                t.out_of_order
            ),
        ));
        let l = &t.latency_ms;
        out.push((
            "  latency",
            format!("p50 {}  p99 {}  max {}", ms(l.p50), ms(l.p99), ms(l.max)),
        ));
        if t.unsent + t.skipped_late + t.channels_closed > 0 {
            out.push((
                "  not sent",
                format!(
                    "{} refused by str0m, {} skipped (late), {} channels closed",
                    t.unsent, t.skipped_late, t.channels_closed
                ),
            ));
        }
    }
    let errors: Vec<String> = d
        .error_replies
        .iter()
        .map(|(e, n)| format!("{e}: {n}"))
        .collect();
    out.push((
        "error replies",
        if errors.is_empty() {
            "none".into()
        } else {
            format!(
                "{} (at most 2 a second per session; refused messages are never relayed and count as lost)",
                errors.join(", ")
            )
        },
    ));
    let odd = d.own_messages + d.foreign_messages + d.wrong_topic_messages + d.unreadable_messages;
    if odd > 0 {
        out.push((
            "odd messages",
            format!(
                "{} own, {} foreign, {} wrong topic, {} unreadable",
                d.own_messages, d.foreign_messages, d.wrong_topic_messages, d.unreadable_messages
            ),
        ));
    }
    out
}

/// The table's rows of the server's cost of the data entry (after its window CPU).
pub fn server_rows(d: &DataEntry) -> Vec<(&'static str, String)> {
    let num = |v: Option<f64>, unit: &str, digits: usize| {
        v.map_or("-".into(), |v| format!("{v:.digits$}{unit}"))
    };
    let mut out = Vec::new();
    if let Some(c) = &d.server {
        out.push((
            "server cpu, idle",
            format!(
                "{} ({} of one core): {} of one core per data-only participant",
                num(c.idle_cpu_s, " s", 2),
                num(c.idle_cpu_percent_of_one_core, " %", 1),
                num(c.idle_cpu_percent_per_participant, " %", 3),
            ),
        ));
        out.push((
            "server cpu, messages",
            format!(
                "{} messages delivered per cpu-s, {} per message",
                num(c.messages_per_cpu_s, "", 0),
                num(c.cpu_us_per_message, " µs", 1)
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(me: u32, n: u32, sent: [u64; 2]) -> DataStats {
        DataStats {
            participant: me,
            sent,
            sent_bytes: [sent[0] * 30, sent[1] * 30],
            open: [true, true],
            flows: vec![Default::default(); n as usize],
            ..Default::default()
        }
    }

    #[test]
    fn a_topic_sums_every_receiver_and_sender_pair() {
        let mut a = stats(0, 3, [3, 3]);
        let mut b = stats(1, 3, [3, 3]);
        let c = stats(2, 3, [2, 0]);
        // a got everything of b's chat and c's chat, once, in order.
        for s in 0..3 {
            a.flows[1][0].record(s);
        }
        a.flows[2][0].record(0);
        a.flows[2][0].record(1);
        a.latency_us[0].record(1_000);
        // b got a's chat 0 and 2 (1 lost), 2 twice, and c's chat 1 before 0.
        b.flows[0][0].record(0);
        b.flows[0][0].record(2);
        b.flows[0][0].record(2);
        b.flows[2][0].record(1);
        b.flows[2][0].record(0);
        // c got nothing at all (its chat is expected: 6; its pos channel never opened).
        let mut c = c;
        c.open = [true, false];
        let peers = [&a, &b, &c];
        let chat = topic_entry(Topic::Chat, &peers);
        // Expected: a from b and c (3 + 2), b from a and c (3 + 2), c from a and b (3 + 3).
        assert_eq!(chat.expected, 16);
        assert_eq!(chat.sent, 8);
        assert_eq!(chat.delivered, 5 + 4);
        assert_eq!(chat.lost, 1 + 6);
        assert_eq!((chat.duplicated, chat.out_of_order), (1, 1));
        assert_eq!(chat.message_bytes, Some(30.0));
        assert_eq!(chat.latency_ms.p50, Some(1.0));
        // pos: a and b expect each other's 3; c's pos never opened, so it expects none.
        let pos = topic_entry(Topic::Pos, &peers);
        assert_eq!((pos.expected, pos.delivered, pos.lost), (6, 0, 6));
        assert_eq!(pos.lost_percent, Some(100.0));
    }
}
