//! The recordings of a room: start, list, look at, stop. Part of the room API: every
//! route needs the `admin` grant for the room (401, 403), answers JSON and fails with
//! problem+json ([`ApiError`]).
//!
//! | resource | methods |
//! |---|---|
//! | `/api/rooms/{room}/recordings` | POST `{}` or `{"identities": [..]}` → 201 `RecordingInfo` with `Location`; GET → `{"recordings": [RecordingInfo]}` |
//! | `/api/rooms/{room}/recordings/{id}` | GET → `RecordingInfo`; DELETE → 200 `RecordingInfo` (`stopping`, then `finished` once its files are complete) |
//!
//! A recording records every track of the room (`{}`), or of the listed identities, now
//! and as they come: each publisher track's top simulcast layer, without transcoding,
//! into one MP4 file per track (`crate::archive`). It ends on DELETE or when its room
//! closes. Starting one needs a live room (404), `--record-dir` (503), a free place under
//! `--max-recordings` and under the room's own limit of
//! [`crate::room::MAX_RECORDINGS_PER_ROOM`] (503), and free disk space (507).
//!
//! Only asks room actors ([`Command::StartRecording`], [`Command::StopRecording`]) and
//! reads the archive's list; never touches media or files.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::rooms::admin_json_body;
use super::sessions::{authorize, identity_param, room_name};
use super::{ApiError, AppState};
use crate::archive::AdmitError;
use crate::auth::Action;
use crate::record::manifest::{RecordingInfo, RecordingState};
use crate::room::{RecordingError, Selection};
use crate::runtime::Command;

const LIST_ALLOW: &str = "GET, HEAD, POST";
const ONE_ALLOW: &str = "GET, HEAD, DELETE";
/// Identities one recording may name.
pub const MAX_IDENTITIES: usize = 64;
/// Seconds a client waits before retrying a refused start.
const RETRY_AFTER_S: u32 = 5;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/rooms/{room}/recordings",
            any(
                |method: Method,
                 State(state): State<AppState>,
                 path: Result<Path<String>, PathRejection>,
                 headers: HeaderMap,
                 body: axum::body::Body| async move {
                    let Path(room) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
                    room_name(&room)?;
                    match method.as_str() {
                        "GET" | "HEAD" => list(&state, &headers, &room).await,
                        "POST" => start(&state, &headers, &room, body).await,
                        _ => Err(ApiError::MethodNotAllowed(LIST_ALLOW)),
                    }
                },
            ),
        )
        .route(
            "/api/rooms/{room}/recordings/{id}",
            any(
                |method: Method,
                 State(state): State<AppState>,
                 path: Result<Path<(String, String)>, PathRejection>,
                 headers: HeaderMap| async move {
                    let Path((room, id)) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
                    room_name(&room)?;
                    match method.as_str() {
                        "GET" | "HEAD" => get_one(&state, &headers, &room, &id).await,
                        "DELETE" => stop(&state, &headers, &room, &id).await,
                        _ => Err(ApiError::MethodNotAllowed(ONE_ALLOW)),
                    }
                },
            ),
        )
}

/// The body of `POST /api/rooms/{room}/recordings`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRecording {
    /// Record only these identities' tracks (1 to 64), now and as they come; absent:
    /// every participant's.
    #[serde(default)]
    pub identities: Option<Vec<String>>,
}

/// `GET /api/rooms/{room}/recordings`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordingList {
    /// The room's recordings on this node, running and recently finished, oldest first.
    pub recordings: Vec<RecordingInfo>,
}

fn fresh<T: Serialize>(status: StatusCode, v: T) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(v)).into_response()
}

fn no_room(room: &str) -> ApiError {
    ApiError::NotFound(format!("no room {room:?} is live on this node"))
}

fn no_recording(room: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("no recording {id:?} in room {room:?} on this node"))
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::Storage(_) => ApiError::InsufficientStorage(e.to_string()),
            AdmitError::Disabled | AdmitError::TooMany(_) => ApiError::Overloaded {
                retry_after: RETRY_AFTER_S,
                detail: e.to_string(),
            },
        }
    }
}

