//! Webhooks: what happened in the rooms, POSTed as signed JSON to the operator's
//! receivers (`--webhook-url`, repeatable; `--webhook-secret`), so billing, moderation
//! or a CMS learn of it without polling the room API.
//!
//! Events (`type`): `room.started` (its first participant joined), `room.finished`
//! (its last session ended), `participant.joined`, `participant.left`,
//! `track.published`, `track.unpublished`, `recording.started`, `recording.finished`
//! (with the recording's files, sizes and durations). Body:
//! `{"type", "timestamp" (RFC 3339, UTC), "data": {"room", …}}`; the schemas are in the
//! OpenAPI document (`WebhookEvent`). Headers per the Standard Webhooks specification:
//! `webhook-id` (unique per event, the same on retries), `webhook-timestamp` (Unix
//! seconds of the try) and `webhook-signature` (`v1,` base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}`, see [`sign`]).
//!
//! Delivery is off the media path: [`Webhooks::notice`] serializes once and puts the
//! message on each receiver's bounded queue ([`QUEUE`] messages) without waiting; a
//! full queue drops and counts. Each receiver's task delivers in order, retrying with
//! backoff ([`deliver`]). An event reaches a receiver at least once unless the receiver
//! refuses it, stays unreachable through every try (counted `failed`) or its queue is
//! full (`dropped`); events still queued when the process exits are lost.

pub mod deliver;
pub mod sign;

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::Uri;
use bytes::Bytes;
use metrics::{counter, describe_counter, Counter};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::conference::info::{ParticipantInfo, TrackInfo};
use crate::conference::notices::Notice;
use crate::record::manifest::RecordingInfo;
use sign::Signer;

/// Messages queued per receiver before new ones are dropped.
pub const QUEUE: usize = 1024;
/// Longest `--webhook-url` accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// The `User-Agent` of deliveries.
const USER_AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));

/// Metric names of the webhooks.
pub mod names {
    /// Counter: events by `outcome`: `delivered` (2xx), `failed` (refused by the
    /// receiver, or no 2xx after every try), `dropped` (the receiver's queue was full).
    pub const DELIVERIES: &str = "switchboard_webhook_deliveries_total";
    /// Counter: tries that failed and were retried.
    pub const RETRIES: &str = "switchboard_webhook_retries_total";
}

/// The webhook counters, one set for every receiver.
#[derive(Clone)]
pub(crate) struct WebhookMeters {
    delivered: Counter,
    failed: Counter,
    dropped: Counter,
    retries: Counter,
}

impl WebhookMeters {
    fn new() -> Self {
        let outcome = |o: &'static str| counter!(names::DELIVERIES, "outcome" => o);
        WebhookMeters {
            delivered: outcome("delivered"),
            failed: outcome("failed"),
            dropped: outcome("dropped"),
            retries: counter!(names::RETRIES),
        }
    }

    /// Describe the metrics for the exporter.
    pub(crate) fn describe() {
        describe_counter!(names::DELIVERIES, "Webhook events by delivery outcome.");
        describe_counter!(
            names::RETRIES,
            "Webhook tries that failed and were retried."
        );
    }
}

/// One event, serialized once for every receiver.
pub(crate) struct Message {
    /// `msg_` and 32 hex digits, random.
    id: String,
    /// The event `type`, for the logs.
    kind: &'static str,
    /// The JSON body; a retry shares it (`Bytes` clones by reference count).
    body: Bytes,
}

