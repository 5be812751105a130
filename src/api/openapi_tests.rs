//! The OpenAPI document (`/openapi.json`) through the router: it lists the API, and its
//! schemas say what real answers hold (a drift test).

use axum::http::{header, StatusCode};
use serde_json::Value;

use super::tests::{call, open_app, publish};

#[tokio::test]
async fn openapi_document_lists_the_api() {
    let app = open_app();
    let a = call(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/json");
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/rooms", "get"),
        ("/api/rooms/{room}", "get"),
        ("/api/rooms/{room}", "delete"),
        ("/api/rooms/{room}/participants/{identity}", "delete"),
        ("/api/rooms/{room}/participants/{identity}/mute", "post"),
        ("/whip/{room}", "post"),
        ("/whip/{room}", "options"),
        ("/whip/{room}/{session}", "delete"),
        ("/whip/{room}/{session}", "patch"),
        ("/whep/{room}", "post"),
        ("/whep/{room}/{session}", "delete"),
        ("/whep/{room}/{session}", "patch"),
        ("/whep/{room}/{session}/layer", "post"),
        ("/whep/{room}/{session}/stats", "get"),
        ("/whep/{room}/{session}/events", "get"),
        ("/metrics", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
        ("/api/server", "get"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let events = &paths["/whep/{room}/{session}/events"]["get"]["responses"]["200"];
    assert!(
        events["content"]["text/event-stream"].is_object(),
        "{events}"
    );
    let patch = &paths["/whep/{room}/{session}"]["patch"]["requestBody"]["content"];
    assert_eq!(
        patch["application/json"]["schema"]["$ref"],
        "#/components/schemas/SlotPreferences"
    );
    assert!(
        patch["application/trickle-ice-sdpfrag"].is_object(),
        "{patch}"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Problem",
        "RoomList",
        "RoomDetail",
        "RoomSummary",
        "ParticipantInfo",
        "TrackInfo",
        "MuteRequest",
        "SlotPreferences",
        "SlotRequest",
        "LayerRequest",
        "ServerInfo",
        "WebhookEvent",
        "WebhookKind",
        "WebhookData",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// The property names a schema declares.
fn properties(doc: &Value, schema: &str) -> Vec<String> {
    let mut names: Vec<String> = doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {schema}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

fn keys(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

/// The schemas say what the answers hold: checked against real answers.
#[tokio::test]
async fn schemas_match_real_answers() {
    let app = open_app();
    let doc = serde_json::to_value(crate::api::openapi::document()).unwrap();
    publish(&app, "studio", "studio").await;

    let list = call(&app, "GET", "/api/rooms", None, None).await.json();
    assert_eq!(keys(&list), properties(&doc, "RoomList"));
    assert_eq!(keys(&list["rooms"][0]), properties(&doc, "RoomSummary"));
    let detail = call(&app, "GET", "/api/rooms/studio", None, None)
        .await
        .json();
    assert_eq!(keys(&detail), properties(&doc, "RoomDetail"));
    let p = &detail["participants"][0];
    assert_eq!(keys(p), properties(&doc, "ParticipantInfo"));
    assert_eq!(keys(&p["tracks"][0]), properties(&doc, "TrackInfo"));
    let server = call(&app, "GET", "/api/server", None, None).await.json();
    assert_eq!(keys(&server), properties(&doc, "ServerInfo"));
    let problem = call(&app, "GET", "/api/rooms/none", None, None)
        .await
        .json();
    assert_eq!(keys(&problem), properties(&doc, "Problem"));
}

/// The webhook schemas say what the deliveries hold (the bodies themselves are
/// checked against a receiver in `tests/webhooks.rs`).
#[test]
fn webhook_schemas_match_the_bodies() {
    let doc = serde_json::to_value(crate::api::openapi::document()).unwrap();
    assert_eq!(
        properties(&doc, "WebhookEvent"),
        ["data", "timestamp", "type"]
    );
    assert_eq!(
        properties(&doc, "WebhookData"),
        ["identity", "participant", "recording", "room", "track"]
    );
    let kinds = doc["components"]["schemas"]["WebhookKind"].to_string();
    for kind in [
        "room.started",
        "room.finished",
        "participant.joined",
        "participant.left",
        "track.published",
        "track.unpublished",
        "recording.started",
        "recording.finished",
    ] {
        assert!(kinds.contains(&format!("\"{kind}\"")), "{kinds}");
    }
}

/// The recording schemas name every field the API and the webhooks send (a recording
/// with every optional field set).
#[test]
fn recording_schemas_match_the_bodies() {
    use crate::record::manifest::{FileInfo, RecordingInfo, RecordingState};
    let doc = serde_json::to_value(crate::api::openapi::document()).unwrap();
    let file = FileInfo {
        name: "a-p1-m0-video-0.mp4".into(),
        identity: "a".into(),
        mid: "0".into(),
        kind: "video".into(),
        codec: "vp8".into(),
        width: Some(640),
        height: Some(360),
        started_at: "2026-12-06T10:00:00.000Z".into(),
        start_unix_micros: 1,
        first_timestamp: 2,
        clock_rate: 90_000,
        bytes: 3,
        samples: 4,
        duration_seconds: 0.5,
        complete: true,
    };
    let info = RecordingInfo {
        id: "r1".into(),
        room: "demo".into(),
        state: RecordingState::Failed,
        identities: Some(vec!["a".into()]),
        started_at: "2026-12-06T10:00:00.000Z".into(),
        ended_at: Some("2026-12-06T10:00:01.000Z".into()),
        error: Some("write failed".into()),
        path: "demo/r1".into(),
        bytes: 3,
        files: vec![file],
    };
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(keys(&v), properties(&doc, "RecordingInfo"));
    assert_eq!(keys(&v["files"][0]), properties(&doc, "FileInfo"));
    assert_eq!(
        keys(&serde_json::json!({"recordings": []})),
        properties(&doc, "RecordingList")
    );
}
