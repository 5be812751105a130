//! `POST /api/rooms/{room}/data` through the router, with a real room behind it.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use str0m::Rtc;
use tower::ServiceExt;

use crate::auth::Authority;
use crate::limits::RoomLimits;

fn app() -> Router {
    crate::api::sessions::tests::test_app(
        Authority::new(None, None),
        RoomLimits::default(),
        true,
        Arc::new([]),
    )
}

async fn call(app: &Router, method: &str, uri: &str, ct: &str, body: String) -> (u16, Value) {
    let (status, text) = call_text(app, method, uri, ct, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn call_text(app: &Router, method: &str, uri: &str, ct: &str, body: String) -> (u16, String) {
    let r = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .unwrap();
    let res = app.clone().oneshot(r).await.expect("infallible");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A WHEP offer with data channels only (a str0m client's `m=application`).
fn data_offer() -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_channel("chat".into());
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

#[tokio::test]
async fn a_data_only_whep_session_joins_and_the_server_can_speak() {
    let app = app();
    let (status, _) = call(
        &app,
        "POST",
        "/whep/talk?name=alice",
        "application/sdp",
        data_offer(),
    )
    .await;
    assert_eq!(status, 201, "a WHEP offer with only m=application");
    let uri = "/api/rooms/talk/data";
    let json = "application/json";
    let ok = r#"{"topic": "chat", "data": {"text": "hello"}}"#.to_string();
    let (status, body) = call(&app, "POST", uri, json, ok.clone()).await;
    // The channel is not open until the client connects: nobody to send to yet.
    assert_eq!(
        (status, &body["receivers"]),
        (200, &Value::from(0)),
        "{body}"
    );
    let cases = [
        ("GET", uri, json, String::new(), 405),
        ("POST", "/api/rooms/nowhere/data", json, ok.clone(), 404),
        ("POST", uri, "text/plain", ok.clone(), 415),
        ("POST", uri, json, r#"{"topic": "chat"}"#.to_string(), 400),
        (
            "POST",
            uri,
            json,
            r#"{"topic": "", "data": 1}"#.to_string(),
            400,
        ),
        (
            "POST",
            uri,
            json,
            r#"{"topic": "_events", "data": 1}"#.to_string(),
            422,
        ),
        (
            "POST",
            uri,
            json,
            r#"{"topic": "chat", "data": 1, "to": ["bob"]}"#.to_string(),
            404,
        ),
        (
            "POST",
            uri,
            json,
            format!(
                r#"{{"topic": "chat", "data": "{}"}}"#,
                "x".repeat(17 * 1024)
            ),
            413,
        ),
        ("POST", uri, json, "x".repeat(40 * 1024), 413),
    ];
    for (method, uri, ct, body, want) in cases {
        let (status, problem) = call(&app, method, uri, ct, body).await;
        assert_eq!(status, want, "{method} {uri} {ct}: {problem}");
    }
    let to_alice = r#"{"topic": "chat", "data": 1, "to": ["alice"]}"#.to_string();
    assert_eq!(call(&app, "POST", uri, json, to_alice).await.0, 200);
}
