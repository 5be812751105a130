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
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/api/server", get(server_info))
}

async fn server_info(State(s): State<AppState>) -> axum::Json<serde_json::Value> {
    let mut v = serde_json::to_value(&*s.node).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("draining".into(), (!s.ready.load(Ordering::Relaxed)).into());
        o.insert("rooms".into(), s.rooms.len().into());
        o.insert("auth".into(), s.auth.mode().into());
    }
    axum::Json(v)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    }
}
