//! Access tokens against a real `switchboard` process started with `--auth-key`: tokens
//! minted by `switchboard token` open WHIP and WHEP for their room and grant; an
//! expired, tampered or absent token is 401 (with `WWW-Authenticate: Bearer`), a token
//! for another room or without the grant is 403, each as problem+json — and a refused
//! request leaves nothing allocated (no room, no session).

mod common;

use std::process::Command;

use common::{HttpReply, Server, OBS_OFFER};

const KEY: &str = "integration-test-signing-key-01";

/// `switchboard token ...` with the test key.
fn token(args: &[&str]) -> String {
    let out = Command::new(common::server::binary())
        .env("SWITCHBOARD_AUTH_KEY", KEY)
        .arg("token")
        .args(args)
        .output()
        .expect("run switchboard token");
    assert!(
        out.status.success(),
        "switchboard token {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn problem(what: &str, r: &HttpReply, status: u16) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json")),
        "{what}: {r:?}"
    );
    if status == 401 {
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer"),
            "{what}: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_open_exactly_their_room_and_grant() {
    let server = Server::start(&["--auth-key", KEY]).await;
    let base = server.base_url().to_string();
    let publish = token(&["--room", "r1", "--identity", "obs", "--publish"]);
    let watch = token(&["--room", "r1", "--identity", "v", "--subscribe"]);
    let other_room = token(&["--room", "r2", "--identity", "obs", "--publish"]);
    let mut tampered = publish.clone().into_bytes();
    let i = tampered.len() - 2;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let expired = {
        let claims = switchboard::auth::Claims {
            room: "r1".into(),
            sub: "obs".into(),
            name: None,
            grants: switchboard::auth::Grants {
                publish: true,
                subscribe: true,
                admin: false,
            },
            exp: 1_600_000_000,
            iat: None,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
        )
        .unwrap()
    };

    let post = |path: &'static str, t: Option<String>| {
        let base = base.clone();
        async move {
            common::post_sdp(&base, path, OBS_OFFER, t.as_deref())
                .await
                .expect("POST")
        }
    };
    problem("no token", &post("/whip/r1", None).await, 401);
    problem("expired", &post("/whip/r1", Some(expired)).await, 401);
    problem("tampered", &post("/whip/r1", Some(tampered)).await, 401);
    problem(
        "garbage",
        &post("/whip/r1", Some("x.y.z".into())).await,
        401,
    );
    problem("wrong room", &post("/whip/r1", Some(other_room)).await, 403);
    problem(
        "no publish grant",
        &post("/whip/r1", Some(watch.clone())).await,
        403,
    );

    // Nothing was allocated by the refusals.
    let info = common::get(&format!("{base}/api/server")).await.unwrap();
    assert!(info.body.contains("\"rooms\":0"), "{}", info.body);
    assert!(info.body.contains("\"auth\":\"jwt\""), "{}", info.body);
    let metrics = server.metrics().await.unwrap_or_default();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("switchboard_sessions_created_total") && !l.ends_with(" 0")),
        "a refused request created a session:\n{metrics}"
    );

    // The right token works, and the session resource wants it too.
    let ok = post("/whip/r1", Some(publish.clone())).await;
    assert_eq!(ok.status, 201, "{ok:?}");
    let url = common::resolve(&base, ok.header("location").expect("Location"));
    problem(
        "DELETE without token",
        &common::delete(&url, None).await.unwrap(),
        401,
    );
    problem(
        "DELETE with the viewer's token",
        &common::delete(&url, Some(&watch)).await.unwrap(),
        403,
    );
    let gone = common::delete(&url, Some(&publish)).await.unwrap();
    assert_eq!(gone.status, 200, "{gone:?}");
}

#[test]
fn the_token_command_needs_a_key_and_a_grant() {
    let run = |env_key: bool, args: &[&str]| {
        let mut cmd = Command::new(common::server::binary());
        cmd.env_remove("SWITCHBOARD_AUTH_KEY");
        if env_key {
            cmd.env("SWITCHBOARD_AUTH_KEY", KEY);
        }
        cmd.arg("token").args(args).output().expect("run")
    };
    let no_key = run(false, &["--room", "r", "--identity", "i", "--publish"]);
    assert_eq!(no_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("--auth-key"));
    let no_grant = run(true, &["--room", "r", "--identity", "i"]);
    assert_eq!(no_grant.status.code(), Some(2));
    let ok = run(
        true,
        &[
            "--room",
            "r",
            "--identity",
            "i",
            "--subscribe",
            "--ttl",
            "10m",
        ],
    );
    assert!(ok.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
}
