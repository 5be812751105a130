//! Viewer preferences and per-subscriber statistics: a viewer caps a track's layer or
//! picks one by hand (the WHEP `layer` extension, draft-ietf-wish-whep), and reads what
//! it receives. Pure bookkeeping over the forwarder's tracks; the allocation itself stays
//! in [`super::Forwarder`].

use serde::Serialize;
use str0m::media::{MediaKind, Mid, Rid};

use super::published::{PublishedTrack, MAX_TID};
use super::selector::Layer;
use super::subscribed::SubscribedTrack;

/// What a viewer asks for on a video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerPreference {
    /// The allocator decides (the default).
    Auto,
    /// Always this simulcast encoding (RID), whatever the bandwidth, with an optional
    /// temporal cap (TID, RFC 7741 §4.2; `None`: every temporal layer).
    Encoding(Rid, Option<u8>),
    /// Always the N-th layer counted from the lowest bitrate (0 = lowest), with an
    /// optional temporal cap.
    Spatial(usize, Option<u8>),
    /// The allocator decides, within caps (a small tile): at most the N-th lowest layer,
    /// and/or layers no wider and no taller than the given pixels (from each layer's last
    /// keyframe). The lowest layer is always allowed.
    Cap {
        /// Highest rank from the lowest layer.
        max_spatial: Option<usize>,
        /// Widest frame, pixels.
        max_width: Option<u16>,
        /// Tallest frame, pixels.
        max_height: Option<u16>,
    },
}

/// Why a preference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreferenceError {
    /// No video track of this session has that mid.
    #[error("no video track with mid {0}")]
    UnknownMid(String),
    /// The track's source has no layer with that RID (or that index).
    #[error("no such layer: {0}")]
    UnknownLayer(String),
}

/// A layer as reported to viewers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LayerView {
    /// Rank from the lowest bitrate (0 = lowest), if the layer is currently active.
    pub spatial_layer_id: Option<usize>,
    /// The RID, if the source uses simulcast.
    pub encoding_id: Option<String>,
    /// Temporal cap (TID).
    pub temporal_layer_id: u8,
    /// Frame size of the layer's last keyframe, pixels, when known.
    pub width: Option<u16>,
    /// See `width`.
    pub height: Option<u16>,
}

/// One subscribed track, as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackStats {
    /// The subscriber's m-line.
    pub mid: String,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// Whether a published track feeds it.
    pub bound: bool,
    /// Layer being forwarded.
    pub current_layer: Option<LayerView>,
    /// Layer the allocator (or the viewer) wants.
    pub target_layer: Option<LayerView>,
    /// Spatial switches up.
    pub switches_up: u64,
    /// Spatial switches down.
    pub switches_down: u64,
    /// A layer was chosen by hand.
    pub manual: bool,
    /// The viewer's cap, as a rank from the lowest layer.
    pub max_spatial_layer_id: Option<usize>,
    /// The viewer's size cap, pixels.
    pub max_width: Option<u16>,
    /// See `max_width`.
    pub max_height: Option<u16>,
}

/// One subscriber, as reported by `GET /whep/{room}/{session}/stats`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberStats {
    /// Downlink estimate in bit/s (TWCC/GCC, else REMB, else the receiver-report loss fallback); `null` before the first one.
    pub estimate_bps: Option<u64>,
    /// Its tracks.
    pub tracks: Vec<TrackStats>,
}

/// Resolve a preference against a track's source and apply it.
pub(super) fn apply(
    now: std::time::Instant,
    sub: &mut SubscribedTrack,
    source: Option<&mut PublishedTrack>,
    pref: &LayerPreference,
) -> Result<(), PreferenceError> {
    match pref {
        LayerPreference::Auto => {
            sub.manual = None;
            sub.max_spatial_rank = None;
            sub.max_size = (None, None);
        }
        LayerPreference::Cap {
            max_spatial,
            max_width,
            max_height,
        } => {
            sub.manual = None;
            sub.max_spatial_rank = *max_spatial;
            sub.max_size = (*max_width, *max_height);
        }
        LayerPreference::Encoding(rid, temporal) => {
            let track = source.ok_or_else(|| PreferenceError::UnknownLayer(rid.to_string()))?;
            let spatial = track
                .layers
                .iter()
                .position(|l| l.rid == Some(*rid))
                .ok_or_else(|| PreferenceError::UnknownLayer(rid.to_string()))?;
            sub.manual = Some(Layer {
                spatial: spatial as u8,
                temporal: temporal.unwrap_or(MAX_TID).min(MAX_TID),
            });
            sub.max_spatial_rank = None;
            sub.max_size = (None, None);
        }
        LayerPreference::Spatial(n, temporal) => {
            let track = source.ok_or_else(|| PreferenceError::UnknownLayer(n.to_string()))?;
            let spatial = ranked_spatials(now, track)
                .get(*n)
                .copied()
                .ok_or_else(|| PreferenceError::UnknownLayer(n.to_string()))?;
            sub.manual = Some(Layer {
                spatial,
                temporal: temporal.unwrap_or(MAX_TID).min(MAX_TID),
            });
            sub.max_spatial_rank = None;
            sub.max_size = (None, None);
        }
    }
    Ok(())
}

/// Active spatial ids of a track, lowest bitrate first.
pub(super) fn ranked_spatials(now: std::time::Instant, track: &mut PublishedTrack) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for (layer, _) in track.ladder(now, None, (None, None)) {
        if !out.contains(&layer.spatial) {
            out.push(layer.spatial);
        }
    }
    out
}

/// Report one track.
pub(super) fn track_stats(
    now: std::time::Instant,
    sub: &SubscribedTrack,
    source: Option<&mut PublishedTrack>,
) -> TrackStats {
    let (current, target) = match source {
        Some(track) => {
            let ranks = ranked_spatials(now, track);
            let view = |l: Option<Layer>| {
                l.map(|l| LayerView {
                    spatial_layer_id: ranks.iter().position(|s| *s == l.spatial),
                    encoding_id: track
                        .layers
                        .get(l.spatial as usize)
                        .and_then(|x| x.rid)
                        .map(|r| r.to_string()),
                    temporal_layer_id: l.temporal,
                    width: track
                        .layers
                        .get(l.spatial as usize)
                        .and_then(|x| x.resolution)
                        .map(|r| r.width),
                    height: track
                        .layers
                        .get(l.spatial as usize)
                        .and_then(|x| x.resolution)
                        .map(|r| r.height),
                })
            };
            if sub.kind == MediaKind::Video {
                (view(sub.selector.current()), view(sub.selector.target()))
            } else {
                (None, None)
            }
        }
        None => (None, None),
    };
    TrackStats {
        mid: sub.mid.to_string(),
        kind: if sub.kind == MediaKind::Audio {
            "audio"
        } else {
            "video"
        },
        bound: sub.source.is_some(),
        current_layer: current,
        target_layer: target,
        switches_up: sub.switches.0,
        switches_down: sub.switches.1,
        manual: sub.manual.is_some(),
        max_spatial_layer_id: sub.max_spatial_rank,
        max_width: sub.max_size.0,
        max_height: sub.max_size.1,
    }
}

/// Whether `mid` (if given) names this video track.
pub(super) fn matches(sub: &SubscribedTrack, mid: Option<Mid>) -> bool {
    sub.kind == MediaKind::Video && mid.is_none_or(|m| m == sub.mid)
}
