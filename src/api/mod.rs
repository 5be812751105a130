//! The HTTP API (axum): WHIP and WHEP endpoints and session resources, the room API,
//! operations endpoints (`/metrics`, `/livez`, `/readyz`), the OpenAPI document
//! (`/openapi.json`) and the embedded web pages. One module per resource, merged by
//! [`router`]; one error type, [`ApiError`], rendered as RFC 9457 problem+json. Never
//! touches media.

pub(crate) mod admission;
pub(crate) mod data;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod ice_restart;
pub(crate) mod limits;
pub(crate) mod openapi;
pub(crate) mod ops;
pub mod preferences;
pub(crate) mod proxy;
pub mod recordings;
pub mod rooms;
pub(crate) mod sessions;
pub mod slot_prefs;
pub mod turn;
pub(crate) mod web;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderName, Method};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceExt;
use tower_http::cors::{Any, CorsLayer};

pub use error::ApiError;

use crate::cluster::Cluster;
use crate::config::Routing;
use crate::runtime::Rooms;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The room registry.
    pub rooms: Arc<Rooms>,
    /// Who may publish and play (JWT, static token, or open).
    pub auth: Arc<crate::auth::Authority>,
    /// `Link` header values for ICE servers (RFC 9725 §4.6), TURN credentials included:
    /// only for authorized callers.
    pub ice_links: Arc<[String]>,
    /// The same without credentials (STUN servers only), for anyone.
    pub ice_links_public: Arc<[String]>,
    /// Per-session TURN credentials (`--turn-url`), for authorized callers only.
    pub turn: Option<Arc<turn::TurnRest>>,
    /// Admission of new sessions: rate, session and pending limits.
    pub admission: Arc<admission::Admission>,
    /// Open event streams per session.
    pub event_streams: Arc<events::EventStreams>,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// `false` once the server drains (SIGTERM): `/readyz` answers 503 and no new room is
    /// opened here.
    pub ready: Arc<AtomicBool>,
    /// Turns `true` when the server starts draining; session event streams send
    /// `reconnect` then.
    pub draining: Arc<tokio::sync::watch::Sender<bool>>,
    /// What `/api/server` reports about this node.
    pub node: Arc<NodeInfo>,
    /// Room placement across nodes (a single node places everything here).
    pub cluster: Arc<Cluster>,
    /// How requests for rooms on other nodes are served.
    pub routing: Routing,
    /// `--internal-secret`, sent with proxied requests and required on the internal
    /// listener.
    pub internal_secret: Option<Arc<str>>,
    /// Client for proxied requests.
    pub http: reqwest::Client,
    /// Recordings on this node (`--record-dir`).
    pub archive: crate::archive::Archive,
}

/// This node, as `GET /api/server` reports it (and the home page shows).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `--node-id`, `POD_NAME` or the host name.
    pub node_id: String,
    /// The addresses put in ICE candidates (`ip:port`).
    pub candidates: Vec<String>,
    /// The server's version.
    pub version: &'static str,
}

/// The API of the internal listener: the same, for requests other nodes forward here,
/// each carrying the shared secret ([`proxy::internal_only`]).
pub fn internal_router(state: AppState) -> Router {
    router(state.clone()).layer(axum::middleware::from_fn_with_state(
        state,
        proxy::internal_only,
    ))
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let node_id = state.cluster.node_id().to_owned();
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
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LINK,
            header::CONTENT_TYPE,
            HeaderName::from_static("accept-post"),
            header::RETRY_AFTER,
        ]);
    let plain = Router::new()
        .merge(sessions::routes())
        .merge(preferences::routes())
        .merge(events::routes())
        .merge(rooms::routes())
        .merge(recordings::routes())
        .merge(data::routes())
        .merge(ops::routes())
        .merge(openapi::routes())
        .merge(proxy::routes())
        .merge(web::routes())
        .with_state(state);
    let with_cors = plain.clone().layer(cors);
    // tower-http answers every OPTIONS as a preflight; a plain OPTIONS (no
    // Access-Control-Request-Method) must reach the handler, which advertises
    // `Accept-Post` and ICE servers (RFC 9725 §4.6).
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        // This node's own sessions, named `/n/{node}/...` in a cluster, route as usual;
        // a nested `/n/.../n/...` is refused at once (it could only loop).
        let req = match proxy::strip_own_prefix(&node_id, req) {
            Ok(req) => req,
            Err(refused) => {
                return futures_util::future::Either::Left(std::future::ready(Ok::<
                    _,
                    std::convert::Infallible,
                >(
                    axum::response::IntoResponse::into_response(refused),
                )))
            }
        };
        let plain_options = req.method() == Method::OPTIONS
            && !req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let svc = if plain_options {
            plain.clone()
        } else {
            with_cors.clone()
        };
        futures_util::future::Either::Right(svc.oneshot(req))
    }))
}
