//! Server-sent events of a WHEP session (the WHEP `server-sent-events` extension,
//! advertised in the 201's `Link` with `rel="urn:ietf:params:whep:ext:core:server-sent-events"`).
//!
//! `GET /whep/{room}/{session}/events` → `text/event-stream` (HTML Living Standard §9.2):
//! a `retry` hint, then a `session` event (`{"room", "session", "node"}`), keep-alive
//! comments, and a `reconnect` event (`{"reason": "draining", "retryAfter": 5}`) when this
//! node starts draining; the stream then ends, so the client can set up a new session
//! (which lands on a node that is ready) before this one goes away. Unknown session: 404.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream;

use super::sessions::{authorize, require_session, session_path};
use super::{ApiError, AppState};
use crate::auth::Action;

/// The `rel` of the extension's `Link`.
pub const REL: &str = "urn:ietf:params:whep:ext:core:server-sent-events";
/// Milliseconds a client waits before reconnecting a dropped stream (`retry:`).
const RETRY_MS: u64 = 3000;
/// Seconds a client should wait before its new session after `reconnect`.
const RECONNECT_AFTER_S: u64 = 5;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/whep/{room}/{session}/events", get(events))
}

async fn events(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (room, session) = session_path(path)?;
    authorize(&state, &headers, &room, Action::Subscribe)?;
    require_session(&state, &room, &session).await?;
    let hello = Event::default()
        .event("session")
        .retry(Duration::from_millis(RETRY_MS))
        .data(
            serde_json::json!({
                "room": room,
                "session": session.as_str(),
                "node": state.cluster.node_id(),
            })
            .to_string(),
        );
    let draining = state.draining.subscribe();
    // hello → (wait for the drain) reconnect → end.
    let events = stream::unfold(
        (Some(hello), Some(draining)),
        |(hello, draining)| async move {
            if let Some(e) = hello {
                return Some((Ok::<_, Infallible>(e), (None, draining)));
            }
            let mut rx = draining?;
            // Err: the sender is gone (the server is stopping): say so all the same.
            let _ = rx.wait_for(|d| *d).await;
            let e = Event::default().event("reconnect").data(
                serde_json::json!({"reason": "draining", "retryAfter": RECONNECT_AFTER_S})
                    .to_string(),
            );
            Some((Ok(e), (None, None)))
        },
    );
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
