//! Requests for rooms that live on another node (see [`crate::cluster`]).
//!
//! * A POST for a room owned elsewhere is **proxied** to the owner's internal listener
//!   (`--routing proxy`: the client sees one address) or answered **307** with the
//!   owner's public URL (`--routing redirect`; RFC 9725 §4.5 lets a WHIP client follow it).
//! * In a multi-node cluster a session's `Location` names its node: `/n/{node}/whip/...`.
//!   On its own node the prefix is stripped before routing ([`strip_own_prefix`]); on any
//!   other node, the `/n/{node}/{*rest}` route forwards PATCH, DELETE and the session's
//!   sub-resources the same way, with no directory lookup beyond the node's record.
//! * The internal listener accepts only requests with the shared secret
//!   ([`internal_only`]) and marks them [`Forwarded`]: already placed, serve here.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::{ApiError, AppState};
use crate::cluster::NodeRecord;
use crate::config::Routing;

/// Header carrying `--internal-secret` between nodes.
pub const SECRET_HEADER: &str = "x-switchboard-internal-secret";
/// Request headers a proxied request keeps.
const FORWARD_REQUEST: [header::HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    header::IF_MATCH,
    header::ACCEPT,
    header::ORIGIN,
];
/// Response headers a proxied answer keeps.
const FORWARD_RESPONSE: [header::HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    header::LINK,
    header::RETRY_AFTER,
    header::ALLOW,
    header::WWW_AUTHENTICATE,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
];

/// Marks a request that came through the internal listener with the right secret: the
/// sending node already placed it here.
#[derive(Debug, Clone, Copy)]
pub struct Forwarded;

/// The `/n/{node}/{*rest}` route for sessions on other nodes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/n/{node}/{*rest}", any(to_session_node))
}

async fn to_session_node(
    State(state): State<AppState>,
    Path((node, _rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Our own prefix was stripped before routing; this is another node's session.
    let record = state
        .cluster
        .node(&node)
        .await
        .ok_or_else(|| ApiError::NotFound(format!("node {node} is gone, and its sessions")))?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    to_node(&state, &record, method, path, &headers, body).await
}

/// Serve a request on `node`: proxy or redirect per `--routing`. `path` is the path and
/// query to use there.
pub async fn to_node(
    state: &AppState,
    node: &NodeRecord,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if state.routing == Routing::Redirect {
        let target = format!("{}{path}", node.public_url.trim_end_matches('/'));
        let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
        let v = HeaderValue::from_str(&target)
            .map_err(|_| ApiError::BadGateway(format!("node {} has no usable URL", node.id)))?;
        res.headers_mut().insert(header::LOCATION, v);
        return Ok(res);
    }
    let (Some(secret), false) = (&state.internal_secret, node.internal_url.is_empty()) else {
        return Err(ApiError::BadGateway(format!(
            "node {} has no internal listener",
            node.id
        )));
    };
    let url = format!("{}{path}", node.internal_url.trim_end_matches('/'));
    let mut req = state
        .http
        .request(method, &url)
        .header(SECRET_HEADER, secret.as_ref())
        .body(body);
    for name in FORWARD_REQUEST {
        for v in headers.get_all(&name) {
            req = req.header(&name, v);
        }
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ApiError::BadGateway(format!("node {} did not answer: {e}", node.id)))?;
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for name in FORWARD_RESPONSE {
        for v in resp.headers().get_all(&name) {
            out_headers.append(name.clone(), v.clone());
        }
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| ApiError::BadGateway(format!("node {} answer cut short: {e}", node.id)))?;
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    *res.headers_mut() = out_headers;
    Ok(res)
}

/// Rewrite `/n/{own id}/rest` to `/rest` so this node's own sessions route as usual.
pub fn strip_own_prefix(node_id: &str, mut req: Request) -> Request {
    let prefix = format!("/n/{node_id}/");
    let Some(rest) = req.uri().path().strip_prefix(prefix.as_str()) else {
        return req;
    };
    let mut pq = format!("/{rest}");
    if let Some(q) = req.uri().query() {
        pq.push('?');
        pq.push_str(q);
    }
    let mut parts = req.uri().clone().into_parts();
    if let Ok(p) = pq.parse() {
        parts.path_and_query = Some(p);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Middleware of the internal listener: only requests with the shared secret pass, and
/// they are marked [`Forwarded`].
pub async fn internal_only(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let ok = match (&state.internal_secret, req.headers().get(SECRET_HEADER)) {
        (Some(want), Some(got)) => crate::auth::constant_time_eq(want.as_bytes(), got.as_bytes()),
        _ => false,
    };
    if !ok {
        return Err(ApiError::Forbidden(
            "the internal listener needs the shared secret".into(),
        ));
    }
    req.headers_mut().remove(SECRET_HEADER);
    req.extensions_mut().insert(Forwarded);
    Ok(next.run(req).await)
}
