//! The room API: list the rooms live on this node, look into one, remove a participant,
//! mute a published track, close a room. JSON in and out; every route needs a bearer
//! token with the `admin` grant (to list every room, a token for room `*`), like WHIP
//! and WHEP: 401 without a valid token, 403 when it does not cover the room or lacks the
//! grant. A static `--token` and an open (development) server allow everything. Errors
//! are problem+json ([`ApiError`]).
//!
//! | resource | methods |
//! |---|---|
//! | `/api/rooms` | GET → `{"node", "rooms": [RoomSummary]}`, sorted by name |
//! | `/api/rooms/{room}` | GET → `RoomDetail`; DELETE → 204, every session ended |
//! | `/api/rooms/{room}/participants/{identity}` | DELETE → 204, the identity's sessions ended |
//! | `/api/rooms/{room}/participants/{identity}/mute` | POST `{"track": "camera-audio", "muted": true}` → 204 |
//!
//! A room's recordings (`/api/rooms/{room}/recordings`) are in [`super::recordings`].
//!
//! A room is live while it has sessions: an unknown room, or one that is emptying, is
//! 404, as is an unknown participant or track.
//!
//! **Clusters.** The room API covers the rooms of the node that answers. In a multi-node
//! cluster a room on another node is 404 here: the cluster can find a room's owner only
//! by placing (claiming) the room, which a read must not do. Address another node's rooms
//! through its node prefix, `/n/{node}/api/rooms/...`, which is proxied (or redirected)
//! like session URLs; each node's id is in its `GET /api/server`.
//!
//! This module only asks room actors ([`Command::Summary`], [`Command::Detail`],
//! [`Command::Remove`], [`Command::Mute`], [`Command::Close`]); it never touches media.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::sessions::{authorize, has_content_type, identity_param, room_name};
use super::{ApiError, AppState};
use crate::auth::Action;
use crate::conference::info::{RoomDetail, RoomSummary};
use crate::runtime::Command;

const JSON: &str = "application/json";
const LIST_ALLOW: &str = "GET, HEAD";
const ROOM_ALLOW: &str = "GET, HEAD, DELETE";
const PARTICIPANT_ALLOW: &str = "DELETE";
const MUTE_ALLOW: &str = "POST";

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/rooms",
            any(
                |method: Method, State(state): State<AppState>, headers: HeaderMap| async move {
                    match method.as_str() {
                        "GET" | "HEAD" => list(&state, &headers).await,
                        _ => Err(ApiError::MethodNotAllowed(LIST_ALLOW)),
                    }
                },
            ),
        )
        .route(
            "/api/rooms/{room}",
            any(
                |method: Method,
                 State(state): State<AppState>,
                 path: Result<Path<String>, PathRejection>,
                 headers: HeaderMap| async move {
                    let room = match method.as_str() {
                        "GET" | "HEAD" | "DELETE" => room_path(path)?,
                        _ => return Err(ApiError::MethodNotAllowed(ROOM_ALLOW)),
                    };
                    if method == Method::DELETE {
                        close(&state, &headers, &room).await
                    } else {
                        detail(&state, &headers, &room).await
                    }
                },
            ),
        )
        .route(
            "/api/rooms/{room}/participants/{identity}",
            any(
                |method: Method,
                 State(state): State<AppState>,
                 path: Result<Path<(String, String)>, PathRejection>,
                 headers: HeaderMap| async move {
                    if method != Method::DELETE {
                        return Err(ApiError::MethodNotAllowed(PARTICIPANT_ALLOW));
                    }
                    let (room, identity) = participant_path(path)?;
                    remove(&state, &headers, &room, &identity).await
                },
            ),
        )
        .route(
            "/api/rooms/{room}/participants/{identity}/mute",
            any(
                |method: Method,
                 State(state): State<AppState>,
                 path: Result<Path<(String, String)>, PathRejection>,
                 headers: HeaderMap,
                 body: axum::body::Body| async move {
                    if method != Method::POST {
                        return Err(ApiError::MethodNotAllowed(MUTE_ALLOW));
                    }
                    let (room, identity) = participant_path(path)?;
                    mute(&state, &headers, &room, &identity, body).await
                },
            ),
        )
}

fn room_path(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(room) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    room_name(&room)?;
    Ok(room)
}

fn participant_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    let Path((room, identity)) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    room_name(&room)?;
    let identity = identity_param("identity", &identity)?;
    Ok((room, identity))
}

/// The checks of a room API POST with a JSON body: the `admin` grant for `room` (401,
/// 403), `Content-Type: application/json` (415 with `Accept-Post`), and the body of at
/// most `limit` bytes (413).
pub(super) async fn admin_json_body(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    authorize(state, headers, room, Action::Admin)?;
    if !has_content_type(headers, JSON) {
        return Err(ApiError::UnsupportedMediaType {
            header: "accept-post",
            accept: JSON,
        });
    }
    super::limits::read_body(body, limit, "JSON").await
}

fn no_room(room: &str) -> ApiError {
    ApiError::NotFound(format!("no room {room:?} is live on this node"))
}

/// A JSON answer that must not be cached (it is the state of now).
fn fresh<T: Serialize>(v: T) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response()
}

/// `GET /api/rooms`: the rooms on this node.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoomList {
    /// The node that answered (its `--node-id`).
    pub node: String,
    /// Its live rooms, sorted by name.
    pub rooms: Vec<RoomSummary>,
}