/// Why the webhooks cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A URL that is not `http://` or `https://` with a host.
    #[error("--webhook-url {0:?}: want an http:// or https:// URL with a host (at most {MAX_URL_LEN} bytes)")]
    Url(String),
    /// URLs without a secret, or a secret without URLs.
    #[error("--webhook-url and --webhook-secret go together")]
    Pair,
    /// The secret is refused.
    #[error(transparent)]
    Secret(#[from] sign::SecretError),
    /// The system's root certificates could not be read (for https receivers).
    #[error("webhook HTTPS client: {0}")]
    Client(#[from] std::io::Error),
}

/// Checks `--webhook-url` and `--webhook-secret` together (at start-up, before any
/// task runs). Errors: [`WebhookError`].
pub fn check(urls: &[String], secret: Option<&str>) -> Result<Vec<Uri>, WebhookError> {
    if urls.is_empty() != secret.is_none() {
        return Err(WebhookError::Pair);
    }
    if let Some(secret) = secret {
        Signer::new(secret)?;
    }
    urls.iter()
        .map(|u| {
            let uri: Uri = u.parse().map_err(|_| WebhookError::Url(u.clone()))?;
            let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
            if u.len() > MAX_URL_LEN || !scheme_ok || uri.host().is_none() {
                return Err(WebhookError::Url(u.clone()));
            }
            Ok(uri)
        })
        .collect()
}

/// The handle rooms emit through: cheap to clone; does nothing when no receiver is
/// configured.
#[derive(Clone, Default)]
pub struct Webhooks {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queues: Vec<mpsc::Sender<Arc<Message>>>,
    meters: WebhookMeters,
}

impl Webhooks {
    /// No receivers: every emit is a no-op.
    pub fn disabled() -> Self {
        Webhooks::default()
    }

    /// Starts one delivery task per URL (call inside the tokio runtime). With no URL,
    /// the same as [`Webhooks::disabled`]. Errors: [`WebhookError`].
    pub fn start(urls: &[String], secret: Option<&str>) -> Result<Self, WebhookError> {
        let uris = check(urls, secret)?;
        let Some(secret) = secret else {
            return Ok(Webhooks::disabled());
        };
        let signer = Arc::new(Signer::new(secret)?);
        let https = uris.iter().any(|u| u.scheme_str() == Some("https"));
        let client = deliver::client(https)?;
        let meters = WebhookMeters::new();
        WebhookMeters::describe();
        let queues = uris
            .into_iter()
            .map(|uri| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let task = deliver::run(uri, client.clone(), signer.clone(), meters.clone(), rx);
                tokio::spawn(task);
                tx
            })
            .collect();
        Ok(Webhooks {
            inner: Some(Arc::new(Inner { queues, meters })),
        })
    }

    /// Whether any receiver is configured.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// `room.started`: the room's first participant joined.
    pub fn room_started(&self, room: &str) {
        self.emit(WebhookKind::RoomStarted, || WebhookData::room(room));
    }

    /// `room.finished`: the room's last session ended and the room closed.
    pub fn room_finished(&self, room: &str) {
        self.emit(WebhookKind::RoomFinished, || WebhookData::room(room));
    }

    /// A room's notice as its webhook event.
    pub fn notice(&self, room: &str, notice: &Notice) {
        let kind = match notice {
            Notice::ParticipantJoined(_) => WebhookKind::ParticipantJoined,
            Notice::ParticipantLeft { .. } => WebhookKind::ParticipantLeft,
            Notice::TrackPublished { .. } => WebhookKind::TrackPublished,
            Notice::TrackUnpublished { .. } => WebhookKind::TrackUnpublished,
        };
        self.emit(kind, || {
            let mut data = WebhookData::room(room);
            match notice {
                Notice::ParticipantJoined(p) => data.participant = Some(p.clone()),
                Notice::ParticipantLeft { identity, name } => {
                    data.participant = Some(ParticipantInfo {
                        identity: identity.clone(),
                        name: name.clone(),
                        publishing: false,
                        watching: false,
                        tracks: Vec::new(),
                    })
                }
                Notice::TrackPublished { identity, track }
                | Notice::TrackUnpublished { identity, track } => {
                    data.identity = Some(identity.clone());
                    data.track = Some(track.clone());
                }
            }
            data
        });
    }

    /// `recording.started`: a recording of the room began (its files come as they start).
    pub fn recording_started(&self, info: &RecordingInfo) {
        self.emit(WebhookKind::RecordingStarted, || {
            WebhookData::recording(info)
        });
    }

    /// `recording.finished`: a recording ended; `recording` lists its files, each with
    /// its size, duration and wall-clock start.
    pub fn recording_finished(&self, info: &RecordingInfo) {
        self.emit(WebhookKind::RecordingFinished, || {
            WebhookData::recording(info)
        });
    }

    /// Serializes the event once and queues it for every receiver, never waiting.
    fn emit(&self, kind: WebhookKind, data: impl FnOnce() -> WebhookData) {
        let Some(inner) = &self.inner else {
            return;
        };
        let event = WebhookEvent {
            kind,
            timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            data: data(),
        };
        let Ok(body) = serde_json::to_string(&event) else {
            return;
        };
        let msg = Arc::new(Message {
            id: format!("msg_{:032x}", rand::random::<u128>()),
            kind: kind.name(),
            body: Bytes::from(body),
        });
        for q in &inner.queues {
            if q.try_send(Arc::clone(&msg)).is_err() {
                inner.meters.dropped.increment(1);
            }
        }
    }
}

