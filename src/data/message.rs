//! The data channel message contract (`docs/conference.md`, "Data channels"): what a
//! participant may send, and what the room sends on.
//!
//! A participant sends a UTF-8 text message holding a JSON object
//! `{"data": <any JSON value>, "to": ["identity", …]}` (`to` optional). Receivers get
//! `{"from": "<identity>", "name": "<display name>", "topic": "<label>", "data": …}`
//! with the sender's `data` byte for byte (and `"to"` when the message was directed).
//! A refused message is answered on the sender's channel with
//! `{"error": "<reason>", "detail": "…"}`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Longest identity a `to` entry may name, in bytes (as the token's `sub`).
const MAX_IDENTITY_LEN: usize = 256;

/// Why a message was not relayed: the `reason` label of the drop counter and the
/// `error` of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Larger than the message limit (`DataLimits::max_message`).
    TooLarge,
    /// A binary message: the contract is UTF-8 JSON text.
    Binary,
    /// Not UTF-8, not a JSON object, no `data`, or a malformed `to`.
    Invalid,
    /// `to` names an identity that is not in the room.
    UnknownRecipient,
    /// Past the sender's messages-per-second limit.
    RateLimited,
    /// Sent on a topic the server reserves (`_events`).
    Reserved,
}

impl Refusal {
    /// The label used in replies and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Binary => "binary",
            Refusal::Invalid => "invalid",
            Refusal::UnknownRecipient => "unknown_recipient",
            Refusal::RateLimited => "rate_limited",
            Refusal::Reserved => "reserved",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Refusal::TooLarge => "the message is larger than the server's limit",
            Refusal::Binary => "send UTF-8 JSON text, not binary",
            Refusal::Invalid => "send a JSON object {\"data\": …, \"to\": [\"identity\", …]}",
            Refusal::UnknownRecipient => "\"to\" names an identity that is not in the room",
            Refusal::RateLimited => "too many messages per second",
            Refusal::Reserved => "this topic is the server's; it accepts no messages",
        }
    }
}

/// A message as a participant sent it, borrowed from its bytes.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    /// The `data` value exactly as sent.
    pub(crate) data: &'a RawValue,
    /// The recipients' identities, when the message is directed.
    pub(crate) to: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default, borrow)]
    to: Option<Vec<Cow<'a, str>>>,
}

/// Read a received text message. `max_recipients` bounds `to`.
///
/// Errors: [`Refusal::Invalid`] for anything but a JSON object with `data` (and, when
/// present, `to` an array of at most `max_recipients` non-empty identities of at most
/// 256 bytes).
pub(crate) fn parse(bytes: &[u8], max_recipients: usize) -> Result<Incoming<'_>, Refusal> {
    let text = std::str::from_utf8(bytes).map_err(|_| Refusal::Invalid)?;
    // serde reads a struct from a JSON array too; the contract is an object.
    if !text.trim_start().starts_with('{') {
        return Err(Refusal::Invalid);
    }
    let wire: Wire<'_> = serde_json::from_str(text).map_err(|_| Refusal::Invalid)?;
    if let Some(to) = &wire.to {
        let bad = |id: &Cow<'_, str>| id.is_empty() || id.len() > MAX_IDENTITY_LEN;
        if to.len() > max_recipients || to.iter().any(bad) {
            return Err(Refusal::Invalid);
        }
    }
    Ok(Incoming {
        data: wire.data,
        to: wire.to,
    })
}

#[derive(Serialize)]
struct Outgoing<'a> {
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a [Cow<'a, str>]>,
    data: &'a RawValue,
}

/// The message receivers get: sender, topic, the sender's `data` unchanged, and `to`
/// when it was directed.
pub(crate) fn relayed(
    from: &str,
    name: Option<&str>,
    topic: &str,
    to: Option<&[Cow<'_, str>]>,
    data: &RawValue,
) -> String {
    let out = Outgoing {
        from,
        name,
        topic,
        to,
        data,
    };
    // Serializing strings and a RawValue cannot fail.
    serde_json::to_string(&out).unwrap_or_default()
}

/// The reply to a refused message.
pub(crate) fn refusal(why: Refusal) -> String {
    serde_json::json!({ "error": why.as_str(), "detail": why.detail() }).to_string()
}
