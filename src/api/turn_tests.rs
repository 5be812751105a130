//! Tests of [`super`]: the credential against an independently computed vector, the
//! username's shape and expiry, identity sanitizing, the `Link` text and the checks of
//! the flags.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::config::{check_turn as check_config, MAX_TTL};

const SECRET: &str = "north-wind-turn-secret";

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn rest(ttl: Duration) -> TurnRest {
    TurnRest::new(
        vec![
            "turn:turn.example.org:3478?transport=udp".into(),
            "turns:turn.example.org:443?transport=tcp".into(),
        ],
        SECRET.as_bytes(),
        ttl,
    )
}

#[test]
fn known_vector() {
    // Computed independently with OpenSSL:
    //   printf '%s' '1700000000:alice' \
    //     | openssl dgst -sha1 -hmac 'north-wind-turn-secret' -binary | base64
    //   ejrnBELadoQ6f5+B6Cv64E/BhmI=
    let ttl = Duration::from_secs(3600);
    let c = rest(ttl).credentials(Some("alice"), at(1_700_000_000 - 3600));
    assert_eq!(c.username, "1700000000:alice");
    assert_eq!(c.credential, "ejrnBELadoQ6f5+B6Cv64E/BhmI=");
}

#[test]
fn username_is_expiry_then_identity() {
    let ttl = Duration::from_secs(6 * 3600);
    let now = at(1_800_000_000);
    let c = rest(ttl).credentials(Some("bob"), now);
    let (expiry, identity) = c.username.split_once(':').expect("a colon");
    assert_eq!(expiry.parse::<u64>().unwrap(), 1_800_000_000 + 6 * 3600);
    assert_eq!(identity, "bob");
    // The same input gives the same credential; another expiry another one.
    assert_eq!(rest(ttl).credentials(Some("bob"), now), c);
    let later = rest(ttl).credentials(Some("bob"), at(1_800_000_001));
    assert_ne!(later.credential, c.credential);
    assert_eq!(c.credential.len(), 28, "base64 of 20 bytes, padded");
    // Sub-second parts of the clock are cut, and a clock before 1970 gives no panic.
    let c = rest(ttl).credentials(Some("bob"), now + Duration::from_millis(999));
    assert!(c.username.starts_with("1800021600:"), "{}", c.username);
    let c = rest(ttl).credentials(Some("bob"), UNIX_EPOCH - Duration::from_secs(5));
    assert_eq!(c.username, "21600:bob");
}

#[test]
fn without_an_identity_a_random_one() {
    let r = rest(Duration::from_secs(60));
    let a = r.credentials(None, at(0));
    let b = r.credentials(None, at(0));
    let id = a.username.strip_prefix("60:").expect("expiry first");
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_ne!(a.username, b.username, "fresh per call");
    // An identity with nothing usable in it is replaced by a random one too.
    let c = r.credentials(Some("\"\"::  "), at(0));
    assert_eq!(c.username.len(), "60:".len() + 16, "{}", c.username);
}

#[test]
fn identities_are_sanitized_and_capped() {
    assert_eq!(sanitize_identity("alice").as_deref(), Some("alice"));
    assert_eq!(
        sanitize_identity("Ann Lee.2~x-y_z").as_deref(),
        Some("Ann_Lee.2~x-y_z")
    );
    // Quotes, colons, separators, non-ASCII: each one character `_`.
    assert_eq!(
        sanitize_identity("a\"b:c;d,e<f>\\g").as_deref(),
        Some("a_b_c_d_e_f__g")
    );
    assert_eq!(sanitize_identity("zoë").as_deref(), Some("zo_"));
    assert_eq!(sanitize_identity(""), None);
    assert_eq!(sanitize_identity("日本"), None);
    assert_eq!(sanitize_identity("---"), None);
    let long = "x".repeat(500);
    assert_eq!(sanitize_identity(&long).unwrap().len(), MAX_IDENTITY_LEN);
    // A hostile identity ends up as safe header text.
    let c = rest(Duration::from_secs(60)).credentials(Some("e\"vil\r\n: x"), at(0));
    assert_eq!(c.username, "60:e_vil____x");
}

#[test]
fn link_header_text() {
    let r = rest(Duration::from_secs(3600));
    let links = r.links(Some("alice"), at(1_700_000_000 - 3600));
    assert_eq!(links.len(), 2, "one per URL");
    assert_eq!(
        links[0],
        "<turn:turn.example.org:3478?transport=udp>; rel=\"ice-server\"; \
         username=\"1700000000:alice\"; credential=\"ejrnBELadoQ6f5+B6Cv64E/BhmI=\"; \
         credential-type=\"password\""
    );
    assert!(links[1].starts_with("<turns:turn.example.org:443?transport=tcp>; "));
    assert!(links[1]
        .ends_with("credential=\"ejrnBELadoQ6f5+B6Cv64E/BhmI=\"; credential-type=\"password\""));
    for l in &links {
        assert!(HeaderValue::from_str(l).is_ok(), "{l}");
    }
    // append_links: nothing without TURN, both links with it.
    let mut h = HeaderMap::new();
    append_links(&mut h, None, Some("alice"), "post");
    assert!(h.is_empty());
    append_links(&mut h, Some(&r), Some("alice"), "post");
    assert_eq!(h.get_all(header::LINK).iter().count(), 2);
}

#[test]
fn config_checks() {
    let url = |u: &str| vec![u.to_string()];
    let ok = Duration::from_secs(6 * 3600);
    let secret = Some("0123456789abcdef");
    assert!(check_config(&[], None, ok).is_ok(), "off");
    for good in [
        "turn:turn.example.org:3478?transport=udp",
        "turns:turn.example.org:443?transport=tcp",
        "turn:192.0.2.7",
        "turn:[2001:db8::1]:3478",
    ] {
        assert!(check_config(&url(good), secret, ok).is_ok(), "{good}");
    }
    let err = |urls: &[String], secret: Option<&str>, ttl: Duration| {
        check_config(urls, secret, ttl).expect_err("must be refused")
    };
    assert!(err(&url("turn:t.example.org"), None, ok).contains("--turn-secret"));
    assert!(err(&[], secret, ok).contains("--turn-url"));
    for bad in [
        "stun:t.example.org",
        "http://t.example.org",
        "turn:",
        "turn:?transport=udp",
        "turn:t.example.org>; rel=\"x\"",
        "turn:t example",
        "turn:t.example.org\r\nX: y",
    ] {
        assert!(err(&url(bad), secret, ok).contains("--turn-url"), "{bad}");
    }
    assert!(err(&url(&format!("turn:{}", "a".repeat(300))), secret, ok).contains("256"));
    assert!(err(&url("turn:t"), Some("short"), ok).contains("at least 16"));
    assert!(err(&url("turn:t"), secret, Duration::from_secs(5)).contains("--turn-ttl"));
    assert!(err(&url("turn:t"), secret, MAX_TTL * 2).contains("--turn-ttl"));
}
