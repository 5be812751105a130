//! WHEP viewer resources below a session: the `layer` extension
//! (`urn:ietf:params:whep:ext:core:layer`, draft-ietf-wish-whep) to pick or cap a
//! simulcast layer by hand, and a JSON stats resource.
//!
//! | resource | methods |
//! |---|---|
//! | `/whep/{room}/{session}/layer` | POST `application/json` → 204 |
//! | `/whep/{room}/{session}/stats` | GET → 200 JSON |
//!
//! Layer request bodies: `{"encodingId": "h"}` (this RID), `{"spatialLayerId": 0}` (the
//! N-th layer from the lowest bitrate), `{"maxSpatialLayerId": 1}` (automatic, capped),
//! `{}` (automatic); optional `"mediaId"` names one video m-line (default: all).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde::Deserialize;

use super::sessions::{authorize, has_content_type, session_path};
use super::{ApiError, AppState};
use crate::forwarder::preferences::LayerPreference;
use crate::forwarder::published::MAX_TID;
use crate::runtime::Command;

/// Largest `spatialLayerId`/`maxSpatialLayerId` accepted: simulcast has at most a few
/// layers (RFC 8853 offers rarely carry more than 3 RIDs), so anything past 15 is a
/// mistake, answered 422 before it reaches arithmetic.
const MAX_SPATIAL_LAYER_ID: usize = 15;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/whep/{room}/{session}/layer",
            any(
                |method: axum::http::Method,
                 state: State<AppState>,
                 path: Result<Path<(String, String)>, PathRejection>,
                 headers: HeaderMap,
                 body: axum::body::Body| async move {
                    match method.as_str() {
                        "POST" => set_layer(state, path, headers, body).await,
                        _ => Err(ApiError::MethodNotAllowed("POST")),
                    }
                },
            ),
        )
        .route(
            "/whep/{room}/{session}/stats",
            any(
                |method: axum::http::Method,
                 state: State<AppState>,
                 path: Result<Path<(String, String)>, PathRejection>,
                 headers: HeaderMap| async move {
                    match method.as_str() {
                        "GET" | "HEAD" => stats(state, path, headers).await,
                        _ => Err(ApiError::MethodNotAllowed("GET, HEAD")),
                    }
                },
            ),
        )
}

/// A layer request (camelCase JSON): `encodingId` or `spatialLayerId` picks a layer,
/// `maxSpatialLayerId`/`maxWidth`/`maxHeight` cap the automatic choice, `{}` is
/// automatic.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerRequest {
    /// The video m-line (MID) it applies to; absent: every video m-line.
    media_id: Option<String>,
    /// Forward this simulcast layer (its RID).
    #[schema(example = "h")]
    encoding_id: Option<String>,
    /// Forward the N-th layer from the lowest bitrate (0 = lowest).
    spatial_layer_id: Option<usize>,
    /// With `encodingId` or `spatialLayerId`: the temporal cap (VP8 TID; 0 = base frame
    /// rate). Absent: every temporal layer.
    #[schema(maximum = 2)]
    temporal_layer_id: Option<u8>,
    /// Automatic, at most this layer (0 = lowest).
    max_spatial_layer_id: Option<usize>,
    /// Cap by frame width, pixels (the tile the video is shown in).
    max_width: Option<u16>,
    /// Cap by frame height, pixels.
    max_height: Option<u16>,
}

impl LayerRequest {
    /// The preference this request asks for (the fields' validation is the handler's).
    pub fn preference(&self) -> LayerPreference {
        if let Some(rid) = &self.encoding_id {
            LayerPreference::Encoding(rid.as_str().into(), self.temporal_layer_id)
        } else if let Some(n) = self.spatial_layer_id {
            LayerPreference::Spatial(n, self.temporal_layer_id)
        } else if self.max_spatial_layer_id.is_some()
            || self.max_width.is_some()
            || self.max_height.is_some()
        {
            LayerPreference::Cap {
                max_spatial: self.max_spatial_layer_id,
                max_width: self.max_width,
                max_height: self.max_height,
            }
        } else {
            LayerPreference::Auto
        }
    }
}

async fn set_layer(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (room, session) = session_path(path)?;
    authorize(&state, &headers, &room, crate::auth::Action::Subscribe)?;
    if !has_content_type(&headers, "application/json") {
        return Err(ApiError::UnsupportedMediaType {
            header: "accept-post",
            accept: "application/json",
        });
    }
    let body = super::limits::read_body(body, super::limits::MAX_JSON_BODY, "JSON").await?;
    let req: LayerRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid layer request: {e}")))?;
    if req
        .encoding_id
        .as_deref()
        .is_some_and(|r| r.is_empty() || r.len() > 16)
    {
        return Err(ApiError::Unprocessable("encodingId must be a RID".into()));
    }
    let layers = [req.spatial_layer_id, req.max_spatial_layer_id];
    if layers.iter().flatten().any(|&n| n > MAX_SPATIAL_LAYER_ID) {
        return Err(ApiError::Unprocessable(format!(
            "spatialLayerId and maxSpatialLayerId must be at most {MAX_SPATIAL_LAYER_ID}"
        )));
    }
    if req.max_width == Some(0) || req.max_height == Some(0) {
        return Err(ApiError::Unprocessable(
            "maxWidth and maxHeight must be at least 1".into(),
        ));
    }
    if let Some(t) = req.temporal_layer_id {
        if t > MAX_TID {
            return Err(ApiError::Unprocessable(format!(
                "temporalLayerId must be at most {MAX_TID}"
            )));
        }
        if req.encoding_id.is_none() && req.spatial_layer_id.is_none() {
            return Err(ApiError::Unprocessable(
                "temporalLayerId needs encodingId or spatialLayerId".into(),
            ));
        }
    }
    let pref = req.preference();
    let outcome = super::limits::ask(&state, &room, false, |reply| Command::SetLayer {
        session: session.clone(),
        mid: req.media_id.clone(),
        pref: pref.clone(),
        reply,
    })
    .await?
    .flatten()
    .ok_or_else(|| ApiError::NotFound("no such WHEP session".into()))?;
    outcome.map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn stats(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (room, session) = session_path(path)?;
    authorize(&state, &headers, &room, crate::auth::Action::Subscribe)?;
    let stats = super::limits::ask(&state, &room, false, |reply| Command::Stats {
        session: session.clone(),
        reply,
    })
    .await?
    .flatten()
    .ok_or_else(|| ApiError::NotFound("no such WHEP session".into()))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(stats)).into_response())
}
