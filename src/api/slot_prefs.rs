//! A WHEP viewer's slot preferences: `PATCH /whep/{room}/{session}` with
//! `Content-Type: application/json` (see `docs/conference.md`). Pin a participant to a
//! slot, pause or resume a slot, cap a slot's resolution to its tile.
//!
//! Body: one slot request, or `{"slots": [...]}` with several. A slot request is
//! `{"mid", "pin"?: identity | null, "source"?: "camera" | "screen", "paused"?: bool,
//! "maxWidth"?: px, "maxHeight"?: px}`. Answers 204; 400 unparseable; 404 unknown
//! session; 422 (naming the field) when refused, with nothing changed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::conference::info::Source;
use crate::conference::slots::Pin;
use crate::conference::SlotPreference;
use crate::ids::SessionId;
use crate::room::admin::SlotCap;
use crate::runtime::Command;

/// Most slot requests in one body (a grid has a few dozen tiles at most).
const MAX_SLOTS: usize = 64;

/// One slot's request (camelCase JSON).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlotRequest {
    /// The slot's m-line (MID).
    #[schema(example = "2")]
    mid: String,
    /// Absent: unchanged; `null`: unpin; a string: pin this identity.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<String>, example = "bob")]
    pin: Option<Option<String>>,
    /// With `pin`: `camera` (default) or `screen`, which of the identity's tracks.
    #[schema(pattern = "^(camera|screen)$")]
    source: Option<String>,
    /// `true`: stop sending this slot; `false`: resume.
    paused: Option<bool>,
    /// Widest frame wanted in this (video) slot, pixels: the tile's size.
    #[schema(minimum = 1)]
    max_width: Option<u16>,
    /// Tallest frame wanted in this (video) slot, pixels.
    #[schema(minimum = 1)]
    max_height: Option<u16>,
}

/// The body: one request or several.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = SlotPreferences)]
pub enum Body {
    /// Several slots at once.
    Many {
        /// The slots' requests.
        slots: Vec<SlotRequest>,
    },
    /// One slot.
    One(SlotRequest),
}

/// Tell an absent field (`None`) from an explicit `null` (`Some(None)`).
fn some_or_null<'de, D>(d: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(d).map(Some)
}

/// Handle the PATCH (the caller has checked the token and the content type).
pub(super) async fn patch(
    state: &AppState,
    room: &str,
    session: &SessionId,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid slot request: {e} (expected {{\"mid\": ...}} or {{\"slots\": [...]}})"
        ))
    })?;
    let requests = match body {
        Body::Many { slots } => slots,
        Body::One(r) => vec![r],
    };
    if requests.len() > MAX_SLOTS {
        return Err(ApiError::Unprocessable(format!(
            "at most {MAX_SLOTS} slot requests at once"
        )));
    }
    let (prefs, caps) = split(requests)?;
    let outcome = super::limits::ask(state, room, false, |reply| Command::Preferences {
        session: session.clone(),
        prefs: prefs.clone(),
        caps: caps.clone(),
        reply,
    })
    .await?
    .flatten()
    .ok_or_else(|| ApiError::NotFound("no such WHEP session".into()))?;
    outcome.map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Validate field by field and split into slot preferences and resolution caps.
///
/// Errors: `ApiError::Unprocessable` (422) naming the field. Public for the fuzz
/// target `json`.
pub fn split(requests: Vec<SlotRequest>) -> Result<(Vec<SlotPreference>, Vec<SlotCap>), ApiError> {
    let mut prefs = Vec::new();
    let mut caps = Vec::new();
    for r in requests {
        if r.mid.is_empty() || r.mid.len() > 16 {
            return Err(ApiError::Unprocessable("mid must name an m-line".into()));
        }
        if r.max_width == Some(0) || r.max_height == Some(0) {
            return Err(ApiError::Unprocessable(
                "maxWidth and maxHeight must be at least 1".into(),
            ));
        }
        let screen = match r.source.as_deref() {
            None => false,
            Some(s) => match Source::parse(s) {
                Some(src) => src == Source::Screen,
                None => {
                    return Err(ApiError::Unprocessable(
                        "source must be \"camera\" or \"screen\"".into(),
                    ))
                }
            },
        };
        if r.source.is_some() && !matches!(r.pin, Some(Some(_))) {
            return Err(ApiError::Unprocessable("source goes with pin".into()));
        }
        if r.max_width.is_some() || r.max_height.is_some() {
            caps.push(SlotCap {
                mid: r.mid.clone(),
                max_width: r.max_width,
                max_height: r.max_height,
            });
        }
        if r.pin.is_some() || r.paused.is_some() {
            prefs.push(SlotPreference {
                mid: r.mid,
                pin: r.pin.map(|p| p.map(|identity| Pin { identity, screen })),
                paused: r.paused,
            });
        }
    }
    Ok((prefs, caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<(Vec<SlotPreference>, Vec<SlotCap>), ApiError> {
        let body: Body =
            serde_json::from_str(json).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        split(match body {
            Body::Many { slots } => slots,
            Body::One(r) => vec![r],
        })
    }

    #[test]
    fn pin_unpin_pause_and_caps_parse() {
        let (p, c) = parse(r#"{"mid":"2","pin":"bob"}"#).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].pin,
            Some(Some(Pin {
                identity: "bob".into(),
                screen: false
            }))
        );
        assert!(c.is_empty());
        let (p, _) = parse(r#"{"mid":"2","pin":null}"#).unwrap();
        assert_eq!(p[0].pin, Some(None));
        let (p, _) = parse(r#"{"mid":"2","pin":"bob","source":"screen"}"#).unwrap();
        assert_eq!(
            p[0].pin,
            Some(Some(Pin {
                identity: "bob".into(),
                screen: true
            }))
        );
        let (p, c) = parse(
            r#"{"slots":[{"mid":"1","maxWidth":320,"maxHeight":180},{"mid":"2","paused":true}]}"#,
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].max_width, c[0].max_height), (Some(320), Some(180)));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].paused, Some(true));
        assert_eq!(p[0].pin, None);
    }

    #[test]
    fn bad_requests_are_refused() {
        assert!(matches!(
            parse(r#"{"pin":"bob"}"#),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse(r#"{"mid":"1","bogus":1}"#),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse(r#"{"mid":"1","maxWidth":0}"#),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            parse(r#"{"mid":"1","pin":"a","source":"tv"}"#),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            parse(r#"{"mid":"1","source":"screen"}"#),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            parse(r#"{"mid":""}"#),
            Err(ApiError::Unprocessable(_))
        ));
    }
}
