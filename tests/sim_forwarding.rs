//! Forwarding through a sans-IO `Room` in deterministic virtual time: one str0m publisher
//! (Opus + VP8) fanned out to str0m subscribers over simulated links. Checks payload
//! integrity, per-subscriber sequence numbering and SSRCs, keyframe starts and keyframe
//! requests on subscribe, NACK/RTX recovery on a lossy downlink, and that a scenario
//! replays identically.

mod sim;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sim::link::{LinkConfig, LinkStats};
use sim::peer::{Got, Peer, Role};
use sim::Sim;

const MS: Duration = Duration::from_millis(1);
const RUN_FOR: Duration = Duration::from_secs(10);
/// The publisher's periodic keyframe interval (90 frames at 30 fps).
const KEYFRAME_EVERY_S: Duration = Duration::from_secs(3);
/// Packets sent this close to the end may still be in flight (or awaiting a NACK).
const TAIL: Duration = Duration::from_millis(500);

fn ideal() -> LinkConfig {
    LinkConfig::ideal(5 * MS)
}

/// Everything a run produced that must replay identically (times relative to the start).
#[derive(Debug, PartialEq)]
struct Summary {
    publisher_connected: Option<Duration>,
    video_sent: usize,
    audio_sent: usize,
    keyframes_sent: Vec<Duration>,
    keyframe_requests: Vec<Duration>,
    subscribers: Vec<SubSummary>,
}

#[derive(Debug, PartialEq)]
struct SubSummary {
    name: String,
    connected: Option<Duration>,
    first_video: Option<Duration>,
    video: usize,
    audio: usize,
    first_video_counter: Option<u64>,
    first_audio_counter: Option<u64>,
    up: Counts,
    down: Counts,
}

/// A link's packet counters. Byte totals are left out: DTLS handshake records vary by a
/// byte or two from run to run (random-length ECDSA signatures in fresh certificates).
#[derive(Debug, PartialEq)]
struct Counts {
    pushed: u64,
    lost: u64,
    tail_dropped: u64,
    delivered: u64,
}

impl From<LinkStats> for Counts {
    fn from(s: LinkStats) -> Self {
        Counts {
            pushed: s.pushed,
            lost: s.lost,
            tail_dropped: s.tail_dropped,
            delivered: s.delivered,
        }
    }
}

/// Per-subscriber figures.
#[derive(Debug)]
struct Figures {
    video: usize,
    audio: usize,
    first_video_after_connect: Duration,
    expected_video: usize,
    distinct_video: usize,
    /// Video sequence numbers skipped at arrival time (the link is FIFO, so each one is
    /// a lost transmission).
    holes: u64,
    /// Video packets that arrived behind a higher sequence number: repairs.
    late_video: usize,
    /// Audio packets received / sent since the first one received, up to `end - TAIL`.
    audio_delivery: (usize, usize),
}

impl Figures {
    fn line(&self, name: &str) -> String {
        format!(
            "{name}: {} video, {} audio packets; first video {:?} after connecting; \
             video {}/{} since first; {} skipped at arrival, {} repaired; audio {}/{}",
            self.video,
            self.audio,
            self.first_video_after_connect,
            self.distinct_video,
            self.expected_video,
            self.holes,
            self.late_video,
            self.audio_delivery.0,
            self.audio_delivery.1,
        )
    }
}

fn summarize(sim: &Sim) -> Summary {
    let rel = |t: Instant| sim.elapsed(t);
    let publisher = &sim.peers[0];
    Summary {
        publisher_connected: publisher.connected_at.map(rel),
        video_sent: publisher.sent.video_at.len(),
        audio_sent: publisher.sent.audio_at.len(),
        keyframes_sent: publisher
            .sent
            .keyframes_at
            .iter()
            .copied()
            .map(rel)
            .collect(),
        keyframe_requests: publisher
            .sent
            .keyframe_requests_at
            .iter()
            .copied()
            .map(rel)
            .collect(),
        subscribers: sim.peers[1..]
            .iter()
            .map(|p| SubSummary {
                name: p.name.clone(),
                connected: p.connected_at.map(rel),
                first_video: p.received.video.first().map(|g| rel(g.at)),
                video: p.received.video.len(),
                audio: p.received.audio.len(),
                first_video_counter: p.received.video.first().map(|g| g.counter),
                first_audio_counter: p.received.audio.first().map(|g| g.counter),
                up: p.uplink.stats().into(),
                down: p.downlink.stats().into(),
            })
            .collect(),
    }
}

