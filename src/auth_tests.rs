use std::time::Duration;

use super::*;

const KEY: &str = "test-signing-key-0123456789abcdef";
const HOUR: Duration = Duration::from_secs(3600);

fn grants(publish: bool, subscribe: bool) -> Grants {
    Grants {
        publish,
        subscribe,
        admin: false,
    }
}

fn jwt_only() -> Authority {
    Authority::new(None, Some(KEY))
}

#[test]
fn a_valid_token_grants_its_room_and_actions() {
    let t = mint(
        KEY,
        "r1",
        "alice",
        Some("Alice".into()),
        grants(true, false),
        HOUR,
    )
    .unwrap();
    let claims = jwt_only()
        .check(Some(&t), "r1", Action::Publish)
        .unwrap()
        .expect("claims");
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.name.as_deref(), Some("Alice"));
    let wildcard = mint(KEY, "*", "bob", None, grants(false, true), HOUR).unwrap();
    assert!(jwt_only()
        .check(Some(&wildcard), "any", Action::Subscribe)
        .is_ok());
    let admin = mint(
        KEY,
        "r1",
        "root",
        None,
        Grants {
            admin: true,
            ..Grants::default()
        },
        HOUR,
    )
    .unwrap();
    assert!(jwt_only()
        .check(Some(&admin), "r1", Action::Publish)
        .is_ok());
}

#[test]
fn each_refusal_has_its_status() {
    let a = jwt_only();
    let ok = mint(KEY, "r1", "alice", None, grants(true, false), HOUR).unwrap();
    // 401: none, garbage, tampered, wrong key, expired.
    assert!(matches!(
        a.check(None, "r1", Action::Publish),
        Err(AuthError::Unauthenticated(_))
    ));
    assert!(matches!(
        a.check(Some("nope"), "r1", Action::Publish),
        Err(AuthError::Unauthenticated(_))
    ));
    let mut tampered = ok.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        a.check(Some(&tampered), "r1", Action::Publish),
        Err(AuthError::Unauthenticated(_))
    ));
    let other_key = mint(
        "another-key-0123456789abcdefghij",
        "r1",
        "alice",
        None,
        grants(true, true),
        HOUR,
    )
    .unwrap();
    assert!(matches!(
        a.check(Some(&other_key), "r1", Action::Publish),
        Err(AuthError::Unauthenticated(_))
    ));
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims {
            room: "r1".into(),
            sub: "alice".into(),
            name: None,
            grants: grants(true, true),
            exp: 1_000_000,
            iat: None,
        },
        &EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap();
    assert!(matches!(
        a.check(Some(&expired), "r1", Action::Publish),
        Err(AuthError::Unauthenticated(_))
    ));
    // 403: another room, a missing grant.
    assert!(matches!(
        a.check(Some(&ok), "r2", Action::Publish),
        Err(AuthError::Forbidden(_))
    ));
    assert!(matches!(
        a.check(Some(&ok), "r1", Action::Subscribe),
        Err(AuthError::Forbidden(_))
    ));
}

#[test]
fn nbf_in_the_future_is_refused() {
    let a = Authority::new(None, Some(KEY));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |nbf: u64| {
        let claims = serde_json::json!({
            "room": "r1", "sub": "alice", "grants": {"publish": true},
            "exp": now + 3600, "nbf": nbf,
        });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap()
    };
    assert!(matches!(
        a.check(Some(&token(now + 600)), "r1", Action::Publish),
        Err(AuthError::Unauthenticated(_))
    ));
    assert!(a
        .check(Some(&token(now - 10)), "r1", Action::Publish)
        .is_ok());
}

#[test]
fn identities_from_tokens_are_checked() {
    assert!(super::valid_identity("alice"));
    assert!(super::valid_identity("José Núñez"));
    assert!(!super::valid_identity(""));
    assert!(!super::valid_identity("   "));
    assert!(!super::valid_identity("a\nb"));
    assert!(!super::valid_identity(&"x".repeat(65)));
}

#[test]
fn modes() {
    assert_eq!(Authority::new(None, None).mode(), "open");
    assert!(Authority::new(None, None)
        .check(None, "r", Action::Publish)
        .is_ok());
    let s = Authority::new(Some("static".into()), None);
    assert_eq!(s.mode(), "token");
    assert!(s.check(Some("static"), "r", Action::Publish).is_ok());
    assert!(s.check(Some("other"), "r", Action::Publish).is_err());
    // Both: the static token still works, and JWTs too.
    let both = Authority::new(Some("static".into()), Some(KEY));
    assert_eq!(both.mode(), "jwt");
    assert!(both.check(Some("static"), "r", Action::Subscribe).is_ok());
    let t = mint(KEY, "r", "x", None, grants(false, true), HOUR).unwrap();
    assert!(both.check(Some(&t), "r", Action::Subscribe).is_ok());
}