/// Start recording a room
///
/// Records every track of the room (`{}`), or of `identities`, now and as they come:
/// the top simulcast layer of each, without transcoding, one MP4 file per track in
/// `--record-dir`, with a `manifest.json` giving each file's wall-clock start.
#[utoipa::path(
    post,
    path = "/api/rooms/{room}/recordings",
    tag = "rooms",
    operation_id = "startRecording",
    params(super::openapi::RoomParam),
    request_body(content = StartRecording, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Started; `Location` is the recording", body = RecordingInfo),
        (status = 400, description = "Not a valid room name or request"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such room live on this node"),
        (status = 415, description = "Not `application/json`"),
        (status = 503, description = "Recording is off (no `--record-dir`), or `--max-recordings` or the room's limit is reached"),
        (status = 507, description = "Not enough free disk space, or the recording budget is spent"),
    )
)]
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = admin_json_body(state, headers, room, body, super::limits::MAX_JSON_BODY).await?;
    let req: StartRecording = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid recording request: {e} (expected {{}} or {{\"identities\": [\"alice\"]}})"
        ))
    })?;
    let selection = match req.identities {
        None => Selection::All,
        Some(ids) if ids.is_empty() || ids.len() > MAX_IDENTITIES => {
            return Err(ApiError::BadRequest(format!(
                "identities: 1 to {MAX_IDENTITIES} names, or absent for everyone"
            )))
        }
        Some(ids) => Selection::Identities(
            ids.iter()
                .map(|i| identity_param("identities", i).map(Into::into))
                .collect::<Result<_, _>>()?,
        ),
    };
    let slot = state.archive.admit()?;
    let id = super::limits::ask(state, room, false, |reply| Command::StartRecording {
        selection: selection.clone(),
        slot: slot.clone(),
        reply,
    })
    .await?
    .ok_or_else(|| no_room(room))?
    .map_err(|e| match e {
        RecordingError::TooMany => ApiError::Overloaded {
            retry_after: RETRY_AFTER_S,
            detail: e.to_string(),
        },
        RecordingError::NotFound => no_room(room),
    })?;
    let info = state
        .archive
        .get(room, &id)
        .ok_or_else(|| no_recording(room, &id))?;
    let location = format!("/api/rooms/{room}/recordings/{id}");
    let mut res = fresh(StatusCode::CREATED, info);
    if let Ok(v) = location.parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// List a room's recordings
///
/// The running ones and the recently finished ones on this node, oldest first; a
/// recording's files are listed as they start.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/recordings",
    tag = "rooms",
    operation_id = "listRecordings",
    params(super::openapi::RoomParam),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room's recordings", body = RecordingList),
        (status = 400, description = "Not a valid room name"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 405, description = "Another method (`Allow: GET, HEAD, POST`)"),
    )
)]
async fn list(state: &AppState, headers: &HeaderMap, room: &str) -> Result<Response, ApiError> {
    authorize(state, headers, room, Action::Admin)?;
    Ok(fresh(
        StatusCode::OK,
        RecordingList {
            recordings: state.archive.list(room),
        },
    ))
}

/// A recording with its files
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/recordings/{id}",
    tag = "rooms",
    operation_id = "getRecording",
    params(super::openapi::RoomParam, ("id" = String, Path, description = "The recording's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The recording", body = RecordingInfo),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such recording of the room on this node"),
        (status = 405, description = "Another method (`Allow: GET, HEAD, DELETE`)"),
    )
)]
async fn get_one(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    id: &str,
) -> Result<Response, ApiError> {
    authorize(state, headers, room, Action::Admin)?;
    let info = state
        .archive
        .get(room, id)
        .ok_or_else(|| no_recording(room, id))?;
    Ok(fresh(StatusCode::OK, info))
}

/// Stop a recording
///
/// Its tracks' last fragments are written and its files completed; it is `stopping`
/// until then, `finished` after (a `recording.finished` webhook lists its files).
#[utoipa::path(
    delete,
    path = "/api/rooms/{room}/recordings/{id}",
    tag = "rooms",
    operation_id = "stopRecording",
    params(super::openapi::RoomParam, ("id" = String, Path, description = "The recording's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stopped", body = RecordingInfo),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such recording of the room on this node"),
        (status = 409, description = "The recording has already ended"),
        (status = 503, description = "The room is too busy to answer; retry"),
    )
)]
async fn stop(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    id: &str,
) -> Result<Response, ApiError> {
    authorize(state, headers, room, Action::Admin)?;
    let known = state
        .archive
        .get(room, id)
        .ok_or_else(|| no_recording(room, id))?;
    if known.state != RecordingState::Active {
        return Err(ApiError::Conflict(format!(
            "recording {id:?} has already ended"
        )));
    }
    let stopped = super::limits::ask(state, room, false, |reply| Command::StopRecording {
        id: id.to_owned(),
        reply,
    })
    .await?;
    if !matches!(stopped, Some(Ok(()))) {
        // The room ended (and with it the recording) since the look-up.
        return Err(ApiError::Conflict(format!(
            "recording {id:?} has already ended"
        )));
    }
    let info = state
        .archive
        .get(room, id)
        .ok_or_else(|| no_recording(room, id))?;
    Ok(fresh(StatusCode::OK, info))
}
