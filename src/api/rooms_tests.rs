//! The room API through the router, no server needed (`tower::ServiceExt::oneshot`);
//! the room actors behind them are real. The OpenAPI document's tests
//! (`openapi_tests.rs`) share these helpers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;
use tower::ServiceExt;

use crate::auth::{Authority, Grants};
use crate::limits::RoomLimits;

const OBS: &str = include_str!("../../tests/fixtures/obs-offer.sdp");
const KEY: &str = "room-api-test-key";

/// The whole API on a single node with this access policy and these room limits.
fn app_with(auth: Authority, limits: RoomLimits) -> Router {
    crate::api::sessions::tests::test_app(auth, limits, true, Arc::new([]))
}

/// An open (development) server without limits.
pub(super) fn open_app() -> Router {
    app_with(Authority::new(None, None), RoomLimits::default())
}

fn jwt(room: &str, sub: &str, grants: Grants) -> String {
    crate::auth::mint(KEY, room, sub, None, grants, Duration::from_secs(600)).unwrap()
}

fn admin() -> Grants {
    Grants {
        admin: true,
        ..Grants::default()
    }
}

/// A WHEP offer made by a str0m peer: one audio and one video slot, with the codecs of
/// the OBS fixture (Opus, H264).
fn whep_offer() -> String {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_h264(true)
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = api.apply().expect("changes");
    offer.to_sdp_string()
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    body: String,
}

impl Answer {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// A problem+json answer with this status.
    #[track_caller]
    fn assert_problem(&self, want: u16) {
        assert_eq!(self.status.as_u16(), want, "body: {}", self.body);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let v = self.json();
        assert_eq!(v["status"], want);
        assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
    }
}

/// Send `method uri` with an optional bearer token and an optional JSON body.
pub(super) async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Answer {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if json.is_some() {
        r = r.header(header::CONTENT_TYPE, "application/json");
    }
    let body = json.map(|j| Body::from(j.to_owned())).unwrap_or_default();
    send(app, r.body(body).unwrap()).await
}

