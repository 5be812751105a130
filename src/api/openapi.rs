//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.
//!
//! Generated at compile time by utoipa from the `#[utoipa::path]` annotations on the
//! handlers (room API, event stream, operations endpoints) and the `ToSchema` types
//! (room info, request bodies, the problem object). The WHIP and WHEP handlers serve
//! both protocols from one function and the layer and stats resources are closures, so
//! their operations are annotated on the stubs in `doc_only`, which exist only for this
//! document. `Conventions` adds what holds for every operation: error answers are
//! `application/problem+json`, and the `bearer` security scheme. Never serves anything
//! but the document.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::AppState;
use crate::conference::info::{LayerInfo, ParticipantInfo, SlotInfo, SpeakerInfo};

/// Routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The document, as built from the annotations.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This OpenAPI document
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "ops",
    operation_id = "getOpenApi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = serde_json::Value))
)]
async fn openapi_json() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".into()));
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        json.as_str(),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "A WebRTC selective forwarding unit: WHIP (RFC 9725) ingest, WHEP \
playback, conferences (docs/conference.md) and a room API.\n\n\
**Access.** With `--auth-key`, requests carry `Authorization: Bearer <JWT>` (HS256) whose \
claims name the room (or `*`), the identity (`sub`) and grants: WHIP needs `publish`, WHEP \
`subscribe`, the room API `admin`. With `--token`, that one token allows everything. With \
neither the server is open (development) and needs no token.\n\n\
**Errors** are RFC 9457 `application/problem+json` bodies (`Problem`).\n\n\
**Webhooks.** With `--webhook-url`, every room, participant and track event is POSTed to \
the receiver as a `WebhookEvent` (schema below; `recording.finished` carries the \
recording's files), signed per Standard Webhooks: headers \
`webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,` then the \
base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under `--webhook-secret`). Any 2xx \
acknowledges; 408, 429, 5xx and network errors are retried (6 tries, 0.5 s doubling), in \
order per receiver.\n\n\
**Clusters.** Session URLs name their node (`/n/{node}/whip/...`); any node forwards them. \
The room API answers for the rooms of the node it is asked; `/n/{node}/api/rooms/...` \
reaches another node's."
    ),
    paths(
        super::rooms::list,
        super::rooms::detail,
        super::rooms::close,
        super::rooms::remove,
        super::rooms::mute,
        super::recordings::start,
        super::recordings::list,
        super::recordings::get_one,
        super::recordings::stop,
        super::data::send,
        doc_only::whip_post,
        doc_only::whip_options,
        doc_only::whip_delete,
        doc_only::whip_patch,
        doc_only::whep_post,
        doc_only::whep_options,
        doc_only::whep_delete,
        doc_only::whep_patch,
        doc_only::whep_layer,
        doc_only::whep_stats,
        super::events::events,
        super::ops::metrics,
        super::ops::livez,
        super::ops::readyz,
        super::ops::server_info,
        openapi_json,
    ),
    components(schemas(
        super::error::Problem,
        ParticipantInfo,
        SlotInfo,
        SpeakerInfo,
        LayerInfo,
        crate::webhook::WebhookEvent,
        crate::webhook::WebhookKind,
        crate::webhook::WebhookData,
        crate::record::manifest::RecordingInfo,
        crate::record::manifest::RecordingState,
        crate::record::manifest::FileInfo,
    )),
    modifiers(&Conventions),
    tags(
        (name = "rooms", description = "The room API: needs the `admin` grant"),
        (name = "whip", description = "Publish (RFC 9725)"),
        (name = "whep", description = "Watch (draft-ietf-wish-whep), slots, layers, events"),
        (name = "ops", description = "Operations: metrics, health, this node, this document"),
    )
)]
struct ApiDoc;

/// What holds for every operation: the `bearer` scheme, and error answers (4xx, 5xx)
/// with problem+json bodies unless the annotation gave another body.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Switchboard access token (`switchboard token`) or the static \
                         `--token`; not needed on an open server",
                    ))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                for (status, response) in op.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if status.starts_with(['4', '5']) && response.content.is_empty() {
                        response.content.insert(
                            "application/problem+json".into(),
                            Content::new(Some(Ref::from_schema_name("Problem"))).into(),
                        );
                    }
                }
            }
        }
    }
}

/// The path parameter `{room}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // A schema only.
pub(super) struct RoomParam {
    /// The room's name: 1 to 64 of `A-Z a-z 0-9 . _ ~ -`.
    #[param(pattern = "^[A-Za-z0-9._~-]{1,64}$", example = "demo")]
    room: String,
}

