//! Resource lifecycle of a real `switchboard` process: WHIP/WHEP resources
//! are deleted once (then 404), a room takes one publisher at a time (409),
//! a room frees up after DELETE and after a publisher vanishes without one,
//! the OBS-style fixture offer is accepted, the bearer token is enforced, and
//! junk datagrams on the media port neither disturb a running flow nor take
//! the server down.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{post_sdp, sdp_sections, Peer, PublisherKind, Server, OBS_OFFER};
use rand::Rng;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A publisher that disappears without DELETE must be gone within this.
const VANISH_CLEANUP: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_200_then_404() {
    let server = Server::start(&[]).await;
    let publisher = Peer::publish(&server, "del", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP publish");
    let sub = Peer::subscribe(&server, "del")
        .await
        .expect("WHEP subscribe");
    assert!(
        publisher.location_header().starts_with("/whip/del/"),
        "publisher Location {:?}",
        publisher.location_header()
    );
    assert!(
        sub.location_header().starts_with("/whep/del/"),
        "subscriber Location {:?}",
        sub.location_header()
    );
    assert!(publisher.etag().is_some(), "WHIP 201 without ETag");
    assert!(sub.etag().is_some(), "WHEP 201 without ETag");
    assert!(
        sub.wait_connected(CONNECT_TIMEOUT).await,
        "subscriber connect"
    );

    let first = sub.delete().await.expect("DELETE subscriber");
    assert_eq!(first.status, 200, "first DELETE of subscriber: {first:?}");
    let second = sub.delete().await.expect("DELETE subscriber again");
    assert_eq!(
        second.status, 404,
        "second DELETE of subscriber: {second:?}"
    );

    let first = publisher.delete().await.expect("DELETE publisher");
    assert_eq!(first.status, 200, "first DELETE of publisher: {first:?}");
    let second = publisher.delete().await.expect("DELETE publisher again");
    assert_eq!(second.status, 404, "second DELETE of publisher: {second:?}");
    assert_eq!(server.livez().await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_camera_session_of_an_identity_replaces_the_old() {
    let server = Server::start(&[]).await;
    let first = Peer::publish(&server, "stage?name=solo", PublisherKind::BrowserVp8)
        .await
        .expect("first publisher");
    assert!(
        first.wait_connected(CONNECT_TIMEOUT).await,
        "first connects"
    );
    // A page reload or reconnect: the identity's new camera session takes over at once.
    let second = Peer::publish(&server, "stage?name=solo", PublisherKind::ObsH264)
        .await
        .expect("the same identity publishes again");
    assert!(
        second.wait_connected(CONNECT_TIMEOUT).await,
        "second connects"
    );
    // Another identity publishes into the same room.
    let guest = Peer::publish(&server, "stage?name=guest", PublisherKind::ObsH264)
        .await
        .expect("a second participant publishes");
    assert!(
        guest.wait_connected(CONNECT_TIMEOUT).await,
        "guest connects"
    );
    // Another room is independent.
    let other = Peer::publish(&server, "other-stage", PublisherKind::ObsH264)
        .await
        .expect("publisher to another room");

    assert_eq!(
        first.stop().await,
        Some(404),
        "the replaced session no longer exists"
    );
    assert_eq!(second.stop().await, Some(200));
    guest.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_publisher_is_cleaned_up() {
    let server = Server::start(&[]).await;
    let room = "ghost?name=host";
    let publisher = Peer::publish(&server, room, PublisherKind::BrowserVp8)
        .await
        .expect("publisher");
    assert!(publisher.wait_connected(CONNECT_TIMEOUT).await, "connects");
    let rooms = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("switchboard_rooms "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        rooms(&server.metrics().await.unwrap_or_default()),
        Some(1.0)
    );

    publisher.vanish().await;
    let vanished_at = Instant::now();
    let gone = common::eventually(VANISH_CLEANUP, Duration::from_millis(250), || async {
        rooms(&server.metrics().await.unwrap_or_default()) == Some(0.0)
    })
    .await;
    assert!(
        gone,
        "the room still lives {VANISH_CLEANUP:?} after its only publisher vanished"
    );
    println!(
        "vanished publisher cleaned up after {:?}",
        vanished_at.elapsed()
    );
    let metrics = server.metrics().await.unwrap_or_default();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchboard_sessions_ended_total")
                && l.contains("reason=\"timeout\"")),
        "the session ended by timeout: {metrics}"
    );
    let replacement = Peer::publish(&server, room, PublisherKind::BrowserVp8)
        .await
        .expect("publish again");
    assert!(
        replacement.wait_connected(CONNECT_TIMEOUT).await,
        "replacement connects"
    );
    replacement.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_fixture_offer_is_accepted() {
    let server = Server::start(&[]).await;
    let reply = post_sdp(server.base_url(), "/whip/obs", OBS_OFFER, None)
        .await
        .expect("POST");
    assert_eq!(reply.status, 201, "OBS offer: {reply:?}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/sdp")),
        "{reply:?}"
    );
    let location = reply.header("location").expect("Location").to_string();
    assert!(location.starts_with("/whip/obs/"), "Location {location:?}");
    assert!(reply.header("etag").is_some(), "no ETag: {reply:?}");
    let sections = sdp_sections(&reply.body);
    assert_eq!(sections.len(), 2, "{}", reply.body);
    assert!(sections[0][0].starts_with("m=audio"), "{}", reply.body);
    assert!(sections[1][0].starts_with("m=video"), "{}", reply.body);
    for s in &sections {
        assert!(s.contains(&"a=recvonly"), "{}", reply.body);
    }
    assert!(
        reply
            .body
            .lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 ")),
        "{}",
        reply.body
    );
    let url = common::resolve(server.base_url(), &location);
    let del = common::delete(&url, None).await.expect("DELETE");
    assert_eq!(del.status, 200, "{del:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_enforced() {
    let server = Server::start(&["--token", "s3cret-token-0123456789"]).await;
    let anon = post_sdp(server.base_url(), "/whip/locked", OBS_OFFER, None)
        .await
        .expect("POST");
    assert!(
        anon.status == 401 || anon.status == 403,
        "POST without token: {anon:?}"
    );
    let wrong = post_sdp(server.base_url(), "/whip/locked", OBS_OFFER, Some("nope"))
        .await
        .expect("POST");
    assert!(
        wrong.status == 401 || wrong.status == 403,
        "POST with a wrong token: {wrong:?}"
    );
    // Peer::publish uses the server's token.
    let publisher = Peer::publish(&server, "locked", PublisherKind::BrowserVp8)
        .await
        .unwrap_or_else(|e| panic!("POST with the token: {e}"));
    let anon_delete = common::delete(publisher.location(), None)
        .await
        .expect("DELETE");
    assert!(
        anon_delete.status == 401 || anon_delete.status == 403,
        "DELETE without token: {anon_delete:?}"
    );
    assert_eq!(publisher.stop().await, Some(200));
}

/// Datagrams that no peer sent through str0m, some not even well-formed.
fn garbage(rng: &mut impl Rng, round: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Random bytes of random sizes, including 0 and 1 byte.
    for len in [0usize, 1, 2, 3, 7, 20, 100, 576, 1200, 1500] {
        let mut b = vec![0u8; len];
        rng.fill(&mut b[..]);
        out.push(b);
    }
    // Truncated STUN header: binding request type, length, half a cookie.
    out.push(vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12]);
    // A full STUN header that announces attributes it does not carry.
    let mut stun = vec![0x00, 0x01, 0x00, 0x30, 0x21, 0x12, 0xa4, 0x42];
    stun.extend((0..12).map(|_| rng.random::<u8>()));
    out.push(stun);
    // STUN binding request with an unknown USERNAME and no integrity.
    let user = b"nobody:nothing";
    let mut stun = vec![0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42];
    stun.extend((0..12).map(|_| rng.random::<u8>()));
    stun.extend_from_slice(&[0x00, 0x06, 0x00, user.len() as u8]);
    stun.extend_from_slice(user);
    stun.extend_from_slice(&[0, 0]);
    out.push(stun);
    // Something that looks like DTLS (ClientHello record header) but is not.
    let mut dtls = vec![0x16, 0xfe, 0xfd, 0x00, 0x00];
    dtls.extend((0..40).map(|_| rng.random::<u8>()));
    out.push(dtls);
    // RTP-looking packets (V=2, PT 96 and 111) from an unknown address.
    for pt in [96u8, 111] {
        let mut rtp = vec![0x80, 0x80 | pt];
        rtp.extend_from_slice(&(round as u16).to_be_bytes());
        rtp.extend_from_slice(&(round * 3000).to_be_bytes());
        rtp.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        rtp.extend((0..200).map(|_| rng.random::<u8>()));
        out.push(rtp);
    }
    // RTCP-looking (SR, PT 200) with a bogus length.
    out.push(vec![0x80, 200, 0x00, 0x40, 0xde, 0xad, 0xbe, 0xef]);
    out
}

/// Where the junk datagrams come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoiseSource {
    /// A socket the server has never seen.
    Stranger,
    /// The publisher's and the subscriber's own sockets (addresses with a
    /// live WebRTC peer), bypassing their str0m instances.
    PeerAddresses,
}

