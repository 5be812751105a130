//! `POST /api/rooms/{room}/data`: the server speaks on a room's data channels
//! (`docs/conference.md`, "Data channels"). Needs the `admin` grant, like the rest of
//! the room API.
//!
//! Body: `{"topic": "chat", "data": <any JSON>, "to": ["identity", …]}` (`to`
//! optional). Receivers get `{"from": "server", "topic", "data"}` on their channel
//! labelled `topic`. Answers 200 `{"receivers": n}`; 400 for a body that is not that
//! object; 404 for no such room, or a `to` identity not in it; 413 for `data` over
//! 16 KiB or a body over 32 KiB; 415 for another content type; 422 for the reserved
//! topic `_events`. Never touches media: it asks the room ([`Command::Data`]).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::sessions::room_name;
use super::{ApiError, AppState};
use crate::data::DataLimits;
use crate::room::ServerMessageError;
use crate::runtime::Command;

/// The largest body: a 16 KiB `data` with its topic and recipients.
const MAX_BODY: usize = 32 * 1024;

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/rooms/{room}/data",
        any(
            |method: Method,
             State(state): State<AppState>,
             path: Result<Path<String>, PathRejection>,
             headers: HeaderMap,
             body: axum::body::Body| async move {
                if method != Method::POST {
                    return Err(ApiError::MethodNotAllowed("POST"));
                }
                let Path(room) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
                room_name(&room)?;
                send(&state, &headers, &room, body).await
            },
        ),
    )
}

/// The body of a server message.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataRequest {
    /// The topic: the label of the receivers' data channel.
    #[schema(example = "chat")]
    topic: String,
    /// Any JSON value, passed on unchanged (at most 16 KiB).
    #[schema(value_type = Object)]
    data: Box<RawValue>,
    /// Only these identities (default: every participant with the topic).
    #[serde(default)]
    to: Option<Vec<String>>,
}

/// Send a message on a room's data channels
///
/// Every participant with a data channel labelled `topic` open (or only those in `to`)
/// gets `{"from": "server", "topic", "data"}` on it.
#[utoipa::path(
    post,
    path = "/api/rooms/{room}/data",
    tag = "rooms",
    operation_id = "sendData",
    params(super::openapi::RoomParam),
    request_body(content = DataRequest, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Sent: `{\"receivers\": n}`"),
        (status = 400, description = "Not a valid room name, or not a data request"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "The token does not cover the room or lacks the `admin` grant"),
        (status = 404, description = "No such room live on this node, or a `to` identity not in it"),
        (status = 405, description = "Another method (`Allow: POST`)"),
        (status = 413, description = "`data` over 16 KiB, or the body over 32 KiB"),
        (status = 415, description = "Not `application/json` (`Accept-Post: application/json`)"),
        (status = 422, description = "The reserved topic `_events`"),
        (status = 503, description = "The room is too busy to answer; retry"),
    )
)]
async fn send(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = super::rooms::admin_json_body(state, headers, room, body, MAX_BODY).await?;
    let req: DataRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid data request: {e} (expected {{\"topic\": \"chat\", \"data\": …, \"to\": [\"identity\"]}})"
        ))
    })?;
    let max = DataLimits::default().max_message;
    if req.data.get().len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "data is limited to {max} bytes"
        )));
    }
    if req.topic.is_empty() || req.topic.len() > 256 {
        return Err(ApiError::BadRequest("topic: 1 to 256 bytes".into()));
    }
    let answer = super::limits::ask(state, room, false, |reply| Command::Data {
        topic: req.topic.clone(),
        data: req.data.clone(),
        to: req.to.clone(),
        reply,
    })
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no room {room:?} is live on this node")))?;
    match answer {
        Ok(receivers) => Ok(Json(serde_json::json!({ "receivers": receivers })).into_response()),
        Err(ServerMessageError::Reserved) => Err(ApiError::Unprocessable(
            "the topic _events is reserved for the room's events".into(),
        )),
        Err(ServerMessageError::UnknownRecipient) => Err(ApiError::NotFound(format!(
            "\"to\" names an identity that is not in room {room:?}"
        ))),
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
