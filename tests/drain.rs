//! Graceful drain of a real `switchboard` process, and its configuration sources.
//!
//! Checked: on SIGTERM `/readyz` turns 503 within a second while `/livez` stays 200; a
//! new room is refused with 503 + `Retry-After` while a viewer may still join a live
//! room; media keeps flowing; the process exits 0 once the last session ends, or at
//! `--drain-timeout`; a second signal exits at once. And: flags beat environment
//! variables, which beat the `--config` file, which beats the defaults; a bad file stops
//! startup with a message that names the file and the key.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Peer, PublisherKind, Server};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Subscriber video packets received so far.
fn video_packets(p: &Peer) -> u64 {
    p.report().subscriber.video.packets
}

async fn status_of(url: &str) -> u16 {
    common::get(url).await.map(|r| r.status).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_live_rooms_then_exits_zero() {
    let mut server = Server::start(&[]).await;
    let base = server.base_url().to_string();
    let publisher = Peer::publish(&server, "drain", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP publish");
    let viewer = Peer::subscribe(&server, "drain")
        .await
        .expect("WHEP subscribe");
    assert!(
        viewer.wait_connected(CONNECT_TIMEOUT).await,
        "viewer connect"
    );
    let (flowing, _) = viewer
        .wait_for(CONNECT_TIMEOUT, |r| r.subscriber.video.packets > 30)
        .await;
    assert!(flowing, "no media before the drain");
    // The viewer's event stream (WHEP server-sent-events extension).
    let events_url = viewer
        .link_with_rel("urn:ietf:params:whep:ext:core:server-sent-events")
        .expect("WHEP 201 advertises the events stream");
    let mut events = common::http_client()
        .get(common::resolve(&base, &events_url))
        .send()
        .await
        .expect("GET events");
    assert_eq!(events.status(), 200);
    assert!(events
        .headers()
        .get("content-type")
        .is_some_and(|c| c.as_bytes().starts_with(b"text/event-stream")));
    let mut seen = String::new();
    while !seen.contains("event: session") {
        let chunk = events.chunk().await.expect("read events").expect("open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("retry: "), "{seen}");

    server.signal("TERM");
    let t0 = Instant::now();
    let went_503 = common::eventually(Duration::from_secs(1), Duration::from_millis(20), || {
        let url = format!("{base}/readyz");
        async move { status_of(&url).await == 503 }
    })
    .await;
    assert!(went_503, "/readyz not 503 within 1 s of SIGTERM");
    println!("/readyz 503 after {:?}", t0.elapsed());
    // The viewer is told to reconnect elsewhere, and its stream ends.
    let told = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(chunk)) = events.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(told.is_ok(), "the event stream did not end: {seen}");
    assert!(seen.contains("event: reconnect"), "{seen}");
    assert!(seen.contains("\"reason\":\"draining\""), "{seen}");
    assert_eq!(server.livez().await, Some(200), "/livez must stay 200");
    let info = common::get(&format!("{base}/api/server")).await.unwrap();
    assert!(info.body.contains("\"draining\":true"), "{}", info.body);

    // A new room goes elsewhere...
    let refused = common::post_sdp(&base, "/whip/elsewhere", common::OBS_OFFER, None)
        .await
        .expect("POST");
    assert_eq!(refused.status, 503, "new room while draining: {refused:?}");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    assert!(
        refused
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json")),
        "{refused:?}"
    );
    // ...while a live room still takes viewers and keeps flowing.
    let late = Peer::subscribe(&server, "drain")
        .await
        .expect("WHEP to a live room while draining");
    assert!(
        late.wait_connected(CONNECT_TIMEOUT).await,
        "late viewer connect"
    );
    let before = video_packets(&viewer);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = video_packets(&viewer);
    assert!(
        after >= before + 40,
        "media stalled during the drain: {before} -> {after}"
    );
    assert!(server.is_running(), "exited with sessions left");

    late.stop().await;
    viewer.stop().await;
    publisher.stop().await;
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("still running after its last session ended");
    println!("exited {status} {:?} after SIGTERM", t0.elapsed());
    assert_eq!(status.code(), Some(0), "drained exit status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_the_wait() {
    let mut server = Server::start(&["--drain-timeout", "2s"]).await;
    let publisher = Peer::publish(&server, "slow", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP publish");
    assert!(publisher.wait_connected(CONNECT_TIMEOUT).await);
    server.signal("TERM");
    let t0 = Instant::now();
    assert!(
        server
            .wait_exit(Duration::from_millis(1500))
            .await
            .is_none(),
        "exited before the drain timeout with a live session"
    );
    let status = server
        .wait_exit(Duration::from_secs(8))
        .await
        .expect("still running well after --drain-timeout");
    println!("exited {status} {:?} after SIGTERM", t0.elapsed());
    assert_eq!(status.code(), Some(0));
    publisher.vanish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let mut server = Server::start(&[]).await;
    let publisher = Peer::publish(&server, "twice", PublisherKind::BrowserVp8)
        .await
        .expect("WHIP publish");
    assert!(publisher.wait_connected(CONNECT_TIMEOUT).await);
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.is_running(), "the first signal must only drain");
    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(3))
        .await
        .expect("a second signal must exit at once");
    assert_eq!(status.code(), Some(130), "{status}");
    publisher.vanish().await;
}

fn switchboard() -> Command {
    let mut cmd = Command::new(common::server::binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHBOARD_") {
            cmd.env_remove(&key);
        }
    }
    cmd
}

#[test]
fn flags_beat_environment_beats_file_beats_defaults() {
    let path = std::env::temp_dir().join(format!("switchboard-drain-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "http_addr = \"127.0.0.1:1001\"\nudp_addr = \"127.0.0.1:1002\"\n\
         drain_timeout = \"1m\"\nnode_id = \"from-file\"\n",
    )
    .unwrap();
    let out = switchboard()
        .args(["--config", path.to_str().unwrap(), "--print-config"])
        .args(["--http-addr", "127.0.0.1:3001"])
        .env("SWITCHBOARD_HTTP_ADDR", "127.0.0.1:2001")
        .env("SWITCHBOARD_UDP_ADDR", "127.0.0.1:2002")
        .output()
        .expect("run switchboard");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("http_addr = \"127.0.0.1:3001\""),
        "flag: {text}"
    );
    assert!(
        text.contains("udp_addr = \"127.0.0.1:2002\""),
        "env: {text}"
    );
    assert!(text.contains("drain_timeout = \"1m\""), "file: {text}");
    assert!(text.contains("node_id = \"from-file\""), "file: {text}");
    assert!(text.contains("log_format = \"text\""), "default: {text}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_bad_file_stops_startup_with_a_readable_message() {
    let path = std::env::temp_dir().join(format!("switchboard-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "udp_addr = \"0.0.0.0:99999\"\n").unwrap();
    let out = switchboard()
        .args(["--config", path.to_str().unwrap()])
        .output()
        .expect("run switchboard");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("`udp_addr`"), "{err}");
    let out = switchboard()
        .args(["--public-ip-from", "host-ip"])
        .output()
        .expect("run switchboard");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("SWITCHBOARD_HOST_IP"), "{err}");
    let _ = std::fs::remove_file(path);
}

/// The TOML the Kubernetes ConfigMap ships (`k8s/base/configmap.yaml`, the block under
/// `switchboard.toml: |`) loads: a key the binary does not know would stop every pod.
#[test]
fn the_kubernetes_config_file_loads() {
    let yaml = include_str!("../k8s/base/configmap.yaml");
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("switchboard.toml: |"));
    let header = lines
        .next()
        .expect("a switchboard.toml block in the ConfigMap");
    let outer = header.len() - header.trim_start().len();
    let block: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > outer)
        .collect();
    let indent = block
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .expect("a non-empty block");
    let toml: String = block
        .iter()
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
        .collect();
    let path = std::env::temp_dir().join(format!("switchboard-k8s-{}.toml", std::process::id()));
    std::fs::write(&path, &toml).unwrap();
    let out = switchboard()
        .args(["--config", path.to_str().unwrap(), "--print-config"])
        .env("SWITCHBOARD_PUBLIC_IP_FROM", "host-ip")
        .env("SWITCHBOARD_HOST_IP", "10.0.0.5")
        .output()
        .expect("run switchboard");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{toml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("host_ip = \"10.0.0.5\""), "{text}");
    let _ = std::fs::remove_file(path);
}
