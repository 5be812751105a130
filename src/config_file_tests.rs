use std::path::PathBuf;
use std::time::Duration;

use super::{load_from, ConfigError};
use crate::config::PublicIpFrom;

/// A config file with `text`, unique per test.
fn file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "switchboard-config-{}-{name}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write temp file");
    path
}

fn load(args: &[&str]) -> Result<crate::config::Config, ConfigError> {
    let mut v = vec!["switchboard"];
    v.extend_from_slice(args);
    load_from(v)
}

#[test]
fn the_file_fills_what_the_command_line_leaves_unset() {
    let path = file(
        "fills",
        r#"
http_addr = "127.0.0.1:9001"
udp_addr = "127.0.0.1:9002"
public_ip = ["192.0.2.1", "198.51.100.2"]
drain_timeout = "5m"
log_format = "json"
"#,
    );
    let p = path.to_str().unwrap();
    let c = load(&["--config", p, "--udp-addr", "127.0.0.1:7000"]).unwrap();
    assert_eq!(
        c.http_addr,
        "127.0.0.1:9001".parse().unwrap(),
        "from the file"
    );
    assert_eq!(
        c.udp_addr,
        "127.0.0.1:7000".parse().unwrap(),
        "the flag wins"
    );
    assert_eq!(c.public_ip.len(), 2);
    assert_eq!(c.drain_timeout, Duration::from_secs(300));
    assert_eq!(c.log_format, crate::config::LogFormat::Json);
    let _ = std::fs::remove_file(path);
}

#[test]
fn no_file_means_defaults() {
    let c = load(&[]).unwrap();
    assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(c.drain_timeout, Duration::from_secs(300));
    assert_eq!(c.public_ip_from, PublicIpFrom::Interfaces);
}

#[test]
fn an_unknown_key_is_named_with_the_keys_that_exist() {
    let path = file("unknown", "http_adr = \"127.0.0.1:1\"\n");
    let e = load(&["--config", path.to_str().unwrap()]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::File { .. }), "{msg}");
    assert!(msg.contains("unknown key `http_adr`"), "{msg}");
    assert!(msg.contains("http_addr"), "{msg}");
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_bad_value_names_the_file_and_the_key_even_when_a_flag_overrides_it() {
    let path = file("badaddr", "http_addr = \"nope\"\n");
    let p = path.to_str().unwrap();
    for args in [
        vec!["--config", p],
        vec!["--config", p, "--http-addr", "127.0.0.1:1"],
    ] {
        let msg = load(&args).unwrap_err().to_string();
        assert!(msg.contains("`http_addr`"), "{msg}");
        assert!(msg.contains("nope"), "{msg}");
        assert!(msg.contains(p), "{msg}");
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn not_toml_and_unreadable_files_are_reported() {
    let path = file("nottoml", "this is = = not toml\n");
    let e = load(&["--config", path.to_str().unwrap()]).unwrap_err();
    assert!(matches!(e, ConfigError::File { .. }), "{e}");
    let _ = std::fs::remove_file(path);
    let e = load(&["--config", "/nonexistent/switchboard.toml"]).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert!(
        e.to_string().contains("/nonexistent/switchboard.toml"),
        "{e}"
    );
}

#[test]
fn one_shot_keys_are_refused_in_the_file() {
    for (name, text) in [("pc", "print_config = true\n"), ("cfg", "config = \"x\"\n")] {
        let path = file(name, text);
        let e = load(&["--config", path.to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("unknown key"), "{e}");
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn host_ip_choice_needs_the_host_ip() {
    let e = load(&["--public-ip-from", "host-ip"]).unwrap_err();
    assert!(matches!(e, ConfigError::Invalid(_)), "{e}");
    assert!(e.to_string().contains("--host-ip"), "{e}");
    let c = load(&["--public-ip-from", "host-ip", "--host-ip", "10.1.2.3"]).unwrap();
    assert_eq!(
        c.candidate_addrs(),
        vec!["10.1.2.3:7880".parse().unwrap()],
        "the host IP is the only candidate"
    );
    // An explicit --public-ip still wins.
    let c = load(&[
        "--public-ip-from",
        "host-ip",
        "--host-ip",
        "10.1.2.3",
        "--public-ip",
        "203.0.113.9",
    ])
    .unwrap();
    assert_eq!(
        c.candidate_addrs(),
        vec!["203.0.113.9:7880".parse().unwrap()]
    );
}

#[test]
fn nonsense_settings_are_refused() {
    assert!(load(&["--public-ip", "0.0.0.0"]).is_err());
    assert!(load(&["--drain-timeout", "0s"]).is_err());
    assert!(load(&["--drain-timeout", "soon"]).is_err());
}

#[test]
fn print_config_round_trips_through_the_file() {
    let c = load(&[
        "--http-addr",
        "127.0.0.1:9100",
        "--drain-timeout",
        "90s",
        "--token",
        "s3cret-0123456789abcdef",
        "--max-pending",
        "50",
        "--http-header-timeout",
        "5s",
    ])
    .unwrap();
    let text = c.to_toml();
    assert!(!text.contains("s3cret"), "secrets are redacted:\n{text}");
    // Without the redacted secret, the printed file loads back to the same settings.
    let kept: String = text
        .lines()
        .filter(|l| !l.contains("<redacted>"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = file("roundtrip", &kept);
    let back = load(&["--config", path.to_str().unwrap()]).unwrap();
    assert_eq!(back.http_addr, c.http_addr);
    assert_eq!(back.drain_timeout, c.drain_timeout);
    assert_eq!(back.node_id(), c.node_id());
    assert_eq!(back.max_pending, 50);
    assert_eq!(back.http_header_timeout, std::time::Duration::from_secs(5));
    let _ = std::fs::remove_file(path);
}

#[test]
fn tls_files_come_in_pairs_from_flags_or_the_file() {
    let err = load(&["--tls-cert", "/etc/sb/cert.pem"]).unwrap_err();
    assert!(err.to_string().contains("--tls-key"), "{err}");
    let err = load(&["--tls-key", "/etc/sb/key.pem"]).unwrap_err();
    assert!(err.to_string().contains("--tls-cert"), "{err}");
    let path = file(
        "tls",
        "tls_cert = \"/etc/sb/cert.pem\"\ntls_key = \"/etc/sb/key.pem\"\n",
    );
    let c = load(&["--config", path.to_str().unwrap()]).unwrap();
    assert_eq!(c.tls_cert, Some(PathBuf::from("/etc/sb/cert.pem")));
    assert_eq!(c.tls_key, Some(PathBuf::from("/etc/sb/key.pem")));
    // --print-config shows them, and its output loads back.
    let back = file("tls-back", &c.to_toml());
    let c2 = load(&["--config", back.to_str().unwrap()]).unwrap();
    assert_eq!(c2.tls_cert, c.tls_cert);
    assert_eq!(c2.tls_key, c.tls_key);
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(back);
}
