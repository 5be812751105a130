use super::*;
use std::net::SocketAddr;
use str0m::media::Direction;
use switchboard_kit::peer::{self as kit, ClientConfig, OfferSpec, VideoCodecs};

/// Participant `me` of `n`, with real channel ids (from a data-only offer).
fn peer(me: u32, n: u32, rate: f64) -> DataPeer {
    let spec = OfferSpec {
        audio: 0,
        video: 0,
        channels: Topic::ALL.iter().map(|t| t.channel()).collect(),
        ..OfferSpec::one_each(Direction::RecvOnly)
    };
    let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let client = ClientConfig::browser(VideoCodecs::Vp8);
    let made = kit::offer(&client, &spec, local, Instant::now()).unwrap();
    assert!(made.sdp.contains("m=application"), "{}", made.sdp);
    assert!(!made.sdp.contains("m=audio") && !made.sdp.contains("m=video"));
    let cfg = DataConfig {
        rate,
        padding: 0,
        participants: n,
    };
    let mut p = DataPeer::new(me, cfg, &made.channels);
    for (t, id) in Topic::ALL.into_iter().zip(&made.channels) {
        assert!(!p.opened(*id, "other", Instant::now()), "not its label");
        assert!(p.opened(*id, t.label(), Instant::now()));
        assert!(!p.opened(*id, t.label(), Instant::now()), "opened once");
    }
    p
}

/// A relayed message of `from` on `topic`.
fn relayed(from: &str, topic: &str, seq: u64, t: u64) -> Vec<u8> {
    let data = message(seq, t, "");
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    serde_json::json!({"from": from, "name": from, "topic": topic, "data": data["data"]})
        .to_string()
        .into_bytes()
}

#[test]
fn a_flow_counts_gaps_duplicates_and_reordering() {
    let mut f = Flow::default();
    assert_eq!(f.record(0), Arrival::InOrder);
    assert_eq!(f.record(1), Arrival::InOrder);
    assert_eq!(f.record(3), Arrival::InOrder);
    assert_eq!((f.delivered, f.gaps()), (3, 1));
    // The late one fills its gap, out of order.
    assert_eq!(f.record(2), Arrival::OutOfOrder);
    assert_eq!((f.delivered, f.gaps(), f.out_of_order), (4, 0, 1));
    assert_eq!(f.record(2), Arrival::Duplicate);
    assert_eq!(f.record(0), Arrival::Duplicate);
    assert_eq!((f.delivered, f.duplicated), (4, 2));
    // The sender wrote 6: 4 and 5 are a lost tail.
    assert_eq!(f.lost(6), 2);
    assert_eq!(f.lost(4), 0);
    // Far apart seqs (beyond one bitmap word) are tracked too.
    assert_eq!(f.record(200), Arrival::InOrder);
    assert_eq!(f.record(130), Arrival::OutOfOrder);
    assert_eq!(f.record(200), Arrival::Duplicate);
    assert_eq!(f.gaps(), 201 - 6);
    assert_eq!(Flow::default().lost(3), 3);
}

