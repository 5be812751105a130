//! Two `switchboard` nodes sharing rooms through a Redis directory, on loopback.
//!
//! A real `redis-server` (Debian's package) is started on a free port and stopped by its
//! pid. Checked: a WHEP viewer sent to node B for a room published on node A is proxied
//! to A and receives media; the session URL names A, and PATCH and DELETE sent to B reach
//! A; in redirect mode B answers 307 to A. Faults: SIGTERM on A turns its `/readyz` 503
//! within a second while its room keeps flowing, a new room asked of A lands on B, and A
//! exits 0 after its last session; draining, A gives up the claim of a room whose
//! participants all move (each publisher also watches: the room page) so B opens it,
//! and keeps that of a broadcast (a publisher that only publishes); SIGKILL on A frees its room within the lease so a new
//! publisher lands on B; with Redis stopped live media continues and a new room gets 503
//! with `Retry-After`, and service returns with Redis.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Peer, PublisherKind, Role, Server};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const SECRET: &str = "cluster-test-secret-0123456789";

/// A `redis-server` child on a free loopback port, killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// Start one, or `None` (with the reason printed) where Redis is not installed.
    fn start() -> Option<Redis> {
        let port = free_port();
        let mut r = Redis { child: None, port };
        if !r.spawn() {
            println!("SKIP: redis-server not found (scripts/install-test-deps.sh installs it)");
            return None;
        }
        Some(r)
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

/// A node of the cluster on `redis`, named `id`.
async fn node(redis: &Redis, id: &str, extra: &[&str]) -> Server {
    let internal = format!("127.0.0.1:{}", free_port());
    let url = redis.url();
    let mut args = vec![
        "--redis-url",
        url.as_str(),
        "--node-id",
        id,
        "--internal-addr",
        internal.as_str(),
        "--internal-secret",
        SECRET,
    ];
    args.extend_from_slice(extra);
    Server::start(&args).await
}

/// Wait until both nodes (up: `Server::start` waited for `/livez`) have published their
/// records: one heartbeat period and a margin.
async fn wait_for_peers(_a: &Server, _b: &Server) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn flowing(viewer: &Peer, more_than: u64) -> bool {
    viewer
        .wait_for(CONNECT_TIMEOUT, |r| r.subscriber.video.packets > more_than)
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_another_node_is_proxied_to_the_room_owner() {
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis, "a", &[]).await;
    let b = node(&redis, "b", &[]).await;
    wait_for_peers(&a, &b).await;

    let publisher = Peer::publish(&a, "x", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP to A");
    assert!(
        publisher.location_header().starts_with("/n/a/whip/x/"),
        "{}",
        publisher.location_header()
    );
    let viewer = Peer::subscribe(&b, "x").await.expect("WHEP to B");
    assert!(
        viewer.location_header().starts_with("/n/a/whep/x/"),
        "B must hand the viewer to A: {}",
        viewer.location_header()
    );
    assert!(
        viewer.wait_connected(CONNECT_TIMEOUT).await,
        "viewer connect"
    );
    assert!(
        flowing(&viewer, 60).await,
        "no media through the proxied session"
    );

    // PATCH (an ICE restart: new credentials) and DELETE sent to B reach the session
    // on A, which answers the restart with its fragment and a new ETag.
    let url = format!("{}{}", b.base_url(), viewer.location_header());
    let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=mid:0\r\n\
                a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    let patch = common::http_client()
        .patch(&url)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "*")
        .body(frag)
        .send()
        .await
        .expect("PATCH via B");
    assert_eq!(
        patch.status().as_u16(),
        200,
        "PATCH via B: {}",
        patch.status()
    );
    assert!(
        patch.headers().contains_key("etag"),
        "the restart's answer has no ETag"
    );
    let answer = patch.text().await.expect("PATCH body");
    assert!(
        answer.starts_with("a=ice-lite\r\na=ice-ufrag:"),
        "the restart's fragment: {answer}"
    );
    let first = common::delete(&url, None).await.expect("DELETE via B");
    assert_eq!(first.status, 200, "{first:?}");
    let second = common::delete(&url, None)
        .await
        .expect("DELETE via B again");
    assert_eq!(second.status, 404, "{second:?}");
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_mode_sends_the_client_to_the_owner() {
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis, "a", &["--routing", "redirect"]).await;
    let b = node(&redis, "b", &["--routing", "redirect"]).await;
    wait_for_peers(&a, &b).await;
    let publisher = Peer::publish(&a, "r", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP to A");
    // Any session for room r asked of B (here a second publisher) goes to A.
    let reply = common::post_sdp(b.base_url(), "/whip/r?name=cam", common::OBS_OFFER, None)
        .await
        .expect("POST to B");
    assert_eq!(reply.status, 307, "{reply:?}");
    let location = reply.header("location").unwrap_or_default().to_string();
    assert_eq!(
        location,
        format!("{}/whip/r?name=cam", a.base_url()),
        "{reply:?}"
    );
    // Followed, A answers as the room's owner (and a repeat replaces the first).
    for want in [201, 201] {
        let followed = common::post_sdp(a.base_url(), "/whip/r?name=cam", common::OBS_OFFER, None)
            .await
            .expect("POST to A");
        assert_eq!(followed.status, want, "{followed:?}");
    }
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_keeps_its_room_and_sends_new_rooms_elsewhere() {
    let Some(redis) = Redis::start() else { return };
    let mut a = node(&redis, "a", &[]).await;
    let b = node(&redis, "b", &[]).await;
    wait_for_peers(&a, &b).await;
    let publisher = Peer::publish(&a, "live", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP to A");
    let viewer = Peer::subscribe(&a, "live").await.expect("WHEP to A");
    assert!(flowing(&viewer, 30).await, "no media before the drain");

    a.signal("TERM");
    let base = a.base_url().to_string();
    let drained = common::eventually(Duration::from_secs(1), Duration::from_millis(20), || {
        let url = format!("{base}/readyz");
        async move { common::get(&url).await.map(|r| r.status).unwrap_or(0) == 503 }
    })
    .await;
    assert!(drained, "/readyz of A not 503 within 1 s of SIGTERM");
    // A's record says draining after its next heartbeat.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let elsewhere = Peer::publish(&a, "new-room", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP for a new room, asked of the draining node");
    assert!(
        elsewhere.location_header().starts_with("/n/b/"),
        "a new room must land on B: {}",
        elsewhere.location_header()
    );
    let before = viewer.report().subscriber.video.packets;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        viewer.report().subscriber.video.packets > before + 20,
        "A's live room stalled while draining"
    );
    viewer.stop().await;
    publisher.stop().await;
    let status = a
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("A still running after its last session");
    assert_eq!(status.code(), Some(0));
    elsewhere.stop().await;
}

/// A session of `identity` in `room` asked of `server` (`whip` or `whep`).
async fn join_as(server: &Server, kind: &str, room: &str, identity: &str) -> Peer {
    let role = if kind == "whip" {
        Role::Publisher(PublisherKind::BrowserVp8)
    } else {
        Role::Subscriber
    };
    let path = format!("/{kind}/{room}?name={identity}");
    Peer::connect(server.base_url(), &path, server.token(), role)
        .await
        .unwrap_or_else(|e| panic!("{kind} {room} as {identity}: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_gives_up_rooms_whose_participants_all_move() {
    let Some(redis) = Redis::start() else { return };
    // B starts once both rooms live on A (new rooms go to the least loaded node).
    let mut a = node(&redis, "a", &[]).await;
    // A conference room: its participant publishes and watches (the room page), so the
    // `reconnect` of its event stream moves all its sessions. A broadcast room: a
    // publisher that only publishes, told nothing until A goes.
    let cam = join_as(&a, "whip", "conf", "p").await;
    let eyes = join_as(&a, "whep", "conf", "p").await;
    // p sees r (nobody gets their own media back).
    let cam_r = join_as(&a, "whip", "conf", "r").await;
    let eyes_r = join_as(&a, "whep", "conf", "r").await;
    let encoder = Peer::publish(&a, "show", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP show to A");
    let viewer = Peer::subscribe(&a, "show").await.expect("WHEP show to A");
    for p in [&cam, &eyes, &cam_r, &eyes_r, &encoder, &viewer] {
        assert!(
            p.location_header().starts_with("/n/a/"),
            "{}",
            p.location_header()
        );
    }
    let b = node(&redis, "b", &[]).await;
    wait_for_peers(&a, &b).await;
    assert!(
        flowing(&eyes, 30).await,
        "no media in conf before the drain"
    );

    a.signal("TERM");
    let t0 = Instant::now();
    // A releases conf's claim at its next membership tick (every 1.25 s): a new session
    // asked of B then opens conf on B, not on draining A. One that still lands on A (the
    // claim not released yet) is ended and asked again.
    let mut moved = None;
    while t0.elapsed() < Duration::from_secs(4) {
        let p = join_as(&b, "whep", "conf", "q").await;
        if p.location_header().starts_with("/n/b/") {
            moved = Some(p);
            break;
        }
        assert!(
            p.location_header().starts_with("/n/a/"),
            "{}",
            p.location_header()
        );
        p.stop().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let moved = moved.expect("conf still sent to draining A 4 s after SIGTERM");
    println!("conf opens on B {:?} after SIGTERM of A", t0.elapsed());
    // The broadcast stays with its publisher: a new viewer asked of B is sent to A.
    let late = Peer::subscribe(&b, "show").await.expect("WHEP show via B");
    assert!(
        late.location_header().starts_with("/n/a/"),
        "a new viewer of A's broadcast must reach it on A: {}",
        late.location_header()
    );
    assert!(
        flowing(&late, 30).await,
        "no media for the late viewer on A"
    );
    // A's own sessions went on meanwhile; once they end, A exits by itself.
    assert!(
        flowing(&eyes, eyes.report().subscriber.video.packets + 20).await,
        "conf stalled on A while draining"
    );
    for p in [cam, eyes, cam_r, eyes_r, encoder, viewer, late] {
        p.stop().await;
    }
    let status = a
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("A still running after its last session");
    assert_eq!(status.code(), Some(0));
    moved.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_room_moves_after_its_lease() {
    let Some(redis) = Redis::start() else { return };
    let mut a = node(&redis, "a", &[]).await;
    let b = node(&redis, "b", &[]).await;
    wait_for_peers(&a, &b).await;
    let publisher = Peer::publish(&a, "k", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP to A");
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5)).await.expect("killed");
    let t0 = Instant::now();
    // Until the lease ends B refuses (503), then takes the room.
    let moved = common::eventually(Duration::from_secs(12), Duration::from_millis(250), || async {
        let r = common::post_sdp(b.base_url(), "/whip/k", common::OBS_OFFER, None).await;
        matches!(r, Ok(r) if r.status == 201 && r.header("location").is_some_and(|l| l.starts_with("/n/b/")))
    })
    .await;
    assert!(moved, "room k did not move to B within 12 s");
    println!("room moved to B {:?} after SIGKILL of A", t0.elapsed());
    publisher.vanish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_live_media_continues_and_new_rooms_wait() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let a = node(&redis, "a", &[]).await;
    let publisher = Peer::publish(&a, "steady", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP");
    let viewer = Peer::subscribe(&a, "steady").await.expect("WHEP");
    assert!(flowing(&viewer, 30).await, "no media before Redis stops");

    redis.stop();
    let before = viewer.report().subscriber.video.packets;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        viewer.report().subscriber.video.packets > before + 40,
        "live media stopped with Redis"
    );
    let refused = common::post_sdp(a.base_url(), "/whip/fresh", common::OBS_OFFER, None)
        .await
        .expect("POST");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    // A viewer may still join the live room here.
    let late = Peer::subscribe(&a, "steady")
        .await
        .expect("WHEP to the live room");
    assert!(late.wait_connected(CONNECT_TIMEOUT).await);

    assert!(redis.spawn(), "restart redis-server");
    let back = common::eventually(
        Duration::from_secs(10),
        Duration::from_millis(250),
        || async {
            let r = common::post_sdp(a.base_url(), "/whip/fresh", common::OBS_OFFER, None).await;
            matches!(r, Ok(r) if r.status == 201)
        },
    )
    .await;
    assert!(back, "new rooms still refused 10 s after Redis returned");
    late.stop().await;
    viewer.stop().await;
    publisher.stop().await;
}
