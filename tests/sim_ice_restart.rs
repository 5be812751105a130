//! ICE restarts in deterministic virtual time (RFC 8445 §9, as WHIP/WHEP ask for them by
//! PATCH, RFC 9725 §4.3.2): a simulcast publisher and two viewers, the room's own and a
//! subscriber shard's (`ShardPolicy { after: 1, max: 1 }`). Mid-stream each viewer
//! restarts ICE from a new address (its old one gone, as when a phone leaves Wi-Fi) and
//! the publisher restarts ICE where it is.
//!
//! Checks: the sessions stay (same resource, nobody leaves), media goes on to the new
//! addresses with no video sequence number lost (what was sent to an old address is
//! repaired by NACK and RTX), video never stops for longer than `MAX_STALL`, the publisher gets a
//! keyframe request when a viewer's ICE is back but no more than one per viewer, and the
//! server's STUN tag (ETag) changes. Prints the figures (run with `--nocapture`).

mod sim;

use std::collections::BTreeSet;
use std::time::Duration;

use sim::link::LinkConfig;
use sim::media::SIMULCAST;
use sim::video::Video;
use sim::{check_intact, Sim};
use switchboard::limits::ShardPolicy;

const S: Duration = Duration::from_secs(1);
const DELAY: Duration = Duration::from_millis(20);
const WIDE_BPS: u64 = 5_000_000;
const PUBLISHER: usize = 0;
const HOME: usize = 1;
const SHARDED: usize = 2;
/// When the restarts happen, and how long the run goes on after them.
const RESTART_AT: Duration = Duration::from_secs(4);
const AFTER: Duration = Duration::from_secs(4);
/// Longest pause in a viewer's video arrivals around its restart.
const MAX_STALL: Duration = Duration::from_millis(500);

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

/// Video sequence numbers of `peer` never received between its first and last one.
fn missing(sim: &Sim, peer: usize) -> u64 {
    let seqs: BTreeSet<u64> = sim.peers[peer]
        .received
        .video
        .iter()
        .map(|g| g.seq)
        .collect();
    match (seqs.first(), seqs.last()) {
        (Some(a), Some(b)) => b - a + 1 - seqs.len() as u64,
        _ => 0,
    }
}

/// The longest time between two video arrivals of `peer`.
fn longest_stall(sim: &Sim, peer: usize) -> Duration {
    let got = &sim.peers[peer].received.video;
    got.windows(2)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .max()
        .unwrap_or_default()
}

#[test]
fn viewers_and_a_publisher_restart_ice_and_media_goes_on() {
    let mut sim = Sim::with_shards(ShardPolicy { after: 1, max: 1 });
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(Duration::from_millis(500)));
    assert_eq!(sim.subscribe_limited("home", link(), WIDE_BPS), HOME);
    assert_eq!(sim.subscribe_limited("sharded", link(), WIDE_BPS), SHARDED);
    assert_eq!(
        sim.shard_of(SHARDED),
        Some(0),
        "the second viewer is sharded"
    );
    sim.run_until(sim.at(RESTART_AT));
    let before: Vec<usize> = [HOME, SHARDED]
        .iter()
        .map(|&p| sim.peers[p].received.video.len())
        .collect();
    let requests_before = sim.peers[PUBLISHER].sent.keyframe_requests_at.len();
    let members = sim.room.len();

    let mut tags = Vec::new();
    for (peer, addr) in [(HOME, "10.1.0.1:6000"), (SHARDED, "10.1.0.2:6000")] {
        let old = sim.room.session_tags(&sim.resources[peer]).expect("tags");
        let restarted = sim.restart_ice(peer, Some(addr.parse().expect("addr")));
        let new = sim.room.session_tags(&sim.resources[peer]).expect("tags");
        assert_ne!(old.etag, new.etag, "peer {peer}: the ETag did not change");
        assert_eq!(new.etag, restarted.etag);
        tags.push(restarted.etag);
    }
    sim.restart_ice(PUBLISHER, Some("10.1.0.3:6000".parse().expect("addr")));
    let restarted_at = sim.now;
    sim.run_until(restarted_at + AFTER);

    assert_eq!(sim.room.len(), members, "a session ended");
    let requests = sim.peers[PUBLISHER].sent.keyframe_requests_at.len() - requests_before;
    for (i, &peer) in [HOME, SHARDED].iter().enumerate() {
        check_intact(&sim, peer);
        let sub = &sim.peers[peer];
        let after: Vec<_> = sub.received.video[before[i]..]
            .iter()
            .filter(|g| g.at > restarted_at + S)
            .collect();
        let stall = longest_stall(&sim, peer);
        let gaps = Video::new(&sub.received.video, sim.t0).gaps();
        println!(
            "{}: {} video packets in the last {} s, longest stall {} ms, (skipped at arrival, late) {:?}, tag {}",
            sub.name,
            after.len(),
            (AFTER - S).as_secs(),
            stall.as_millis(),
            gaps,
            tags[i]
        );
        assert!(
            after.len() > 500,
            "{}: video stopped after the restart",
            sub.name
        );
        assert_eq!(
            missing(&sim, peer),
            0,
            "{}: video sequence numbers lost",
            sub.name
        );
        assert!(stall <= MAX_STALL, "{}: video stalled {stall:?}", sub.name);
    }
    println!("publisher: {requests} keyframe requests after the restarts");
    // Each viewer whose ICE came back asks for a keyframe once (what was sent while its
    // old path died may be lost; the client's own PLI would come seconds later), and the
    // forwarder's throttle lets through at most one per viewer: no storm.
    assert!(
        (1..=2).contains(&requests),
        "keyframe requests after the restarts: {requests}"
    );
    let sent_after = sim.peers[PUBLISHER]
        .sent
        .video_at
        .iter()
        .filter(|&&t| t > restarted_at + S)
        .count();
    assert!(
        sent_after > 500,
        "the publisher's media stopped: {sent_after}"
    );
}