/// Run a publisher -> subscriber flow, spray junk at the server's UDP port
/// for about 2 s, and check the flow went on and the server stayed up.
async fn flow_survives_noise(source: NoiseSource, room: &str) {
    let mut server = Server::start(&[]).await;
    let publisher = Peer::publish(&server, room, PublisherKind::BrowserVp8)
        .await
        .expect("publisher");
    let sub = Peer::subscribe(&server, room).await.expect("subscriber");
    let (ok, _) = sub
        .wait_for(Duration::from_secs(10), |r| {
            r.subscriber.video.packets > 0 && r.subscriber.audio.packets > 0
        })
        .await;
    assert!(ok, "no media before the noise: {:#?}", sub.report());

    let before = sub.report().subscriber;
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target: SocketAddr = server.udp_addr();
    let mut rng = rand::rng();
    let mut sent = 0;
    for round in 0..40u32 {
        for (i, d) in garbage(&mut rng, round).into_iter().enumerate() {
            match source {
                NoiseSource::Stranger => {
                    if stranger.send_to(&d, target).await.is_ok() {
                        sent += 1;
                    }
                }
                NoiseSource::PeerAddresses => {
                    let from = if i % 2 == 0 { &publisher } else { &sub };
                    from.send_raw(target, d);
                    sent += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = sub.report().subscriber;
    // Keep receiving after the noise stopped.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = sub.report();
    let a = &after.subscriber;
    println!(
        "{source:?}: sent {sent} junk datagrams; subscriber video {} -> {} -> {} pkts, \
         audio {} -> {} -> {} pkts, corrupt {}/{}, gaps {}/{}",
        before.video.packets,
        during.video.packets,
        a.video.packets,
        before.audio.packets,
        during.audio.packets,
        a.audio.packets,
        a.video.corrupt,
        a.audio.corrupt,
        a.video.seq_gaps(),
        a.audio.seq_gaps()
    );
    // About 2 s of noise at ~100 video and 50 audio packets per second.
    assert!(
        during.video.packets >= before.video.packets + 60,
        "video stalled during the noise"
    );
    assert!(
        during.audio.packets >= before.audio.packets + 30,
        "audio stalled during the noise"
    );
    assert!(
        a.video.packets >= during.video.packets + 30,
        "video stalled after the noise"
    );
    assert!(
        a.audio.packets >= during.audio.packets + 15,
        "audio stalled after the noise"
    );
    assert_eq!(a.video.corrupt + a.audio.corrupt, 0, "{after:#?}");
    assert!(after.error.is_none(), "subscriber failed: {after:#?}");
    let p = publisher.report();
    assert!(p.error.is_none(), "publisher failed: {:?}", p.error);
    assert!(server.is_running(), "server process exited");
    assert_eq!(server.livez().await, Some(200), "server unhealthy");
    assert_eq!(
        sub.stop().await,
        Some(200),
        "subscriber resource no longer there"
    );
    assert_eq!(
        publisher.stop().await,
        Some(200),
        "publisher resource no longer there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_udp_does_not_disturb_a_running_flow() {
    flow_survives_noise(NoiseSource::Stranger, "noisy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_peer_addresses_does_not_disturb_the_flow() {
    flow_survives_noise(NoiseSource::PeerAddresses, "noisy-peers").await;
}
