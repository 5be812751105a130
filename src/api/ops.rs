//! Operations endpoints: `/metrics` (Prometheus text format), `/livez` (the process
//! answers), `/readyz` (ready for new rooms: not draining), `/api/server` (this node's id,
//! advertised addresses, drain state and room count, as JSON).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/api/server", get(server_info))
}

/// This node: id, ICE candidate addresses, version, drain state, room count, auth mode
#[utoipa::path(
    get,
    path = "/api/server",
    tag = "ops",
    operation_id = "getServer",
    responses((status = 200, description = "This node", body = super::openapi::ServerInfo))
)]
async fn server_info(State(s): State<AppState>) -> axum::Json<serde_json::Value> {
    let mut v = serde_json::to_value(&*s.node).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("draining".into(), (!s.ready.load(Ordering::Relaxed)).into());
        o.insert("rooms".into(), s.rooms.len().into());
        o.insert("auth".into(), s.auth.mode().into());
    }
    axum::Json(v)
}

/// Prometheus metrics
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    operation_id = "getMetrics",
    responses((
        status = 200,
        description = "The Prometheus text exposition format, version 0.0.4",
        body = String,
        content_type = "text/plain; version=0.0.4"
    ))
)]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
}

/// Liveness: the process answers
#[utoipa::path(
    get,
    path = "/livez",
    tag = "ops",
    operation_id = "getLivez",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
async fn livez() -> &'static str {
    "ok\n"
}

/// Readiness: ready for new rooms (not draining)
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    operation_id = "getReadyz",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`draining`: live rooms continue, no new room opens here", body = String, content_type = "text/plain"),
    )
)]
async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    }
}
