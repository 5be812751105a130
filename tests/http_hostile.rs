//! Hostile HTTP clients against the real `switchboard` binary: thousands of WHEP POSTs
//! that never do ICE, hundreds of clients that send their request head a byte a second,
//! nested and own-node `/n/` paths, and one address POSTing faster than its rate.
//!
//! Each test prints its figures (times, RSS, gauges); what it asserts is behaviour: the
//! refusals and their status codes, the gauges coming back, a normal request served
//! while the attack runs. Time bounds are loose on purpose (a busy 2-core machine must
//! not fail them), far from what the attacks cost before the limits.

mod common;

use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use common::{check_problem, get, post_sdp, Server, OBS_OFFER};

/// A WHEP offer of aiortc 1.16: 3 video + 2 audio `recvonly` m-lines.
const WHEP_OFFER: &str = include_str!("fixtures/aiortc-whep-3v2a-offer.sdp");

/// A request that should be answered at once took longer than this.
const QUICK: Duration = Duration::from_secs(2);

/// 2,000 WHEP POSTs whose clients never send a datagram: at most `--max-pending` (200)
/// sessions exist at once, the rest are answered 503 with `Retry-After`; `/livez` keeps
/// answering; memory stays bounded by the pending limit; every session ends within the
/// 10 s connect timeout and the gauges go back to 0. The per-address rate limit is off
/// here (all POSTs come from 127.0.0.1; it has its own test below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_that_never_connect_are_bounded_and_expire() {
    const POSTS: usize = 2_000;
    const AT_ONCE: usize = 50;
    let server = Server::start(&["--post-rate", "0"]).await;
    let base = server.base_url().to_string();
    let rss_before = server.rss_kib();
    let started = Instant::now();

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut retry_after_missing = 0;
    let mut worst_livez = Duration::ZERO;
    let mut peak_pending = 0.0f64;
    let mut peak_rss = rss_before;
    let mut sent = 0;
    while sent < POSTS {
        let mut batch = JoinSet::new();
        for i in sent..(sent + AT_ONCE).min(POSTS) {
            let base = base.clone();
            batch.spawn(async move {
                post_sdp(
                    &base,
                    &format!("/whep/pending-{}", i % 20),
                    WHEP_OFFER,
                    None,
                )
                .await
            });
        }
        sent = (sent + AT_ONCE).min(POSTS);
        while let Some(reply) = batch.join_next().await {
            let reply = reply.expect("task").expect("POST answered");
            *statuses.entry(reply.status).or_default() += 1;
            if reply.status == 503 && reply.header("retry-after").is_none() {
                retry_after_missing += 1;
            }
        }
        let t = Instant::now();
        assert_eq!(server.livez().await, Some(200), "/livez after {sent} POSTs");
        worst_livez = worst_livez.max(t.elapsed());
        peak_pending = peak_pending.max(server.metric("switchboard_sessions_pending ").await);
        peak_rss = peak_rss.max(server.rss_kib());
    }
    let burst = started.elapsed();
    println!(
        "{POSTS} WHEP POSTs in {burst:?}: {statuses:?}; peak pending {peak_pending}; \
         /livez worst {worst_livez:?}; RSS {rss_before} -> peak {peak_rss} KiB"
    );
    let created = statuses.get(&201).copied().unwrap_or(0);
    let refused = statuses.get(&503).copied().unwrap_or(0);
    assert_eq!(created + refused, POSTS, "only 201 and 503: {statuses:?}");
    assert!(created >= 200, "the pending limit admits 200: {statuses:?}");
    assert!(
        refused > 0,
        "the pending limit refused nothing: {statuses:?}"
    );
    assert_eq!(retry_after_missing, 0, "a 503 without Retry-After");
    assert!(
        peak_pending <= 200.0,
        "pending gauge {peak_pending} over the limit"
    );
    assert!(worst_livez < QUICK, "/livez took {worst_livez:?}");
    // Bounded by the pending limit: 2,000 live `Rtc`s would be several times this.
    assert!(
        peak_rss < rss_before + 256 * 1024,
        "RSS grew from {rss_before} to {peak_rss} KiB"
    );

    // Every session expires within the connect timeout (10 s) after the last POST.
    let mut back_after = None;
    while started.elapsed() < burst + Duration::from_secs(20) {
        let pending = server.metric("switchboard_sessions_pending ").await;
        let subscribers = server
            .metric("switchboard_sessions{kind=\"subscriber\"} ")
            .await;
        if pending == 0.0 && subscribers == 0.0 {
            back_after = Some(started.elapsed() - burst);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let back_after = back_after.expect("sessions gauge back to 0 within 20 s");
    println!(
        "gauges back to 0 {back_after:?} after the last POST; RSS then {} KiB",
        server.rss_kib()
    );
    // And the server admits again.
    let ok = post_sdp(&base, "/whip/after-pending", OBS_OFFER, None)
        .await
        .expect("WHIP POST");
    assert_eq!(ok.status, 201, "{}", ok.body);
}

/// 500 clients send `GET /livez` a byte a second. A normal WHIP POST is answered at once
/// meanwhile, and the slow clients are cut off by the header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_do_not_delay_a_post() {
    const SLOW_CLIENTS: usize = 500;
    let server = Server::start(&["--http-header-timeout", "3s"]).await;
    let addr = server.http_addr();
    let mut slow = JoinSet::new();
    for _ in 0..SLOW_CLIENTS {
        slow.spawn(async move {
            let Ok(s) = TcpStream::connect(addr).await else {
                return (false, Duration::ZERO);
            };
            let opened = Instant::now();
            let head = b"GET /livez HTTP/1.1\r\nHost: slow.example\r\nX-Slow: 1\r\n\r\n";
            for b in head {
                if s.writable().await.is_err() || !matches!(s.try_write(&[*b]), Ok(1)) {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // Cut off: the server closes (EOF or reset) before the head is complete.
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                let mut buf = [0u8; 256];
                loop {
                    if s.readable().await.is_err() {
                        return true;
                    }
                    match s.try_read(&mut buf) {
                        Ok(0) => return true,
                        Ok(_) => return false,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => return true,
                    }
                }
            })
            .await
            .unwrap_or(false);
            (closed, opened.elapsed())
        });
    }
    // Let every slow client connect and start trickling.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let t = Instant::now();
    let reply = post_sdp(server.base_url(), "/whip/slowloris", OBS_OFFER, None)
        .await
        .expect("WHIP POST");
    let post_took = t.elapsed();
    let t = Instant::now();
    assert_eq!(server.livez().await, Some(200));
    let livez_took = t.elapsed();
    println!("{SLOW_CLIENTS} slow clients: WHIP POST {post_took:?}, /livez {livez_took:?}");
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(post_took < QUICK, "the POST waited {post_took:?}");

    let mut cut_off = 0;
    let mut longest = Duration::ZERO;
    while let Some(r) = slow.join_next().await {
        let (closed, held) = r.expect("task");
        if closed {
            cut_off += 1;
            longest = longest.max(held);
        }
    }
    println!(
        "{cut_off} of {SLOW_CLIENTS} cut off by the 3 s header timeout; longest held {longest:?}"
    );
    assert_eq!(cut_off, SLOW_CLIENTS, "every slow client is cut off");
    assert!(server.livez().await == Some(200));
}

