//! Tests of [`super::Config`]: defaults, addresses, secrets, admission and ICE server links.

use super::*;

fn parse(args: &[&str]) -> Config {
    let mut v = vec!["switchboard"];
    v.extend_from_slice(args);
    Config::try_parse_from(v).expect("valid args")
}

#[test]
fn defaults() {
    let c = parse(&[]);
    assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.udp_addr, "0.0.0.0:7880".parse().unwrap());
    assert!(c.token.is_none());
    let cands = c.candidate_addrs();
    assert!(!cands.is_empty());
    assert!(cands.iter().all(|a| a.port() == 7880));
}

#[test]
fn explicit_public_ips_win() {
    let c = parse(&["--public-ip", "192.0.2.1", "--public-ip", "198.51.100.2"]);
    let cands = c.candidate_addrs();
    assert_eq!(
        cands,
        vec![
            "192.0.2.1:7880".parse().unwrap(),
            "198.51.100.2:7880".parse().unwrap()
        ]
    );
}

#[test]
fn specific_udp_addr_is_the_candidate() {
    let c = parse(&["--udp-addr", "127.0.0.1:9999"]);
    assert_eq!(c.candidate_addrs(), vec!["127.0.0.1:9999".parse().unwrap()]);
}

#[test]
fn bad_address_is_an_error() {
    assert!(Config::try_parse_from(["switchboard", "--http-addr", "nope"]).is_err());
    assert!(Config::try_parse_from(["switchboard", "--public-ip", "1.2.3"]).is_err());
}

fn invalid(args: &[&str]) -> String {
    match parse(args).validate() {
        Err(e) => e.to_string(),
        Ok(()) => panic!("{args:?} must be refused"),
    }
}

#[test]
fn short_tokens_and_placeholder_secrets_are_refused() {
    assert!(invalid(&["--token", "s3cret"]).contains("at least 16 characters"));
    let placeholder = "REPLACE-ME-with-a-random-secret-of-at-least-32-bytes";
    assert!(invalid(&["--auth-key", placeholder]).contains("placeholder"));
    assert!(invalid(&["--token", placeholder]).contains("--token"));
    let internal = "REPLACE-ME-with-another-random-secret-of-at-least-32-bytes";
    assert!(invalid(&[
        "--internal-addr",
        "127.0.0.1:0",
        "--internal-secret",
        internal
    ])
    .contains("--internal-secret"));
    assert!(parse(&["--token", "0123456789abcdef"]).validate().is_ok());
}

#[test]
fn admission_defaults() {
    let c = parse(&[]);
    assert_eq!(c.max_sessions, 1000);
    assert_eq!(c.max_pending, 200);
    assert_eq!((c.post_rate, c.post_burst), (5, 20));
    assert_eq!(c.max_sessions_per_identity, 8);
    assert_eq!(c.max_connections, 1024);
    assert_eq!(c.http_header_timeout, Duration::from_secs(10));
}

#[test]
fn ice_server_links() {
    let c = parse(&[
        "--ice-server",
        "stun:stun.example.org:3478",
        "--ice-server",
        "turn:turn.example.org:3478?transport=udp",
        "--ice-username",
        "u",
        "--ice-credential",
        "p\"w",
    ]);
    let links = c.ice_server_links();
    assert_eq!(links[0], "<stun:stun.example.org:3478>; rel=\"ice-server\"");
    assert!(links[1].contains("username=\"u\""));
    assert!(links[1].contains("credential=\"p\\\"w\""));
    assert!(links[1].contains("credential-type=\"password\""));
    let public = c.ice_server_links_public();
    assert_eq!(public, vec![links[0].clone()]);
}

