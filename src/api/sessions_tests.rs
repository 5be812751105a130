//! Status-code tests of the WHIP/WHEP resources through the router, no server needed
//! (`tower::ServiceExt::oneshot`); the room actors behind them are real.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use metrics_exporter_prometheus::PrometheusBuilder;
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;
use tower::ServiceExt;

use crate::api::{router, AppState};
use crate::limits::RoomLimits;
use crate::metrics::Meters;
use crate::net::{RoomTable, UdpEndpoint};
use crate::runtime::{RoomContext, Rooms};

const OBS: &str = include_str!("../../tests/fixtures/obs-offer.sdp");

fn app(token: Option<&str>) -> Router {
    app_with(token, true)
}

fn app_with(token: Option<&str>, ready: bool) -> Router {
    let auth = crate::auth::Authority::new(token.map(String::from), None);
    let ice = vec!["<stun:stun.example.org:3478>; rel=\"ice-server\"".to_string()];
    test_app(auth, RoomLimits::default(), ready, ice.into())
}

/// The whole API of a single node with real room actors, for `oneshot` tests (shared
/// with the room API's tests).
pub(in crate::api) fn test_app(
    auth: crate::auth::Authority,
    limits: RoomLimits,
    ready: bool,
    ice_links: Arc<[String]>,
) -> Router {
    router(test_state(auth, limits, ready, ice_links))
}

/// The state behind [`test_app`], for tests that change a setting first.
fn test_state(
    auth: crate::auth::Authority,
    limits: RoomLimits,
    ready: bool,
    ice_links: Arc<[String]>,
) -> AppState {
    let addr = "127.0.0.1:0".parse().unwrap();
    let endpoint = UdpEndpoint::bind(addr, vec!["127.0.0.1:0".parse().unwrap()]).unwrap();
    let rooms = Rooms::new(
        Arc::new(RoomTable::default()),
        RoomContext {
            endpoint,
            tcp: None,
            meters: Meters::new(),
            limits,
            webhooks: crate::webhook::Webhooks::disabled(),
            archive: crate::archive::Archive::disabled(),
        },
    );
    let ready = Arc::new(AtomicBool::new(ready));
    let cluster = crate::cluster::Cluster::new(
        crate::cluster::ClusterConfig {
            node_id: "test".into(),
            internal_url: String::new(),
            public_url: "http://127.0.0.1:8080".into(),
            ice: vec![],
            multi_node: false,
            room_lease: crate::cluster::ClusterConfig::ROOM_LEASE,
            node_ttl: crate::cluster::ClusterConfig::NODE_TTL,
        },
        Arc::new(crate::cluster::MemoryDirectory::new()),
        Arc::clone(&rooms),
        Arc::clone(&ready),
        Default::default(),
    );
    AppState {
        rooms,
        auth: Arc::new(auth),
        ice_links_public: ice_links
            .iter()
            .filter(|l| !l.contains("credential="))
            .cloned()
            .collect(),
        ice_links,
        turn: None,
        admission: Arc::new(crate::api::admission::Admission::unlimited()),
        event_streams: Default::default(),
        prometheus: PrometheusBuilder::new().build_recorder().handle(),
        ready,
        draining: Arc::new(tokio::sync::watch::channel(false).0),
        node: Arc::new(crate::api::NodeInfo {
            node_id: "test".into(),
            candidates: vec!["127.0.0.1:7880".into()],
            version: "0",
        }),
        cluster,
        routing: crate::config::Routing::Proxy,
        internal_secret: None,
        http: reqwest::Client::new(),
        archive: crate::archive::Archive::disabled(),
    }
}

/// A browser-like offer made by a str0m peer: VP8 + Opus, in the given direction.
fn offer(dir: Direction, videos: usize) -> String {
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, dir, None, None, None);
    for _ in 0..videos {
        api.add_media(MediaKind::Video, dir, None, None, None);
    }
    let (offer, _pending) = api.apply().expect("changes");
    offer.to_sdp_string()
}

fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

async fn send(app: &Router, r: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.clone().oneshot(r).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn post(app: &Router, uri: &str, sdp: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = req("POST", uri)
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from(sdp.to_owned()))
        .unwrap();
    send(app, r).await
}

