//! Webhooks against the real server: a short conference (a publisher, a viewer, both
//! leave) reaches a receiver in this test as every event in order, each signed per the
//! Standard Webhooks scheme; the receiver fails its first two requests and gets the
//! first event on the third try, under the same `webhook-id`.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::peer::{Peer, PublisherKind};
use common::Server;
use parking_lot::Mutex;
use serde_json::Value;
use switchboard::webhook::sign::Signer;

const SECRET: &str = "whsec_c3dpdGNoYm9hcmQtd2ViaG9vay10ZXN0LWtleQ==";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests the receiver answers 503 before it accepts.
const FAIL_FIRST: usize = 2;

/// One request: `webhook-id`, `webhook-timestamp`, `webhook-signature`, body.
#[derive(Clone, Debug)]
struct Try {
    id: String,
    timestamp: u64,
    signature: String,
    body: String,
}

type Tries = Arc<Mutex<Vec<Try>>>;

async fn receive(State(tries): State<Tries>, headers: HeaderMap, body: String) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut tries = tries.lock();
    tries.push(Try {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp").parse().unwrap_or(0),
        signature: h("webhook-signature"),
        body,
    });
    if tries.len() <= FAIL_FIRST {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// The delivered events (the last try of each id), in arrival order.
fn delivered(tries: &[Try]) -> Vec<Value> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for t in tries.iter().skip(FAIL_FIRST) {
        if out.iter().all(|(id, _)| id != &t.id) {
            out.push((
                t.id.clone(),
                serde_json::from_str(&t.body).expect("JSON body"),
            ));
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_conference_reaches_the_receiver_in_order_signed_and_retried() {
    let tries: Tries = Arc::default();
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(tries.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = Server::start(&["--webhook-url", &url, "--webhook-secret", SECRET]).await;
    let a = Peer::publish(&server, "hooks?name=a", PublisherKind::BrowserVp8)
        .await
        .expect("a publishes");
    let b = Peer::subscribe(&server, "hooks?name=b")
        .await
        .expect("b watches");
    assert!(a.wait_connected(CONNECT_TIMEOUT).await, "a connects");
    assert!(b.wait_connected(CONNECT_TIMEOUT).await, "b connects");
    // Two closes in one instant end in the order the room polls its
    // sessions; the test wants b's departure first, so it waits for it.
    b.close().await;
    let b_left = common::eventually(Duration::from_secs(15), Duration::from_millis(50), || {
        let left = delivered(&tries.lock())
            .iter()
            .any(|e| e["type"] == "participant.left");
        async move { left }
    })
    .await;
    assert!(b_left, "b's participant.left delivered");
    a.close().await;

    let want = [
        "room.started",
        "participant.joined",
        "track.published",
        "track.published",
        "participant.joined",
        "participant.left",
        "track.unpublished",
        "track.unpublished",
        "participant.left",
        "room.finished",
    ];
    let done = common::eventually(Duration::from_secs(15), Duration::from_millis(100), || {
        let n = delivered(&tries.lock()).len();
        async move { n >= want.len() }
    })
    .await;
    let tries = tries.lock().clone();
    let events = delivered(&tries);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(done, "events delivered: {kinds:?}");
    assert_eq!(kinds, want, "{events:#?}");

    // The first event took three tries under one id; every try is signed.
    assert!(tries[..=FAIL_FIRST].iter().all(|t| t.id == tries[0].id));
    assert_eq!(events[0]["type"], "room.started");
    let signer = Signer::new(SECRET).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for t in &tries {
        assert!(t.id.starts_with("msg_"), "{t:?}");
        assert_eq!(
            t.signature,
            signer.sign(&t.id, t.timestamp, t.body.as_bytes())
        );
        assert!(
            now.abs_diff(t.timestamp) < 300,
            "timestamp {} vs {now}",
            t.timestamp
        );
    }

    // What each event says.
    assert!(
        events.iter().all(|e| e["data"]["room"] == "hooks"),
        "{events:#?}"
    );
    assert_eq!(events[1]["data"]["participant"]["identity"], "a");
    assert_eq!(events[1]["data"]["participant"]["publishing"], true);
    let mut published: Vec<&str> = events[2..4]
        .iter()
        .map(|e| e["data"]["track"]["id"].as_str().unwrap())
        .collect();
    published.sort();
    assert_eq!(published, ["camera-audio", "camera-video"]);
    assert_eq!(events[4]["data"]["participant"]["identity"], "b");
    assert_eq!(events[4]["data"]["participant"]["watching"], true);
    assert_eq!(events[5]["data"]["participant"]["identity"], "b");
    assert!(events[6..8].iter().all(|e| e["data"]["identity"] == "a"));
    assert_eq!(events[8]["data"]["participant"]["identity"], "a");
    assert!(events
        .iter()
        .all(|e| e["timestamp"].as_str().is_some_and(|t| t.ends_with('Z'))));

    let delivered_metric = server
        .metric("switchboard_webhook_deliveries_total{outcome=\"delivered\"} ")
        .await;
    assert_eq!(delivered_metric, want.len() as f64);
    assert_eq!(
        server.metric("switchboard_webhook_retries_total ").await,
        FAIL_FIRST as f64
    );
}
