//! WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) endpoints and session resources.
//!
//! | resource | methods |
//! |---|---|
//! | `/whip/{room}` | POST (publish), OPTIONS |
//! | `/whep/{room}` | POST (play), OPTIONS, HEAD |
//! | `/whip/{room}/{session}`, `/whep/{room}/{session}` | DELETE, PATCH, OPTIONS |
//!
//! A WHEP viewer may arrive before the room has a publisher: it is accepted (201) and
//! starts receiving when a publisher arrives, instead of being answered 409.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, MethodRouter};
use axum::Extension;
use axum::Router;

use super::limits::{read_body, MAX_JSON_BODY, MAX_SDPFRAG_BODY, MAX_SDP_BODY};
use super::proxy::{self, Forwarded};
use super::{ApiError, AppState};
use crate::auth::{Action, AuthError, Claims};
use crate::cluster::Placement;
use crate::conference::info::{JoinOptions, Source};
use crate::ids::{SessionId, SessionKind};
use crate::room::SessionTags;
use crate::runtime::Command;

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const ENDPOINT_ALLOW_WHIP: &str = "POST, OPTIONS";
const ENDPOINT_ALLOW_WHEP: &str = "POST, OPTIONS, HEAD";
const SESSION_ALLOW: &str = "PATCH, DELETE, OPTIONS";

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/whip/{room}", endpoint(SessionKind::Publisher))
        .route("/whep/{room}", endpoint(SessionKind::Subscriber))
        .route(
            "/whip/{room}/{session}",
            session_resource(SessionKind::Publisher),
        )
        .route(
            "/whep/{room}/{session}",
            session_resource(SessionKind::Subscriber),
        )
}

fn endpoint(kind: SessionKind) -> MethodRouter<AppState> {
    let allow = match kind {
        SessionKind::Publisher => ENDPOINT_ALLOW_WHIP,
        SessionKind::Subscriber => ENDPOINT_ALLOW_WHEP,
    };
    any(
        move |method: axum::http::Method,
              state: State<AppState>,
              path: Result<Path<String>, PathRejection>,
              forwarded: Option<Extension<Forwarded>>,
              peer: Option<Extension<ConnectInfo<SocketAddr>>>,
              uri: axum::http::Uri,
              query: Result<Query<JoinQuery>, QueryRejection>,
              headers: HeaderMap,
              body: Body| async move {
            match method.as_str() {
                "POST" => {
                    let req = PostRequest {
                        forwarded: forwarded.is_some(),
                        peer: peer.map(|Extension(ConnectInfo(a))| a),
                        raw_query: uri.query().map(str::to_owned),
                        query,
                        headers,
                        body,
                    };
                    post(kind, state, path, req).await
                }
                "OPTIONS" => Ok(options(&state, allow, Some((kind, &headers, path)))),
                "HEAD" | "GET" if kind == SessionKind::Subscriber => {
                    Ok(([(header::CONTENT_TYPE, SDP)], StatusCode::OK).into_response())
                }
                _ => Err(ApiError::MethodNotAllowed(allow)),
            }
        },
    )
}

fn session_resource(kind: SessionKind) -> MethodRouter<AppState> {
    any(
        move |method: axum::http::Method,
              state: State<AppState>,
              path: Result<Path<(String, String)>, PathRejection>,
              headers: HeaderMap,
              body: Body| async move {
            match method.as_str() {
                "DELETE" => delete(kind, state, path, headers).await,
                "PATCH" => patch(kind, state, path, headers, body).await,
                "OPTIONS" => Ok(options(&state, SESSION_ALLOW, None)),
                _ => Err(ApiError::MethodNotAllowed(SESSION_ALLOW)),
            }
        },
    )
}

/// An OPTIONS on an endpoint: its kind, the request's headers and its room.
type Endpoint<'a> = (
    SessionKind,
    &'a HeaderMap,
    Result<Path<String>, PathRejection>,
);