fn assert_problem(status: StatusCode, headers: &axum::http::HeaderMap, body: &str, want: u16) {
    assert_eq!(status.as_u16(), want, "body: {body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    let v: serde_json::Value = serde_json::from_str(body).expect("problem json");
    assert_eq!(v["status"], want);
    assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
}

#[tokio::test]
async fn whip_obs_offer_created_then_deleted() {
    let app = app(None);
    let (status, h, body) = post(&app, "/whip/obs", OBS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(h[header::CONTENT_TYPE], "application/sdp");
    let location = h[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/whip/obs/"), "{location}");
    let etag = h[header::ETAG].to_str().unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(
        h[header::LINK],
        "<stun:stun.example.org:3478>; rel=\"ice-server\""
    );
    assert!(body.contains("a=recvonly"));
    assert!(body.contains("typ host"));

    // A room takes many publishers, and one camera session per identity: a new one
    // (a page reload, a reconnect) replaces the old, which ends.
    let (status, h, body) = post(&app, "/whip/obs?name=studio", OBS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let old = h[header::LOCATION].to_str().unwrap().to_owned();
    let (status, h, body) = post(&app, "/whip/obs?name=studio", OBS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(h[header::LOCATION].to_str().unwrap(), old);
    let (status, _, _) = send(&app, req("DELETE", &old).body(Body::empty()).unwrap()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the replaced session is gone"
    );
    let (status, _, body) = post(&app, "/whip/obs?name=studio&source=screen", OBS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for bad in [
        "/whip/obs?source=tv",
        "/whip/obs?name=%00x",
        "/whip/obs?participant=a",
    ] {
        let (status, h, body) = post(&app, bad, OBS).await;
        assert_problem(status, &h, &body, 400);
    }

    let (status, _, _) = send(&app, req("DELETE", &location).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, h, body) = send(&app, req("DELETE", &location).body(Body::empty()).unwrap()).await;
    assert_problem(status, &h, &body, 404);

    // The room is free again.
    let (status, _, body) = post(&app, "/whip/obs", OBS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn whep_before_publisher_and_codec_mismatch() {
    let app = app(None);
    let (status, h, body) = post(&app, "/whep/r1", &offer(Direction::RecvOnly, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(h[header::LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/whep/r1/"));
    assert!(body.contains("a=sendonly"));
    // An H264 publisher arrives; a VP8-only viewer now cannot be served.
    let (status, _, body) = post(&app, "/whip/r1", OBS).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, h, body) = post(&app, "/whep/r1", &offer(Direction::RecvOnly, 1)).await;
    assert_problem(status, &h, &body, 422);
    assert!(body.contains("H264"), "{body}");
}

#[tokio::test]
async fn bad_offers() {
    let app = app(None);
    let r = req("POST", "/whip/x")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(OBS))
        .unwrap();
    let (status, h, body) = send(&app, r).await;
    assert_problem(status, &h, &body, 415);
    assert_eq!(h["accept-post"], "application/sdp");

    let (status, h, body) = post(&app, "/whip/x", "v=0\r\nthis is not sdp\r\nm=audio\r\n").await;
    assert!(status == 400 || status == 422, "{status}");
    assert_problem(status, &h, &body, status.as_u16());

    let (status, h, body) = post(&app, "/whip/x", "").await;
    assert_problem(status, &h, &body, 400);

    let (status, h, body) = post(&app, "/whip/x", &offer(Direction::RecvOnly, 1)).await;
    assert_problem(status, &h, &body, 422);
    let (status, h, body) = post(&app, "/whip/x", &offer(Direction::SendOnly, 2)).await;
    assert_problem(status, &h, &body, 422);
    let (status, h, body) = post(&app, "/whep/x", &offer(Direction::Inactive, 1)).await;
    assert_problem(status, &h, &body, 422);

    let (status, h, body) = post(&app, "/whip/bad%20name", OBS).await;
    assert_problem(status, &h, &body, 400);
    let (status, h, body) = post(&app, &format!("/whip/{}", "a".repeat(65)), OBS).await;
    assert_problem(status, &h, &body, 400);

    let r = req("POST", "/whip/x")
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from(vec![0xff, 0xfe, 0x00]))
        .unwrap();
    let (status, h, body) = send(&app, r).await;
    assert_problem(status, &h, &body, 400);
}

#[tokio::test]
async fn patch_trickle_and_restart() {
    let app = app(None);
    let (_, h, _) = post(&app, "/whip/p", OBS).await;
    let location = h[header::LOCATION].to_str().unwrap().to_owned();
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    // Trickle: the offer's own ufrag and pwd (tests/fixtures/obs-offer.sdp).
    let frag = "a=ice-ufrag:Wq8r\r\na=ice-pwd:u3TbLk9fP0xZc2NvYd7Hm1Qa\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n";
    // ICE restart: a new ufrag and pwd.
    let restart = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n";
    let patch = |ct: &str, if_match: Option<&str>, uri: &str, body: &str| {
        let mut r = req("PATCH", uri).header(header::CONTENT_TYPE, ct);
        if let Some(m) = if_match {
            r = r.header(header::IF_MATCH, m);
        }
        r.body(Body::from(body.to_owned())).unwrap()
    };
    let (s, h, b) = send(&app, patch("application/sdp", None, &location, frag)).await;
    assert_problem(s, &h, &b, 415);
    assert_eq!(h["accept-patch"], "application/trickle-ice-sdpfrag");
    let (s, _, _) = send(
        &app,
        patch("application/trickle-ice-sdpfrag", None, &location, frag),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // If-Match (RFC 9725 §4.3.1): `*` or the session's tag pass, anything else is 412;
    // an ICE restart needs it (428).
    let sdpfrag = "application/trickle-ice-sdpfrag";
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    let matrix: [(Option<&str>, &str, u16); 7] = [
        (Some("*"), frag, 204),
        (Some(etag.as_str()), frag, 204),
        (Some(listed.as_str()), frag, 204),
        (Some("\"bogus\""), frag, 412),
        (Some(weak.as_str()), frag, 412),
        (None, restart, 428),
        (Some("\"bogus\""), restart, 412),
    ];
    for (if_match, body, want) in matrix {
        let (s, h, b) = send(&app, patch(sdpfrag, if_match, &location, body)).await;
        if want == 204 {
            assert_eq!(s, StatusCode::NO_CONTENT, "{if_match:?}: {b}");
        } else {
            assert_problem(s, &h, &b, want);
        }
    }
    // A restart without a pwd, or with one too short, is 400 and changes nothing.
    let no_pwd = "a=ice-ufrag:abcd\r\n";
    let short_pwd = "a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n";
    for body in [no_pwd, short_pwd] {
        let (s, h, b) = send(&app, patch(sdpfrag, Some(&etag), &location, body)).await;
        assert_problem(s, &h, &b, 400);
    }
    // The restart (RFC 9725 §4.3.2): 200, the server's new credentials and candidates as
    // a fragment under the offer's first m-line, a new ETag (the new server ufrag).
    let (s, h, b) = send(&app, patch(sdpfrag, Some(&etag), &location, restart)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(h[header::CONTENT_TYPE], sdpfrag);
    let new_etag = h[header::ETAG].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let ufrag = b
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("a=ice-ufrag");
    assert_eq!(new_etag, format!("\"{ufrag}\""));
    let pwd = b.lines().find_map(|l| l.strip_prefix("a=ice-pwd:"));
    assert!(pwd.is_some_and(|p| p.len() >= 22), "{b}");
    assert!(b.starts_with("a=ice-lite\r\n"), "{b}");
    for want in [
        "\r\nm=audio 9 ",
        "\r\na=mid:0\r\n",
        "\r\na=candidate:",
        "a=end-of-candidates\r\n",
    ] {
        assert!(b.contains(want), "{want:?} missing: {b}");
    }
    // The old ETag is stale now (412); the new one passes, and a trickle fragment with
    // the client's new ufrag is no restart (204).
    let (s, h, b) = send(&app, patch(sdpfrag, Some(&etag), &location, restart)).await;
    assert_problem(s, &h, &b, 412);
    let (s, _, b) = send(&app, patch(sdpfrag, Some(&new_etag), &location, restart)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    // Restarts past the per-session budget (one used above) are 429 with Retry-After.
    for n in 1..=crate::room::MAX_RESTARTS_PER_WINDOW {
        let body = format!("a=ice-ufrag:rst{n}\r\na=ice-pwd:restartpassword0123456789\r\n");
        let (s, h, b) = send(&app, patch(sdpfrag, Some("*"), &location, &body)).await;
        if n < crate::room::MAX_RESTARTS_PER_WINDOW {
            assert_eq!(s, StatusCode::OK, "restart {n}: {b}");
        } else {
            assert_problem(s, &h, &b, 429);
            let wait: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
            assert!((1..=10).contains(&wait), "Retry-After {wait}");
        }
    }
    let (s, h, b) = send(
        &app,
        patch(
            "application/trickle-ice-sdpfrag",
            None,
            &location,
            "garbage",
        ),
    )
    .await;
    assert_problem(s, &h, &b, 400);
    let unknown = format!("/whip/p/{}", "0".repeat(32));
    let (s, h, b) = send(
        &app,
        patch("application/trickle-ice-sdpfrag", None, &unknown, frag),
    )
    .await;
    assert_problem(s, &h, &b, 404);
    let (s, h, b) = send(
        &app,
        patch("application/trickle-ice-sdpfrag", None, "/whip/p/zz", frag),
    )
    .await;
    assert_problem(s, &h, &b, 404);
}

#[tokio::test]
async fn options_head_cors_and_methods() {
    let app = app(None);
    let (s, h, _) = send(&app, req("OPTIONS", "/whip/o").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["accept-post"], "application/sdp");
    assert!(h.contains_key(header::LINK));

    // A CORS preflight is answered without auth and allows the headers clients send.
    let app_auth = self::app(Some("secret"));
    let pre = req("OPTIONS", "/whip/o")
        .header(header::ORIGIN, "http://example.org")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    let (s, h, _) = send(&app_auth, pre).await;
    assert!(s.is_success(), "{s}");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("if-match"),
        "{allowed}"
    );

    let (s, h, _) = send(&app, req("HEAD", "/whep/o").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/sdp");

    let (s, h, b) = send(&app, req("GET", "/whip/o").body(Body::empty()).unwrap()).await;
    assert_problem(s, &h, &b, 405);
    assert_eq!(h[header::ALLOW], "POST, OPTIONS");
    let (s, h, b) = send(&app, req("PUT", "/whep/o/abc").body(Body::empty()).unwrap()).await;
    assert_problem(s, &h, &b, 405);
    assert!(h[header::ALLOW].to_str().unwrap().contains("DELETE"));
    let (s, h, b) = send(
        &app,
        req("DELETE", "/whep/nosuchroom/abc")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_problem(s, &h, &b, 404);
}

#[tokio::test]
async fn bearer_token() {
    let app = app(Some("secret"));
    let (s, h, b) = post(&app, "/whip/t", OBS).await;
    assert_problem(s, &h, &b, 401);
    assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
    let with = |tok: &str| {
        req("POST", "/whip/t")
            .header(header::CONTENT_TYPE, "application/sdp")
            .header(header::AUTHORIZATION, tok)
            .body(Body::from(OBS))
            .unwrap()
    };
    let (s, h, b) = send(&app, with("Bearer wrong")).await;
    assert_problem(s, &h, &b, 401);
    let (s, h, b) = send(&app, with("Basic secret")).await;
    assert_problem(s, &h, &b, 401);
    let (s, h, b) = send(&app, with("Bearer secre")).await;
    assert_problem(s, &h, &b, 401);
    let (s, h, _) = send(&app, with("Bearer secret")).await;
    assert_eq!(s, StatusCode::CREATED);
    let location = h[header::LOCATION].to_str().unwrap().to_owned();
    // A WHEP stats resource needs the token too, checked before the session is looked
    // up (this id is a WHIP session's, so with the token it is 404).
    let stats = format!("{}/stats", location.replacen("/whip/", "/whep/", 1));
    let (s, h, b) = send(&app, req("GET", &stats).body(Body::empty()).unwrap()).await;
    assert_problem(s, &h, &b, 401);
    let with_token = req("GET", &stats)
        .header(header::AUTHORIZATION, "Bearer secret")
        .body(Body::empty())
        .unwrap();
    let (s, h, b) = send(&app, with_token).await;
    assert_problem(s, &h, &b, 404);
    let (s, h, b) = send(&app, req("DELETE", &location).body(Body::empty()).unwrap()).await;
    assert_problem(s, &h, &b, 401);
    let del = req("DELETE", &location)
        .header(header::AUTHORIZATION, "bearer secret")
        .body(Body::empty())
        .unwrap();
    let (s, _, _) = send(&app, del).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn ops_and_pages() {
    let app = app(None);
    for (uri, want) in [
        ("/livez", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/", 200),
        ("/publish", 200),
        ("/watch", 200),
    ] {
        let (s, _, _) = send(&app, req("GET", uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s.as_u16(), want, "{uri}");
    }
    let (s, h, b) = send(
        &app,
        req("GET", "/assets/nope.js").body(Body::empty()).unwrap(),
    )
    .await;
    assert_problem(s, &h, &b, 404);
    let (s, h, _) = send(&app, req("GET", "/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, 200);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn whep_layer_and_stats_resources() {
    let app = app(None);
    let (status, h, body) = post(&app, "/whep/l", &offer(Direction::RecvOnly, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let location = h[header::LOCATION].to_str().unwrap().to_owned();
    let links: Vec<&str> = h
        .get_all(header::LINK)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let layer_link = format!("<{location}/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\"");
    assert!(links.contains(&layer_link.as_str()), "{links:?}");

    let layer = |ct: &str, body: &str, uri: &str| {
        req("POST", uri)
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let uri = format!("{location}/layer");
    let (s, h, b) = send(&app, layer("text/plain", "{}", &uri)).await;
    assert_problem(s, &h, &b, 415);
    let (s, h, b) = send(&app, layer("application/json", "{not json", &uri)).await;
    assert_problem(s, &h, &b, 400);
    let (s, h, b) = send(
        &app,
        layer("application/json", r#"{"mediaId":"nope"}"#, &uri),
    )
    .await;
    assert_problem(s, &h, &b, 422);
    // No publisher yet: there is no layer "h" to pick.
    let (s, h, b) = send(
        &app,
        layer("application/json", r#"{"encodingId":"h"}"#, &uri),
    )
    .await;
    assert_problem(s, &h, &b, 422);
    let (s, _, b) = send(
        &app,
        layer("application/json", r#"{"maxSpatialLayerId":0}"#, &uri),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _, _) = send(&app, layer("application/json", "{}", &uri)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let unknown = format!("/whep/l/{}/layer", "0".repeat(32));
    let (s, h, b) = send(&app, layer("application/json", "{}", &unknown)).await;
    assert_problem(s, &h, &b, 404);
    // The session's event stream: unknown session 404, malformed id 404, bad room 400.
    for (path, status) in [
        (format!("/whep/l/{}/events", "0".repeat(32)), 404),
        ("/whep/l/nope/events".to_string(), 404),
        (format!("/whep/bad%20room/{}/events", "0".repeat(32)), 400),
    ] {
        let (s, h, b) = send(&app, req("GET", &path).body(Body::empty()).unwrap()).await;
        assert_problem(s, &h, &b, status);
    }

    let (s, h, b) = send(
        &app,
        req("GET", &format!("{location}/stats"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(v["tracks"].is_array(), "{v}");
    assert_eq!(v["tracks"].as_array().unwrap().len(), 2, "{v}");
    let (s, h, b) = send(
        &app,
        req("GET", &format!("/whep/l/{}/stats", "1".repeat(32)))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_problem(s, &h, &b, 404);
}

#[tokio::test]
async fn draining_server_refuses_new_sessions_with_503() {
    let app = app_with(None, false);
    let (s, h, b) = post(&app, "/whip/d", OBS).await;
    assert_problem(s, &h, &b, 503);
    assert!(h.contains_key(header::RETRY_AFTER));
    let (s, _, _) = send(&app, req("GET", "/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

/// TURN REST credentials in the `Link` headers of POST and OPTIONS.
#[path = "sessions_turn_tests.rs"]
mod turn;