/// A viewer that moves without an ICE restart (NAT rebinding): its client nominates a
/// path from the new address with the same credentials, and the server follows.
#[test]
fn a_viewer_that_moves_without_a_restart_is_followed() {
    let mut sim = Sim::new();
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(Duration::from_millis(500)));
    assert_eq!(sim.subscribe_limited("viewer", link(), WIDE_BPS), HOME);
    sim.run_until(sim.at(RESTART_AT));
    let tag = sim.room.session_tags(&sim.resources[HOME]).expect("tags");
    sim.move_peer(HOME, "10.2.0.1:7000".parse().expect("addr"));
    let moved_at = sim.now;
    sim.run_until(moved_at + AFTER);
    check_intact(&sim, HOME);
    let sub = &sim.peers[HOME];
    let after = sub
        .received
        .video
        .iter()
        .filter(|g| g.at > moved_at + S)
        .count();
    let stall = longest_stall(&sim, HOME);
    println!(
        "moved viewer: {after} video packets in the last {} s, longest stall {} ms, {} stray datagrams",
        (AFTER - S).as_secs(),
        stall.as_millis(),
        sim.stats.stray
    );
    assert!(after > 500, "video stopped after the move: {after}");
    assert_eq!(missing(&sim, HOME), 0, "video sequence numbers lost");
    assert!(stall <= MAX_STALL, "video stalled {stall:?}");
    let same = sim.room.session_tags(&sim.resources[HOME]).expect("tags");
    assert_eq!(
        tag, same,
        "the session's ICE tags changed without a restart"
    );
}

/// A session gets `MAX_RESTARTS_PER_WINDOW` ICE restarts in a `RESTART_WINDOW`; one more
/// is refused with the wait (a PATCH gets 429 with `Retry-After`) and changes nothing;
/// after the window a restart works again and media goes on over it.
#[test]
fn ice_restarts_past_the_per_session_budget_are_refused_until_the_window_ends() {
    use switchboard::room::{IceRestartError, MAX_RESTARTS_PER_WINDOW, RESTART_WINDOW};
    let mut sim = Sim::new();
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(Duration::from_millis(500)));
    let viewer = sim.subscribe_limited("viewer", link(), WIDE_BPS);
    sim.run_until(sim.at(Duration::from_secs(2)));
    let first = sim.now;
    for _ in 0..MAX_RESTARTS_PER_WINDOW {
        sim.restart_ice(viewer, None);
        sim.run_until(sim.now + Duration::from_millis(300));
    }
    let before = sim.room.session_tags(&sim.resources[viewer]).expect("tags");
    let creds = str0m::IceCreds {
        ufrag: "oneTooMany".into(),
        pass: "restartedpassword0123456789".into(),
    };
    let session = sim.resources[viewer].clone();
    match sim.room.handle_ice_restart(sim.now, &session, creds) {
        Err(IceRestartError::TooSoon(wait)) => {
            assert_eq!(wait, first + RESTART_WINDOW - sim.now, "the wait")
        }
        other => panic!("restart past the budget: {other:?}"),
    }
    let after = sim.room.session_tags(&sim.resources[viewer]).expect("tags");
    assert_eq!(
        before.etag, after.etag,
        "a refused restart changed the session"
    );

    sim.run_until(first + RESTART_WINDOW);
    let received = sim.peers[viewer].received.video.len();
    sim.restart_ice(viewer, None);
    sim.run_until(sim.now + 2 * S);
    assert!(
        sim.peers[viewer].received.video.len() > received + 60,
        "video goes on after the next window's restart"
    );
}