#[test]
fn turn_flags() {
    let c = parse(&[]);
    assert!(c.turn_urls.is_empty() && c.turn_secret.is_none());
    assert_eq!(c.turn_ttl, Duration::from_secs(6 * 3600));
    assert!(c.validate().is_ok());
    let secret = "0123456789abcdef0123";
    let c = parse(&[
        "--turn-url",
        "turn:192.0.2.7:3478?transport=udp",
        "--turn-url",
        "turns:turn.example.org:443?transport=tcp",
        "--turn-secret",
        secret,
        "--turn-ttl",
        "90m",
    ]);
    assert!(c.validate().is_ok());
    assert_eq!(c.turn_urls.len(), 2);
    assert_eq!(c.turn_ttl, Duration::from_secs(5400));
    let toml = c.to_toml();
    assert!(toml.contains("turn_secret = \"<redacted>\""), "{toml}");
    assert!(!toml.contains(secret), "{toml}");
    assert!(toml.contains("turn_ttl = \"1h 30m\""), "{toml}");

    let t = ["--turn-url", "turn:t.example.org"];
    assert!(invalid(&t).contains("--turn-secret"));
    assert!(invalid(&["--turn-secret", secret]).contains("--turn-url"));
    let with = |extra: &[&'static str]| [&t[..], extra].concat();
    assert!(invalid(&with(&["--turn-secret", "short"])).contains("at least 16"));
    let placeholder = "REPLACE-ME-with-a-random-secret";
    assert!(invalid(&with(&["--turn-secret", placeholder])).contains("placeholder"));
    let ttl0 = ["--turn-secret", "0123456789abcdef", "--turn-ttl", "0s"];
    assert!(invalid(&with(&ttl0)).contains("--turn-ttl"));
    let stun = ["--turn-url", "stun:t.example.org", "--turn-secret", secret];
    assert!(invalid(&stun).contains("turn:"));
    assert!(Config::try_parse_from(["switchboard", "--turn-ttl", "soon"]).is_err());
}

#[test]
fn turn_settings_from_the_config_file() {
    let path = std::env::temp_dir().join(format!(
        "switchboard-config-{}-turn.toml",
        std::process::id()
    ));
    let text = "turn_url = [\"turn:192.0.2.7:3478?transport=udp\"]\n\
                turn_secret = \"0123456789abcdef\"\nturn_ttl = \"2h\"\n";
    std::fs::write(&path, text).unwrap();
    let args = ["switchboard", "--config", path.to_str().unwrap()];
    let c = crate::config_file::load_from(args).expect("valid file");
    assert_eq!(c.turn_urls, vec!["turn:192.0.2.7:3478?transport=udp"]);
    assert_eq!(c.turn_ttl, Duration::from_secs(7200));
    // Without the secret the file is refused before anything starts.
    std::fs::write(&path, "turn_url = \"turn:192.0.2.7\"\n").unwrap();
    let e = crate::config_file::load_from(args).unwrap_err();
    assert!(e.to_string().contains("--turn-secret"), "{e}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn webhook_flags() {
    let secret = "whsec_c3dpdGNoYm9hcmQtd2ViaG9vay10ZXN0LWtleQ==";
    let c = parse(&[
        "--webhook-url",
        "https://hooks.example.org/switchboard",
        "--webhook-url",
        "http://billing.internal:8080/events",
        "--webhook-secret",
        secret,
    ]);
    assert!(c.validate().is_ok());
    assert_eq!(c.webhook_urls.len(), 2);
    let toml = c.to_toml();
    assert!(toml.contains("webhook_secret = \"<redacted>\""), "{toml}");
    assert!(!toml.contains(secret), "{toml}");
    assert!(invalid(&["--webhook-url", "http://h/x"]).contains("--webhook-secret"));
    assert!(invalid(&["--webhook-secret", secret]).contains("--webhook-url"));
    let bad_url = ["--webhook-url", "ftp://h/x", "--webhook-secret", secret];
    assert!(invalid(&bad_url).contains("http://"));
    let short = ["--webhook-url", "http://h/x", "--webhook-secret", "short"];
    assert!(invalid(&short).contains("16 bytes"));
}
