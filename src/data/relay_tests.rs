//! Unit and property tests of the data relay: validation, routing (topics, `to`,
//! never-echo, one delivery per identity) and the limits.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::Value;

use super::*;

const S: Duration = Duration::from_secs(1);

fn pid(n: u64) -> ParticipantId {
    ParticipantId(n)
}

/// A session: (id, identity, its channels as (stream id, topic, reliable)).
type SessionSpec<'a> = (u64, &'a str, &'a [(u16, &'a str, bool)]);
/// Deliveries as (to, stream id, JSON), and closes as (session, stream id).
type Drained = (Vec<(u64, u16, Value)>, Vec<(u64, u16)>);

/// A relay with these sessions.
fn relay(sessions: &[SessionSpec<'_>]) -> DataRelay {
    let mut r = DataRelay::new(DataLimits::default());
    for (id, who, channels) in sessions {
        for (sid, topic, reliable) in *channels {
            let name: Arc<str> = who.to_uppercase().into();
            assert!(r.handle_open(
                pid(*id),
                (*who).into(),
                name,
                ChannelKey(*sid),
                topic,
                *reliable
            ));
        }
    }
    r
}

/// Everything queued: (to, stream id, JSON) of deliveries, and the closes.
fn drain(r: &mut DataRelay) -> Drained {
    let (mut sent, mut closed) = (Vec::new(), Vec::new());
    while let Some(o) = r.poll_output() {
        match o {
            DataOutput::Deliver {
                to, channel, text, ..
            } => sent.push((to.0, channel.0, serde_json::from_str(&text).unwrap())),
            DataOutput::Close { session, channel } => closed.push((session.0, channel.0)),
        }
    }
    (sent, closed)
}

fn everyone(_: &str) -> bool {
    true
}

#[test]
fn a_message_reaches_every_other_identity_with_the_topic_and_never_the_sender() {
    let mut r = relay(&[
        (1, "alice", &[(0, "chat", true), (2, "cursor", false)]),
        (2, "bob", &[(0, "chat", true)]),
        (3, "carol", &[(4, "chat", false)]),
        (4, "dave", &[(0, "cursor", false)]),
    ]);
    let t0 = Instant::now();
    let msg = br#"{"data": {"text": "hi", "n": 1.50}}"#;
    let got = r.handle_message(t0, pid(1), ChannelKey(0), false, msg, everyone);
    assert_eq!(got, Relayed::To(2));
    let (sent, _) = drain(&mut r);
    let to: Vec<(u64, u16)> = sent.iter().map(|(p, c, _)| (*p, *c)).collect();
    assert_eq!(to, vec![(2, 0), (3, 4)]);
    let m = &sent[0].2;
    assert_eq!(m["from"], "alice");
    assert_eq!(m["name"], "ALICE");
    assert_eq!(m["topic"], "chat");
    assert!(m.get("to").is_none());
    // The data is passed on byte for byte (1.50 stays 1.50).
    let r2 = r.handle_message(t0, pid(1), ChannelKey(0), false, msg, everyone);
    assert_eq!(r2, Relayed::To(2));
    let DataOutput::Deliver { text, .. } = r.poll_output().unwrap() else {
        panic!("a delivery")
    };
    assert!(
        text.contains(r#""data":{"text": "hi", "n": 1.50}"#),
        "{text}"
    );
}

#[test]
fn to_limits_the_receivers_and_an_unknown_identity_is_refused_with_a_reply() {
    let mut r = relay(&[
        (1, "alice", &[(0, "chat", true)]),
        (2, "bob", &[(0, "chat", true)]),
        (3, "carol", &[(0, "chat", true)]),
    ]);
    let t0 = Instant::now();
    let msg = br#"{"data": "psst", "to": ["carol"]}"#;
    assert_eq!(
        r.handle_message(t0, pid(1), ChannelKey(0), false, msg, everyone),
        Relayed::To(1)
    );
    let (sent, _) = drain(&mut r);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].0, &sent[0].2["to"]),
        (3, &serde_json::json!(["carol"]))
    );
    // To oneself: nobody (never echo).
    let me = br#"{"data": 1, "to": ["alice"]}"#;
    let got = r.handle_message(t0, pid(1), ChannelKey(0), false, me, everyone);
    assert_eq!(got, Relayed::To(0));
    let in_room = |who: &str| ["alice", "bob", "carol"].contains(&who);
    let msg = br#"{"data": 1, "to": ["bob", "zed"]}"#;
    let got = r.handle_message(t0, pid(1), ChannelKey(0), false, msg, in_room);
    assert_eq!(got, Relayed::Refused(Refusal::UnknownRecipient));
    let (sent, _) = drain(&mut r);
    assert_eq!(sent.len(), 1, "only the error reply");
    assert_eq!(
        (sent[0].0, &sent[0].2["error"]),
        (1, &Value::from("unknown_recipient"))
    );
}

