//! Media forwarding through a real `switchboard` process over real UDP on
//! loopback: one WHIP publisher (browser-like VP8 + Opus, or OBS-shaped
//! H264 + Opus) fanned out to ten WHEP subscribers, and a viewer that
//! arrives before its publisher. Subscribers check every payload byte for
//! byte, sequence-number contiguity, SSRC rewriting and keyframe starts, and
//! the per-subscriber figures are printed.

mod common;

use std::time::{Duration, Instant};

use common::{sdp_sections, KindReport, Peer, PublisherKind, PublisherReport, Server};

const SUBSCRIBERS: usize = 10;
const RUN_FOR: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Share of the publisher's packets (sent after a subscriber's first one)
/// the subscriber must receive.
const MIN_DELIVERY: f64 = 0.8;

/// Received / sent since the first received counter, for one kind.
fn delivery(kind: &KindReport, sent: &[u64]) -> (usize, usize) {
    let Some(first) = kind.first_counter else {
        return (0, sent.len());
    };
    let got = kind
        .distinct_counters()
        .into_iter()
        .filter(|c| *c >= first)
        .count();
    let expected = sent.iter().filter(|c| **c >= first).count();
    (got, expected)
}

/// Check one subscriber against the contract; returns a printable line.
/// Panics with the subscriber's figures when a check fails.
fn check_subscriber(
    name: &str,
    sub: &Peer,
    publisher: &PublisherReport,
    started: Instant,
) -> String {
    let r = sub.report();
    let s = &r.subscriber;
    let (v_got, v_exp) = delivery(&s.video, &publisher.video_counters);
    let (a_got, a_exp) = delivery(&s.audio, &publisher.audio_counters);
    let pct = |g: usize, e: usize| {
        if e == 0 {
            0.0
        } else {
            100.0 * g as f64 / e as f64
        }
    };
    let first_video_ms = s
        .video
        .first_packet_at
        .map(|t| t.saturating_duration_since(started).as_millis());
    let line = format!(
        "{name}: video {} pkts, {v_got}/{v_exp} = {:.1}% since first, keyframes {}, \
         gaps {}, first video at {:?} ms, latency mean {:?} max {:?}, ssrc {:?}, pt {:?} | \
         audio {} pkts, {a_got}/{a_exp} = {:.1}%, gaps {}, latency mean {:?}, ssrc {:?}, pt {:?}",
        s.video.packets,
        pct(v_got, v_exp),
        s.video.keyframes,
        s.video.seq_gaps(),
        first_video_ms,
        s.video.mean_latency(),
        s.video.max_latency(),
        s.video.ssrcs,
        s.video.pts,
        s.audio.packets,
        pct(a_got, a_exp),
        s.audio.seq_gaps(),
        s.audio.mean_latency(),
        s.audio.ssrcs,
        s.audio.pts,
    );
    let fail = |what: &str| -> ! { panic!("{name}: {what}\n{line}\nreport: {r:#?}") };

    if let Some(e) = &r.error {
        fail(&format!("peer task failed: {e}"));
    }
    if s.video.packets == 0 {
        fail("no video received");
    }
    if s.audio.packets == 0 {
        fail("no audio received");
    }
    if s.unknown_pt > 0 {
        fail("packets with a payload type the subscriber never offered");
    }
    for (kind, k) in [("video", &s.video), ("audio", &s.audio)] {
        if k.corrupt > 0 {
            fail(&format!(
                "{} corrupt {kind} payloads, first: {:?}",
                k.corrupt, k.first_corruption
            ));
        }
        if let Some(c) = k.counters.iter().find(|c| !publisher.wrote(**c)) {
            fail(&format!(
                "{kind} payload with counter {c} the publisher never wrote"
            ));
        }
        if k.seq_gaps() > 0 {
            fail(&format!(
                "{kind} sequence numbers not contiguous: {} missing ({} arrived out of order)",
                k.seq_gaps(),
                k.seq_backwards
            ));
        }
        if k.ssrcs.len() != 1 {
            fail(&format!("{kind} arrived on {} SSRCs", k.ssrcs.len()));
        }
    }
    if s.video.first_starts_keyframe != Some(true) {
        fail("first video packet does not start a keyframe");
    }
    if s.video.ts_backwards > 0 {
        fail("video RTP timestamps went backwards");
    }
    if let Some(pub_ssrc) = publisher.video_ssrc {
        if s.video.ssrcs.contains(&pub_ssrc) {
            fail("video forwarded with the publisher's SSRC, not the server's own");
        }
    }
    if let Some(pub_ssrc) = publisher.audio_ssrc {
        if s.audio.ssrcs.contains(&pub_ssrc) {
            fail("audio forwarded with the publisher's SSRC, not the server's own");
        }
    }
    if (v_got as f64) < MIN_DELIVERY * v_exp as f64 {
        fail(&format!(
            "received {v_got} of {v_exp} video packets sent since its first"
        ));
    }
    if (a_got as f64) < MIN_DELIVERY * a_exp as f64 {
        fail(&format!(
            "received {a_got} of {a_exp} audio packets sent since its first"
        ));
    }
    line
}

