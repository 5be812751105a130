//! Smoke tests of `switchboard-load` against the real server: a 1 → 10 VP8 simulcast
//! broadcast for 5 s on loopback, and a four-person conference in one room for 4 s,
//! each once with the room driving every session and once with its viewers spread
//! over subscriber shards (`--shard-after`, `--max-shards`); and the `data` scenario:
//! four data-only participants exchanging chat and position messages for 2 s. Asserts behaviour from the
//! tool's JSON report (every session connected, no loss, every viewer saw a keyframe,
//! every session deleted) and then that the server's `/metrics` drops back to zero
//! live sessions (and shards). No timing or
//! performance assertions: those belong to `docs/load-tool.md`, not to CI.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer `/livez` (a loaded CI machine is slow).
const STARTUP: Duration = Duration::from_secs(30);
/// How long a whole tool run may take: 11 sessions at 20/s, 5 s, teardown.
const TOOL_DEADLINE: Duration = Duration::from_secs(180);
/// How long the session gauges may take to return to zero after the tool exits.
const GAUGE_DEADLINE: Duration = Duration::from_secs(15);

/// The server process; killed on drop.
struct Server {
    child: Child,
    base_url: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- server log tail ----");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn free_ports() -> (u16, u16) {
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind TCP");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    (
        tcp.local_addr().expect("tcp addr").port(),
        udp.local_addr().expect("udp addr").port(),
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// The server binary: `SWITCHBOARD_BIN`, else `switchboard` beside this package's
/// binary in the workspace's target directory (`cargo test --workspace` builds both;
/// alone, build it first with `cargo build -p switchboard`).
fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SWITCHBOARD_BIN") {
        return PathBuf::from(bin);
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_switchboard-load")).with_file_name("switchboard");
    assert!(
        bin.exists(),
        "server binary not found at {}: run `cargo build -p switchboard` or set SWITCHBOARD_BIN",
        bin.display()
    );
    bin
}

