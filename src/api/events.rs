//! Server-sent events of a WHEP session (the WHEP `server-sent-events` extension,
//! advertised in the 201's `Link` with `rel="urn:ietf:params:whep:ext:core:server-sent-events"`).
//!
//! `GET /whep/{room}/{session}/events` → `text/event-stream` (HTML Living Standard §9.2):
//! a `retry` hint; a `session` event (`{"room", "session", "node", "identity"}`); the
//! room's current state (`participants`, `slots`, `active-speaker`, `viewers`); then room
//! events as they happen (`docs/conference.md` lists them with their JSON), keep-alive
//! comments, and a `reconnect` event (`{"reason": "draining", "retryAfter": 5}`) when
//! this node starts draining, after which the stream ends so the client can set up a
//! new session (which lands on a node that is ready) before this one goes away. The
//! stream also ends when the session does. Unknown session: 404. At most
//! [`MAX_STREAMS_PER_SESSION`] streams per session at once: 429 beyond.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream;
use tokio::sync::{mpsc, watch};

use super::sessions::{authorize, session_path};
use super::{ApiError, AppState};
use crate::auth::Action;
use crate::conference::info::RoomEvent;
use crate::ids::SessionId;
use crate::runtime::Command;

/// The `rel` of the extension's `Link`.
pub(crate) const REL: &str = "urn:ietf:params:whep:ext:core:server-sent-events";
/// The events a stream may carry (the `events` attribute of the `Link`).
pub(crate) const EVENTS: &str = "session,participants,participant-joined,participant-updated,\
participant-left,slots,active-speaker,layer,viewers,reconnect";
/// Milliseconds a client waits before reconnecting a dropped stream (`retry:`).
const RETRY_MS: u64 = 3000;
/// Seconds a client should wait before its new session after `reconnect`.
const RECONNECT_AFTER_S: u64 = 5;
/// Most open event streams per WHEP session: one page needs one, a reconnect briefly
/// two; each holds a connection, a task and a room event queue.
pub(crate) const MAX_STREAMS_PER_SESSION: u8 = 2;
/// `Retry-After` (seconds) past [`MAX_STREAMS_PER_SESSION`]: an old stream of a
/// reloaded page ends within a keep-alive interval.
const STREAMS_RETRY_AFTER_S: u32 = 15;

/// Open event streams per session (entries leave with their last stream).
#[derive(Default)]
pub struct EventStreams(parking_lot::Mutex<HashMap<SessionId, u8>>);

impl EventStreams {
    /// Count one more stream of `session`, or `None` at the limit.
    fn open(self: &Arc<Self>, session: &SessionId) -> Option<StreamSlot> {
        let mut open = self.0.lock();
        let n = open.entry(session.clone()).or_insert(0);
        if *n >= MAX_STREAMS_PER_SESSION {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            streams: Arc::clone(self),
            session: session.clone(),
        })
    }
}

/// One open stream of a session; given back on drop (the stream ended or its client
/// went away).
struct StreamSlot {
    streams: Arc<EventStreams>,
    session: SessionId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock();
        if let Some(n) = open.get_mut(&self.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.session);
            }
        }
    }
}

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/whep/{room}/{session}/events", get(events))
}

/// A WHEP session's room events (server-sent events)
///
/// A `text/event-stream` (`retry: 3000`): `session` (`{"room", "session", "node",
/// "identity"}`), the current state (`participants`, `slots`, `active-speaker`,
/// `viewers`), then `participant-joined`, `participant-updated`, `participant-left`,
/// `slots`, `active-speaker`, `layer` and `viewers` as they happen, and `reconnect`
/// (`{"reason": "draining", "retryAfter": 5}`) when the node starts draining, after
/// which the stream ends. Each event's `data` is one JSON object: `ParticipantInfo`,
/// `SlotInfo`, `SpeakerInfo` and `LayerInfo` in the components describe them. Advertised
/// in the WHEP 201's `Link` with `rel="urn:ietf:params:whep:ext:core:server-sent-events"`.
#[utoipa::path(
    get,
    path = "/whep/{room}/{session}/events",
    tag = "whep",
    operation_id = "whepEvents",
    params(super::openapi::SessionParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Not a valid room name"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `subscribe` grant"),
        (status = 404, description = "No such WHEP session"),
        (status = 429, description = "The session has its maximum of 2 open event streams"),
        (status = 503, description = "The room is too busy to answer; retry"),
    )
)]
async fn events(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (room, session) = session_path(path)?;
    authorize(&state, &headers, &room, Action::Subscribe)?;
    let slot = state
        .event_streams
        .open(&session)
        .ok_or_else(|| ApiError::RateLimited {
            retry_after: STREAMS_RETRY_AFTER_S,
            detail: format!("a session has at most {MAX_STREAMS_PER_SESSION} open event streams"),
        })?;
    let feed = super::limits::ask(&state, &room, false, |reply| Command::Events {
        session: session.clone(),
        reply,
    })
    .await?
    .flatten()
    .ok_or_else(|| ApiError::NotFound("no such WHEP session".into()))?;
    let hello = Event::default()
        .event("session")
        .retry(Duration::from_millis(RETRY_MS))
        .data(
            serde_json::json!({
                "room": room,
                "session": session.as_str(),
                "node": state.cluster.node_id(),
                "identity": feed.identity,
            })
            .to_string(),
        );
    let mut first = vec![hello];
    first.extend(feed.start.iter().map(sse));
    first.reverse();
    let stream = Stream {
        first,
        events: Some(feed.events),
        draining: state.draining.subscribe(),
        _slot: slot,
    };
    let events = stream::unfold(stream, |mut s| async move {
        let e = s.next().await?;
        Some((Ok::<_, Infallible>(e), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn sse(e: &RoomEvent) -> Event {
    Event::default().event(e.name).data(&*e.data)
}

/// One stream's state: what to send first (reversed, popped from the end), then room
/// events until the session ends or the node drains.
struct Stream {
    first: Vec<Event>,
    events: Option<mpsc::Receiver<RoomEvent>>,
    draining: watch::Receiver<bool>,
    /// Held as long as the stream is open.
    _slot: StreamSlot,
}

impl Stream {
    async fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.first.pop() {
            return Some(e);
        }
        let events = self.events.as_mut()?;
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => Some(sse(&e)),
                // The session ended, or the stream fell behind: end it.
                None => {
                    self.events = None;
                    None
                }
            },
            // Err: the sender is gone (the server is stopping): say so all the same.
            _ = self.draining.wait_for(|d| *d) => {
                self.events = None;
                Some(Event::default().event("reconnect").data(
                    serde_json::json!({"reason": "draining", "retryAfter": RECONNECT_AFTER_S})
                        .to_string(),
                ))
            }
        }
    }
}
