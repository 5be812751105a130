//! Per-session, time-limited TURN credentials (`--turn-url`, `--turn-secret`,
//! `--turn-ttl`) with the TURN REST convention of draft-uberti-behave-turn-rest-00 §2,
//! which coturn implements as `use-auth-secret` / `static-auth-secret`:
//!
//! - username: `<expiry>:<identity>`, the expiry in Unix seconds (UTC), the identity the
//!   participant's (sanitized, see [`sanitize_identity`]) or a random one;
//! - credential: `base64(HMAC-SHA1(secret, username))` (RFC 2104, RFC 4648 §4 with
//!   padding), the password of the long-term credential mechanism (RFC 8489 §9.2).
//!
//! The TURN server recomputes the credential from the username and its copy of the
//! secret, and refuses a username whose expiry has passed; Switchboard and the TURN
//! server share nothing else. The credentials are sent in `Link` headers (RFC 9725 §4.6,
//! RFC 8288) only to callers that passed auth: see [`append_links`]. Pure: no I/O
//! besides the clock and the random identity.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::Engine;

/// Most characters of a sanitized identity in a username.
pub const MAX_IDENTITY_LEN: usize = 32;

/// Issues TURN REST credentials for the configured TURN URLs. Cheap to share (`Arc`).
pub struct TurnRest {
    urls: Vec<String>,
    key: hmac::Key,
    ttl: Duration,
}

impl std::fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRest")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One username/credential pair (RFC 8489 §9.2 long-term credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `<expiry unix seconds>:<identity>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

impl TurnRest {
    /// An issuer for `urls` (already checked with [`crate::config::check_turn`]), signing with
    /// `secret` (coturn's `static-auth-secret`, as bytes), credentials valid for `ttl`.
    pub fn new(urls: Vec<String>, secret: &[u8], ttl: Duration) -> Self {
        TurnRest {
            urls,
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
            ttl,
        }
    }

    /// The issuer of `--turn-url`, `--turn-secret` and `--turn-ttl` (checked by
    /// [`crate::config::Config::validate`]); `None` without `--turn-url`.
    pub fn from_config(c: &crate::config::Config) -> Option<Self> {
        let secret = c.turn_secret.as_deref()?;
        (!c.turn_urls.is_empty())
            .then(|| TurnRest::new(c.turn_urls.clone(), secret.as_bytes(), c.turn_ttl))
    }

    /// Credentials for `identity` (untrusted: sanitized; `None` or nothing usable: a
    /// random identity) valid until `now + ttl`. A clock before 1970 counts as 1970.
    pub fn credentials(&self, identity: Option<&str>, now: SystemTime) -> TurnCredentials {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expiry = now.saturating_add(self.ttl).as_secs();
        let identity = identity
            .and_then(sanitize_identity)
            .unwrap_or_else(random_identity);
        let username = format!("{expiry}:{identity}");
        let credential = sign(&self.key, &username);
        TurnCredentials {
            username,
            credential,
        }
    }

    /// `Link` header values, one per TURN URL, all with the same fresh credentials
    /// (see [`TurnRest::credentials`] and [`link`]).
    pub fn links(&self, identity: Option<&str>, now: SystemTime) -> Vec<String> {
        let creds = self.credentials(identity, now);
        self.urls.iter().map(|url| link(url, &creds)).collect()
    }
}

/// `base64(HMAC-SHA1(key, username))`, 28 characters.
fn sign(key: &hmac::Key, username: &str) -> String {
    let tag = hmac::sign(key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// An identity fit for a username and a quoted header parameter: every character
/// outside `A-Z a-z 0-9 . _ ~ -` becomes `_`, at most [`MAX_IDENTITY_LEN`] characters
/// are kept; `None` when no letter or digit is left (the caller picks a random one).
pub fn sanitize_identity(raw: &str) -> Option<String> {
    let safe: String = raw
        .chars()
        .take(MAX_IDENTITY_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._~-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    safe.bytes()
        .any(|b| b.is_ascii_alphanumeric())
        .then_some(safe)
}

/// 16 random hex digits (64 bits), for callers without an identity.
fn random_identity() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// One `Link` header value (RFC 9725 §4.6, RFC 8288):
/// `<url>; rel="ice-server"; username="…"; credential="…"; credential-type="password"`.
/// Nothing needs escaping: the URL is checked at startup, the username is digits, `:`
/// and a sanitized identity, the credential base64.
pub fn link(url: &str, creds: &TurnCredentials) -> String {
    format!(
        "<{url}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; \
         credential-type=\"password\"",
        creds.username, creds.credential
    )
}

/// Appends fresh TURN links to a response's headers and counts the issue in
/// `switchboard_turn_credentials_issued_total{method}`; nothing without `--turn-url`.
/// The caller must have authorized the request (the WHIP/WHEP POST's 201 is only built
/// after [`super::sessions::authorize`] passed; an OPTIONS only with a verified token).
pub fn append_links(
    h: &mut HeaderMap,
    turn: Option<&TurnRest>,
    identity: Option<&str>,
    method: &'static str,
) {
    let Some(turn) = turn else { return };
    for value in turn.links(identity, SystemTime::now()) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(header::LINK, v);
        }
    }
    crate::metrics::turn_credentials_issued(method);
}

#[cfg(test)]
#[path = "turn_tests.rs"]
mod tests;
