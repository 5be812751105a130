//! Crafted SDP offers against the real `switchboard` binary: each is refused with a 4xx
//! that names what it broke, quickly, without costing a room's task, while `/livez`
//! keeps answering. Before the limits, such offers took 4.5–6.6 s of CPU to answer or
//! were accepted (5,000 slots, 20,000 RIDs, 30,000 candidates).
//!
//! The figures (time per refusal, worst `/livez`) are printed; the bound asserted on
//! them is loose on purpose (a busy 2-core machine must not fail it), far below the
//! seconds the attacks cost before.

mod common;

use std::time::{Duration, Instant};

use common::{post_sdp, Server, OBS_OFFER};

/// An offer whose time to refuse passes this was not refused early.
const SLOW: Duration = Duration::from_millis(500);

fn head() -> String {
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
     a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
     a=fingerprint:sha-256 F9:04:65:5E:F4:B8:15:12:92:3B:59:EE:99:06:39:E9:1A:AD:DA:1C:F3:1E:5A:39:33:0F:5E:FF:95:4E:9F:63\r\n\
     a=setup:actpass\r\n"
        .into()
}

fn video_m(mid: usize, extra: &str) -> String {
    format!(
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=recvonly\r\n\
         a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n{extra}"
    )
}

/// (what, path, offer) of every crafted offer.
fn crafted() -> Vec<(&'static str, &'static str, String)> {
    let pts: String = (0..400_000).map(|i| format!(" {}", 96 + i % 32)).collect();
    let rtpmaps: String = (0..40_000)
        .map(|i| format!("a=rtpmap:{} VP8/90000\r\n", 96 + i % 32))
        .collect();
    let candidates = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "a=candidate:{i} 1 udp 2122260223 10.0.{}.{} 5000 typ host\r\n",
                    i / 250,
                    i % 250
                )
            })
            .collect()
    };
    let rids = |n: usize| -> String { (0..n).map(|i| format!("a=rid:r{i} send\r\n")).collect() };
    vec![
        (
            "1.8 MB: 400k payload types and 40k rtpmaps",
            "/whep/crafted",
            format!(
                "{}m=video 9 UDP/TLS/RTP/SAVPF{pts}\r\na=mid:0\r\na=recvonly\r\n{rtpmaps}",
                head()
            ),
        ),
        (
            "30,000 candidates",
            "/whep/crafted",
            format!("{}{}", head(), video_m(0, &candidates(30_000))),
        ),
        (
            "40 candidates on one m-line",
            "/whep/crafted",
            format!("{}{}", head(), video_m(0, &candidates(40))),
        ),
        (
            "5,000 video m-lines",
            "/whep/crafted",
            format!(
                "{}{}",
                head(),
                (0..5_000).map(|m| video_m(m, "")).collect::<String>()
            ),
        ),
        (
            "65 video m-lines",
            "/whep/crafted",
            format!(
                "{}{}",
                head(),
                (0..65).map(|m| video_m(m, "")).collect::<String>()
            ),
        ),
        (
            "20,000 RIDs",
            "/whip/crafted",
            format!("{}{}", head(), video_m(0, &rids(20_000))),
        ),
        (
            "5 RIDs",
            "/whip/crafted",
            format!("{}{}", head(), video_m(0, &rids(5))),
        ),
        (
            "a 4 KiB line",
            "/whep/crafted",
            format!(
                "{}{}",
                head(),
                video_m(0, &format!("a=fmtp:96 {}\r\n", "x".repeat(4096)))
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_offers_are_refused_early_and_livez_stays_quick() {
    let server = Server::start(&[]).await;
    let mut worst_livez = Duration::ZERO;
    for (what, path, offer) in crafted() {
        let t = Instant::now();
        let reply = post_sdp(server.base_url(), path, &offer, None)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let took = t.elapsed();
        let t = Instant::now();
        assert_eq!(server.livez().await, Some(200));
        worst_livez = worst_livez.max(t.elapsed());
        println!(
            "{what} ({} bytes): {} in {took:?}: {}",
            offer.len(),
            reply.status,
            reply.body.chars().take(120).collect::<String>()
        );
        assert!(
            reply.status == 413 || reply.status == 422,
            "{what}: answered {} {}",
            reply.status,
            reply.body
        );
        assert!(took < SLOW, "{what}: took {took:?} to refuse");
        if reply.status == 422 {
            assert!(
                reply.body.contains("more than") || reply.body.contains("longer than"),
                "{what}: the refusal does not say which limit: {}",
                reply.body
            );
        }
    }
    println!("/livez worst {worst_livez:?}");
    // No room was opened by any of them.
    let rooms = common::get(&format!("{}/api/rooms", server.base_url()))
        .await
        .expect("room API");
    assert!(!rooms.body.contains("crafted"), "{}", rooms.body);
    // A real offer still works.
    let ok = post_sdp(server.base_url(), "/whip/crafted", OBS_OFFER, None)
        .await
        .expect("OBS offer");
    assert_eq!(ok.status, 201, "{}", ok.body);
}
