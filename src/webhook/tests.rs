use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;

use super::*;

const SECRET: &str = "0123456789abcdef0123";

#[test]
fn urls_and_secret_are_checked_together() {
    let url = |u: &str| vec![u.to_string()];
    assert!(check(&[], None).unwrap().is_empty());
    assert!(matches!(
        check(&url("http://h/x"), None),
        Err(WebhookError::Pair)
    ));
    assert!(matches!(check(&[], Some(SECRET)), Err(WebhookError::Pair)));
    assert!(matches!(
        check(&url("ftp://h/x"), Some(SECRET)),
        Err(WebhookError::Url(_))
    ));
    assert!(matches!(
        check(&url("/relative"), Some(SECRET)),
        Err(WebhookError::Url(_))
    ));
    assert!(matches!(
        check(&url("http://h/x"), Some("short")),
        Err(WebhookError::Secret(_))
    ));
    let ok = check(&url("https://hooks.example.org/sb"), Some(SECRET)).unwrap();
    assert_eq!(ok[0].host(), Some("hooks.example.org"));
}

/// What the receiver saw: per try, the id, the timestamp, the signature, the body.
type Seen = Arc<Mutex<Vec<(String, u64, String, String)>>>;

async fn receiver(
    State((seen, fail_first)): State<(Seen, usize)>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut seen = seen.lock();
    seen.push((
        h("webhook-id"),
        h("webhook-timestamp").parse().unwrap_or(0),
        h("webhook-signature"),
        body,
    ));
    if seen.len() <= fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

/// A receiver that fails twice gets the event on the third try, with the same id and a
/// valid signature each time; the next event follows in order; a full queue drops.
#[tokio::test]
async fn retried_until_delivered_in_order_and_signed() {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/hook", post(receiver))
        .with_state((seen.clone(), 2));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let hooks = Webhooks::start(&[format!("http://{addr}/hook")], Some(SECRET)).unwrap();
    hooks.room_started("r1");
    hooks.room_finished("r1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().len() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let signer = Signer::new(SECRET).unwrap();
    for (id, ts, sig, body) in &seen {
        assert_eq!(sig, &signer.sign(id, *ts, body.as_bytes()), "{body}");
    }
    // Tries 1-3 are the first event (same id), try 4 the second.
    assert!(seen[..3].iter().all(|s| s.0 == seen[0].0));
    assert_ne!(seen[3].0, seen[0].0);
    let kind = |b: &str| serde_json::from_str::<serde_json::Value>(b).unwrap()["type"].clone();
    assert_eq!(kind(&seen[2].3), "room.started");
    assert_eq!(kind(&seen[3].3), "room.finished");
    let first: serde_json::Value = serde_json::from_str(&seen[0].3).unwrap();
    assert_eq!(first["data"]["room"], "r1");
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn disabled_hooks_do_nothing() {
    let hooks = Webhooks::start(&[], None).unwrap();
    assert!(!hooks.is_enabled());
    hooks.room_started("r");
}
