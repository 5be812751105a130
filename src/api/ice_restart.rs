//! ICE restart by PATCH (RFC 9725 §4.3.2): a trickle ICE fragment (RFC 8840) whose
//! `a=ice-ufrag` differs from the client's current one, sent with `If-Match` (checked by
//! the caller). The session keeps its resource URL, streams, slots and event stream;
//! the answer is the server's new credentials and candidates as a fragment, with the
//! session's new ETag.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use str0m::IceCreds;

use super::{ApiError, AppState};
use crate::ids::SessionId;
use crate::room::{IceRestartError, IceRestarted};
use crate::runtime::Command;

/// `application/trickle-ice-sdpfrag` (RFC 8840 §9).
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// Longest `ice-ufrag` / `ice-pwd` accepted (RFC 8839 §5.4: 256 ice-chars at most).
const MAX_CRED: usize = 256;

/// Restart ICE on `session` of `room` with the credentials in `frag`: 200 with the
/// server's fragment and the new ETag; 400 when `frag` lacks a valid `a=ice-ufrag` and
/// `a=ice-pwd` (RFC 8839 §5.4: 4 and 22 to 256 ice-chars); 404 when the session is
/// gone; 422 when the session refused the restart (it goes on unchanged); 503 when the
/// room does not answer in time.
pub(super) async fn restart(
    state: &AppState,
    room: &str,
    session: &SessionId,
    frag: &str,
) -> Result<Response, ApiError> {
    let remote = client_creds(frag)?;
    let restarted = super::limits::ask(state, room, false, |reply| Command::IceRestart {
        session: session.clone(),
        remote: remote.clone(),
        reply,
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("no such session".into()))?
    .map_err(|e| match e {
        IceRestartError::NotFound => ApiError::NotFound("no such session".into()),
        IceRestartError::Refused(why) => ApiError::Unprocessable(format!(
            "ICE restart refused ({why}); the session goes on unchanged"
        )),
        e @ IceRestartError::TooSoon(wait) => ApiError::RateLimited {
            retry_after: wait.as_secs_f64().ceil().max(1.0) as u32,
            detail: format!("{e}; the session goes on unchanged"),
        },
    })?;
    let mut res = (StatusCode::OK, answer_fragment(&restarted)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDPFRAG));
    if let Ok(v) = HeaderValue::from_str(&restarted.etag) {
        h.insert(header::ETAG, v);
    }
    Ok(res)
}

/// The client's new `a=ice-ufrag` and `a=ice-pwd` from a fragment; 400 without both, or
/// when either is not 4 (ufrag) / 22 (pwd) to 256 ice-chars.
pub(super) fn client_creds(frag: &str) -> Result<IceCreds, ApiError> {
    let attr = |name: &str| {
        frag.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
    };
    let valid = |v: &str, min: usize| {
        (min..=MAX_CRED).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    match (attr("a=ice-ufrag:"), attr("a=ice-pwd:")) {
        (Some(ufrag), Some(pass)) if valid(ufrag, 4) && valid(pass, 22) => Ok(IceCreds {
            ufrag: ufrag.to_owned(),
            pass: pass.to_owned(),
        }),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "a=ice-ufrag or a=ice-pwd is not 4 or 22 to 256 ice-chars (RFC 8839 §5.4)".into(),
        )),
        _ => Err(ApiError::BadRequest(
            "an ICE restart needs a=ice-ufrag and a=ice-pwd (RFC 8840 §4.4)".into(),
        )),
    }
}

/// The server's fragment (RFC 9725 §4.3.2, RFC 8840 §9): `a=ice-lite`, the new
/// credentials, then the session's first m-line with its `a=mid`, the candidates and
/// `a=end-of-candidates`.
pub(super) fn answer_fragment(r: &IceRestarted) -> String {
    let mut out = format!(
        "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        r.local.ufrag, r.local.pass
    );
    if let Some((m, mid)) = &r.media {
        out.push_str(&format!("{m}\r\na=mid:{mid}\r\n"));
        for c in &r.candidates {
            out.push_str(&format!("a={c}\r\n"));
        }
        out.push_str("a=end-of-candidates\r\n");
    }
    out
}