/// OPTIONS: `Accept-Post` and, on an endpoint, the ICE servers (RFC 9725 §4.6 allows
/// them on a non-preflight OPTIONS; preflights never reach here, the CORS layer answers).
/// TURN credentials only go to a caller whose token would be allowed to POST here; any
/// other caller gets the servers without credentials (`endpoint`: the endpoint's kind,
/// the request's headers and room; `None` on a session resource). Per-session TURN
/// credentials (`--turn-url`) need a verified token: an open server gives them only
/// with a 201, one per (rate-limited) session.
fn options(state: &AppState, allow: &'static str, endpoint: Option<Endpoint<'_>>) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(allow));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if let Some((kind, headers, path)) = endpoint {
        h.insert("accept-post", HeaderValue::from_static(SDP));
        let checked = path.ok().and_then(|Path(room)| {
            room_name(&room).ok()?;
            authorize(state, headers, &room, action_of(kind)).ok()
        });
        if let Some(claims) = checked {
            add_ice_links(h, state);
            if state.auth.mode() != "open" {
                let identity = claims.map(|c| c.sub);
                let turn = state.turn.as_deref();
                super::turn::append_links(h, turn, identity.as_deref(), "options");
            }
        } else {
            for link in state.ice_links_public.iter() {
                if let Ok(v) = HeaderValue::from_str(link) {
                    h.append(header::LINK, v);
                }
            }
        }
    } else {
        h.insert("accept-patch", HeaderValue::from_static(SDPFRAG));
    }
    res
}

fn add_ice_links(h: &mut HeaderMap, state: &AppState) {
    for link in state.ice_links.iter() {
        if let Ok(v) = HeaderValue::from_str(link) {
            h.append(header::LINK, v);
        }
    }
}

/// Check the request's bearer token (RFC 6750 §2.1) for `action` in `room` (see
/// [`crate::auth`]): 401 without a valid one, 403 when it does not cover the room or
/// action.
pub(super) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    action: Action,
) -> Result<Option<Claims>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    state.auth.check(bearer, room, action).map_err(|e| match e {
        AuthError::Unauthenticated(_) => ApiError::Unauthorized,
        AuthError::Forbidden(why) => ApiError::Forbidden(why),
    })
}

/// What a session of `kind` does, for [`authorize`].
pub(super) fn action_of(kind: SessionKind) -> Action {
    match kind {
        SessionKind::Publisher => Action::Publish,
        SessionKind::Subscriber => Action::Subscribe,
    }
}

/// Room names: 1 to 64 of `A-Z a-z 0-9 . _ ~ -` (URL-safe without escaping).
pub(super) fn room_name(path: &str) -> Result<&str, ApiError> {
    let ok = !path.is_empty()
        && path.len() <= 64
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
    if ok {
        Ok(path)
    } else {
        Err(ApiError::BadRequest(
            "room names are 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~', '-'".into(),
        ))
    }
}

/// Whether the request's `Content-Type` essence is `want` (RFC 9110 §8.3.1).
pub(super) fn has_content_type(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(want))
}

/// Read a text body of at most `limit` bytes (see [`read_body`]).
async fn body_text(body: Body, limit: usize, what: &str) -> Result<String, ApiError> {
    let body = read_body(body, limit, what).await?;
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))
}

fn base(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Publisher => "whip",
        SessionKind::Subscriber => "whep",
    }
}

/// The query of a WHIP/WHEP POST (see `docs/conference.md`).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct JoinQuery {
    /// Identity and display name on an open server (ignored with access tokens, whose
    /// `sub` and `name` win).
    name: Option<String>,
    /// WHIP: `camera` (default) or `screen`.
    source: Option<String>,
    /// WHEP: watch only this identity.
    participant: Option<String>,
}

/// What a POST carries besides its room.
struct PostRequest {
    forwarded: bool,
    /// The client's address (absent in router tests).
    peer: Option<SocketAddr>,
    raw_query: Option<String>,
    query: Result<Query<JoinQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
}

/// Identities and names from a URL: 1 to 64 characters of `A-Z a-z 0-9 . _ ~ -` and
/// space.
pub(super) fn identity_param(what: &str, v: &str) -> Result<String, ApiError> {
    let ok = !v.trim().is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~- ".contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ApiError::BadRequest(format!(
            "{what} must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~', '-', ' '"
        )))
    }
}