/// List the rooms live on this node
///
/// Needs a token for room `*` with the `admin` grant (or a static token, or an open
/// server). A room is listed while it has sessions.
#[utoipa::path(
    get,
    path = "/api/rooms",
    tag = "rooms",
    operation_id = "listRooms",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The rooms live on this node", body = RoomList),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token is not for room `*` or lacks the `admin` grant"),
        (status = 405, description = "Another method (`Allow: GET, HEAD`)"),
        (status = 503, description = "A room is too busy to answer; retry"),
    )
)]
async fn list(state: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    authorize(state, headers, "*", Action::Admin)?;
    let mut names = state.rooms.names();
    names.sort();
    let asks = names
        .iter()
        .map(|name| super::limits::ask(state, name, false, |reply| Command::Summary { reply }));
    let mut rooms = Vec::with_capacity(names.len());
    for summary in futures_util::future::join_all(asks).await {
        // `None`: the room ended since `names()`.
        match summary? {
            Some(s) if s.participants > 0 || s.viewers > 0 => rooms.push(s),
            _ => {}
        }
    }
    Ok(fresh(RoomList {
        node: state.cluster.node_id().to_owned(),
        rooms,
    }))
}

/// A room with its participants and their tracks
#[utoipa::path(
    get,
    path = "/api/rooms/{room}",
    tag = "rooms",
    operation_id = "getRoom",
    params(super::openapi::RoomParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room", body = RoomDetail),
        (status = 400, description = "Not a valid room name"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such room live on this node"),
        (status = 405, description = "Another method (`Allow: GET, HEAD, DELETE`)"),
        (status = 503, description = "The room is too busy to answer; retry"),
    )
)]
async fn detail(state: &AppState, headers: &HeaderMap, room: &str) -> Result<Response, ApiError> {
    authorize(state, headers, room, Action::Admin)?;
    let detail: RoomDetail =
        super::limits::ask(state, room, false, |reply| Command::Detail { reply })
            .await?
            .filter(|d| !d.participants.is_empty() || d.viewers > 0)
            .ok_or_else(|| no_room(room))?;
    Ok(fresh(detail))
}

/// Close a room: end every session in it
///
/// Every WHIP and WHEP session of the room ends (their resources then answer 404) and
/// the room closes.
#[utoipa::path(
    delete,
    path = "/api/rooms/{room}",
    tag = "rooms",
    operation_id = "closeRoom",
    params(super::openapi::RoomParam),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 400, description = "Not a valid room name"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such room live on this node"),
        (status = 503, description = "The room is too busy to answer; retry"),
    )
)]
async fn close(state: &AppState, headers: &HeaderMap, room: &str) -> Result<Response, ApiError> {
    authorize(state, headers, room, Action::Admin)?;
    let ended = super::limits::ask(state, room, false, |reply| Command::Close { reply })
        .await?
        .unwrap_or(0);
    if ended == 0 {
        return Err(no_room(room));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Remove a participant: end every session of the identity
///
/// Its WHIP (camera and screen) and WHEP sessions end; their resources then answer 404.
#[utoipa::path(
    delete,
    path = "/api/rooms/{room}/participants/{identity}",
    tag = "rooms",
    operation_id = "removeParticipant",
    params(super::openapi::ParticipantParams),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The identity's sessions ended"),
        (status = 400, description = "Not a valid room name or identity"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such participant, or no such room live on this node"),
        (status = 405, description = "Another method (`Allow: DELETE`)"),
        (status = 503, description = "The room is too busy to answer; retry"),
    )
)]
async fn remove(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    identity: &str,
) -> Result<Response, ApiError> {
    authorize(state, headers, room, Action::Admin)?;
    let had = super::limits::ask(state, room, false, |reply| Command::Remove {
        identity: identity.to_owned(),
        reply,
    })
    .await?
    .ok_or_else(|| no_room(room))?;
    if !had {
        return Err(ApiError::NotFound(format!(
            "no participant {identity:?} in room {room:?}"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of a mute request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// The track id, `{source}-{kind}`: `camera-audio`, `camera-video`, `screen-audio`,
    /// `screen-video`.
    #[schema(example = "camera-audio")]
    pub track: String,
    /// `true`: viewers stop receiving the track; `false`: they receive it again.
    pub muted: bool,
}

/// Mute or unmute a published track
///
/// A muted track is not forwarded to any viewer; viewers' event streams get a
/// `participant-updated` event with the track's `muted` flag.
#[utoipa::path(
    post,
    path = "/api/rooms/{room}/participants/{identity}/mute",
    tag = "rooms",
    operation_id = "muteTrack",
    params(super::openapi::ParticipantParams),
    request_body(content = MuteRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "Not a valid room name or identity, or not a mute request"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such track, participant, or room live on this node"),
        (status = 405, description = "Another method (`Allow: POST`)"),
        (status = 415, description = "Not `application/json` (`Accept-Post: application/json`)"),
        (status = 503, description = "The room is too busy to answer; retry"),
    )
)]
async fn mute(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    identity: &str,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = admin_json_body(state, headers, room, body, super::limits::MAX_JSON_BODY).await?;
    let req: MuteRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid mute request: {e} (expected {{\"track\": \"camera-audio\", \"muted\": true}})"
        ))
    })?;
    let found = super::limits::ask(state, room, false, |reply| Command::Mute {
        identity: identity.to_owned(),
        track: req.track.clone(),
        muted: req.muted,
        reply,
    })
    .await?
    .ok_or_else(|| no_room(room))?;
    if !found {
        return Err(ApiError::NotFound(format!(
            "{identity:?} publishes no track {:?} in room {room:?}",
            req.track
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
#[path = "rooms_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod openapi_tests;