/// The path parameters `{room}` and `{identity}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // A schema only.
pub(super) struct ParticipantParams {
    /// The room's name: 1 to 64 of `A-Z a-z 0-9 . _ ~ -`.
    #[param(pattern = "^[A-Za-z0-9._~-]{1,64}$", example = "demo")]
    room: String,
    /// The participant's identity: 1 to 64 of `A-Z a-z 0-9 . _ ~ -` and space
    /// (percent-encoded in the URL).
    #[param(pattern = "^[A-Za-z0-9._~ -]{1,64}$", example = "alice")]
    identity: String,
}

/// The path parameters of a session resource.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // A schema only.
pub(super) struct SessionParams {
    /// The room's name: 1 to 64 of `A-Z a-z 0-9 . _ ~ -`.
    #[param(pattern = "^[A-Za-z0-9._~-]{1,64}$", example = "demo")]
    room: String,
    /// The session id from the 201's `Location`: 32 lowercase hex digits.
    #[param(pattern = "^[0-9a-f]{32}$")]
    session: String,
}

// A schema only: `ops::server_info` answers `NodeInfo` plus three fields as JSON;
// `rooms_tests::schemas_match_real_answers` checks this against the real answer.
/// This node, as `GET /api/server` reports it.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // A schema only.
pub(super) struct ServerInfo {
    /// `--node-id`, `POD_NAME` or the host name.
    node_id: String,
    /// The addresses put in ICE candidates (`ip:port`).
    candidates: Vec<String>,
    /// The server's version.
    version: String,
    /// Draining: no new room opens here.
    draining: bool,
    /// Rooms live on this node.
    rooms: usize,
    /// `jwt`, `token` or `open`.
    #[schema(pattern = "^(jwt|token|open)$")]
    auth: String,
}

/// Operations whose handlers are shared by WHIP and WHEP (`sessions.rs` serves both
/// from one function) or are closures (`preferences.rs`): these stubs exist only to
/// carry their `#[utoipa::path]` for the document and are never called.
#[allow(dead_code)]
mod doc_only {
    use super::SessionParams;
    use crate::api::preferences::LayerRequest;
    use crate::api::slot_prefs::Body as SlotPreferences;