/// The contract's guarantees about an answer: `application/sdp`, both
/// m-lines in direction `dir`, and a host candidate on 127.0.0.1.
fn check_answer(name: &str, answer: &str, content_type: Option<&str>, dir: &str) {
    assert!(
        content_type.is_some_and(|c| c.starts_with("application/sdp")),
        "{name}: answer Content-Type {content_type:?}"
    );
    let sections = sdp_sections(answer);
    assert_eq!(sections.len(), 2, "{name}: answer m-lines:\n{answer}");
    for s in &sections {
        assert!(
            s.contains(&dir),
            "{name}: m-line {} is not {dir}:\n{answer}",
            s[0]
        );
    }
    assert!(
        answer
            .lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 ")),
        "{name}: no 127.0.0.1 candidate in answer:\n{answer}"
    );
}

async fn publisher_to_ten_subscribers(kind: PublisherKind, room: &str) {
    let server = Server::start(&[]).await;
    let publisher = Peer::publish(&server, room, kind)
        .await
        .unwrap_or_else(|e| panic!("WHIP publish: {e}\noffer:\n{}", e.offer));
    check_answer(
        "publisher",
        publisher.answer(),
        publisher.answer_content_type(),
        "a=recvonly",
    );
    assert!(
        publisher.wait_connected(CONNECT_TIMEOUT).await,
        "publisher did not connect: {:#?}",
        publisher.report()
    );

    let started = Instant::now();
    let mut subs = Vec::new();
    for i in 0..SUBSCRIBERS {
        let sub = Peer::subscribe(&server, room)
            .await
            .unwrap_or_else(|e| panic!("WHEP subscribe #{i}: {e}"));
        subs.push(sub);
    }
    for (i, sub) in subs.iter().enumerate() {
        assert!(
            sub.wait_connected(CONNECT_TIMEOUT).await,
            "subscriber {i} did not connect: {:#?}",
            sub.report()
        );
    }

    tokio::time::sleep(RUN_FOR).await;
    // Stop writing, let what is in flight arrive, then compare.
    publisher.pause_media();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let p = publisher.report();
    assert!(p.error.is_none(), "publisher failed: {:?}", p.error);
    assert_eq!(
        p.publisher.missing_stream, 0,
        "publisher had no send stream"
    );
    println!(
        "publisher {kind:?}: {} video pkts in {} frames ({} keyframes, {} keyframe requests), \
         {} audio pkts, ssrc video {:?} audio {:?}",
        p.publisher.video_counters.len(),
        p.publisher.video_frames,
        p.publisher.keyframes_sent,
        p.publisher.keyframe_requests,
        p.publisher.audio_counters.len(),
        p.publisher.video_ssrc,
        p.publisher.audio_ssrc,
    );
    for (i, sub) in subs.iter().enumerate() {
        println!(
            "{}",
            check_subscriber(&format!("subscriber {i}"), sub, &p.publisher, started)
        );
    }
    assert!(
        server.livez().await == Some(200),
        "server not healthy after the run"
    );

    for sub in subs {
        sub.stop().await;
    }
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_publisher_to_ten_subscribers() {
    publisher_to_ten_subscribers(PublisherKind::BrowserVp8, "room-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_shaped_h264_publisher_to_ten_subscribers() {
    publisher_to_ten_subscribers(PublisherKind::ObsH264, "room-obs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_before_publisher() {
    let server = Server::start(&[]).await;
    let room = "early-viewer";
    let sub = Peer::subscribe(&server, room)
        .await
        .unwrap_or_else(|e| panic!("WHEP subscribe to an empty room: {e}"));
    check_answer(
        "early subscriber",
        sub.answer(),
        sub.answer_content_type(),
        "a=sendonly",
    );
    assert!(
        sub.wait_connected(CONNECT_TIMEOUT).await,
        "subscriber did not connect: {:#?}",
        sub.report()
    );
    // Nothing to receive yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sub.report().subscriber;
    assert_eq!(before.video.packets + before.audio.packets, 0);

    let started = Instant::now();
    let publisher = Peer::publish(&server, room, PublisherKind::BrowserVp8)
        .await
        .unwrap_or_else(|e| panic!("WHIP publish after a viewer: {e}"));
    assert!(
        publisher.wait_connected(CONNECT_TIMEOUT).await,
        "publisher did not connect"
    );
    let (ok, _) = sub
        .wait_for(Duration::from_secs(5), |r| {
            r.subscriber.video.packets > 0 && r.subscriber.audio.packets > 0
        })
        .await;
    assert!(ok, "the early viewer got no media: {:#?}", sub.report());
    tokio::time::sleep(Duration::from_secs(2)).await;
    publisher.pause_media();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let p = publisher.report();
    println!(
        "{}",
        check_subscriber("early subscriber", &sub, &p.publisher, started)
    );
    sub.stop().await;
    publisher.stop().await;
}
