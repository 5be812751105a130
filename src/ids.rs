//! The domain's ids, used by every layer: a session, a participant, what a session
//! does, and a track. They sit at the bottom of the module tree so that nothing needs
//! to import upwards to name a participant (see `docs/architecture.md`).

use std::fmt;

use str0m::media::Mid;

/// A session's id: 128 bits from the OS CSPRNG, as 32 lowercase hex digits. It is the
/// last path segment of the session resource URL, so it must be unguessable
/// (RFC 9725 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        let v: u128 = rand::random();
        SessionId(format!("{v:032x}"))
    }

    /// Parse an id from a URL segment: exactly 32 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| SessionId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant's id, unique within its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// What a session does in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// WHIP: sends media.
    Publisher,
    /// WHEP: receives media.
    Subscriber,
}

impl SessionKind {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Publisher => "publisher",
            SessionKind::Subscriber => "subscriber",
        }
    }
}

/// A track: a participant's m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackRef {
    /// The participant.
    pub participant: ParticipantId,
    /// Its m-line.
    pub mid: Mid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_hex() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
        assert_eq!(SessionId::parse("xyz"), None);
        assert_eq!(SessionId::parse(&"A".repeat(32)), None);
    }
}
