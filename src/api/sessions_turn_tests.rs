//! TURN REST credentials (`--turn-url`, `--turn-secret`) in the `Link` headers of the
//! WHIP/WHEP POST's 201 and of OPTIONS, only for authorized callers.

use super::*;

/// A server with `--turn-url` (and `auth_key`, when given) next to the static STUN link.
fn turn_app(auth_key: Option<&str>) -> Router {
    let auth = crate::auth::Authority::new(None, auth_key);
    let ice = vec!["<stun:stun.example.org:3478>; rel=\"ice-server\"".to_string()];
    let mut state = test_state(auth, RoomLimits::default(), true, ice.into());
    let urls = vec!["turn:127.0.0.1:3478?transport=udp".to_string()];
    let ttl = std::time::Duration::from_secs(3600);
    state.turn = Some(Arc::new(crate::api::turn::TurnRest::new(
        urls,
        b"turn-secret-0123456789",
        ttl,
    )));
    router(state)
}

/// The TURN `Link` values of a response, each checked against the secret: returns the
/// usernames.
fn turn_usernames(h: &axum::http::HeaderMap) -> Vec<String> {
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        b"turn-secret-0123456789",
    );
    let mut out = Vec::new();
    for v in h.get_all(header::LINK).iter().map(|v| v.to_str().unwrap()) {
        let Some(rest) =
            v.strip_prefix("<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\"; username=\"")
        else {
            assert!(!v.contains("credential"), "{v}");
            continue;
        };
        let (user, rest) = rest.split_once('"').unwrap();
        let tag = aws_lc_rs::hmac::sign(&key, user.as_bytes());
        use base64::Engine;
        let cred = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        assert_eq!(
            rest,
            format!("; credential=\"{cred}\"; credential-type=\"password\"")
        );
        out.push(user.to_owned());
    }
    out
}

#[tokio::test]
async fn turn_credentials_in_link_headers_only_for_authorized_callers() {
    // Without --turn-url: the static STUN link only.
    let (s, h, _) = post(&app(None), "/whep/tu", &offer(Direction::RecvOnly, 1)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(turn_usernames(&h).is_empty());
    // Open server: a 201 carries them (identity from ?name=); an OPTIONS does not.
    let app = turn_app(None);
    let (s, h, b) = post(
        &app,
        "/whep/tu?name=ann%20lee",
        &offer(Direction::RecvOnly, 1),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let users = turn_usernames(&h);
    assert_eq!(users.len(), 1, "{h:?}");
    let (expiry, id) = users[0].split_once(':').unwrap();
    assert!(expiry.parse::<u64>().unwrap() > 1_700_000_000);
    assert_eq!(id, "ann_lee");
    assert!(h[header::LINK].to_str().unwrap().starts_with("<stun:"));
    let (_, h, _) = send(
        &app,
        req("OPTIONS", "/whep/tu").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(turn_usernames(&h).is_empty() && h.contains_key(header::LINK));
    // With auth: only requests that passed it, with the token's identity.
    let key = "turn-test-auth-key-0123456789";
    let app = turn_app(Some(key));
    let grants = crate::auth::Grants {
        subscribe: true,
        ..Default::default()
    };
    let ttl = std::time::Duration::from_secs(60);
    let jwt = crate::auth::mint(key, "tu", "zoë:\"x\"", None, grants, ttl).unwrap();
    let with = |method: &str, token: Option<&str>| {
        let mut r = req(method, "/whep/tu").header(header::CONTENT_TYPE, "application/sdp");
        if let Some(t) = token {
            r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        r.body(Body::from(offer(Direction::RecvOnly, 1))).unwrap()
    };
    let (s, h, _) = send(&app, with("POST", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(turn_usernames(&h).is_empty());
    let (_, h, _) = send(&app, with("OPTIONS", Some("wrong"))).await;
    assert!(turn_usernames(&h).is_empty());
    let (_, h, _) = send(&app, with("OPTIONS", Some(&jwt))).await;
    assert!(turn_usernames(&h)[0].ends_with(":zo___x_"), "{h:?}");
    let (s, h, _) = send(&app, with("POST", Some(&jwt))).await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(turn_usernames(&h)[0].ends_with(":zo___x_"), "{h:?}");
    // A CORS preflight never reaches the handler: no ICE servers at all.
    let pre = req("OPTIONS", "/whep/tu")
        .header(header::ORIGIN, "http://example.org")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::AUTHORIZATION, format!("Bearer {jwt}"))
        .body(Body::empty())
        .unwrap();
    let (_, h, _) = send(&app, pre).await;
    assert!(turn_usernames(&h).is_empty());
}