/// Who joins: the token's identity, else `?name=`; the source and who to watch.
fn join_options(
    kind: SessionKind,
    claims: Option<Claims>,
    query: Result<Query<JoinQuery>, QueryRejection>,
) -> Result<JoinOptions, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut opts = JoinOptions::default();
    if let Some(n) = &q.name {
        let n = identity_param("name", n)?;
        opts.identity = Some(n.clone());
        opts.name = Some(n);
    }
    if let Some(c) = claims {
        let usable = crate::auth::valid_identity(&c.sub)
            && c.name.as_deref().is_none_or(crate::auth::valid_identity);
        if !usable {
            return Err(ApiError::Unprocessable(format!(
                "the token's sub and name must be 1 to {} characters without control \
                 characters",
                crate::auth::MAX_IDENTITY_CHARS
            )));
        }
        opts.name = c.name.or_else(|| Some(c.sub.clone()));
        opts.identity = Some(c.sub);
    }
    match (kind, q.source.as_deref()) {
        (_, None) => {}
        (SessionKind::Publisher, Some(s)) => {
            opts.source = Source::parse(s).ok_or_else(|| {
                ApiError::BadRequest("source must be \"camera\" or \"screen\"".into())
            })?;
        }
        (SessionKind::Subscriber, Some(_)) => {
            return Err(ApiError::BadRequest(
                "source is for WHIP sessions; WHEP sessions receive every source".into(),
            ))
        }
    }
    if let Some(w) = &q.participant {
        if kind == SessionKind::Publisher {
            return Err(ApiError::BadRequest(
                "participant is for WHEP sessions (watch one participant)".into(),
            ));
        }
        opts.watch = Some(identity_param("participant", w)?);
    }
    Ok(opts)
}

/// POST: create a session from an SDP offer → 201 with the answer, `Location`, `ETag`.
async fn post(
    kind: SessionKind,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    req: PostRequest,
) -> Result<Response, ApiError> {
    let PostRequest {
        forwarded,
        peer,
        raw_query,
        query,
        headers,
        body,
    } = req;
    // Cheapest first, and nothing read from the body until the caller is known.
    state
        .admission
        .check_rate(peer.filter(|_| !forwarded).map(|a| a.ip()))?;
    let Path(room) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let room = room_name(&room)?;
    let claims = authorize(&state, &headers, room, action_of(kind))?;
    let opts = join_options(kind, claims, query)?;
    if !has_content_type(&headers, SDP) {
        return Err(ApiError::UnsupportedMediaType {
            header: "accept-post",
            accept: SDP,
        });
    }
    // A single node refuses at capacity before reading the offer; in a cluster the room
    // may live elsewhere, and the node that serves it checks after placement.
    if !state.cluster.multi_node() {
        state.admission.check_capacity()?;
    }
    let offer = body_text(body, MAX_SDP_BODY, "SDP offer").await?;
    if offer.trim().is_empty() {
        return Err(ApiError::BadRequest("the body must be an SDP offer".into()));
    }
    // Count limits before the offer reaches any room task (docs/security.md).
    crate::room::offer_limits::check(&offer)
        .map_err(|e| ApiError::Unprocessable(format!("unacceptable SDP offer: {e}")))?;
    match state.cluster.place(room, forwarded).await {
        Placement::Local => {}
        Placement::Remote(node) => {
            let query = raw_query.map(|q| format!("?{q}")).unwrap_or_default();
            let path = format!("/{}/{room}{query}", base(kind));
            let body = Bytes::from(offer.into_bytes());
            return proxy::to_node(
                &state,
                &node,
                axum::http::Method::POST,
                &path,
                &headers,
                body,
                true,
            )
            .await;
        }
        Placement::Unavailable { retry_after } => {
            return Err(ApiError::Unavailable { retry_after })
        }
    }
    state.admission.check_capacity()?;
    // A draining server keeps serving the rooms it has but opens no new one: the client
    // retries, and a load balancer (or another node) places it where it is ready.
    let create = forwarded || state.ready.load(std::sync::atomic::Ordering::Relaxed);
    let joined = super::limits::ask(&state, room, create, |reply| Command::Join {
        kind,
        offer: offer.clone(),
        opts: opts.clone(),
        reply,
    })
    .await?
    .ok_or(ApiError::Unavailable {
        retry_after: if create { 1 } else { 5 },
    })??;
    // In a cluster the URL names its node, so PATCH and DELETE reach it from any node.
    let location = if state.cluster.multi_node() {
        format!(
            "/n/{}/{}/{room}/{}",
            state.cluster.node_id(),
            base(kind),
            joined.session
        )
    } else {
        format!("/{}/{room}/{}", base(kind), joined.session)
    };
    let mut res = (StatusCode::CREATED, joined.answer).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&joined.etag) {
        h.insert(header::ETAG, v);
    }
    add_ice_links(h, &state);
    // Authorized by construction: `authorize` above returned early with 401/403 unless
    // the token (when auth is on) allows this room and action.
    let turn = state.turn.as_deref();
    super::turn::append_links(h, turn, opts.identity.as_deref(), "post");
    if kind == SessionKind::Subscriber {
        let layer = format!("<{location}/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\"");
        let events = format!(
            "<{location}/events>; rel=\"{}\"; events=\"{}\"",
            super::events::REL,
            super::events::EVENTS
        );
        for link in [layer, events] {
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.append(header::LINK, v);
            }
        }
    }
    Ok(res)
}