/// `/n/{node}/…` never loops: a nested path is refused at once, 1,000 levels deep or one;
/// a 64 KiB URL is refused by the request-head limit; this node's own prefix is served
/// here; another node's session path on a server without a cluster is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_and_own_node_paths_answer_at_once() {
    let server = Server::start(&["--node-id", "nodea"]).await;
    let base = server.base_url();
    let deep = format!("{}/livez", "/n/nodea".repeat(1_000));
    let cases = [
        ("1,000 nested levels", deep.clone(), 400),
        (
            "one nested level",
            "/n/nodea/n/nodeb/livez".to_string(),
            400,
        ),
        (
            "nested under another node",
            "/n/nodeb/n/nodea/whep/r/0123".to_string(),
            400,
        ),
        ("own node", "/n/nodea/livez".to_string(), 200),
        (
            "unknown node, no cluster",
            "/n/nodeb/whep/r/00112233445566778899aabbccddeeff".to_string(),
            404,
        ),
    ];
    for (what, path, want) in cases {
        let t = Instant::now();
        let reply = get(&format!("{base}{path}")).await.expect(what);
        let took = t.elapsed();
        println!("{what}: {} in {took:?}", reply.status);
        assert_eq!(reply.status, want, "{what}: {}", reply.body);
        if want == 400 {
            check_problem(what, &reply, 400);
        }
        assert!(took < QUICK, "{what}: took {took:?}");
    }
    // A 64 KiB URL: over the 16 KiB request head, refused before any routing (431, or
    // the connection closed while the client still writes its head).
    let huge = format!("{base}{}/livez", "/n/nodea".repeat(8_192));
    let t = Instant::now();
    let outcome = match get(&huge).await {
        Ok(reply) => {
            assert!(
                (400..500).contains(&reply.status),
                "64 KiB URL: {}",
                reply.status
            );
            reply.status.to_string()
        }
        Err(_) => "connection closed".to_string(),
    };
    let took = t.elapsed();
    println!("64 KiB URL: {outcome} in {took:?}");
    assert!(took < QUICK, "64 KiB URL: took {took:?}");
    assert_eq!(server.livez().await, Some(200));
}

/// One client address POSTing faster than `--post-rate` after its `--post-burst` gets 429
/// with `Retry-After`; a token is not needed to be refused (the rate is checked first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_over_its_post_rate_gets_429() {
    let server = Server::start(&["--post-rate", "1", "--post-burst", "5"]).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..12 {
        let reply = post_sdp(
            server.base_url(),
            &format!("/whep/rate-{i}"),
            WHEP_OFFER,
            None,
        )
        .await
        .expect("POST");
        if reply.status == 429 {
            check_problem("rate limited", &reply, 429);
            retry_after = reply.header("retry-after").map(str::to_string);
        }
        statuses.push(reply.status);
    }
    println!("12 POSTs at once, rate 1/s burst 5: {statuses:?}, Retry-After {retry_after:?}");
    let created = statuses.iter().filter(|&&s| s == 201).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!((5..=7).contains(&created), "{statuses:?}");
    assert_eq!(created + limited, statuses.len(), "{statuses:?}");
    let wait: u64 = retry_after
        .expect("Retry-After on 429")
        .parse()
        .expect("seconds");
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
}
