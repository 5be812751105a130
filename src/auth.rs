//! Who may publish and play: access tokens.
//!
//! Three modes, fixed at startup:
//! * **JWT** (`--auth-key`): every WHIP/WHEP request carries `Authorization: Bearer <JWT>`
//!   (RFC 6750 §2.1), HS256-signed with the key (RFC 7519, RFC 7518 §3.2), with [`Claims`]:
//!   the room (or `*`), the identity (`sub`), a display name, grants and an expiry. A
//!   missing, malformed, tampered or expired token, or one not valid yet (`nbf`,
//!   RFC 7519 §4.1.5), is 401; a token whose `sub` or `name` is not a usable identity
//!   ([`valid_identity`]) is 422 (the API says so); a valid token for another room,
//!   or without the grant for the action (WHIP needs `publish`, WHEP `subscribe`), is 403.
//! * **Static token** (`--token`): one shared bearer token, full access.
//! * **Open** (neither): development mode, said at startup and on `/`.
//!
//! `switchboard token` mints tokens with the same key ([`mint`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// WHIP: publish into the room.
    #[serde(default)]
    pub publish: bool,
    /// WHEP: play the room.
    #[serde(default)]
    pub subscribe: bool,
    /// The room API (and every action in the room).
    #[serde(default)]
    pub admin: bool,
}

/// The claims of a Switchboard access token (JSON, RFC 7519 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room the token is for; `*` for every room.
    pub room: String,
    /// The participant's identity (RFC 7519 §4.1.2 `sub`).
    pub sub: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it may do.
    #[serde(default)]
    pub grants: Grants,
    /// Expiry, seconds since the Unix epoch (RFC 7519 §4.1.4 `exp`).
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// WHIP: publish.
    Publish,
    /// WHEP: play.
    Subscribe,
    /// The room API: needs the `admin` grant (a token for `*` to list every room).
    Admin,
}

/// Why access was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: no token, or not a valid one (signature, format, expiry).
    #[error("a valid bearer token is required: {0}")]
    Unauthenticated(String),
    /// 403: a valid token that does not cover this room or action.
    #[error("{0}")]
    Forbidden(String),
}

/// The access policy of this server.
pub struct Authority {
    static_token: Option<String>,
    jwt: Option<DecodingKey>,
}

/// Seconds of clock skew tolerated on `exp` and `nbf` (RFC 7519 §4.1.4, §4.1.5).
const LEEWAY_SECS: u64 = 5;

impl Authority {
    /// The policy for `--token` and `--auth-key` (either, both or neither).
    pub fn new(static_token: Option<String>, auth_key: Option<&str>) -> Self {
        Authority {
            static_token,
            jwt: auth_key.map(|k| DecodingKey::from_secret(k.as_bytes())),
        }
    }

    /// `"jwt"`, `"token"` or `"open"` (development mode).
    pub fn mode(&self) -> &'static str {
        match (&self.jwt, &self.static_token) {
            (Some(_), _) => "jwt",
            (None, Some(_)) => "token",
            (None, None) => "open",
        }
    }

    /// Check a request's bearer token (`None` when it sent none) for `action` in `room`.
    /// Returns the token's claims when it is a JWT.
    pub fn check(
        &self,
        bearer: Option<&str>,
        room: &str,
        action: Action,
    ) -> Result<Option<Claims>, AuthError> {
        if self.jwt.is_none() && self.static_token.is_none() {
            return Ok(None);
        }
        let Some(token) = bearer else {
            return Err(AuthError::Unauthenticated("none sent".into()));
        };
        if let Some(want) = &self.static_token {
            if constant_time_eq(token.as_bytes(), want.as_bytes()) {
                return Ok(None);
            }
        }
        let Some(key) = &self.jwt else {
            return Err(AuthError::Unauthenticated("wrong token".into()));
        };
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECS;
        // `nbf` is optional; when present it must have passed (RFC 7519 §4.1.5).
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &v)
            .map_err(|e| AuthError::Unauthenticated(e.to_string()))?
            .claims;
        if claims.room != "*" && claims.room != room {
            return Err(AuthError::Forbidden(format!(
                "the token is for room {:?}, not {room:?}",
                claims.room
            )));
        }
        let g = claims.grants;
        let allowed = g.admin
            || match action {
                Action::Publish => g.publish,
                Action::Subscribe => g.subscribe,
                Action::Admin => false,
            };
        if !allowed {
            return Err(AuthError::Forbidden(format!(
                "the token does not grant {}",
                match action {
                    Action::Publish => "publish",
                    Action::Subscribe => "subscribe",
                    Action::Admin => "admin",
                }
            )));
        }
        Ok(Some(claims))
    }
}

/// Longest identity or display name, in characters.
pub const MAX_IDENTITY_CHARS: usize = 64;

/// Whether `s` can be an identity (`sub`) or display name from a token: 1 to
/// [`MAX_IDENTITY_CHARS`] characters, not only spaces, and no control characters (they
/// would end up in logs, event streams and the room API).
pub fn valid_identity(s: &str) -> bool {
    !s.trim().is_empty()
        && s.chars().count() <= MAX_IDENTITY_CHARS
        && !s.chars().any(char::is_control)
}

/// Sign a token for `room` and `identity` with `key`, valid for `ttl` from now.
pub fn mint(
    key: &str,
    room: &str,
    identity: &str,
    name: Option<String>,
    grants: Grants,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        room: room.to_owned(),
        sub: identity.to_owned(),
        name,
        grants,
        exp: now + ttl.as_secs(),
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
}

/// Byte equality in time that depends on the length only (secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
