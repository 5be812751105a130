//! The API's one error type. Every failure becomes an RFC 9457 problem+json response
//! with the right status; internal causes are logged, never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::metrics::names;
use crate::room::JoinError;
use crate::runtime::RoomError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad SDP, bad room name, bad fragment).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or wrong bearer token (RFC 6750 §3).
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 404: no such session or room.
    #[error("{0}")]
    NotFound(String),
    /// 405: method not supported on this resource; carries the `Allow` value.
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// 409: conflicts with the resource's state (a second WHIP session of an identity).
    #[error("{0}")]
    Conflict(String),
    /// 415: wrong `Content-Type`; carries the accepted type for `Accept-Post`/`Accept-Patch`.
    #[error("unsupported media type: expected {accept}")]
    UnsupportedMediaType {
        /// Header to advertise (`Accept-Post` or `Accept-Patch`).
        header: &'static str,
        /// The accepted media type.
        accept: &'static str,
    },
    /// 422: understood but not acceptable (direction, codecs, ICE restart).
    #[error("{0}")]
    Unprocessable(String),
    /// 502: the node that owns the room did not answer a proxied request.
    #[error("{0}")]
    BadGateway(String),
    /// 403: a valid token that does not cover the room or action, or a wrong internal
    /// secret.
    #[error("{0}")]
    Forbidden(String),
    /// 429: a room limit (`--max-publishers`, `--max-participants`) is reached.
    #[error("{0}")]
    TooMany(String),
    /// 503: overloaded or shutting down; `Retry-After` in seconds.
    #[error("service unavailable")]
    Unavailable {
        /// Seconds until a retry makes sense.
        retry_after: u32,
    },
    /// 503 naming the limit that refused the request (the room did not answer in time,
    /// the server's session or pending-session limit); `Retry-After` in seconds.
    #[error("{detail}")]
    Overloaded {
        /// Seconds until a retry makes sense.
        retry_after: u32,
        /// Which limit.
        detail: String,
    },
    /// 429 with `Retry-After`: a rate limit (POSTs per client address) or a per-session
    /// limit (event streams).
    #[error("{detail}")]
    RateLimited {
        /// Seconds until a retry makes sense.
        retry_after: u32,
        /// Which limit.
        detail: String,
    },
    /// 408: the body did not arrive in time (RFC 9110 §15.5.9).
    #[error("{0}")]
    RequestTimeout(String),
    /// 412: `If-Match` does not match the session's entity tag (RFC 9110 §13.1.1,
    /// RFC 9725 §4.3.1).
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: the body is larger than its limit (RFC 9110 §15.5.14).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 428: an ICE restart without `If-Match` (RFC 6585 §3, RFC 9725 §4.3.1).
    #[error("{0}")]
    PreconditionRequired(String),
    /// 507: not enough storage for a new recording (RFC 4918 §11.5).
    #[error("{0}")]
    InsufficientStorage(String),
}

/// An RFC 9457 problem details object: the body of every error answer of the API
/// (`application/problem+json`).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Problem<'a> {
    /// Always `about:blank`: the status says what went wrong.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: &'a str,
    /// The status's reason phrase.
    #[schema(example = "Not Found")]
    title: &'a str,
    /// The HTTP status code.
    #[schema(example = 404)]
    status: u16,
    /// What went wrong, for a person to read.
    #[schema(example = "no such session")]
    detail: String,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        metrics::counter!(names::API_ERRORS, "status" => status.as_str().to_owned()).increment(1);
        let body = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut res = (status, json).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::Unauthorized => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed(allow) => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::UnsupportedMediaType { header, accept } => {
                h.insert(header, HeaderValue::from_static(accept));
            }
            ApiError::Unavailable { retry_after }
            | ApiError::Overloaded { retry_after, .. }
            | ApiError::RateLimited { retry_after, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        res
    }
}

impl From<JoinError> for ApiError {
    fn from(e: JoinError) -> Self {
        match e {
            JoinError::Malformed(_) => ApiError::BadRequest(e.to_string()),
            JoinError::Unacceptable(_) => ApiError::Unprocessable(e.to_string()),
            JoinError::RoomFull(why) => ApiError::TooMany(why.to_string()),
        }
    }
}

/// 503 with `Retry-After: 1` whose detail names the cause: "room closed", "room busy"
/// (its command queue is full) or "room failed" (its task ended on a bug; the sessions
/// it held ended, the next request opens a fresh room).
impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        tracing::warn!(error = %e, "room unavailable");
        ApiError::Overloaded {
            retry_after: 1,
            detail: e.to_string(),
        }
    }
}