async fn send(app: &Router, r: Request<Body>) -> Answer {
    let res = app.clone().oneshot(r).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// POST an SDP offer to a WHIP or WHEP endpoint.
async fn join(app: &Router, uri: &str, sdp: &str, token: Option<&str>) -> Answer {
    let mut r = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/sdp");
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    send(app, r.body(Body::from(sdp.to_owned())).unwrap()).await
}

/// Publish the OBS fixture as `name` in `room`; returns the session's `Location`.
pub(super) async fn publish(app: &Router, room: &str, name: &str) -> String {
    let a = join(app, &format!("/whip/{room}?name={name}"), OBS, None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.headers[header::LOCATION].to_str().unwrap().to_owned()
}

async fn mute(app: &Router, uri: &str, track: &str, muted: bool) -> Answer {
    let body = serde_json::json!({"track": track, "muted": muted}).to_string();
    call(app, "POST", uri, None, Some(&body)).await
}

/// The `muted` flag of `identity`'s `track` in a room detail.
fn muted(detail: &Value, identity: &str, track: &str) -> bool {
    let p = detail["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == identity)
        .unwrap_or_else(|| panic!("no {identity} in {detail}"));
    let t = p["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == track)
        .unwrap_or_else(|| panic!("no {track} in {p}"));
    t["muted"].as_bool().unwrap()
}

#[tokio::test]
async fn jwt_needs_the_admin_grant_and_star_to_list() {
    let app = app_with(Authority::new(None, Some(KEY)), RoomLimits::default());

    // No token: 401 with a challenge; on every route.
    let a = call(&app, "GET", "/api/rooms", None, None).await;
    a.assert_problem(401);
    assert_eq!(a.headers[header::WWW_AUTHENTICATE], "Bearer");
    call(&app, "GET", "/api/rooms/studio", None, None)
        .await
        .assert_problem(401);
    call(&app, "DELETE", "/api/rooms/studio", None, None)
        .await
        .assert_problem(401);
    call(&app, "GET", "/api/rooms", Some("garbage"), None)
        .await
        .assert_problem(401);

    // A valid token without the admin grant: 403, even for `*`.
    let viewer = jwt(
        "*",
        "eve",
        Grants {
            publish: true,
            subscribe: true,
            admin: false,
        },
    );
    for (method, uri) in [
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/studio"),
        ("DELETE", "/api/rooms/studio"),
        ("DELETE", "/api/rooms/studio/participants/studio"),
    ] {
        call(&app, method, uri, Some(&viewer), None)
            .await
            .assert_problem(403);
    }
    let a = call(
        &app,
        "POST",
        "/api/rooms/studio/participants/studio/mute",
        Some(&viewer),
        Some(r#"{"track":"camera-audio","muted":true}"#),
    )
    .await;
    a.assert_problem(403);

    // An admin token for one room covers that room, but listing needs `*`.
    let studio_admin = jwt("studio", "ops", admin());
    call(&app, "GET", "/api/rooms", Some(&studio_admin), None)
        .await
        .assert_problem(403);
    call(&app, "GET", "/api/rooms/studio", Some(&studio_admin), None)
        .await
        .assert_problem(404);
    call(&app, "GET", "/api/rooms/other", Some(&studio_admin), None)
        .await
        .assert_problem(403);

    // A publisher joins with its own token; the admins see it.
    let publisher = jwt(
        "studio",
        "studio",
        Grants {
            publish: true,
            ..Grants::default()
        },
    );
    let a = join(&app, "/whip/studio", OBS, Some(&publisher)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let star_admin = jwt("*", "ops", admin());
    let a = call(&app, "GET", "/api/rooms", Some(&star_admin), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["rooms"][0]["name"], "studio");
    let a = call(&app, "GET", "/api/rooms/studio", Some(&studio_admin), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["participants"][0]["identity"], "studio");
    // The publisher's own token does not open the room API.
    call(&app, "GET", "/api/rooms/studio", Some(&publisher), None)
        .await
        .assert_problem(403);
}

#[tokio::test]
async fn a_static_token_allows_everything() {
    let app = app_with(
        Authority::new(Some("secret".into()), None),
        RoomLimits::default(),
    );
    call(&app, "GET", "/api/rooms", None, None)
        .await
        .assert_problem(401);
    call(&app, "GET", "/api/rooms", Some("wrong"), None)
        .await
        .assert_problem(401);
    let a = call(&app, "GET", "/api/rooms", Some("secret"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json(), serde_json::json!({"node": "test", "rooms": []}));
    call(&app, "GET", "/api/rooms/none", Some("secret"), None)
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn list_detail_mute_and_remove() {
    let app = open_app();
    let a = call(&app, "GET", "/api/rooms", None, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(a.json()["rooms"], serde_json::json!([]));

    let location = publish(&app, "studio", "studio").await;
    publish(&app, "lobby", "Ann%20Lee").await;
    let a = join(&app, "/whep/studio?name=viewer", &whep_offer(), None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);

    // Sorted by name, with counts.
    let a = call(&app, "GET", "/api/rooms", None, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let rooms = a.json()["rooms"].clone();
    assert_eq!(rooms[0]["name"], "lobby");
    assert_eq!(rooms[1]["name"], "studio");
    assert_eq!(rooms[1]["publishers"], 1);
    assert_eq!(rooms[1]["viewers"], 1);
    assert!(rooms[1]["participants"].as_u64().unwrap() >= 1, "{rooms}");

    let a = call(&app, "GET", "/api/rooms/studio", None, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let detail = a.json();
    assert_eq!(detail["name"], "studio");
    assert_eq!(detail["viewers"], 1);
    let studio = detail["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == "studio")
        .unwrap_or_else(|| panic!("{detail}"))
        .clone();
    assert_eq!(studio["publishing"], true);
    let mut ids: Vec<&str> = studio["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["camera-audio", "camera-video"]);
    assert!(!muted(&detail, "studio", "camera-audio"));

    // Mute, then unmute.
    let uri = "/api/rooms/studio/participants/studio/mute";
    let a = mute(&app, uri, "camera-audio", true).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let detail = call(&app, "GET", "/api/rooms/studio", None, None)
        .await
        .json();
    assert!(muted(&detail, "studio", "camera-audio"));
    assert!(!muted(&detail, "studio", "camera-video"));
    let a = mute(&app, uri, "camera-audio", false).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let detail = call(&app, "GET", "/api/rooms/studio", None, None)
        .await
        .json();
    assert!(!muted(&detail, "studio", "camera-audio"));

    // No such track, participant, room.
    mute(&app, uri, "screen-video", true)
        .await
        .assert_problem(404);
    mute(&app, uri, "bogus", true).await.assert_problem(404);
    mute(
        &app,
        "/api/rooms/studio/participants/nobody/mute",
        "camera-audio",
        true,
    )
    .await
    .assert_problem(404);
    mute(
        &app,
        "/api/rooms/nowhere/participants/studio/mute",
        "camera-audio",
        true,
    )
    .await
    .assert_problem(404);

    // An identity with a space, percent-encoded in the path.
    let a = call(&app, "GET", "/api/rooms/lobby", None, None).await;
    assert_eq!(a.json()["participants"][0]["identity"], "Ann Lee");
    let a = call(
        &app,
        "DELETE",
        "/api/rooms/lobby/participants/Ann%20Lee",
        None,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);

    // Remove: the identity's sessions end.
    let a = call(
        &app,
        "DELETE",
        "/api/rooms/studio/participants/studio",
        None,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    call(&app, "DELETE", &location, None, None)
        .await
        .assert_problem(404);
    let a = call(&app, "GET", "/api/rooms/studio", None, None).await;
    if a.status == StatusCode::OK {
        let d = a.json();
        let ids: Vec<&Value> = d["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["identity"])
            .collect();
        assert!(!ids.contains(&&Value::from("studio")), "{d}");
    } else {
        a.assert_problem(404);
    }
    call(
        &app,
        "DELETE",
        "/api/rooms/studio/participants/studio",
        None,
        None,
    )
    .await
    .assert_problem(404);
    call(
        &app,
        "DELETE",
        "/api/rooms/nowhere/participants/studio",
        None,
        None,
    )
    .await
    .assert_problem(404);
}

#[tokio::test]
async fn close_ends_every_session() {
    let app = open_app();
    let alice = publish(&app, "meeting", "alice").await;
    let bob = publish(&app, "meeting", "bob").await;
    let a = join(&app, "/whep/meeting?name=carol", &whep_offer(), None).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let carol = a.headers[header::LOCATION].to_str().unwrap().to_owned();
    let a = call(&app, "GET", "/api/rooms/meeting", None, None).await;
    assert_eq!(a.json()["participants"].as_array().unwrap().len(), 3);

    let a = call(&app, "DELETE", "/api/rooms/meeting", None, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    call(&app, "GET", "/api/rooms/meeting", None, None)
        .await
        .assert_problem(404);
    call(&app, "DELETE", "/api/rooms/meeting", None, None)
        .await
        .assert_problem(404);
    for session in [alice, bob, carol] {
        call(&app, "DELETE", &session, None, None)
            .await
            .assert_problem(404);
    }
    let a = call(&app, "GET", "/api/rooms", None, None).await;
    assert_eq!(a.json()["rooms"], serde_json::json!([]));
}

#[tokio::test]
async fn methods_media_types_and_bad_requests() {
    let app = open_app();
    for (method, uri, allow) in [
        ("POST", "/api/rooms", "GET, HEAD"),
        ("DELETE", "/api/rooms", "GET, HEAD"),
        ("PUT", "/api/rooms/studio", "GET, HEAD, DELETE"),
        ("POST", "/api/rooms/studio", "GET, HEAD, DELETE"),
        ("GET", "/api/rooms/studio/participants/a", "DELETE"),
        ("GET", "/api/rooms/studio/participants/a/mute", "POST"),
        ("PUT", "/api/rooms/studio/participants/a/mute", "POST"),
    ] {
        let a = call(&app, method, uri, None, None).await;
        a.assert_problem(405);
        assert_eq!(a.headers[header::ALLOW], allow, "{method} {uri}");
    }
    let a = call(&app, "HEAD", "/api/rooms", None, None).await;
    assert_eq!(a.status, StatusCode::OK);

    let uri = "/api/rooms/studio/participants/a/mute";
    let r = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"track":"camera-audio","muted":true}"#))
        .unwrap();
    let a = send(&app, r).await;
    a.assert_problem(415);
    assert_eq!(a.headers["accept-post"], "application/json");
    let r = Request::builder()
        .method("POST")
        .uri(uri)
        .body(Body::from(r#"{"track":"camera-audio","muted":true}"#))
        .unwrap();
    send(&app, r).await.assert_problem(415);

    for body in [
        "{",
        "not json",
        r#"{"track":"camera-audio"}"#,
        r#"{"muted":true}"#,
        r#"{"track":"camera-audio","muted":"yes"}"#,
        r#"{"track":"camera-audio","muted":true,"extra":1}"#,
    ] {
        call(&app, "POST", uri, None, Some(body))
            .await
            .assert_problem(400);
    }

    // Room names and identities as WHIP validates them.
    call(&app, "GET", "/api/rooms/bad%20name", None, None)
        .await
        .assert_problem(400);
    let long = "a".repeat(65);
    call(&app, "GET", &format!("/api/rooms/{long}"), None, None)
        .await
        .assert_problem(400);
    call(
        &app,
        "DELETE",
        "/api/rooms/ok/participants/no%2Fslash",
        None,
        None,
    )
    .await
    .assert_problem(400);
    call(&app, "GET", "/api/rooms/unknown", None, None)
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn room_limits_answer_429() {
    let limits = RoomLimits {
        max_participants: 1,
        ..RoomLimits::default()
    };
    let app = app_with(Authority::new(None, None), limits);
    publish(&app, "small", "first").await;
    let a = join(&app, "/whip/small?name=second", OBS, None).await;
    a.assert_problem(429);
    let a = call(&app, "GET", "/api/rooms/small", None, None).await;
    assert_eq!(a.json()["participants"].as_array().unwrap().len(), 1);
}
