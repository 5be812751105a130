//! What a room tells its clients: the typed JSON of the room events (server-sent events
//! on a WHEP session, see `docs/conference.md`) and of the room API. Pure data.

use std::sync::Arc;

use serde::Serialize;

use super::ParticipantId;

/// Where a publisher's media comes from (`?source=` on the WHIP URL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Camera and microphone (the default).
    #[default]
    Camera,
    /// A screen share (`getDisplayMedia`), shown large by viewers' slot policy.
    Screen,
}

impl Source {
    /// The lowercase name used in URLs, track ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }

    /// Parse `camera` or `screen`.
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "camera" => Some(Source::Camera),
            "screen" => Some(Source::Screen),
            _ => None,
        }
    }
}

/// Who joins and how: from the access token or the URL's query (see `docs/conference.md`).
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// The participant's identity (token `sub`, or `?name=` on an open server); `None`:
    /// a generated `anon-…` identity.
    pub identity: Option<String>,
    /// Display name; `None`: the identity.
    pub name: Option<String>,
    /// What a WHIP session publishes.
    pub source: Source,
    /// A WHEP session that watches only this identity (`?participant=`).
    pub watch: Option<String>,
}

/// One published track.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TrackInfo {
    /// `{source}-{kind}`, e.g. `camera-video`: unique within its participant.
    #[schema(example = "camera-video")]
    pub id: String,
    /// `audio` or `video`.
    #[schema(value_type = String, pattern = "^(audio|video)$")]
    pub kind: &'static str,
    /// Camera or screen.
    pub source: Source,
    /// Muted by the room API.
    pub muted: bool,
    /// Simulcast RIDs (empty without simulcast).
    pub rids: Vec<String>,
}

/// One participant (an identity and its sessions).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ParticipantInfo {
    /// Identity.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Has a WHIP session.
    pub publishing: bool,
    /// Has a WHEP session.
    pub watching: bool,
    /// Published tracks.
    pub tracks: Vec<TrackInfo>,
}

/// One slot of a WHEP session (one `recvonly` m-line).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SlotInfo {
    /// The m-line's MID.
    pub mid: String,
    /// `audio` or `video`.
    #[schema(value_type = String, pattern = "^(audio|video)$")]
    pub kind: &'static str,
    /// Whose track is in it.
    pub identity: Option<String>,
    /// Which of their tracks ([`TrackInfo::id`]).
    pub track: Option<String>,
    /// Camera or screen.
    pub source: Option<Source>,
    /// Pinned by the viewer.
    pub pinned: bool,
    /// Paused by the viewer.
    pub paused: bool,
}

/// A speaking participant.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SpeakerInfo {
    /// Identity.
    pub identity: String,
    /// Smoothed loudness, 0.0 (silent) to 1.0 (full scale).
    pub level: f32,
}

/// The layer forwarded into a video slot.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LayerInfo {
    /// The slot's MID.
    pub mid: String,
    /// Whose track.
    pub identity: Option<String>,
    /// Which track.
    pub track: Option<String>,
    /// The layer's RID, when simulcast.
    pub rid: Option<String>,
    /// Rank from the lowest bitrate (0 = lowest); `None` when nothing is forwarded.
    pub spatial: Option<usize>,
    /// Temporal cap (TID).
    pub temporal: Option<u8>,
    /// Frame width of the layer's last keyframe, pixels.
    pub width: Option<u16>,
    /// Frame height, pixels.
    pub height: Option<u16>,
}

/// Who a room event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every WHEP session's event stream.
    All,
    /// One WHEP session's stream.
    Viewer(ParticipantId),
}

/// One server-sent event: its name and JSON data (serialized once, shared by every
/// stream it goes to).
#[derive(Debug, Clone)]
pub struct RoomEvent {
    /// The SSE `event:` name.
    pub name: &'static str,
    /// The SSE `data:` JSON.
    pub data: Arc<str>,
}

impl RoomEvent {
    /// An event from any serializable value.
    pub fn new(name: &'static str, data: &impl Serialize) -> Self {
        let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
        RoomEvent {
            name,
            data: data.into(),
        }
    }
}

/// A room as the room API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomSummary {
    /// The room's name.
    pub name: String,
    /// Distinct identities.
    pub participants: usize,
    /// Identities with a WHIP session.
    pub publishers: usize,
    /// WHEP sessions.
    pub viewers: usize,
}

/// A room with its participants (room API).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomDetail {
    /// The room's name.
    pub name: String,
    /// WHEP sessions.
    pub viewers: usize,
    /// Everybody in the room.
    pub participants: Vec<ParticipantInfo>,
}