/// One SSRC for the whole stream, and one mapping `seq - counter`: the server renumbers
/// but never reorders or shifts a packet to another slot.
fn check_numbering(name: &str, kind: &str, got: &[Got]) {
    let ssrcs: BTreeSet<u32> = got.iter().map(|g| *g.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "{name} {kind}: SSRCs {ssrcs:?}");
    let offset = got[0].seq.wrapping_sub(got[0].counter);
    for g in got {
        assert_eq!(
            g.seq.wrapping_sub(g.counter),
            offset,
            "{name} {kind}: seq {} carries counter {} (expected offset {offset})",
            g.seq,
            g.counter
        );
    }
    let distinct: BTreeSet<u64> = got.iter().map(|g| g.seq).collect();
    assert_eq!(
        distinct.len(),
        got.len(),
        "{name} {kind}: duplicate sequence numbers"
    );
}

/// Strictly consecutive in arrival order: no gap, no reordering.
fn check_contiguous(name: &str, kind: &str, got: &[Got]) {
    for w in got.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "{name} {kind}: seq {} followed by {} on a lossless link",
            w[0].seq,
            w[1].seq
        );
    }
}

/// Checks every subscriber shares; returns its figures.
fn check_subscriber(sim: &Sim, sub: &Peer, end: Instant) -> Figures {
    let name = &sub.name;
    let publisher = &sim.peers[0];
    let r = &sub.received;
    assert!(
        r.corrupt.is_empty(),
        "{name}: corrupt payloads {:?}",
        r.corrupt
    );
    assert_eq!(r.unknown, 0, "{name}: packets of unknown payload type");
    assert!(!r.video.is_empty(), "{name}: no video");
    assert!(!r.audio.is_empty(), "{name}: no audio");
    check_numbering(name, "video", &r.video);
    check_numbering(name, "audio", &r.audio);
    // The lowest sequence number, not the first arrival: on a lossy link the keyframe's
    // first packet may be lost and arrive later as a retransmission.
    let first = *r.video.iter().min_by_key(|g| g.seq).expect("video");
    assert!(
        first.keyframe_start,
        "{name}: first video packet is not a keyframe start"
    );
    let connected = sub.connected_at.expect("connected");
    let first_at = r.video[0].at;
    let first_after = first_at.saturating_duration_since(connected);
    assert!(
        first_after < Duration::from_secs(1),
        "{name}: first video {first_after:?} after connecting"
    );
    assert!(
        publisher
            .sent
            .keyframe_requests_at
            .iter()
            .any(|t| *t >= sub.joined_at && *t <= first_at),
        "{name}: no keyframe request reached the publisher between join and first video"
    );
    let (distinct_video, expected_video) = delivery(&r.video, &publisher.sent.video_at, end);
    let mut highest = r.video[0].seq;
    let (mut holes, mut late_video) = (0, 0);
    for g in &r.video[1..] {
        if g.seq < highest {
            late_video += 1;
        } else {
            holes += g.seq - highest - 1;
            highest = g.seq;
        }
    }
    Figures {
        video: r.video.len(),
        audio: r.audio.len(),
        first_video_after_connect: first_after,
        expected_video,
        distinct_video,
        holes,
        late_video,
        audio_delivery: delivery(&r.audio, &publisher.sent.audio_at, end),
    }
}

/// (received, sent) among the packets sent from the first received one until
/// `end - TAIL`, by payload counter.
fn delivery(got: &[Got], sent_at: &[Instant], end: Instant) -> (usize, usize) {
    let received: BTreeSet<u64> = got.iter().map(|g| g.counter).collect();
    let Some(&first) = received.first() else {
        return (0, sent_at.len());
    };
    let expected: Vec<u64> = (first..sent_at.len() as u64)
        .filter(|c| sent_at[*c as usize] <= end - TAIL)
        .collect();
    let n = expected.iter().filter(|c| received.contains(c)).count();
    (n, expected.len())
}

/// All subscribers have their own SSRCs, none of them the publisher's.
fn check_distinct_ssrcs(sim: &Sim) {
    let mut seen: BTreeSet<u32> = sim.peers[0].sent.ssrcs.iter().map(|s| **s).collect();
    for sub in &sim.peers[1..] {
        for got in [&sub.received.video, &sub.received.audio] {
            let ssrc = *got[0].ssrc;
            assert!(
                seen.insert(ssrc),
                "{}: SSRC {ssrc} is not its own",
                sub.name
            );
        }
    }
}

