//! Recordings through the real server and its room API: a publisher's VP8 and Opus
//! tracks recorded into MP4 files that `ffprobe` reads (codec, size, frame count and
//! duration as the manifest says), the `recording.started` and `recording.finished`
//! webhooks, the limits (503 at `--max-recordings`, 507 without disk space, 503 without
//! `--record-dir`), and a room that empties while recording completes its files.
//!
//! The test media is synthetic (kit payloads behind real VP8 key frame headers), so
//! these files are checked for structure, not decoded; `tests/e2e` records real
//! encoders and decodes what they wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use common::peer::{Peer, PublisherKind};
use common::{check_problem, json, post_body, Server};
use parking_lot::Mutex;
use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const SECRET: &str = "whsec_c3dpdGNoYm9hcmQtd2ViaG9vay10ZXN0LWtleQ==";

/// A folder of its own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("sb-rec-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = common::get(url).await.expect("GET");
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// Waits until recording `url` is `finished` and returns it.
async fn finished(url: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, v) = get_json(url).await;
        assert_eq!(status, 200, "{v}");
        if v["state"] == "finished" {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not finished: {last:#}");
}

/// `ffprobe`'s view of a file's one stream: codec, size, packets, duration (s).
fn probe(file: &Path) -> (String, u64, u64, u64, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .arg("stream=codec_name,width,height,nb_read_packets:format=duration")
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let s = &v["streams"][0];
    let n = |x: &Value| x.as_u64().or_else(|| x.as_str()?.parse().ok()).unwrap_or(0);
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (
        s["codec_name"].as_str().unwrap_or_default().to_owned(),
        n(&s["width"]),
        n(&s["height"]),
        n(&s["nb_read_packets"]),
        duration,
    )
}

type Hooks = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Hooks) {
    let hooks: Hooks = Arc::default();
    let app = Router::new()
        .route(
            "/hooks",
            post(|State(h): State<Hooks>, body: String| async move {
                h.lock()
                    .push(serde_json::from_str(&body).unwrap_or(Value::Null));
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hooks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_writes_files_ffprobe_reads_and_tells_the_webhooks() {
    let dir = TempDir::new();
    let (hook_url, hooks) = receiver().await;
    let server = Server::start(&[
        "--record-dir",
        dir.0.to_str().unwrap(),
        "--max-recordings",
        "2",
        "--webhook-url",
        &hook_url,
        "--webhook-secret",
        SECRET,
    ])
    .await;
    let base = server.base_url().to_owned();
    let list = format!("{base}/api/rooms/rec/recordings");

    // No room yet: 404.
    let r = post_body(&list, Some("application/json"), "{}", None)
        .await
        .unwrap();
    check_problem("no room", &r, 404);

    let a = Peer::publish(&server, "rec?name=alice", PublisherKind::BrowserVp8)
        .await
        .expect("alice publishes");
    assert!(a.wait_connected(CONNECT_TIMEOUT).await, "alice connects");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let bad = post_body(
        &list,
        Some("application/json"),
        r#"{"identities": []}"#,
        None,
    )
    .await
    .unwrap();
    check_problem("empty identities", &bad, 400);
    let bad = post_body(&list, Some("text/plain"), "{}", None)
        .await
        .unwrap();
    check_problem("not JSON", &bad, 415);

    let r = post_body(&list, Some("application/json"), "{}", None)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let info = json(&r.body);
    let id = info["id"].as_str().unwrap().to_owned();
    let location = r.header("location").unwrap().to_owned();
    assert_eq!(location, format!("/api/rooms/rec/recordings/{id}"));
    assert_eq!(info["state"], "active");
    let one = format!("{base}{location}");

    // A second one (of an identity not here) fits; a third is past --max-recordings.
    let r = post_body(
        &list,
        Some("application/json"),
        r#"{"identities": ["bob"]}"#,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let bob = format!("{base}{}", r.header("location").unwrap());
    let r = post_body(&list, Some("application/json"), "{}", None)
        .await
        .unwrap();
    check_problem("past --max-recordings", &r, 503);
    assert!(r.header("retry-after").is_some());

    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, running) = get_json(&one).await;
    assert_eq!(
        running["files"].as_array().map(Vec::len),
        Some(2),
        "{running:#}"
    );
    let (_, all) = get_json(&list).await;
    assert_eq!(
        all["recordings"].as_array().map(Vec::len),
        Some(2),
        "{all:#}"
    );

    let r = common::delete(&one, None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let done = finished(&one).await;
    let r = common::delete(&one, None).await.unwrap();
    check_problem("stopped twice", &r, 409);
    let r = common::delete(&format!("{list}/0000"), None).await.unwrap();
    check_problem("unknown recording", &r, 404);

    let folder = dir.0.join(done["path"].as_str().unwrap());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["state"], "finished");
    assert_eq!(manifest["files"], done["files"]);
    let files = done["files"].as_array().unwrap();
    let mut starts = Vec::new();
    for f in files {
        assert_eq!(f["complete"], true, "{f:#}");
        assert_eq!(f["identity"], "alice");
        let (codec, w, h, packets, duration) = probe(&folder.join(f["name"].as_str().unwrap()));
        assert_eq!(codec, f["codec"].as_str().unwrap(), "{f:#}");
        if f["kind"] == "video" {
            assert_eq!(codec, "vp8");
            assert_eq!(
                (Some(w), Some(h)),
                (f["width"].as_u64(), f["height"].as_u64())
            );
        } else {
            assert_eq!(codec, "opus");
        }
        assert_eq!(packets, f["samples"].as_u64().unwrap(), "{f:#}");
        let listed = f["durationSeconds"].as_f64().unwrap();
        assert!((2.5..4.5).contains(&listed), "{f:#}");
        assert!(
            (duration - listed).abs() < 0.3,
            "ffprobe {duration} s, manifest {listed} s"
        );
        starts.push(f["startUnixMicros"].as_u64().unwrap());
    }
    // Both tracks were flowing when the recording started: their first samples are
    // close on the wall clock.
    let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(spread < 500_000, "starts {starts:?}");

    // The other recording ends with the room: the publisher leaves.
    a.stop().await;
    let other = finished(&bob).await;
    assert_eq!(other["files"].as_array().map(Vec::len), Some(0));

    // Webhooks: each recording started and finished; the finish lists the files.
    let ok = common::eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        let n = hooks
            .lock()
            .iter()
            .filter(|e| e["type"] == "recording.finished")
            .count();
        async move { n == 2 }
    })
    .await;
    let events = hooks.lock().clone();
    assert!(ok, "{events:#?}");
    let about = |kind: &str, rec: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind && e["data"]["recording"]["id"] == rec)
            .cloned()
    };
    assert!(about("recording.started", &id).is_some());
    let fin = about("recording.finished", &id).expect("finished event");
    assert_eq!(fin["data"]["room"], "rec");
    assert_eq!(fin["data"]["recording"]["files"], done["files"]);

    let metrics = server.metrics().await.unwrap_or_default();
    assert!(
        metrics.contains("switchboard_recording_bytes_total"),
        "{metrics}"
    );
    assert_eq!(server.metric("switchboard_recordings_active").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_empties_completes_its_files() {
    let dir = TempDir::new();
    let server = Server::start(&["--record-dir", dir.0.to_str().unwrap()]).await;
    let base = server.base_url().to_owned();
    let a = Peer::publish(&server, "gone?name=carol", PublisherKind::ObsH264)
        .await
        .expect("carol publishes");
    assert!(a.wait_connected(CONNECT_TIMEOUT).await, "carol connects");
    let list = format!("{base}/api/rooms/gone/recordings");
    let r = post_body(&list, Some("application/json"), "{}", None)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let one = format!("{base}{}", r.header("location").unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.stop().await;
    let done = finished(&one).await;
    let files = done["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{done:#}");
    let folder = dir.0.join(done["path"].as_str().unwrap());
    for f in files {
        assert_eq!(f["complete"], true, "{f:#}");
        let (codec, _, _, packets, _) = probe(&folder.join(f["name"].as_str().unwrap()));
        assert_eq!(codec, f["codec"].as_str().unwrap());
        assert!(packets > 0);
    }
    assert!(files.iter().any(|f| f["codec"] == "h264"), "{done:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_reason() {
    // Without --record-dir: 503.
    let server = Server::start(&[]).await;
    let a = Peer::publish(&server, "r?name=d", PublisherKind::BrowserVp8)
        .await
        .expect("publishes");
    let url = format!("{}/api/rooms/r/recordings", server.base_url());
    let r = post_body(&url, Some("application/json"), "{}", None)
        .await
        .unwrap();
    check_problem("no --record-dir", &r, 503);
    assert!(r.body.contains("--record-dir"), "{}", r.body);
    drop(a);

    // A disk that must keep more free than it has: 507.
    let dir = TempDir::new();
    let server = Server::start(&[
        "--record-dir",
        dir.0.to_str().unwrap(),
        "--record-min-free-mib",
        "1000000000",
    ])
    .await;
    let a = Peer::publish(&server, "r?name=d", PublisherKind::BrowserVp8)
        .await
        .expect("publishes");
    let url = format!("{}/api/rooms/r/recordings", server.base_url());
    let r = post_body(&url, Some("application/json"), "{}", None)
        .await
        .unwrap();
    check_problem("disk", &r, 507);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_all_rooms_records_a_room_from_its_first_join_to_its_end() {
    let dir = TempDir::new();
    let server = Server::start(&[
        "--record-dir",
        dir.0.to_str().unwrap(),
        "--record-all-rooms",
    ])
    .await;
    let a = Peer::publish(&server, "auto?name=erin", PublisherKind::BrowserVp8)
        .await
        .expect("erin publishes");
    assert!(a.wait_connected(CONNECT_TIMEOUT).await, "erin connects");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let list = format!("{}/api/rooms/auto/recordings", server.base_url());
    let (_, all) = get_json(&list).await;
    let recs = all["recordings"].as_array().cloned().unwrap_or_default();
    assert_eq!(recs.len(), 1, "{all:#}");
    assert_eq!(recs[0]["state"], "active");
    assert!(recs[0].get("identities").is_none(), "records everyone");
    let one = format!("{list}/{}", recs[0]["id"].as_str().unwrap());
    a.stop().await;
    let done = finished(&one).await;
    let files = done["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{done:#}");
    assert!(files
        .iter()
        .all(|f| f["complete"] == true && f["samples"].as_u64() > Some(0)));
}