/// The body of one webhook delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: WebhookKind,
    /// When, RFC 3339 in UTC with milliseconds (`2026-12-06T01:02:03.456Z`).
    #[schema(example = "2026-12-06T01:02:03.456Z")]
    pub timestamp: String,
    /// Where and who.
    pub data: WebhookData,
}

/// The event types (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum WebhookKind {
    /// A room's first participant joined.
    #[serde(rename = "room.started")]
    RoomStarted,
    /// A room's last session ended.
    #[serde(rename = "room.finished")]
    RoomFinished,
    /// An identity's first session joined; `participant` as it is then.
    #[serde(rename = "participant.joined")]
    ParticipantJoined,
    /// An identity's last session ended; `participant` gives identity and name.
    #[serde(rename = "participant.left")]
    ParticipantLeft,
    /// A track became available; `identity` and `track`.
    #[serde(rename = "track.published")]
    TrackPublished,
    /// A track left the room; `identity` and `track`.
    #[serde(rename = "track.unpublished")]
    TrackUnpublished,
    /// A recording began; `recording`.
    #[serde(rename = "recording.started")]
    RecordingStarted,
    /// A recording ended; `recording` with its files.
    #[serde(rename = "recording.finished")]
    RecordingFinished,
}

impl WebhookKind {
    /// The `type` string.
    pub fn name(self) -> &'static str {
        match self {
            WebhookKind::RoomStarted => "room.started",
            WebhookKind::RoomFinished => "room.finished",
            WebhookKind::ParticipantJoined => "participant.joined",
            WebhookKind::ParticipantLeft => "participant.left",
            WebhookKind::TrackPublished => "track.published",
            WebhookKind::TrackUnpublished => "track.unpublished",
            WebhookKind::RecordingStarted => "recording.started",
            WebhookKind::RecordingFinished => "recording.finished",
        }
    }
}

/// `data` of a webhook event: always the room, then what the type names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookData {
    /// The room's name.
    pub room: String,
    /// `participant.joined`, `participant.left`: the participant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<ParticipantInfo>,
    /// `track.published`, `track.unpublished`: whose track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `track.published`, `track.unpublished`: the track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackInfo>,
    /// `recording.started`, `recording.finished`: the recording, as
    /// `GET /api/rooms/{room}/recordings/{id}` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingInfo>,
}

impl WebhookData {
    fn room(room: &str) -> Self {
        WebhookData {
            room: room.to_owned(),
            participant: None,
            identity: None,
            track: None,
            recording: None,
        }
    }

    fn recording(info: &RecordingInfo) -> Self {
        WebhookData {
            recording: Some(info.clone()),
            ..WebhookData::room(&info.room)
        }
    }
}

#[cfg(test)]
mod tests;
