//! Requests for rooms that live on another node (see [`crate::cluster`]).
//!
//! * A POST for a room owned elsewhere is **proxied** to the owner's internal listener
//!   (`--routing proxy`: the client sees one address) or answered **307** with the
//!   owner's public URL (`--routing redirect`; RFC 9725 §4.5 lets a WHIP client follow it).
//! * In a multi-node cluster a session's `Location` names its node: `/n/{node}/whip/...`.
//!   On its own node the prefix is stripped before routing ([`strip_own_prefix`]); on any
//!   other node, the `/n/{node}/{*rest}` route forwards PATCH, DELETE and the session's
//!   sub-resources the same way, with no directory lookup beyond the node's record.
//!   Only session resources (`/n/{node}/whip|whep/{room}/{session}[/...]`) go this way,
//!   authorized here first; a nested `/n/.../n/...` path or this node's own id is
//!   refused at once (400), never proxied (it could only loop).
//! * The internal listener accepts only requests with the shared secret
//!   ([`internal_only`]); it marks [`Forwarded`] (already placed, serve here) only a
//!   POST this node placed there itself ([`PLACED_HEADER`]), never a session request
//!   that arrived at a public `/n/` route.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::limits::{read_body, MAX_JSON_BODY};
use super::sessions::{action_of, authorize, room_name};
use super::{ApiError, AppState};
use crate::cluster::NodeRecord;
use crate::config::Routing;
use crate::ids::{SessionId, SessionKind};

/// Header carrying `--internal-secret` between nodes.
pub(crate) const SECRET_HEADER: &str = "x-switchboard-internal-secret";
/// Header that marks a proxied POST as placed by the sending node (room placement is
/// done: serve it here, even while draining). Set only by [`to_node`] for a POST this
/// node placed; a public request can never carry it (only [`FORWARD_REQUEST`] headers
/// are copied).
pub(crate) const PLACED_HEADER: &str = "x-switchboard-placed";
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
pub(crate) struct Forwarded;

/// The `/n/{node}/{*rest}` route for sessions on other nodes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/n/{node}/{*rest}", any(to_session_node))
}

async fn to_session_node(
    State(state): State<AppState>,
    Path((node, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Our own prefix was stripped before routing; this is another node's session.
    if node == state.cluster.node_id() || rest.starts_with("n/") {
        return Err(nested());
    }
    let (kind, room) = session_resource(&rest)?;
    authorize(&state, &headers, room, action_of(kind))?;
    let record = state
        .cluster
        .node(&node)
        .await
        .ok_or_else(|| ApiError::NotFound(format!("node {node} is gone, and its sessions")))?;
    let body = read_body(body, MAX_JSON_BODY, "proxied").await?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    to_node(&state, &record, method, path, &headers, body, false).await
}

/// What the `/n/{node}/` route may carry: a session resource,
/// `whip|whep/{room}/{session}[/...]`. Returns its kind and room; 404 otherwise.
fn session_resource(rest: &str) -> Result<(SessionKind, &str), ApiError> {
    let mut parts = rest.split('/');
    let kind = match parts.next() {
        Some("whip") => SessionKind::Publisher,
        Some("whep") => SessionKind::Subscriber,
        _ => {
            return Err(ApiError::NotFound(
                "only session resources live under /n/".into(),
            ))
        }
    };
    let room = room_name(parts.next().unwrap_or(""))?;
    if parts.next().and_then(SessionId::parse).is_none() {
        return Err(ApiError::NotFound("no such session".into()));
    }
    Ok((kind, room))
}

fn nested() -> ApiError {
    ApiError::BadRequest("nested /n/ paths and this node's own id are not proxied".into())
}

/// Serve a request on `node`: proxy or redirect per `--routing`. `path` is the path and
/// query to use there; `placed`: a POST this node placed on `node` (see
/// [`PLACED_HEADER`]).
pub(crate) async fn to_node(
    state: &AppState,
    node: &NodeRecord,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
    placed: bool,
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
    if placed {
        req = req.header(PLACED_HEADER, "1");
    }
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
/// A nested `/n/{a}/n/{b}/...` (whoever `a` is) is refused with a 400 response: a
/// session URL never nests, and proxying it would loop through nodes.
pub(crate) fn strip_own_prefix(node_id: &str, mut req: Request) -> Result<Request, ApiError> {
    let path = req.uri().path();
    let Some(after_n) = path.strip_prefix("/n/") else {
        return Ok(req);
    };
    let rest = after_n.split_once('/').map_or("", |(_, r)| r);
    if rest.starts_with("n/") || rest == "n" {
        return Err(nested());
    }
    let prefix = format!("/n/{node_id}/");
    let Some(rest) = path.strip_prefix(prefix.as_str()) else {
        return Ok(req);
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
    Ok(req)
}

/// Middleware of the internal listener: only requests with the shared secret pass; a
/// POST placed by the sending node ([`PLACED_HEADER`]) is marked [`Forwarded`].
pub(crate) async fn internal_only(
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
    if req.headers_mut().remove(PLACED_HEADER).is_some() {
        req.extensions_mut().insert(Forwarded);
    }
    Ok(next.run(req).await)
}
