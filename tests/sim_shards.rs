//! Subscriber shards in deterministic virtual time: a sans-IO `Room` that keeps one WHEP
//! viewer itself and moves the next to a subscriber shard (`ShardPolicy { after: 1, max:
//! 1 }`), with a str0m publisher sending VP8 simulcast (about 150 kbit/s, 500 kbit/s and
//! 1.5 Mbit/s) plus Opus. The driver runs the shard next to the room ([`sim::shards`]):
//! the sharded viewer's datagrams go to the shard, the room's routed packets and
//! commands to the shard, the shard's reports (connected, estimates, keyframe requests,
//! ends) back to the room.
//!
//! Checks that a sharded viewer gets the same stream as the room's own (connects,
//! starts on a keyframe, top layer, every packet, intact, in sequence), that its
//! bandwidth estimates reach the room's allocator (it steps down behind a bottleneck
//! and climbs back, with a keyframe request, once the bottleneck lifts, while the
//! room's viewer stays on the top layer), and that it leaves cleanly (the shard and the
//! room forget it, the webhooks' notices say it joined and left once, the other viewer
//! goes on, and the next viewer takes its place in the shard). Since the driver does the shard's work in the same virtual instant as the
//! room's, the bottleneck run must also be identical, packet for packet and estimate for
//! estimate, to the same run without shards. Each test prints its figures (run with
//! `--nocapture`).

mod sim;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sim::link::LinkConfig;
use sim::media::SIMULCAST;
use sim::video::Video;
use sim::{check_intact, secs, trace, Sim};
use switchboard::conference::notices::Notice;
use switchboard::limits::ShardPolicy;

const S: Duration = Duration::from_secs(1);
/// One-way delay of every link.
const DELAY: Duration = Duration::from_millis(20);
const WIDE_BPS: u64 = 5_000_000;
/// Below the top layer (about 1.5 Mbit/s), above the middle one (about 500 kbit/s).
const NARROW_BPS: u64 = 600_000;
/// Layer indices (the publisher's RID order, lowest first).
const TOP: u8 = 2;
const MIDDLE: u8 = 1;
/// When the first viewer joins; the second joins once the first is connected.
const SUBSCRIBE_AT: Duration = Duration::from_millis(500);
/// The room keeps one viewer, the next goes to the one shard.
const ONE_SHARD: ShardPolicy = ShardPolicy { after: 1, max: 1 };
/// Peer indices: the publisher joins first, then the room's viewer, then the shard's.
const PUBLISHER: usize = 0;
const HOME: usize = 1;
const SHARDED: usize = 2;
/// Packets sent this close to the end may still be in flight.
const TAIL: Duration = Duration::from_millis(500);

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

/// A simulcast publisher, then two viewers on `WIDE_BPS` downlinks: with [`ONE_SHARD`],
/// the room's viewer and the shard's viewer.
fn room_with_viewers(policy: ShardPolicy) -> Sim {
    let mut sim = Sim::with_shards(policy);
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(SUBSCRIBE_AT));
    assert_eq!(sim.subscribe_limited("home", link(), WIDE_BPS), HOME);
    assert_eq!(sim.subscribe_limited("sharded", link(), WIDE_BPS), SHARDED);
    sim
}

/// Where each viewer lives: the first in the room, the second in the one shard.
fn check_placement(sim: &Sim) {
    assert_eq!(sim.shards.len(), 1, "shards started");
    assert_eq!(
        sim.shard_of(HOME),
        None,
        "the first viewer is not the room's"
    );
    assert_eq!(
        sim.shard_of(SHARDED),
        Some(0),
        "the second viewer is not sharded"
    );
    assert_eq!(sim.shards[0].len(), 1, "subscribers in the shard");
    assert_eq!(sim.room.len(), 3, "participants in the room and its shard");
    assert!(
        sim.stats.shard_datagrams > 0,
        "no datagram of the sharded viewer reached the shard"
    );
}

/// [`check_intact`], a connection, video that starts on a keyframe, and no sequence
/// number skipped or repaired.
fn check_stream(sim: &Sim, peer: usize) {
    check_intact(sim, peer);
    let sub = &sim.peers[peer];
    let r = &sub.received;
    assert!(sub.connected_at.is_some(), "{}: not connected", sub.name);
    assert!(
        r.video[0].keyframe_start,
        "{}: first video packet is not a keyframe start",
        sub.name
    );
    let gaps = Video::new(&r.video, sim.t0).gaps();
    assert_eq!(gaps, (0, 0), "{}: video (skipped, repaired)", sub.name);
}

