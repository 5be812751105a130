//! The HTTP API (axum): WHIP and WHEP endpoints and session resources, operations
//! endpoints (`/metrics`, `/livez`, `/readyz`) and the embedded web pages. One module per
//! resource, merged by [`router`]; one error type, [`ApiError`], rendered as RFC 9457
//! problem+json. Never touches media.

pub mod error;
pub mod ops;
pub mod sessions;
pub mod web;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::http::{header, HeaderName, Method};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::cors::{Any, CorsLayer};

pub use error::ApiError;

use crate::room::Rooms;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The room registry.
    pub rooms: Arc<Rooms>,
    /// Required bearer token, if any.
    pub token: Option<Arc<str>>,
    /// `Link` header values for ICE servers (RFC 9725 §4.6).
    pub ice_links: Arc<[String]>,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// `false` once the server is shutting down: `/readyz` answers 503.
    pub ready: Arc<AtomicBool>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    // Preflights are answered here, before any handler or auth (RFC 9725 §4.1).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_MATCH])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LINK,
            header::CONTENT_TYPE,
            HeaderName::from_static("accept-post"),
            header::RETRY_AFTER,
        ]);
    Router::new()
        .merge(sessions::routes())
        .merge(ops::routes())
        .merge(web::routes())
        .layer(cors)
        .with_state(state)
}
