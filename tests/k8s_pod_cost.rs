//! The pod-deletion-cost updater against a fake Kubernetes API server (axum on
//! 127.0.0.1, plain HTTP): it writes the live session count into its own Pod's
//! `controller.kubernetes.io/pod-deletion-cost` annotation with a JSON merge patch at
//! start, writes again at the next tick only when the count changed, retries after a
//! server error, stops for good on 403, and ends when its shutdown future resolves.
//!
//! Ticks are 50 ms; every wait for something that must happen has a 10 s deadline, and
//! "nothing more is written" is checked over a quiet period of several ticks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use parking_lot::Mutex;
use serde_json::{json, Value};
use switchboard::cluster::k8s::{Ended, PodDeletionCost, PodRef, ANNOTATION};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const TICK: Duration = Duration::from_millis(50);
/// For what must happen: generous, so a loaded machine does not fail the test.
const DEADLINE: Duration = Duration::from_secs(10);
/// For what must not happen: several ticks.
const QUIET: Duration = Duration::from_millis(400);

const NAMESPACE: &str = "media";
const POD: &str = "switchboard-7c9f-abcde";

/// One request the fake API server received.
#[derive(Debug)]
struct Seen {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct Fake {
    seen: mpsc::UnboundedSender<Seen>,
    /// Status codes to answer with, in order; 200 once they run out.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

/// Records every request, whatever its path, and answers like the API server would.
async fn any_request(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let _ = fake.seen.send(Seen {
        method,
        path: uri.path().to_owned(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let code = fake.answers.lock().pop_front().unwrap_or(200);
    let reply = match code {
        200 => json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": POD, "namespace": NAMESPACE },
        }),
        403 => json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "pods \"{POD}\" is forbidden: User \"system:serviceaccount:{NAMESPACE}:default\" \
                 cannot patch resource \"pods\" in API group \"\" in the namespace \"{NAMESPACE}\""
            ),
            "reason": "Forbidden",
            "details": { "name": POD, "kind": "pods" },
            "code": 403,
        }),
        _ => json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "etcdserver: request timed out",
            "reason": "InternalError",
            "code": code,
        }),
    };
    (StatusCode::from_u16(code).unwrap(), Json(reply))
}

/// A running updater and the fake API server it talks to.
struct Harness {
    seen: mpsc::UnboundedReceiver<Seen>,
    sessions: Arc<AtomicI64>,
    stop: Option<oneshot::Sender<()>>,
    updater: JoinHandle<Ended>,
}

impl Harness {
    /// Start the fake server answering `answers` first, and an updater with `sessions`
    /// live sessions.
    async fn start(answers: &[u16], sessions: i64) -> Harness {
        // The updater's log lines, shown with `--nocapture` or when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("switchboard=debug")
            .try_init();
        let (tx, seen) = mpsc::unbounded_channel();
        let fake = Fake {
            seen: tx,
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
        };
        let app = axum::Router::new().fallback(any_request).with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let config = kube::Config::new(url.parse().unwrap());
        let client = kube::Client::try_from(config).expect("client for the fake server");
        let sessions = Arc::new(AtomicI64::new(sessions));
        let pod = PodRef {
            name: POD.into(),
            namespace: NAMESPACE.into(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let updater = PodDeletionCost::new(client, pod, Arc::clone(&sessions)).with_interval(TICK);
        let updater = tokio::spawn(updater.run(async move {
            let _ = stopped.await;
        }));
        Harness {
            seen,
            sessions,
            stop: Some(stop),
            updater,
        }
    }

    /// The next request, which must come.
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(DEADLINE, self.seen.recv())
            .await
            .expect("a request to the API server within the deadline")
            .expect("the fake server is running")
    }

    /// Nothing reaches the API server for several ticks.
    async fn quiet(&mut self) {
        if let Ok(Some(r)) = tokio::time::timeout(QUIET, self.seen.recv()).await {
            panic!("unexpected request: {r:?}");
        }
    }

    /// The updater's end, which must come without a shutdown.
    async fn ended(&mut self) -> Ended {
        tokio::time::timeout(DEADLINE, &mut self.updater)
            .await
            .expect("the updater ends by itself")
            .expect("the updater does not panic")
    }

    /// Resolve the shutdown future and wait for the updater to end.
    async fn shut_down(&mut self) -> Ended {
        let _ = self.stop.take().expect("not shut down yet").send(());
        self.ended().await
    }
}

/// A merge patch of the annotation to `value`, on the updater's own pod.
fn assert_cost_patch(r: &Seen, value: &str) {
    assert_eq!(r.method, Method::PATCH, "{r:?}");
    assert_eq!(
        r.path,
        format!("/api/v1/namespaces/{NAMESPACE}/pods/{POD}"),
        "{r:?}"
    );
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/merge-patch+json"),
        "{r:?}"
    );
    assert_eq!(
        r.body,
        json!({ "metadata": { "annotations": { ANNOTATION: value } } }),
        "{r:?}"
    );
}

#[tokio::test]
async fn writes_at_start_then_only_when_the_count_changes() {
    let mut h = Harness::start(&[], 3).await;
    assert_cost_patch(&h.next().await, "3");
    // Same count: not rewritten, tick after tick.
    h.quiet().await;

    h.sessions.store(5, Ordering::Relaxed);
    assert_cost_patch(&h.next().await, "5");
    h.quiet().await;

    // Down to empty: the pod becomes the first to go.
    h.sessions.store(0, Ordering::Relaxed);
    assert_cost_patch(&h.next().await, "0");

    // The annotation is an int32.
    h.sessions.store(i64::MAX, Ordering::Relaxed);
    assert_cost_patch(&h.next().await, &i32::MAX.to_string());
    h.quiet().await;

    assert_eq!(h.shut_down().await, Ended::Shutdown);
}

#[tokio::test]
async fn forbidden_stops_the_updates() {
    let mut h = Harness::start(&[403], 4).await;
    assert_cost_patch(&h.next().await, "4");
    // It ends by itself, without a shutdown...
    assert_eq!(h.ended().await, Ended::Forbidden);
    // ...and a changed count is never written.
    h.sessions.store(9, Ordering::Relaxed);
    h.quiet().await;
}

#[tokio::test]
async fn other_errors_are_retried_at_the_next_tick() {
    let mut h = Harness::start(&[500, 503], 2).await;
    assert_cost_patch(&h.next().await, "2");
    assert_cost_patch(&h.next().await, "2");
    // The third attempt succeeds; then nothing until the count changes.
    assert_cost_patch(&h.next().await, "2");
    h.quiet().await;
    h.sessions.store(1, Ordering::Relaxed);
    assert_cost_patch(&h.next().await, "1");

    assert_eq!(h.shut_down().await, Ended::Shutdown);
}

#[tokio::test]
async fn shutdown_ends_it_without_another_write() {
    let mut h = Harness::start(&[], 6).await;
    assert_cost_patch(&h.next().await, "6");
    assert_eq!(h.shut_down().await, Ended::Shutdown);
    // Draining: the count falls, nothing is written any more.
    h.sessions.store(0, Ordering::Relaxed);
    h.quiet().await;
}