/// Top-layer packets the publisher sent in `[from, to)` that peer `peer` did not
/// receive, and how many it sent.
fn missing_top(sim: &Sim, peer: usize, from: Instant, to: Instant) -> (usize, usize) {
    let sent = &sim.peers[PUBLISHER].sent;
    let got: BTreeSet<u64> = sim.peers[peer]
        .received
        .video
        .iter()
        .map(|g| g.counter)
        .collect();
    let expected: Vec<u64> = (0..sent.video_at.len() as u64)
        .filter(|&c| {
            let (at, layer) = (sent.video_at[c as usize], sent.video_layer[c as usize]);
            layer == TOP && at >= from && at < to
        })
        .collect();
    let missing = expected.iter().filter(|c| !got.contains(c)).count();
    (missing, expected.len())
}

/// Every video packet of both viewers (arrival, counter, layer) and every estimate,
/// times relative to the start: what must replay identically.
type Replay = (Vec<Vec<(Duration, u64, u8)>>, Vec<(Duration, usize, u64)>);

fn replay(sim: &Sim) -> Replay {
    let video = [HOME, SHARDED]
        .iter()
        .map(|&p| {
            let got = &sim.peers[p].received.video;
            got.iter()
                .map(|g| (sim.elapsed(g.at), g.counter, g.layer))
                .collect()
        })
        .collect();
    let estimates = sim
        .estimates
        .iter()
        .map(|e| (sim.elapsed(e.at), e.peer, e.bps))
        .collect();
    (video, estimates)
}

// ---- the same stream from the room and from a shard ----

const SAME_END: Duration = Duration::from_secs(12);
/// The window in which both viewers' packets are compared: 10 s.
const SAME_FROM: Duration = Duration::from_secs(2);

fn same_stream() -> Sim {
    let _capture = trace::capture();
    let mut sim = room_with_viewers(ONE_SHARD);
    sim.run_until(sim.at(SAME_END));
    sim
}

#[test]
fn a_sharded_viewer_gets_what_the_room_viewer_gets() {
    let sim = same_stream();
    let (from, end) = (sim.at(SAME_FROM), sim.at(SAME_END));
    println!("driver: {:?}", sim.stats);
    check_placement(&sim);
    let mut counts = Vec::new();
    for peer in [HOME, SHARDED] {
        check_stream(&sim, peer);
        let sub = &sim.peers[peer];
        let v = Video::new(&sub.received.video, sim.t0);
        let top_from = v.settled_from(sim.t0, end, |l| l == TOP);
        let per_layer = v.per_layer(from, end);
        let (missing, sent) = missing_top(&sim, peer, from, end - TAIL);
        let estimates = sim.estimates.iter().filter(|e| e.peer == peer).count();
        let last = sim.estimates.iter().rfind(|e| e.peer == peer);
        println!(
            "{}: connected at {}, first video at {}, on the top layer from {:?}; \
             {} video, {} audio packets; per layer {}-{}: {per_layer:?}; top layer \
             missing {missing} of {sent}; {estimates} estimates, last {:?} kbit/s",
            sub.name,
            secs(sim.elapsed(sub.connected_at.expect("connected"))),
            secs(sim.elapsed(sub.received.video[0].at)),
            top_from.map(|t| secs(sim.elapsed(t))),
            sub.received.video.len(),
            sub.received.audio.len(),
            secs(SAME_FROM),
            secs(SAME_END),
            last.map(|e| e.bps / 1000),
        );
        assert!(
            top_from.is_some_and(|t| t <= from),
            "{}: not on the top layer throughout {}-{}: {per_layer:?}",
            sub.name,
            secs(SAME_FROM),
            secs(SAME_END)
        );
        assert!(sent > 0, "the publisher sent no top-layer packet");
        assert_eq!(missing, 0, "{}: top-layer packets missing", sub.name);
        // The room's forwarder heard the viewer's estimates (for the sharded viewer,
        // reported by its shard).
        assert!(estimates > 0, "{}: no estimate reached the room", sub.name);
        counts.push(per_layer.iter().sum::<u64>());
    }
    let (home, sharded) = (counts[0] as f64, counts[1] as f64);
    assert!(
        (home - sharded).abs() <= 0.02 * home,
        "video packets {}-{}: room viewer {home}, sharded viewer {sharded}",
        secs(SAME_FROM),
        secs(SAME_END)
    );
    assert!(
        replay(&sim) == replay(&same_stream()),
        "the scenario did not replay identically"
    );
}

// ---- a sharded viewer behind a bottleneck ----

