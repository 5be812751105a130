//! Hostile publisher input in deterministic virtual time: a simulcast publisher that
//! sends RTP payloads larger than a subscriber's send path can carry, mid-stream, in a
//! room with one viewer on the room's own task and one on a subscriber shard.
//!
//! str0m 0.25 builds every outgoing packet in a 2,000-byte buffer and panics when header
//! and payload do not fit; a payload near that size forwarded to a subscriber took the
//! whole room down. The room must drop (and count) such packets before any subscriber,
//! in the room or a shard, and both viewers must go on receiving intact video.

mod sim;

use std::time::Duration;

use sim::link::LinkConfig;
use sim::media::SIMULCAST;
use sim::Sim;
use switchboard::limits::ShardPolicy;
use switchboard::room::MAX_FORWARD_PAYLOAD;

const S: Duration = Duration::from_secs(1);
const DELAY: Duration = Duration::from_millis(20);
const WIDE_BPS: u64 = 5_000_000;
const PUBLISHER: usize = 0;
const HOME: usize = 1;
const SHARDED: usize = 2;
/// The largest payload a str0m publisher can send itself (its own 2,000-byte buffer
/// holds its header too): above [`MAX_FORWARD_PAYLOAD`].
const OVERSIZE: usize = 1_940;

fn link() -> LinkConfig {
    LinkConfig::ideal(DELAY)
}

#[test]
fn oversized_payloads_reach_no_subscriber_and_video_goes_on() {
    const { assert!(OVERSIZE > MAX_FORWARD_PAYLOAD) };
    let mut sim = Sim::with_shards(ShardPolicy { after: 1, max: 1 });
    sim.join_publisher("publisher", &SIMULCAST, link(), link());
    sim.run_until(sim.at(S / 2));
    assert_eq!(sim.subscribe_limited("home", link(), WIDE_BPS), HOME);
    assert_eq!(sim.subscribe_limited("sharded", link(), WIDE_BPS), SHARDED);
    sim.run_until(sim.at(3 * S));
    assert_eq!(
        sim.shard_of(SHARDED),
        Some(0),
        "the second viewer is sharded"
    );
    let before: Vec<usize> = [HOME, SHARDED]
        .iter()
        .map(|&v| sim.peers[v].received.video.len())
        .collect();
    assert!(before.iter().all(|&n| n > 0), "video before: {before:?}");

    // Mid-stream, a burst of oversized packets on the lowest layer (the one every
    // viewer falls back to), then the stream goes on.
    for i in 0..20 {
        let at = sim.at(3 * S + Duration::from_millis(10 * i));
        sim.run_until(at);
        sim.peers[PUBLISHER].write_raw_video(at, OVERSIZE);
    }
    sim.run_until(sim.at(6 * S));

    for (v, n) in [HOME, SHARDED].into_iter().zip(before) {
        let r = &sim.peers[v].received;
        assert!(
            r.corrupt.is_empty() && r.unknown == 0,
            "{}: received what the publisher never encoded: {:?}",
            sim.peers[v].name,
            r.corrupt.first()
        );
        let after = r.video.len() - n;
        // Three seconds of the top layer (about 1.5 Mbit/s) is hundreds of packets.
        assert!(
            after > 300,
            "{}: only {after} video packets after the oversized burst",
            sim.peers[v].name
        );
        let last = r.video.last().expect("video").at;
        assert!(
            sim.elapsed(last) > 5 * S + S / 2,
            "{}: video stopped at {:?}",
            sim.peers[v].name,
            sim.elapsed(last)
        );
    }
}
