//! Per-request limits of the API: how large a body may be, how long it may take to
//! arrive, and how long a handler waits for a room to answer. Every body is read here
//! ([`read_body`]), after the request is authorized, never by an extractor that reads
//! it first; every room request goes through [`ask`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use super::{ApiError, AppState};
use crate::runtime::Command;

/// Largest SDP offer body (WHIP/WHEP POST), bytes. Browsers' offers are 3–12 KiB (a
/// conference WHEP offer with 16 video m-lines is about 25 KiB); past 64 KiB an offer
/// only costs parsing time. Larger: 413.
pub(crate) const MAX_SDP_BODY: usize = 64 * 1024;
/// Largest JSON body (layer, slot preferences, room API), bytes. The largest legitimate
/// one, slot preferences for every slot of a big conference, is a few KiB.
pub(crate) const MAX_JSON_BODY: usize = 16 * 1024;
/// Largest trickle ICE fragment (`application/trickle-ice-sdpfrag`, RFC 8840), bytes:
/// ufrag, pwd, a `mid` per m-line and a few candidates; clients send one to a handful
/// of candidates per PATCH.
pub(crate) const MAX_SDPFRAG_BODY: usize = 8 * 1024;
/// How long a whole body may take to arrive once its headers have. A 64 KiB offer takes
/// milliseconds even on a slow uplink; a client trickling bytes to hold a connection
/// gets 408.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a handler waits for a room's answer. A room answers in microseconds to a
/// few milliseconds; one that takes longer is stuck or overloaded, and the client is
/// answered 503 with `Retry-After` instead of waiting forever.
pub(crate) const ROOM_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes of a body over its limit that are read and thrown away before the 413 is
/// sent. A server that answers while the client still sends, and closes, makes the kernel
/// reset the connection: the client sees the reset, not the 413. Reading the rest (as
/// nginx's lingering close does) lets it read the answer; past this many bytes (by
/// `Content-Length`, or as they arrive) the 413 is sent at once and the connection closed.
pub(crate) const MAX_DISCARD: usize = 4 * 1024 * 1024;
/// `Retry-After` (seconds) after [`ROOM_REQUEST_TIMEOUT`].
const ROOM_RETRY_AFTER_S: u32 = 5;

/// Read a request body of at most `limit` bytes within [`BODY_READ_TIMEOUT`].
///
/// Errors: 413 when `Content-Length` or the bytes received exceed `limit` (the rest of
/// the body, up to [`MAX_DISCARD`] bytes, is read and dropped first so the client can
/// read the answer); 408 when the body is slower than the timeout; 400 when the
/// connection fails.
pub(crate) async fn read_body(body: Body, limit: usize, what: &str) -> Result<Bytes, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("{what} bodies are limited to {limit} bytes"));
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    if declared > MAX_DISCARD as u64 {
        return Err(too_large());
    }
    let read = async {
        let mut body = body;
        let mut buf = BytesMut::new();
        let mut over = declared > limit as u64;
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen = seen.saturating_add(data.len());
            if seen > MAX_DISCARD {
                return Err(too_large());
            }
            over |= seen > limit;
            if !over {
                buf.extend_from_slice(&data);
            }
        }
        if over {
            return Err(too_large());
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ))
        })?
}

/// [`crate::runtime::Rooms::request`] with [`ROOM_REQUEST_TIMEOUT`]: `Ok(None)` when the
/// room does not exist (and `create` is false); 503 + `Retry-After` when the room is
/// gone, busy, or does not answer in time.
pub(crate) async fn ask<T>(
    state: &AppState,
    room: &str,
    create: bool,
    make: impl Fn(oneshot::Sender<T>) -> Command,
) -> Result<Option<T>, ApiError> {
    let rooms = Arc::clone(&state.rooms);
    match tokio::time::timeout(ROOM_REQUEST_TIMEOUT, rooms.request(room, create, make)).await {
        Ok(r) => Ok(r?),
        Err(_) => {
            tracing::warn!(room, "room did not answer in time");
            Err(ApiError::Overloaded {
                retry_after: ROOM_RETRY_AFTER_S,
                detail: format!(
                    "the room did not answer within {} s",
                    ROOM_REQUEST_TIMEOUT.as_secs()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: &Result<Bytes, ApiError>) -> Option<u16> {
        r.as_ref().err().map(|e| e.status().as_u16())
    }

    #[tokio::test]
    async fn a_body_within_its_limit_is_read_whole() {
        let r = read_body(Body::from(vec![b'x'; 64]), 64, "test").await;
        assert_eq!(r.expect("read").len(), 64);
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_413_after_reading_it() {
        // Within MAX_DISCARD: read to the end (so the client can read the 413), kept none.
        let r = read_body(Body::from(vec![b'x'; 1_000_000]), 64, "test").await;
        assert_eq!(status(&r), Some(413));
        // Past MAX_DISCARD by Content-Length: refused before reading.
        let r = read_body(Body::from(vec![b'x'; MAX_DISCARD + 1]), 64, "test").await;
        assert_eq!(status(&r), Some(413));
    }
}