#[test]
fn an_identity_gets_a_message_once_on_its_latest_channel_and_its_other_sessions_are_not_echoed() {
    let mut r = relay(&[
        (1, "alice", &[(0, "chat", true)]),
        (2, "bob", &[(0, "chat", true)]),
        (3, "bob", &[(6, "chat", false)]),
        (4, "alice", &[(8, "chat", true)]),
    ]);
    let t0 = Instant::now();
    let got = r.handle_message(t0, pid(1), ChannelKey(0), false, br#"{"data":0}"#, everyone);
    assert_eq!(got, Relayed::To(1));
    let (sent, _) = drain(&mut r);
    assert_eq!((sent[0].0, sent[0].1), (3, 6));
    // Bob's later channel closes: his earlier one takes over.
    r.handle_close(pid(3), ChannelKey(6));
    r.handle_message(t0, pid(1), ChannelKey(0), false, br#"{"data":0}"#, everyone);
    let (sent, _) = drain(&mut r);
    assert_eq!((sent[0].0, sent[0].1), (2, 0));
    r.remove(pid(2));
    assert_eq!(
        r.handle_message(t0, pid(1), ChannelKey(0), false, br#"{"data":0}"#, everyone),
        Relayed::To(0)
    );
}

#[test]
fn bad_messages_are_refused_and_answered_at_most_twice_a_second() {
    let mut r = relay(&[
        (1, "alice", &[(0, "chat", true), (2, EVENTS_TOPIC, true)]),
        (2, "bob", &[(0, "chat", true)]),
    ]);
    let t0 = Instant::now();
    let big = format!(r#"{{"data": "{}"}}"#, "x".repeat(16 * 1024));
    let many_to = format!(r#"{{"data": 1, "to": [{}]}}"#, vec!["\"b\""; 65].join(","));
    let cases: Vec<(&[u8], bool, ChannelKey, Refusal)> = vec![
        (big.as_bytes(), false, ChannelKey(0), Refusal::TooLarge),
        (br#"{"data": 1}"#, true, ChannelKey(0), Refusal::Binary),
        (b"not json", false, ChannelKey(0), Refusal::Invalid),
        (br#"["data", 1]"#, false, ChannelKey(0), Refusal::Invalid),
        (
            br#"{"text": "no data"}"#,
            false,
            ChannelKey(0),
            Refusal::Invalid,
        ),
        (
            br#"{"data": 1, "to": "bob"}"#,
            false,
            ChannelKey(0),
            Refusal::Invalid,
        ),
        (
            br#"{"data": 1, "to": [""]}"#,
            false,
            ChannelKey(0),
            Refusal::Invalid,
        ),
        (many_to.as_bytes(), false, ChannelKey(0), Refusal::Invalid),
        (&[0xff, 0xfe], false, ChannelKey(0), Refusal::Invalid),
        (br#"{"data": 1}"#, false, ChannelKey(2), Refusal::Reserved),
    ];
    for (i, (bytes, binary, channel, why)) in cases.into_iter().enumerate() {
        let now = t0 + S * i as u32;
        let got = r.handle_message(now, pid(1), channel, binary, bytes, everyone);
        assert_eq!(got, Relayed::Refused(why), "case {i}");
        let (sent, _) = drain(&mut r);
        assert_eq!(sent.len(), 1, "case {i}: the reply only");
        assert_eq!(sent[0].2["error"], why.as_str(), "case {i}");
    }
    // A flood of bad messages within one second gets one or two replies, not a flood.
    let later = t0 + 60 * S;
    for _ in 0..50 {
        r.handle_message(later, pid(1), ChannelKey(0), false, b"nope", everyone);
    }
    let (sent, _) = drain(&mut r);
    assert!((1..=2).contains(&sent.len()), "{} replies", sent.len());
}

#[test]
fn a_sender_past_its_rate_is_refused_and_recovers() {
    let mut r = relay(&[
        (1, "alice", &[(0, "chat", true)]),
        (2, "bob", &[(0, "chat", true)]),
    ]);
    let t0 = Instant::now();
    let send = |r: &mut DataRelay, now| {
        r.handle_message(
            now,
            pid(1),
            ChannelKey(0),
            false,
            br#"{"data":0}"#,
            everyone,
        )
    };
    for i in 0..100 {
        assert_eq!(send(&mut r, t0), Relayed::To(1), "message {i} of the burst");
    }
    assert_eq!(send(&mut r, t0), Relayed::Refused(Refusal::RateLimited));
    // 50 a second come back.
    let ok = (0..60)
        .filter(|_| send(&mut r, t0 + S) == Relayed::To(1))
        .count();
    assert_eq!(ok, 50);
}

#[test]
fn a_reliable_receiver_full_for_five_seconds_is_closed_an_unreliable_one_never() {
    let mut r = relay(&[
        (1, "alice", &[(0, "chat", true), (2, "pos", false)]),
        (2, "bob", &[(0, "chat", true), (2, "pos", false)]),
    ]);
    let t0 = Instant::now();
    for (ch, reliable) in [(0, true), (2, false)] {
        let key = ChannelKey(ch);
        assert!(!r.handle_write(t0, pid(2), key, WriteResult::Full));
        // A write that goes through clears the congestion.
        assert!(!r.handle_write(t0 + 3 * S, pid(2), key, WriteResult::Written));
        assert!(!r.handle_write(t0 + 4 * S, pid(2), key, WriteResult::Full));
        assert!(!r.handle_write(t0 + 8 * S, pid(2), key, WriteResult::Full));
        let closed = r.handle_write(t0 + 9 * S, pid(2), key, WriteResult::Full);
        assert_eq!(closed, reliable, "channel {ch}");
    }
    let (_, closed) = drain(&mut r);
    assert_eq!(closed, vec![(2, 0)]);
    // The closed channel no longer receives.
    let got = r.handle_message(t0, pid(1), ChannelKey(0), false, br#"{"data":0}"#, everyone);
    assert_eq!(got, Relayed::To(0));
}

#[test]
fn channels_per_session_are_bounded_and_the_server_speaks_on_any_topic() {
    let mut r = DataRelay::new(DataLimits::default());
    for sid in 0..16 {
        assert!(r.handle_open(pid(1), "a".into(), "A".into(), ChannelKey(sid), "t", true));
    }
    assert!(!r.handle_open(pid(1), "a".into(), "A".into(), ChannelKey(99), "t", true));
    // Reopening a stream id replaces it rather than counting twice.
    assert!(r.handle_open(
        pid(1),
        "a".into(),
        "A".into(),
        ChannelKey(3),
        EVENTS_TOPIC,
        true
    ));
    let data = RawValue::from_string(r#"{"event":"joined"}"#.into()).unwrap();
    assert_eq!(r.send_from_server(EVENTS_TOPIC, &data, None), 1);
    assert_eq!(r.send_from_server("t", &data, Some(&["nobody"])), 0);
    let (sent, _) = drain(&mut r);
    assert_eq!(sent[0].2["from"], SERVER_IDENTITY);
    assert_eq!(sent[0].2["data"]["event"], "joined");
    assert!(sent[0].2.get("name").is_none());
}

proptest! {
    /// Whatever the sessions, identities and topics: a message reaches exactly the
    /// identities other than the sender's that have its topic open (limited to `to`),
    /// each once.
    #[test]
    fn routing_matches_the_contract(
        sessions in proptest::collection::vec((0u8..5, proptest::collection::vec(0u8..3, 0..4)), 1..12),
        sender in 0usize..12,
        topic in 0u8..3,
        to in proptest::option::of(proptest::collection::btree_set(0u8..6, 0..4)),
    ) {
        let topics = ["chat", "pos", "game"];
        let mut r = DataRelay::new(DataLimits::default());
        let mut open: Vec<(u64, String, BTreeSet<&str>)> = Vec::new();
        for (i, (who, ts)) in sessions.iter().enumerate() {
            let identity = format!("p{who}");
            let mut set = BTreeSet::new();
            for (k, t) in ts.iter().enumerate() {
                let name = topics[*t as usize];
                r.handle_open(pid(i as u64), identity.as_str().into(), "n".into(), ChannelKey(k as u16), name, true);
                set.insert(name);
            }
            open.push((i as u64, identity, set));
        }
        let sender = sender % sessions.len();
        let topic = topics[topic as usize];
        let Some(channel) = sessions[sender].1.iter().position(|t| topics[*t as usize] == topic) else {
            return Ok(());
        };
        let to_ids: Option<Vec<String>> = to.map(|t| t.iter().map(|n| format!("p{n}")).collect());
        let msg = match &to_ids {
            Some(t) => serde_json::json!({"data": 7, "to": t}).to_string(),
            None => r#"{"data": 7}"#.to_string(),
        };
        let t0 = Instant::now();
        r.handle_message(t0, pid(sender as u64), ChannelKey(channel as u16), false, msg.as_bytes(), everyone);
        let (sent, _) = drain(&mut r);
        let me = &open[sender].1;
        let want: BTreeSet<&str> = open
            .iter()
            .filter(|(_, who, ts)| who != me && ts.contains(topic))
            .filter(|(_, who, _)| to_ids.as_ref().is_none_or(|t| t.contains(who)))
            .map(|(_, who, _)| who.as_str())
            .collect();
        let got: Vec<&str> = sent.iter().map(|(p, _, _)| open[*p as usize].1.as_str()).collect();
        let got_set: BTreeSet<&str> = got.iter().copied().collect();
        prop_assert_eq!(got.len(), got_set.len(), "an identity got it twice");
        prop_assert_eq!(got_set, want);
        for (_, _, m) in &sent {
            prop_assert_eq!(&m["from"], &Value::from(me.as_str()));
            prop_assert_eq!(&m["topic"], &Value::from(topic));
        }
    }
}