/// Start the server with `extra` flags.
async fn start_server(extra: &[&str]) -> Server {
    let mut last = String::new();
    // A port seen free may be taken before the server binds it: retry with new ones.
    for attempt in 0..3 {
        let (http, udp) = free_ports();
        let http_addr = SocketAddr::from(([127, 0, 0, 1], http));
        let log = std::env::temp_dir().join(format!(
            "switchboard-load-smoke-{}-{http}.log",
            std::process::id()
        ));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(server_binary());
        cmd.arg("--http-addr")
            .arg(http_addr.to_string())
            .arg("--udp-addr")
            .arg(format!("127.0.0.1:{udp}"))
            .arg("--tcp-addr")
            .arg("127.0.0.1:0")
            .arg("--public-ip")
            .arg("127.0.0.1")
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                cmd.env_remove(&key);
            }
        }
        let child = cmd.spawn().expect("spawn switchboard");
        let mut server = Server {
            child,
            base_url: format!("http://{http_addr}"),
            log,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                last = format!("attempt {attempt}: server exited with {status}");
                break;
            }
            let ok = client()
                .get(format!("{}/livez", server.base_url))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                return server;
            }
            if Instant::now() > deadline {
                last = format!("attempt {attempt}: /livez not 200 within {STARTUP:?}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("switchboard did not start: {last}");
}

/// Run the tool to completion (killed after `TOOL_DEADLINE`); its status, stdout, stderr.
fn run_tool(args: &[String]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-load"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchboard-load");
    let deadline = Instant::now() + TOOL_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("tool output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of the series whose line starts with `series` (name and labels, e.g.
/// `switchboard_sessions{kind="publisher"}`) in a metrics text.
fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The server's `/metrics` text.
async fn scrape(server: &Server) -> Option<String> {
    let resp = client()
        .get(format!("{}/metrics", server.base_url))
        .send()
        .await
        .ok()?;
    resp.text().await.ok()
}

/// Run the tool with `scenario` (and its options) against `server`, with a JSON report;
/// asserts it exited 0. Returns the report and a failure context (the tool's output).
async fn run_report(server: &Server, room: &str, scenario: &[&str]) -> (serde_json::Value, String) {
    // Tests run in parallel, some with the same room name: the server's port tells
    // their reports apart.
    let port = server.base_url.rsplit(':').next().unwrap_or("0");
    let json_path = std::env::temp_dir().join(format!(
        "switchboard-load-smoke-{}-{room}-{port}.json",
        std::process::id()
    ));
    let pid = server.child.id().to_string();
    let json_arg = json_path.to_string_lossy().into_owned();
    let mut args: Vec<String> = [
        "--url",
        &server.base_url,
        "--room",
        room,
        "--setup-timeout",
        "60s",
        "--http-timeout",
        "30s",
        "--quiet",
        "--json",
        &json_arg,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(scenario.iter().map(|s| s.to_string()));
    args.extend(["--server-pid".to_string(), pid]);
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || run_tool(&args))
        .await
        .expect("tool thread");
    let context = format!("status {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(status, Some(0), "{context}");
    let text = std::fs::read_to_string(&json_path).expect("JSON report written");
    let _ = std::fs::remove_file(&json_path);
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON report parses");
    let context = format!("{context}\nreport:\n{text}");
    (r, context)
}

/// A number at a JSON pointer of the report.
fn num(r: &serde_json::Value, path: &str, context: &str) -> f64 {
    r.pointer(path)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing in report\n{context}"))
}

/// Wait until the server's `/metrics` shows no live session of either kind and no
/// live subscriber shard; returns that metrics text.
async fn assert_no_sessions_left(server: &Server) -> String {
    let deadline = Instant::now() + GAUGE_DEADLINE;
    let mut last = String::new();
    loop {
        if let Some(text) = scrape(server).await {
            last = text;
            // A server that never had a publisher (the data scenario) has no
            // publisher series at all.
            let published = metric(
                &last,
                "switchboard_sessions_created_total{kind=\"publisher\"}",
            );
            let p = metric(&last, "switchboard_sessions{kind=\"publisher\"}")
                .or(published.is_none().then_some(0.0));
            let s = metric(&last, "switchboard_sessions{kind=\"subscriber\"}");
            let shards = metric(&last, "switchboard_subscriber_shards").unwrap_or(0.0);
            if p == Some(0.0) && s == Some(0.0) && shards == 0.0 {
                return last;
            }
        }
        assert!(
            Instant::now() < deadline,
            "sessions still live after {GAUGE_DEADLINE:?}:\n{}",
            last.lines()
                .filter(|l| l.starts_with("switchboard_sessions")
                    || l.starts_with("switchboard_subscriber_shards"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A 1 → 10 broadcast against a server started with `flags`; asserts it is clean and
/// cleans up, and returns the server's final metrics text.
async fn broadcast_one_to_ten(flags: &[&str]) -> String {
    let server = start_server(flags).await;
    let (r, context) = run_report(
        &server,
        "smoke",
        &["broadcast", "--viewers", "10", "--duration", "5s"],
    )
    .await;
    let num = |path: &str| num(&r, path, &context);
    assert_eq!(num("/sessions/planned"), 11.0, "{context}");
    assert_eq!(num("/sessions/connected"), 11.0, "{context}");
    assert_eq!(num("/sessions/failed"), 0.0, "{context}");
    assert_eq!(num("/sessions/lost_during_run"), 0.0, "{context}");
    assert!(num("/forwarded_packets") > 0.0, "{context}");
    assert!(num("/loss_expected") > 0.0, "{context}");
    assert_eq!(num("/loss_lost"), 0.0, "{context}");
    assert_eq!(num("/loss_percent"), 0.0, "{context}");
    assert_eq!(num("/viewers_with_keyframe"), 10.0, "{context}");
    assert_eq!(num("/unreadable_packets"), 0.0, "{context}");
    let viewers = r["viewer_details"].as_array().expect("viewer_details");
    assert_eq!(viewers.len(), 10, "{context}");
    for v in viewers {
        assert!(
            v["first_keyframe_ms"].is_number(),
            "viewer without keyframe: {v}"
        );
        assert!(
            v["window_packets"].as_u64().unwrap_or(0) > 0,
            "idle viewer: {v}"
        );
    }
    assert_eq!(num("/deletes_ok"), 11.0, "{context}");
    assert_eq!(num("/deletes_failed"), 0.0, "{context}");
    // The server figures are present (values are machine-dependent, not asserted).
    assert!(r["server"]["cpu_s"].is_number(), "{context}");
    assert!(r["server"]["rss_end_kib"].is_number(), "{context}");

    // The server agrees: no live sessions of either kind.
    assert_no_sessions_left(&server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_one_to_ten_is_clean_and_cleans_up() {
    let metrics = broadcast_one_to_ten(&[]).await;
    // Ten viewers are far below the default `--shard-after`.
    let sharded = metric(&metrics, "switchboard_sharded_sessions_total").unwrap_or(0.0);
    assert_eq!(sharded, 0.0);
}

/// The same broadcast with the room keeping 3 viewers and two shards taking the other
/// 7 (3 each, then the least loaded shard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_over_subscriber_shards_is_clean_and_cleans_up() {
    let metrics = broadcast_one_to_ten(&["--shard-after", "3", "--max-shards", "2"]).await;
    assert_eq!(
        metric(&metrics, "switchboard_sharded_sessions_total"),
        Some(7.0)
    );
}

/// A four-person conference in one real room (`--mapping room`, the default): everyone
/// publishes and watches the three others in one WHEP session with 3 video and 3
/// audio slots. Every slot receives media and a keyframe, no one receives their own
/// media, nothing is lost, and everything is deleted.
async fn conference_of_four(flags: &[&str]) -> String {
    let server = start_server(flags).await;
    let (r, context) = run_report(
        &server,
        "smoke-conf",
        &["conference", "--participants", "4", "--duration", "4s"],
    )
    .await;
    let num = |path: &str| num(&r, path, &context);
    assert_eq!(r["conference"]["mapping"], "room", "{context}");
    assert_eq!(num("/sessions/planned"), 8.0, "{context}");
    assert_eq!(num("/sessions/connected"), 8.0, "{context}");
    assert_eq!(num("/sessions/failed"), 0.0, "{context}");
    assert_eq!(num("/slots/video_offered"), 12.0, "{context}");
    assert_eq!(num("/slots/video_receiving"), 12.0, "{context}");
    assert_eq!(num("/slots/video_with_keyframe"), 12.0, "{context}");
    assert_eq!(num("/slots/audio_offered"), 12.0, "{context}");
    assert_eq!(num("/slots/audio_receiving"), 12.0, "{context}");
    assert_eq!(num("/slots/own_media_packets"), 0.0, "{context}");
    assert!(num("/forwarded_packets") > 0.0, "{context}");
    assert_eq!(num("/loss_lost"), 0.0, "{context}");
    assert_eq!(num("/unreadable_packets"), 0.0, "{context}");
    assert_eq!(num("/deletes_ok"), 8.0, "{context}");
    assert_eq!(num("/deletes_failed"), 0.0, "{context}");
    assert_no_sessions_left(&server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conference_of_four_in_one_room_is_clean_and_cleans_up() {
    conference_of_four(&[]).await;
}

/// The same conference with every WHEP session but the room's first in one of two
/// shards: slots, payload types and keyframes work the same when the viewer's `Rtc`
/// lives on another task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conference_over_subscriber_shards_is_clean_and_cleans_up() {
    let metrics = conference_of_four(&["--shard-after", "1", "--max-shards", "2"]).await;
    assert_eq!(
        metric(&metrics, "switchboard_sharded_sessions_total"),
        Some(3.0)
    );
}

/// Four data-only participants (channels `chat`, reliable, and `pos`, unreliable) send
/// 10 messages a second on each for 2 s. On loopback every message of every other
/// participant arrives exactly once on both topics, chat in order; no error replies,
/// no own messages; everything is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channels_of_four_deliver_every_message_once() {
    let server = start_server(&[]).await;
    let (r, context) = run_report(
        &server,
        "smoke-data",
        &[
            "data",
            "--participants",
            "4",
            "--duration",
            "2s",
            "--idle",
            "1s",
        ],
    )
    .await;
    let num = |path: &str| num(&r, path, &context);
    assert_eq!(r["scenario"], "data", "{context}");
    assert_eq!(num("/sessions/connected"), 4.0, "{context}");
    assert_eq!(num("/sessions/data_connected"), 4.0, "{context}");
    assert_eq!(num("/sessions/failed"), 0.0, "{context}");
    assert_eq!(num("/sessions/lost_during_run"), 0.0, "{context}");
    assert_eq!(num("/data/channels_expected"), 8.0, "{context}");
    assert_eq!(num("/data/channels_open"), 8.0, "{context}");
    for (i, topic) in ["chat", "pos"].iter().enumerate() {
        let t = |field: &str| num(&format!("/data/topics/{i}/{field}"));
        assert_eq!(r["data"]["topics"][i]["topic"], *topic, "{context}");
        // About 2 s × 10/s × 4 senders; each goes to the 3 others.
        assert!(t("sent") >= 40.0, "{topic}: {context}");
        assert_eq!(t("expected"), 3.0 * t("sent"), "{topic}: {context}");
        assert_eq!(t("delivered"), t("expected"), "{topic}: {context}");
        assert_eq!(t("lost"), 0.0, "{topic}: {context}");
        assert_eq!(t("duplicated"), 0.0, "{topic}: {context}");
        assert_eq!(t("unsent"), 0.0, "{topic}: {context}");
        assert_eq!(t("channels_closed"), 0.0, "{topic}: {context}");
        assert!(t("latency_ms/count") > 0.0, "{topic}: {context}");
    }
    // Chat is ordered: nothing out of order.
    assert_eq!(num("/data/topics/0/out_of_order"), 0.0, "{context}");
    let errors = r["data"]["error_replies"]
        .as_object()
        .expect("error_replies");
    assert!(errors.is_empty(), "error replies: {context}");
    assert_eq!(num("/data/own_messages"), 0.0, "{context}");
    assert_eq!(num("/data/foreign_messages"), 0.0, "{context}");
    assert_eq!(num("/data/wrong_topic_messages"), 0.0, "{context}");
    assert_eq!(num("/data/unreadable_messages"), 0.0, "{context}");
    // The server figures are present (values are machine-dependent, not asserted).
    assert!(r["data"]["server"]["idle_cpu_s"].is_number(), "{context}");
    assert_eq!(num("/deletes_ok"), 4.0, "{context}");
    assert_eq!(num("/deletes_failed"), 0.0, "{context}");
    assert_no_sessions_left(&server).await;
}