const DROP_AT: Duration = Duration::from_secs(10);
const RECOVER_AT: Duration = Duration::from_secs(30);
const END: Duration = Duration::from_secs(60);
/// How long the sharded viewer may take to step down after the drop.
const DOWN_WITHIN: Duration = Duration::from_secs(3);
/// How long it may take to climb back to the top layer after the recovery.
const UP_WITHIN: Duration = Duration::from_secs(15);

/// [`room_with_viewers`]; the second viewer's downlink narrows to `NARROW_BPS` at
/// `DROP_AT` and widens again at `RECOVER_AT`.
fn bottleneck(policy: ShardPolicy) -> Sim {
    let _capture = trace::capture();
    let mut sim = room_with_viewers(policy);
    sim.run_until(sim.at(DROP_AT));
    let now = sim.now;
    let down = &mut sim.peers[SHARDED].downlink;
    down.set_capacity(now, Some(NARROW_BPS));
    sim.run_until(sim.at(RECOVER_AT));
    let now = sim.now;
    let down = &mut sim.peers[SHARDED].downlink;
    down.set_capacity(now, Some(WIDE_BPS));
    sim.run_until(sim.at(END));
    sim
}

#[test]
fn a_sharded_viewer_adapts_to_its_bottleneck() {
    let sim = bottleneck(ONE_SHARD);
    let (drop_at, recover_at, end) = (sim.at(DROP_AT), sim.at(RECOVER_AT), sim.at(END));
    println!("driver: {:?}", sim.stats);
    check_placement(&sim);
    for peer in [HOME, SHARDED] {
        let sub = &sim.peers[peer];
        let v = Video::new(&sub.received.video, sim.t0);
        let switches: Vec<String> = v
            .switches()
            .iter()
            .map(|s| format!("{}→{} at {}", s.from, s.to, secs(sim.elapsed(s.at))))
            .collect();
        println!(
            "{}: {} video packets; per second per layer: {:?}",
            sub.name,
            sub.received.video.len(),
            v.per_second()
        );
        println!("{}: switches {switches:?}", sub.name);
        println!(
            "{}: estimate per second (kbit/s): {:?}",
            sub.name,
            sim.estimates_per_second(peer, END)
        );
        let r = &sub.received;
        assert!(
            r.corrupt.is_empty(),
            "{}: corrupt {:?}",
            sub.name,
            r.corrupt
        );
    }

    // The room's viewer, on a wide link, stays on the top layer throughout.
    let home = Video::new(&sim.peers[HOME].received.video, sim.t0);
    let home_top = home.settled_from(sim.t0, end, |l| l == TOP);
    println!(
        "home: on the top layer from {:?}",
        home_top.map(|t| secs(sim.elapsed(t)))
    );
    assert!(
        home_top.is_some_and(|t| t + 5 * S <= drop_at),
        "home: not on the top layer from before the drop to the end: {:?}",
        home.per_second()
    );
    let (missing, sent) = missing_top(&sim, HOME, drop_at, end - TAIL);
    assert_eq!(
        missing, 0,
        "home: {missing} of {sent} top-layer packets missing"
    );

    let v = Video::new(&sim.peers[SHARDED].received.video, sim.t0);
    // Before the drop: on the top layer for at least the last 2 s.
    let top_from = v.settled_from(sim.t0, drop_at, |l| l == TOP);
    assert!(
        top_from.is_some_and(|t| t + 2 * S <= drop_at),
        "sharded: not on the top layer for the 2 s before the drop (from {:?})",
        top_from.map(|t| secs(sim.elapsed(t)))
    );
    // The estimates the shard reported fell below the top layer: the room's forwarder
    // (whose debug log the driver captures) received them.
    let narrow_estimates: Vec<u64> = sim
        .estimates
        .iter()
        .filter(|e| e.peer == SHARDED && e.at >= drop_at && e.at < recover_at)
        .map(|e| e.bps)
        .collect();
    let lowest = narrow_estimates.iter().min().copied();
    println!(
        "sharded: {} estimates while narrow, lowest {:?} kbit/s",
        narrow_estimates.len(),
        lowest.map(|b| b / 1000)
    );
    assert!(
        lowest.is_some_and(|b| b < NARROW_BPS),
        "sharded: no estimate below {NARROW_BPS} bit/s reached the room while narrow"
    );
    // After the drop: on a layer that fits within DOWN_WITHIN, until the recovery.
    let down_after = v
        .settled_from(drop_at, recover_at, |l| l <= MIDDLE)
        .map(|t| t.saturating_duration_since(drop_at));
    println!(
        "sharded: on layer ≤ {MIDDLE} from {:?} after the drop",
        down_after.map(secs)
    );
    assert!(
        down_after.is_some_and(|d| d <= DOWN_WITHIN),
        "sharded: on layer ≤ {MIDDLE} only {:?} after the drop (limit {})",
        down_after.map(secs),
        secs(DOWN_WITHIN)
    );
    // After the recovery: back on the top layer within UP_WITHIN, until the end ...
    let up_at = v.settled_from(recover_at, end, |l| l == TOP);
    let up_after = up_at.map(|t| t.saturating_duration_since(recover_at));
    println!(
        "sharded: on the top layer from {:?} after the recovery",
        up_after.map(secs)
    );
    assert!(
        up_after.is_some_and(|d| d <= UP_WITHIN),
        "sharded: on the top layer only {:?} after the recovery (limit {})",
        up_after.map(secs),
        secs(UP_WITHIN)
    );
    // ... starting on a keyframe of the top layer that the room asked the publisher for.
    let up_at = up_at.expect("switched up");
    let first_top = v
        .in_order()
        .find(|g| g.at == up_at)
        .expect("first top packet");
    assert!(
        first_top.keyframe_start,
        "sharded: the switch up does not start on a keyframe"
    );
    let requests = &sim.peers[PUBLISHER].sent.layer_keyframe_requests;
    let asked: Vec<String> = requests
        .iter()
        .filter(|(t, _)| *t >= recover_at && *t <= up_at)
        .map(|(t, l)| format!("{}:{l:?}", secs(sim.elapsed(*t))))
        .collect();
    println!("publisher: keyframe requests from the recovery to the switch up: {asked:?}");
    assert!(
        requests
            .iter()
            .any(|(t, l)| *t >= recover_at && *t <= up_at && l.is_none_or(|l| l == TOP)),
        "no keyframe request for the top layer between the recovery and the switch up"
    );
}