/// The session's ICE tags, or 404 unless `session` is live in `room` (asked of the
/// room actor).
pub(super) async fn require_session(
    state: &AppState,
    room: &str,
    session: &SessionId,
) -> Result<SessionTags, ApiError> {
    super::limits::ask(state, room, false, |reply| Command::Exists {
        session: session.clone(),
        reply,
    })
    .await?
    .flatten()
    .ok_or_else(|| ApiError::NotFound("no such session".into()))
}

pub(super) fn session_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, SessionId), ApiError> {
    let Path((room, session)) = path.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    room_name(&room)?;
    let session =
        SessionId::parse(&session).ok_or_else(|| ApiError::NotFound("no such session".into()))?;
    Ok((room, session))
}

/// DELETE: end the session → 200; unknown → 404.
async fn delete(
    kind: SessionKind,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (room, session) = session_path(path)?;
    authorize(&state, &headers, &room, action_of(kind))?;
    let existed = super::limits::ask(&state, &room, false, |reply| Command::Leave {
        session: session.clone(),
        reply,
    })
    .await?
    .unwrap_or(false);
    if existed {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::NotFound("no such session".into()))
    }
}

/// PATCH (RFC 9725 §4.3): trickle ICE is accepted (204) — the server is ICE-lite and
/// learns client addresses from their checks, so remote candidates need no action.
///
/// `If-Match` (RFC 9725 §4.3.1, RFC 9110 §13.1.1): `*` or the session's entity tag
/// passes; any other value is 412. An ICE restart (a fragment whose `a=ice-ufrag`
/// differs from the client's current one) needs `If-Match` (428 without) and answers
/// 200 with the server's new fragment and ETag (see [`super::ice_restart`]).
async fn patch(
    kind: SessionKind,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (room, session) = session_path(path)?;
    authorize(&state, &headers, &room, action_of(kind))?;
    if kind == SessionKind::Subscriber && has_content_type(&headers, "application/json") {
        let body = read_body(body, MAX_JSON_BODY, "JSON").await?;
        return super::slot_prefs::patch(&state, &room, &session, &body).await;
    }
    if !has_content_type(&headers, SDPFRAG) {
        return Err(ApiError::UnsupportedMediaType {
            header: "accept-patch",
            accept: SDPFRAG,
        });
    }
    let frag = body_text(body, MAX_SDPFRAG_BODY, "trickle ICE fragment").await?;
    let tags = require_session(&state, &room, &session).await?;
    let well_formed = frag
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .all(|l| l.len() > 2 && l.as_bytes()[1] == b'=');
    if !well_formed {
        return Err(ApiError::BadRequest(
            "malformed SDP fragment (RFC 8840 §9)".into(),
        ));
    }
    let if_match = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(if_match_passes(v, &tags.etag)?),
    };
    if if_match == Some(false) {
        return Err(ApiError::PreconditionFailed(
            "If-Match does not match the session's entity tag".into(),
        ));
    }
    if is_ice_restart(&frag, tags.client_ufrag.as_deref()) {
        if if_match.is_none() {
            return Err(ApiError::PreconditionRequired(
                "an ICE restart needs If-Match with the session's entity tag or *".into(),
            ));
        }
        return super::ice_restart::restart(&state, &room, &session, &frag).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether an `If-Match` value (`*` or a list of entity tags, RFC 9110 §13.1.1) matches
/// `etag` with the strong comparison (a weak tag never matches). 400 when it is not
/// text.
fn if_match_passes(v: &HeaderValue, etag: &str) -> Result<bool, ApiError> {
    let v = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("If-Match is not text".into()))?
        .trim();
    Ok(v == "*" || v.split(',').any(|t| t.trim() == etag))
}

/// Whether a trickle fragment asks for an ICE restart: it carries an `a=ice-ufrag`
/// other than the client's current one (RFC 8840 §4.4, RFC 9725 §4.3.2).
fn is_ice_restart(frag: &str, client_ufrag: Option<&str>) -> bool {
    frag.lines()
        .filter_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .any(|u| client_ufrag.is_some_and(|c| c != u.trim()))
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
pub(super) mod tests;