    /// Publish: create a WHIP session from an SDP offer
    ///
    /// One camera session and one screen session (`?source=screen`) per identity: a new
    /// one replaces the identity's old session of that source, which ends. In a cluster
    /// the request is proxied to the room's node (`--routing proxy`) or redirected there
    /// (307, `--routing redirect`).
    #[utoipa::path(
        post,
        path = "/whip/{room}",
        tag = "whip",
        operation_id = "whipPost",
        params(
            super::RoomParam,
            ("name" = Option<String>, Query, description = "Identity and display name on an open server (a token's `sub` and `name` win); 1 to 64 of `A-Z a-z 0-9 . _ ~ -` and space"),
            ("source" = Option<String>, Query, description = "`camera` (default) or `screen`", pattern = "^(camera|screen)$"),
        ),
        request_body(content = String, content_type = "application/sdp", description = "The SDP offer (sendonly audio and/or video)"),
        security(("bearer" = [])),
        responses(
            (status = 201, description = "The session: the SDP answer", body = String, content_type = "application/sdp",
                headers(
                    ("Location" = String, description = "The session resource (`/n/{node}/whip/...` in a cluster)"),
                    ("ETag" = String, description = "The ICE session's entity tag"),
                    ("Link" = String, description = "ICE servers (`rel=\"ice-server\"`, RFC 9725 §4.6); TURN ones with `username`, `credential` and `credential-type=\"password\"` (per session with `--turn-url`)"),
                )),
            (status = 307, description = "The room lives on another node (`--routing redirect`): POST there", headers(("Location" = String))),
            (status = 400, description = "Not a valid room name, query or SDP offer"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `publish` grant"),
            (status = 415, description = "Not `application/sdp` (`Accept-Post: application/sdp`)"),
            (status = 422, description = "An offer that parses but cannot be served (direction, codecs, tracks); `detail` names the SDP line"),
            (status = 429, description = "A room limit (`--max-publishers`, `--max-participants`) is reached"),
            (status = 502, description = "The room's node did not answer the proxied request"),
            (status = 503, description = "Overloaded, draining, or the room directory is unreachable (`Retry-After`)"),
        )
    )]
    fn whip_post() {}

    /// WHIP endpoint options: `Accept-Post` and ICE servers
    ///
    /// A plain OPTIONS (no `Access-Control-Request-Method`); CORS preflights are answered
    /// before any handler.
    #[utoipa::path(
        options,
        path = "/whip/{room}",
        tag = "whip",
        operation_id = "whipOptions",
        params(super::RoomParam),
        responses((status = 204, description = "What the endpoint accepts", headers(
            ("Allow" = String),
            ("Accept-Post" = String, description = "`application/sdp`"),
            ("Link" = String, description = "ICE servers (`rel=\"ice-server\"`), RFC 9725 §4.6; TURN credentials only for callers allowed to POST here (per-session ones only with a valid token)"),
        )))
    )]
    fn whip_options() {}

    /// End a WHIP session
    #[utoipa::path(
        delete,
        path = "/whip/{room}/{session}",
        tag = "whip",
        operation_id = "whipDelete",
        params(SessionParams),
        security(("bearer" = [])),
        responses(
            (status = 200, description = "The session ended"),
            (status = 400, description = "Not a valid room name"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `publish` grant"),
            (status = 404, description = "No such session"),
            (status = 405, description = "Another method (`Allow: PATCH, DELETE, OPTIONS`)"),
            (status = 503, description = "The room is too busy to answer; retry"),
        )
    )]
    fn whip_delete() {}

    /// Trickle ICE on a WHIP session
    ///
    /// Trickle candidates are accepted and not needed: the server is ICE-lite and learns
    /// client addresses from their checks. A fragment with a new `a=ice-ufrag` and
    /// `a=ice-pwd` is an ICE restart (RFC 9725 §4.3.2; needs `If-Match`): 200 with the
    /// server's new credentials and candidates as a fragment and a new `ETag`; the
    /// session, its streams and its URL stay.
    #[utoipa::path(
        patch,
        path = "/whip/{room}/{session}",
        tag = "whip",
        operation_id = "whipPatch",
        params(SessionParams),
        request_body(content = String, content_type = "application/trickle-ice-sdpfrag", description = "An SDP fragment (RFC 8840)"),
        security(("bearer" = [])),
        responses(
            (status = 200, description = "ICE restarted: the server's fragment (`application/trickle-ice-sdpfrag`) and the new `ETag`"),
            (status = 204, description = "Accepted"),
            (status = 400, description = "Not a valid room name or SDP fragment, or a restart without a valid `a=ice-ufrag` and `a=ice-pwd`"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `publish` grant"),
            (status = 404, description = "No such session"),
            (status = 415, description = "Not `application/trickle-ice-sdpfrag` (`Accept-Patch`)"),
            (status = 412, description = "`If-Match` does not match the session's `ETag`"),
            (status = 428, description = "An ICE restart without `If-Match`"),
            (status = 422, description = "The session refused the ICE restart (it goes on unchanged)"),
        )
    )]
    fn whip_patch() {}

    /// Watch: create a WHEP session from an SDP offer
    ///
    /// Every `recvonly` m-line of the offer is a slot the server fills with room tracks
    /// (docs/conference.md). A viewer may arrive before any publisher.
    #[utoipa::path(
        post,
        path = "/whep/{room}",
        tag = "whep",
        operation_id = "whepPost",
        params(
            super::RoomParam,
            ("name" = Option<String>, Query, description = "Identity on an open server (never receives its own media); a token's `sub` wins"),
            ("participant" = Option<String>, Query, description = "Watch only this identity"),
        ),
        request_body(content = String, content_type = "application/sdp", description = "The SDP offer (recvonly m-lines: the slots)"),
        security(("bearer" = [])),
        responses(
            (status = 201, description = "The session: the SDP answer", body = String, content_type = "application/sdp",
                headers(
                    ("Location" = String, description = "The session resource (`/n/{node}/whep/...` in a cluster)"),
                    ("ETag" = String, description = "The ICE session's entity tag"),
                    ("Link" = String, description = "ICE servers (TURN ones with credentials, as for WHIP); `<{session}/layer>; rel=\"urn:ietf:params:whep:ext:core:layer\"`; `<{session}/events>; rel=\"urn:ietf:params:whep:ext:core:server-sent-events\"`"),
                )),
            (status = 307, description = "The room lives on another node (`--routing redirect`): POST there", headers(("Location" = String))),
            (status = 400, description = "Not a valid room name, query or SDP offer"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `subscribe` grant"),
            (status = 415, description = "Not `application/sdp` (`Accept-Post: application/sdp`)"),
            (status = 422, description = "An offer that parses but cannot be served; `detail` names the SDP line"),
            (status = 429, description = "A room limit (`--max-participants`) is reached"),
            (status = 502, description = "The room's node did not answer the proxied request"),
            (status = 503, description = "Overloaded, draining, or the room directory is unreachable (`Retry-After`)"),
        )
    )]
    fn whep_post() {}

    /// WHEP endpoint options: `Accept-Post` and ICE servers
    #[utoipa::path(
        options,
        path = "/whep/{room}",
        tag = "whep",
        operation_id = "whepOptions",
        params(super::RoomParam),
        responses((status = 204, description = "What the endpoint accepts", headers(
            ("Allow" = String),
            ("Accept-Post" = String, description = "`application/sdp`"),
            ("Link" = String, description = "ICE servers (`rel=\"ice-server\"`), RFC 9725 §4.6; TURN credentials only for callers allowed to POST here (per-session ones only with a valid token)"),
        )))
    )]
    fn whep_options() {}

    /// End a WHEP session
    #[utoipa::path(
        delete,
        path = "/whep/{room}/{session}",
        tag = "whep",
        operation_id = "whepDelete",
        params(SessionParams),
        security(("bearer" = [])),
        responses(
            (status = 200, description = "The session ended"),
            (status = 400, description = "Not a valid room name"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `subscribe` grant"),
            (status = 404, description = "No such session"),
            (status = 405, description = "Another method (`Allow: PATCH, DELETE, OPTIONS`)"),
            (status = 503, description = "The room is too busy to answer; retry"),
        )
    )]
    fn whep_delete() {}

    /// Slot preferences (JSON) or trickle ICE on a WHEP session
    ///
    /// `application/json`: pin a participant to a slot, pause or resume a slot, cap a
    /// slot's resolution; one slot request or `{"slots": [...]}`; refused as a whole
    /// (422, naming the field) with nothing changed. `application/trickle-ice-sdpfrag`:
    /// as on a WHIP session.
    #[utoipa::path(
        patch,
        path = "/whep/{room}/{session}",
        tag = "whep",
        operation_id = "whepPatch",
        params(SessionParams),
        request_body(content(
            (SlotPreferences = "application/json", example = json!({"mid": "2", "pin": "bob"})),
            (String = "application/trickle-ice-sdpfrag"),
        )),
        security(("bearer" = [])),
        responses(
            (status = 200, description = "ICE restarted (trickle fragment): as on a WHIP session"),
            (status = 204, description = "Applied"),
            (status = 400, description = "Not a valid room name, JSON body or SDP fragment"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `subscribe` grant"),
            (status = 404, description = "No such session"),
            (status = 415, description = "Neither content type (`Accept-Patch`)"),
            (status = 422, description = "An unknown or audio `mid` with a video-only field, a pinned identity not in the room, or a refused ICE restart"),
        )
    )]
    fn whep_patch() {}

    /// Pick or cap the simulcast layer a viewer receives (WHEP `layer` extension)
    #[utoipa::path(
        post,
        path = "/whep/{room}/{session}/layer",
        tag = "whep",
        operation_id = "whepLayer",
        params(SessionParams),
        request_body(content = LayerRequest, content_type = "application/json"),
        security(("bearer" = [])),
        responses(
            (status = 204, description = "Applied"),
            (status = 400, description = "Not a valid room name or layer request"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `subscribe` grant"),
            (status = 404, description = "No such WHEP session"),
            (status = 405, description = "Another method (`Allow: POST`)"),
            (status = 415, description = "Not `application/json` (`Accept-Post`)"),
            (status = 422, description = "No such layer or m-line, or inconsistent fields"),
        )
    )]
    fn whep_layer() {}

    /// What a viewer receives: downlink estimate, and per track the target and current
    /// layer and switches
    #[utoipa::path(
        get,
        path = "/whep/{room}/{session}/stats",
        tag = "whep",
        operation_id = "whepStats",
        params(SessionParams),
        security(("bearer" = [])),
        responses(
            (status = 200, description = "`{\"estimateBps\": number or null, \"tracks\": [...]}`", body = serde_json::Value),
            (status = 400, description = "Not a valid room name"),
            (status = 401, description = "No valid bearer token"),
            (status = 403, description = "The token does not cover the room or lacks the `subscribe` grant"),
            (status = 404, description = "No such WHEP session"),
            (status = 405, description = "Another method (`Allow: GET, HEAD`)"),
        )
    )]
    fn whep_stats() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_answer_is_problem_json() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut errors = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, res) in op["responses"].as_object().unwrap() {
                    if status.starts_with(['4', '5']) && path != "/readyz" {
                        errors += 1;
                        assert_eq!(
                            res["content"]["application/problem+json"]["schema"]["$ref"],
                            "#/components/schemas/Problem",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert!(errors > 50, "{errors}");
    }
}