/// The simulation hands the room's work to its shard and the shard's reports back within
/// the same virtual instant, so a shard is a pure change of owner there: the bottleneck
/// run gives both viewers exactly the packets, at exactly the times, and the room
/// exactly the estimates that the same run gets without shards (where the room drives
/// both viewers). A difference means the shard path drops, adds or reorders something.
#[test]
fn sharding_changes_nothing_the_viewers_receive() {
    let sharded = bottleneck(ONE_SHARD);
    let home = bottleneck(ShardPolicy::default());
    assert!(home.shards.is_empty(), "shards without a shard policy");
    assert_eq!(
        home.shard_of(SHARDED),
        None,
        "a viewer sharded without a policy"
    );
    check_placement(&sharded);
    let (a, b) = (replay(&home), replay(&sharded));
    for (i, peer) in [HOME, SHARDED].into_iter().enumerate() {
        let (x, y) = (&a.0[i], &b.0[i]);
        let first = x.iter().zip(y).position(|(p, q)| p != q);
        println!(
            "{}: {} video packets without shards, {} with; first difference at {first:?}",
            home.peers[peer].name,
            x.len(),
            y.len()
        );
        assert!(
            x == y,
            "{}: video differs with the shard ({} vs {} packets, first difference at \
             {first:?}: {:?} vs {:?})",
            home.peers[peer].name,
            x.len(),
            y.len(),
            first.map(|f| x[f]),
            first.map(|f| y[f])
        );
    }
    println!(
        "estimates: {} without shards, {} with",
        a.1.len(),
        b.1.len()
    );
    assert!(a.1 == b.1, "the estimates differ with the shard");
}

// ---- a sharded viewer leaves ----

