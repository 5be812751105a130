//! Data channels relayed by a room, in the deterministic virtual-time simulation with
//! str0m client peers (`tests/sim`): five WHEP sessions with only data channels, two
//! topics each (`chat`, ordered and reliable; `pos`, unordered without retransmissions),
//! one of them behind a slow downlink.
//!
//! * Every chat message reaches every other participant exactly once and in its
//!   sender's order, the slow one included (later).
//! * The slow receiver's `pos` messages are dropped at the server and counted
//!   (`receiver_full`); the other receivers get every `pos` message, never delayed by it.
//! * Nobody gets their own messages back, and every message says who sent it.

mod sim;

use std::collections::HashMap;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use sim::link::LinkConfig;
use sim::Sim;
use switchboard::limits::ShardPolicy;

const S: Duration = Duration::from_secs(1);
const DELAY: Duration = Duration::from_millis(20);
/// The slow receiver's downlink: well below the `pos` traffic it is sent.
const SLOW_BPS: u64 = 100_000;
/// Senders write `pos` this often (30 a second each).
const TICK: Duration = Duration::from_nanos(33_333_333);
/// How long everyone sends.
const SEND_FOR: u32 = 10;
const PEOPLE: usize = 5;
const SLOW: usize = 4;

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

#[test]
fn chat_is_reliable_for_everyone_and_a_slow_receiver_loses_only_its_own_positions() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let mut sim = metrics::with_local_recorder(&recorder, Sim::new);
    let channels = [("chat", true), ("pos", false)];
    let people: Vec<usize> = (0..PEOPLE)
        .map(|i| {
            let down = if i == SLOW {
                link().with_capacity(SLOW_BPS)
            } else {
                link()
            };
            sim.join_data(&format!("p{i}"), &channels, link(), down)
        })
        .collect();
    for &p in &people {
        sim.run_until_connected(p, sim.now + 5 * S);
    }
    let all_open = |sim: &Sim| people.iter().all(|&p| sim.peers[p].data.open.len() == 2);
    assert!(
        sim.run_until_or(sim.now + 5 * S, all_open),
        "channels not open: {:?}",
        people
            .iter()
            .map(|&p| sim.peers[p].data.open.clone())
            .collect::<Vec<_>>()
    );
    let start = sim.now;

    // Everyone sends 30 positions and, every 15th tick, a chat line a second.
    let ticks = SEND_FOR * 30;
    let mut chat_sent = [0u64; PEOPLE];
    let filler = "x".repeat(150);
    for tick in 0..ticks {
        sim.run_until(start + TICK * tick);
        let now = sim.now;
        let t_us = sim.elapsed(now).as_micros() as u64;
        for &p in &people {
            let pos = format!(r#"{{"data":{{"n":{tick},"t":{t_us},"pad":"{filler}"}}}}"#);
            sim.peers[p].send_data(now, "pos", &pos);
            if tick % 15 == 0 {
                let n = chat_sent[p];
                let line = format!(r#"{{"data":{{"n":{n},"text":"line {n} from p{p}"}}}}"#);
                assert!(
                    sim.peers[p].send_data(now, "chat", &line),
                    "p{p}: chat {n} not taken"
                );
                chat_sent[p] += 1;
            }
        }
    }
    // Let every queue drain.
    sim.run_until(start + S * (SEND_FOR + 30));

    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            println!("FAILED: {what}");
            failures.push(what);
        }
    };
    for &r in &people {
        let who = format!("p{r}");
        let log = &sim.peers[r].data;
        // Chat: every other sender's lines, each once, in order.
        let mut chat: HashMap<String, Vec<u64>> = HashMap::new();
        for m in log.on("chat") {
            let from = m.json["from"].as_str().unwrap_or("?").to_owned();
            chat.entry(from)
                .or_default()
                .push(m.json["data"]["n"].as_u64().unwrap_or(u64::MAX));
        }
        check(
            !chat.contains_key(&who),
            format!("{who} got its own chat back"),
        );
        for &s in people.iter().filter(|&&s| s != r) {
            let want: Vec<u64> = (0..chat_sent[s]).collect();
            let got = chat.get(&format!("p{s}")).cloned().unwrap_or_default();
            check(
                got == want,
                format!(
                    "{who}: chat from p{s}: {} of {} lines, in order: {}",
                    got.len(),
                    want.len(),
                    got == want
                ),
            );
        }
        // Positions: from every other sender; all of them unless this is the slow one.
        let pos: Vec<_> = log.on("pos").collect();
        let expected = (PEOPLE as u64 - 1) * u64::from(ticks);
        let own = pos
            .iter()
            .filter(|m| m.json["from"] == who.as_str())
            .count();
        check(
            own == 0,
            format!("{who} got {own} of its own positions back"),
        );
        let mut lat: Vec<u64> = pos
            .iter()
            .map(|m| {
                (sim.elapsed(m.at).as_micros() as u64)
                    .saturating_sub(m.json["data"]["t"].as_u64().unwrap_or(0))
            })
            .collect();
        lat.sort_unstable();
        let p99 = lat
            .get(lat.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or(0);
        println!(
            "{who}: pos {} of {expected}, p99 latency {p99} us; chat {:?}",
            pos.len(),
            chat.values().map(Vec::len).collect::<Vec<_>>()
        );
        if r == SLOW {
            check(
                (pos.len() as u64) < expected / 2,
                format!(
                    "{who}: the slow receiver got {} of {expected} positions: nothing was dropped",
                    pos.len()
                ),
            );
        } else {
            check(
                pos.len() as u64 == expected,
                format!("{who}: {} of {expected} positions", pos.len()),
            );
            check(
                p99 < 200_000,
                format!("{who}: p99 position latency {p99} us: delayed"),
            );
        }
    }
    let text = metrics.render();
    let full = text
        .lines()
        .find(|l| {
            l.starts_with("switchboard_data_messages_dropped_total{reason=\"receiver_full\"}")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let expected = (PEOPLE as u64 - 1) * u64::from(ticks);
    let slow_got = sim.peers[SLOW].data.on("pos").count() as f64;
    println!("receiver_full drops counted: {full}");
    // What the slow receiver missed was refused at the server (counted) or written and
    // then abandoned by SCTP on its lossy bottleneck (maxRetransmits 0).
    let missed = expected as f64 - slow_got;
    check(
        full > 0.0 && full <= missed,
        format!("receiver_full counted {full}, the slow receiver missed {missed}"),
    );
    assert!(
        failures.is_empty(),
        "{} failed checks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A session that opens a channel labelled `_events` gets the room's events on it (the
/// SSE stream's, wrapped), and a message it sends there is refused with an error reply.
/// Data-only sessions are not counted as viewers.
#[test]
fn the_events_topic_carries_room_events_and_refuses_messages() {
    let mut sim = Sim::new();
    let watcher = sim.join_data("watcher", &[("_events", true)], link(), link());
    sim.run_until_connected(watcher, sim.now + 5 * S);
    let open = |sim: &Sim| sim.peers[watcher].data.open.len() == 1;
    assert!(sim.run_until_or(sim.now + 5 * S, open), "_events not open");
    let other = sim.join_data("other", &[("chat", true)], link(), link());
    sim.run_until_connected(other, sim.now + 5 * S);
    sim.run_until(sim.now + S);
    let events: Vec<&serde_json::Value> = sim.peers[watcher]
        .data
        .on("_events")
        .map(|m| &m.json)
        .collect();
    let joined = events.iter().find(|e| {
        e["data"]["event"] == "participant-joined" && e["data"]["data"]["identity"] == "other"
    });
    assert!(
        joined.is_some(),
        "no participant-joined for other: {events:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["from"] == "server" && e["topic"] == "_events"));
    // Data-only sessions are not viewers: no `viewers` event counts them.
    let viewers: Vec<_> = events
        .iter()
        .filter(|e| e["data"]["event"] == "viewers")
        .collect();
    assert!(
        viewers.iter().all(|e| e["data"]["data"]["count"] == 0),
        "{viewers:?}"
    );
    let now = sim.now;
    assert!(sim.peers[watcher].send_data(now, "_events", r#"{"data": 1}"#));
    sim.run_until(sim.now + S);
    let reply = sim.peers[watcher]
        .data
        .on("_events")
        .last()
        .map(|m| m.json.clone());
    assert_eq!(reply.map(|r| r["error"].clone()), Some("reserved".into()));
}

/// WHEP sessions with media slots and a `chat` channel are placed like any viewer (the
/// first in the room, the next on a subscriber shard, with `after: 1`), a data-only one
/// stays in the room; chat flows between all three both ways: into the shard as
/// `ToShard::WriteChannel`, out of it through the shard's reports.
#[test]
fn a_session_with_media_and_channels_on_a_shard_chats_both_ways() {
    let mut sim = Sim::with_shards(ShardPolicy { after: 1, max: 1 });
    let chat = [("chat", true)];
    let data_only = sim.join_data("dana", &chat, link(), link());
    sim.run_until_connected(data_only, sim.now + 5 * S);
    let home = sim.join_media_data("hugo", &chat, link(), link());
    sim.run_until_connected(home, sim.now + 5 * S);
    let sharded = sim.join_media_data("sara", &chat, link(), link());
    sim.run_until_connected(sharded, sim.now + 5 * S);
    assert_eq!(
        sim.shard_of(data_only),
        None,
        "the data-only session is the room's"
    );
    assert_eq!(sim.shard_of(home), None, "the first viewer is the room's");
    assert_eq!(
        sim.shard_of(sharded),
        Some(0),
        "the second viewer is on the shard"
    );
    let people = [data_only, home, sharded];
    let all_open = |sim: &Sim| people.iter().all(|&p| sim.peers[p].data.open.len() == 1);
    assert!(
        sim.run_until_or(sim.now + 5 * S, all_open),
        "channels not open"
    );
    for (n, &p) in people.iter().enumerate() {
        let now = sim.now;
        let line = format!(r#"{{"data":{{"n":{n}}}}}"#);
        assert!(sim.peers[p].send_data(now, "chat", &line), "{n} not taken");
        sim.run_until(sim.now + S / 10);
    }
    sim.run_until(sim.now + S);
    let names = ["dana", "hugo", "sara"];
    for (r, &p) in people.iter().enumerate() {
        let mut got: Vec<(String, u64)> = sim.peers[p]
            .data
            .on("chat")
            .map(|m| {
                let from = m.json["from"].as_str().unwrap_or("?").to_owned();
                (from, m.json["data"]["n"].as_u64().unwrap_or(u64::MAX))
            })
            .collect();
        got.sort();
        let want: Vec<(String, u64)> = (0..3)
            .filter(|&s| s != r)
            .map(|s| (names[s].to_owned(), s as u64))
            .collect();
        assert_eq!(got, want, "chat received by {}", names[r]);
    }
}
