//! What happened in a room, for the rest of the platform (the webhooks,
//! `crate::webhook`): a participant joined or left, a track was published or
//! unpublished. Derived from the participant's view before and after one of its
//! sessions joins or ends, so an identity with several sessions (a publisher that also
//! watches) joins once, leaves once, and publishes each track once.
//!
//! Pure: no clock, no I/O. The room hands notices out in order
//! (`RoomOutput::Notice`).

use super::info::{ParticipantInfo, TrackInfo};

/// One thing that happened in a room, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// An identity's first session joined (its tracks follow as `TrackPublished`).
    ParticipantJoined(ParticipantInfo),
    /// An identity's last session ended (after its `TrackUnpublished`).
    ParticipantLeft {
        /// The identity.
        identity: String,
        /// Its display name.
        name: String,
    },
    /// A track became available in the room.
    TrackPublished {
        /// Whose track.
        identity: String,
        /// The track.
        track: TrackInfo,
    },
    /// A track left the room (its publishing session ended).
    TrackUnpublished {
        /// Whose track.
        identity: String,
        /// The track as it was last.
        track: TrackInfo,
    },
}

/// Append to `out` what changed between an identity's view `before` and `after` one of
/// its sessions joined or ended (`None`: the identity had, or has, no session). Order:
/// joined, then published tracks; unpublished tracks, then left. A track is the same
/// track while its id (`camera-video`, …) is.
pub(super) fn diff(
    before: Option<&ParticipantInfo>,
    after: Option<&ParticipantInfo>,
    out: &mut Vec<Notice>,
) {
    let (old, new) = (tracks(before), tracks(after));
    let has = |list: &[TrackInfo], t: &TrackInfo| list.iter().any(|o| o.id == t.id);
    if let (None, Some(p)) = (before, after) {
        out.push(Notice::ParticipantJoined(p.clone()));
    }
    if let Some(p) = after {
        for t in new.iter().filter(|t| !has(old, t)) {
            out.push(Notice::TrackPublished {
                identity: p.identity.clone(),
                track: t.clone(),
            });
        }
    }
    if let Some(p) = before {
        for t in old.iter().filter(|t| !has(new, t)) {
            out.push(Notice::TrackUnpublished {
                identity: p.identity.clone(),
                track: t.clone(),
            });
        }
    }
    if let (Some(p), None) = (before, after) {
        out.push(Notice::ParticipantLeft {
            identity: p.identity.clone(),
            name: p.name.clone(),
        });
    }
}

fn tracks(p: Option<&ParticipantInfo>) -> &[TrackInfo] {
    p.map(|p| p.tracks.as_slice()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::info::Source;

    fn track(id: &str, kind: &'static str) -> TrackInfo {
        TrackInfo {
            id: id.into(),
            kind,
            source: Source::Camera,
            muted: false,
            rids: Vec::new(),
        }
    }

    fn person(tracks: Vec<TrackInfo>, watching: bool) -> ParticipantInfo {
        ParticipantInfo {
            identity: "ada".into(),
            name: "Ada".into(),
            publishing: !tracks.is_empty(),
            watching,
            tracks,
        }
    }

    fn kinds(out: &[Notice]) -> Vec<String> {
        out.iter()
            .map(|n| match n {
                Notice::ParticipantJoined(p) => format!("joined {}", p.identity),
                Notice::ParticipantLeft { identity, .. } => format!("left {identity}"),
                Notice::TrackPublished { track, .. } => format!("published {}", track.id),
                Notice::TrackUnpublished { track, .. } => format!("unpublished {}", track.id),
            })
            .collect()
    }

    #[test]
    fn a_publisher_that_also_watches_joins_and_leaves_once() {
        let av = vec![
            track("camera-audio", "audio"),
            track("camera-video", "video"),
        ];
        let publishing = person(av.clone(), false);
        let both = person(av, true);
        let watching = person(Vec::new(), true);
        let mut out = Vec::new();
        diff(None, Some(&publishing), &mut out);
        assert_eq!(
            kinds(&out),
            [
                "joined ada",
                "published camera-audio",
                "published camera-video"
            ]
        );
        out.clear();
        // Its WHEP session joins, then its WHIP session ends: only the tracks go.
        diff(Some(&publishing), Some(&both), &mut out);
        assert!(out.is_empty(), "{out:?}");
        diff(Some(&both), Some(&watching), &mut out);
        assert_eq!(
            kinds(&out),
            ["unpublished camera-audio", "unpublished camera-video"]
        );
        out.clear();
        diff(Some(&watching), None, &mut out);
        assert_eq!(kinds(&out), ["left ada"]);
    }

    #[test]
    fn a_muted_track_is_the_same_track() {
        let before = person(vec![track("camera-video", "video")], false);
        let mut muted = before.clone();
        muted.tracks[0].muted = true;
        let mut out = Vec::new();
        diff(Some(&before), Some(&muted), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_publisher_that_leaves_unpublishes_first() {
        let p = person(vec![track("screen-video", "video")], false);
        let mut out = Vec::new();
        diff(Some(&p), None, &mut out);
        assert_eq!(kinds(&out), ["unpublished screen-video", "left ada"]);
    }
}