/// The room's notices (what the webhooks carry), a sharded viewer's included: the
/// publisher joins and publishes its two tracks, both viewers join, the sharded one
/// leaves — each once.
fn check_notices(sim: &Sim) {
    let said: Vec<String> = sim
        .notices
        .iter()
        .map(|n| match n {
            Notice::ParticipantJoined(p) => format!("joined {}", p.identity),
            Notice::ParticipantLeft { identity, .. } => format!("left {identity}"),
            Notice::TrackPublished { identity, track } => {
                format!("published {identity} {}", track.kind)
            }
            Notice::TrackUnpublished { identity, track } => {
                format!("unpublished {identity} {}", track.kind)
            }
        })
        .collect();
    let joined: Vec<&str> = sim
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::ParticipantJoined(p) => Some(p.identity.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(joined.len(), 3, "{said:?}");
    let (publisher, sharded) = (joined[0], joined[2]);
    let mut published: Vec<&String> = said[1..3].iter().collect();
    published.sort();
    assert_eq!(
        published,
        [
            &format!("published {publisher} audio"),
            &format!("published {publisher} video")
        ],
        "{said:?}"
    );
    assert_eq!(said.len(), 6, "{said:?}");
    assert_eq!(said[5], format!("left {sharded}"), "{said:?}");
}

const LEAVE_AT: Duration = Duration::from_secs(5);
const NEXT_AT: Duration = Duration::from_secs(8);
const LEAVE_END: Duration = Duration::from_secs(12);

#[test]
fn a_sharded_viewer_leaves_cleanly() {
    let mut sim = room_with_viewers(ONE_SHARD);
    sim.run_until(sim.at(LEAVE_AT));
    check_placement(&sim);
    let stray = sim.stats.stray;
    let before = sim.peers[HOME].received.video.len();
    assert!(sim.leave(SHARDED), "the room did not know the session");
    println!(
        "after the leave: room {} participants, shard {} subscribers; {} datagrams to \
         the departed viewer",
        sim.room.len(),
        sim.shards[0].len(),
        sim.stats.stray - stray
    );
    assert!(
        sim.shards[0].is_empty(),
        "the shard still drives the viewer"
    );
    assert_eq!(sim.room.len(), 2, "participants after the leave");
    assert!(
        sim.room.session_tags(&sim.resources[SHARDED]).is_none(),
        "the room still lists the session"
    );
    // The shard closed the session: RTCP BYE and DTLS close_notify to the viewer.
    assert!(
        sim.stats.stray > stray,
        "the shard sent the departed viewer no goodbye"
    );
    assert!(!sim.leave(SHARDED), "a second DELETE found the session");
    check_notices(&sim);

    // The room's viewer goes on, without a gap.
    sim.run_until(sim.at(NEXT_AT));
    let leave_at = sim.at(LEAVE_AT);
    let (missing, sent) = missing_top(&sim, HOME, leave_at, sim.now - TAIL);
    let after = sim.peers[HOME].received.video.len() - before;
    println!("home: {after} video packets after the leave, {missing} of {sent} missing");
    assert!(sent > 0, "the publisher sent no top-layer packet");
    assert_eq!(
        missing, 0,
        "home: top-layer packets missing after the leave"
    );
    check_stream(&sim, HOME);

    // The next viewer takes the free place in the shard and gets video.
    let next = next_viewer(&mut sim);
    assert_eq!(sim.shards.len(), 1, "a second shard was started");
    assert_eq!(
        sim.shard_of(next),
        Some(0),
        "the next viewer is not sharded"
    );
    assert_eq!(sim.shards[0].len(), 1, "subscribers in the shard");
    assert_eq!(sim.room.len(), 3, "participants with the next viewer");
    check_stream(&sim, next);
    check_stream(&sim, HOME);
}

/// A viewer "next" joins now; run until `LEAVE_END`. Returns its index.
fn next_viewer(sim: &mut Sim) -> usize {
    let next = sim.subscribe_limited("next", link(), WIDE_BPS);
    sim.run_until(sim.at(LEAVE_END));
    println!(
        "next: in shard {:?}, {} video packets",
        sim.shard_of(next),
        sim.peers[next].received.video.len()
    );
    next
}

/// A shard that dies (its task panicked) ends its sessions in the room, the room's own
/// viewer goes on without a gap, and the next viewer gets a new shard and video.
#[test]
fn a_lost_shard_ends_its_sessions_and_the_next_viewer_gets_a_new_one() {
    let mut sim = room_with_viewers(ONE_SHARD);
    sim.run_until(sim.at(LEAVE_AT));
    let before = sim.peers[HOME].received.video.len();
    sim.lose_shard(0);
    assert_eq!(sim.room.len(), 2, "participants after the shard was lost");
    assert!(
        sim.room.session_tags(&sim.resources[SHARDED]).is_none(),
        "the room still lists the lost shard's session"
    );
    assert!(!sim.leave(SHARDED), "a DELETE found the lost session");

    sim.run_until(sim.at(NEXT_AT));
    let (missing, sent) = missing_top(&sim, HOME, sim.at(LEAVE_AT), sim.now - TAIL);
    let after = sim.peers[HOME].received.video.len() - before;
    println!("home: {after} video packets after the loss, {missing} of {sent} missing");
    assert!(sent > 0, "the publisher sent no top-layer packet");
    assert_eq!(missing, 0, "home: top-layer packets missing after the loss");

    let next = next_viewer(&mut sim);
    assert_eq!(sim.shards.len(), 2, "no new shard replaced the lost one");
    assert_eq!(sim.shard_of(next), Some(1), "the next viewer's shard");
    assert_eq!(sim.shards[1].len(), 1, "subscribers in the new shard");
    check_stream(&sim, next);
    check_stream(&sim, HOME);
}