fn three_subscribers() -> Sim {
    let mut sim = Sim::new();
    sim.join("publisher", Role::Publisher, ideal(), ideal());
    for (name, at) in [("sub-a", 500), ("sub-b", 1000), ("sub-c", 2500)] {
        sim.run_until(sim.at(at * MS));
        sim.join(name, Role::Subscriber, ideal(), ideal());
    }
    sim.run_until(sim.at(RUN_FOR));
    sim
}

#[test]
fn publisher_to_three_subscribers() {
    let wall = Instant::now();
    let sim = three_subscribers();
    let end = sim.at(RUN_FOR);
    for sub in &sim.peers[1..] {
        let f = check_subscriber(&sim, sub, end);
        check_contiguous(&sub.name, "video", &sub.received.video);
        check_contiguous(&sub.name, "audio", &sub.received.audio);
        assert_eq!(
            (f.distinct_video, f.audio_delivery.0),
            (f.expected_video, f.audio_delivery.1),
            "{}: lost media on a lossless path",
            sub.name
        );
        println!("{}", f.line(&sub.name));
        // Video starts with the keyframe asked for on subscribe, not a periodic one.
        let media_start = sim.peers[0].connected_at.expect("publisher connected");
        let connected = sub.connected_at.expect("connected");
        let next_periodic = (0..)
            .map(|k| media_start + KEYFRAME_EVERY_S * k)
            .find(|t| *t > connected)
            .expect("periodic keyframe");
        let first_at = sub.received.video[0].at;
        assert!(
            first_at < next_periodic,
            "{}: first video at {:?}, not before the periodic keyframe at {:?}",
            sub.name,
            sim.elapsed(first_at),
            sim.elapsed(next_periodic)
        );
    }
    check_distinct_ssrcs(&sim);
    assert_eq!(sim.stats.stray, 0, "server datagrams to unknown addresses");
    let first = summarize(&sim);
    println!(
        "publisher: keyframe requests at {:?}",
        first.keyframe_requests
    );
    println!("publisher: keyframes at {:?}", first.keyframes_sent);
    println!("driver: {:?}", sim.stats);
    // A publisher packet's copies leave in the step that received it: the room is not
    // woken again for each forwarded packet (str0m's pacer asks for a follow-up timeout
    // 1 µs after each packet it hands out; one flush runs those before returning).
    let forwarded: usize = sim.peers[1..].iter().map(|p| p.received.video.len()).sum();
    assert!(
        sim.stats.room_timeouts * 2 < forwarded as u64,
        "{} room timeouts for {forwarded} forwarded video packets: the room is woken per packet",
        sim.stats.room_timeouts
    );

    let again = summarize(&three_subscribers());
    assert_eq!(first, again, "the scenario did not replay identically");
    let wall = wall.elapsed();
    println!("two runs of {RUN_FOR:?} virtual time: {wall:?} wall");
    // Virtual time never sleeps; this only catches a driver gone badly wrong.
    assert!(wall < Duration::from_secs(60), "two runs took {wall:?}");
}

fn lossy() -> Sim {
    let mut sim = Sim::new();
    sim.join("publisher", Role::Publisher, ideal(), ideal());
    sim.run_until(sim.at(500 * MS));
    sim.join(
        "lossy",
        Role::Subscriber,
        ideal(),
        ideal().with_loss(0.05, 7),
    );
    sim.run_until(sim.at(RUN_FOR));
    sim
}

#[test]
fn lossy_link_recovers_with_nack() {
    let wall = Instant::now();
    let sim = lossy();
    let sub = &sim.peers[1];
    let f = check_subscriber(&sim, sub, sim.at(RUN_FOR));
    let down = sub.downlink.stats();
    let rate = f.distinct_video as f64 / f.expected_video as f64;
    println!("{}", f.line(&sub.name));
    println!(
        "downlink: {} of {} datagrams lost; video delivery {:.2} %, NACK recovery {}/{}",
        down.lost,
        down.pushed,
        rate * 100.0,
        f.late_video,
        f.holes
    );
    assert!(down.lost > 0, "the link lost nothing");
    assert!(f.holes > 0, "no video packet was lost");
    assert!(
        f.late_video > 0,
        "no video packet was repaired by retransmission"
    );
    assert!(rate >= 0.97, "video delivery {:.2} % < 97 %", rate * 100.0);
    // Audio (Opus, no NACK negotiated) is not repaired: its loss shows.
    assert!(
        f.audio_delivery.0 < f.audio_delivery.1,
        "audio lost nothing"
    );

    let again = summarize(&lossy());
    assert_eq!(
        summarize(&sim),
        again,
        "the lossy run did not replay identically"
    );
    println!(
        "two runs of {RUN_FOR:?} virtual time: {:?} wall",
        wall.elapsed()
    );
}