#[test]
fn messages_are_small_json_with_seq_and_time() {
    assert_eq!(message(3, 42, ""), r#"{"data":{"seq":3,"t":42}}"#);
    let padded = message(0, 7, "xxxx");
    assert_eq!(padded, r#"{"data":{"seq":0,"t":7,"pad":"xxxx"}}"#);
    let v: serde_json::Value = serde_json::from_str(&padded).unwrap();
    assert_eq!(v["data"]["t"], 7);
}

#[test]
fn a_receiver_checks_every_relayed_message_per_sender_and_topic() {
    let mut p = peer(1, 3, 10.0);
    let (chat, pos) = (
        p.channel(Topic::Chat).unwrap(),
        p.channel(Topic::Pos).unwrap(),
    );
    assert!(p.receive(chat, &relayed("p0", "chat", 0, 1_000), 1_500));
    assert!(p.receive(chat, &relayed("p0", "chat", 1, 2_000), 2_100));
    assert!(
        !p.receive(chat, &relayed("p0", "chat", 1, 2_000), 2_200),
        "duplicate"
    );
    assert!(p.receive(chat, &relayed("p2", "chat", 0, 1_000), 4_000));
    // pos: 0, 2, then 1 late.
    assert!(p.receive(pos, &relayed("p0", "pos", 0, 0), 10));
    assert!(p.receive(pos, &relayed("p0", "pos", 2, 0), 10));
    assert!(p.receive(pos, &relayed("p0", "pos", 1, 0), 10));
    let s = &p.stats;
    let chat0 = &s.flows[0][Topic::Chat.index()];
    assert_eq!(
        (chat0.delivered, chat0.duplicated, chat0.lost(2)),
        (2, 1, 0)
    );
    assert_eq!(s.flows[2][Topic::Chat.index()].delivered, 1);
    let pos0 = &s.flows[0][Topic::Pos.index()];
    assert_eq!((pos0.delivered, pos0.out_of_order, pos0.lost(4)), (3, 1, 1));
    let lat = &s.latency_us[Topic::Chat.index()];
    assert_eq!(
        (lat.len(), lat.quantile(0.0), lat.max()),
        (3, Some(100), Some(3_000))
    );
    assert_eq!(s.latency_us[Topic::Pos.index()].len(), 3);

    // Error replies, own and foreign messages, a wrong topic, garbage.
    let err = br#"{"error":"rate_limited","detail":"over 50 messages a second"}"#;
    assert!(!p.receive(chat, err, 0));
    assert!(!p.receive(pos, err, 0));
    assert!(!p.receive(chat, &relayed("p1", "chat", 0, 0), 0));
    assert!(!p.receive(chat, &relayed("server", "chat", 0, 0), 0));
    assert!(!p.receive(chat, &relayed("p7", "chat", 0, 0), 0));
    assert!(!p.receive(chat, b"not json", 0));
    assert!(!p.receive(chat, br#"{"from":"p0","data":{"x":1}}"#, 0));
    assert!(p.receive(chat, &relayed("p0", "pos", 5, 0), 0));
    let s = &p.stats;
    assert_eq!(s.errors.get("rate_limited"), Some(&2));
    assert_eq!(
        (s.own, s.foreign, s.unreadable, s.wrong_topic),
        (1, 2, 2, 1)
    );
}

#[test]
fn senders_are_staggered_and_catch_up_a_bounded_backlog() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    // Participant 1 of 4 at 10/s: chat at +25 ms, pos at +75 ms, then every 100 ms.
    let mut p = peer(1, 4, 10.0);
    assert_eq!(p.next_due(), None);
    assert!(p.due(ms(1_000)).is_empty(), "not started");
    p.start(t0);
    assert_eq!(p.next_due(), Some(ms(25)));
    assert!(p.due(ms(24)).is_empty());
    assert_eq!(p.due(ms(25)), vec![Topic::Chat]);
    assert_eq!(p.next_due(), Some(ms(75)));
    assert_eq!(p.due(ms(130)), vec![Topic::Chat, Topic::Pos]);
    // 1 s late: five of each are sent at once, the rest skipped.
    let late = p.due(ms(1_130));
    assert_eq!(late.len(), 10);
    assert_eq!(p.stats.skipped, [5, 5]);
    assert!(p.next_due().unwrap() > ms(1_130));
    // Seqs advance only on what str0m took.
    assert_eq!(p.message(Topic::Chat, 9), message(0, 9, ""));
    p.written(Topic::Chat, 20, false);
    assert_eq!(p.message(Topic::Chat, 9), message(0, 9, ""));
    p.written(Topic::Chat, 20, true);
    assert_eq!(p.message(Topic::Chat, 9), message(1, 9, ""));
    assert_eq!((p.stats.sent, p.stats.unsent), ([1, 0], [1, 0]));
    p.stop();
    assert_eq!(p.next_due(), None);
    // A closed channel is no longer written to.
    let chat = p.channel(Topic::Chat).unwrap();
    p.closed(chat);
    assert_eq!(p.channel(Topic::Chat), None);
    assert_eq!(p.stats.closed, [1, 0]);
}
