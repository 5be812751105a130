//! The conference's outputs: its views of the participants (for the room API, the
//! events and the notices), the room events it queues for event streams (`slots`,
//! `layer`, `active-speaker`, `viewers`, `participant-updated`), the state a new stream
//! starts with, and the notices. JSON shapes in `docs/conference.md`.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::MediaKind;

use super::{kind_str, track_info, Conference};
use crate::conference::info::{
    Audience, LayerInfo, ParticipantInfo, RoomEvent, SlotInfo, SpeakerInfo,
};
use crate::forwarder::Forwarder;
use crate::ids::TrackRef;
use crate::ids::{ParticipantId, SessionKind};

impl Conference {
    // ---- views of the participants (room API, events, notices) ----

    /// Everybody in the room, in join order.
    pub fn participants(&self, fwd: &Forwarder) -> Vec<ParticipantInfo> {
        let mut first: Vec<(u64, Arc<str>)> = Vec::new();
        for m in self.members.values() {
            match first.iter_mut().find(|(_, i)| *i == m.identity) {
                Some(e) => e.0 = e.0.min(m.order),
                None => first.push((m.order, m.identity.clone())),
            }
        }
        first.sort();
        first
            .iter()
            .filter_map(|(_, i)| self.participant(fwd, i))
            .collect()
    }

    /// One participant, if it has a session here.
    pub fn participant(&self, fwd: &Forwarder, identity: &str) -> Option<ParticipantInfo> {
        let sessions = self.sessions_of(identity);
        let first = self.members.get(sessions.first()?)?;
        let mut info = ParticipantInfo {
            identity: identity.to_owned(),
            name: first.name.to_string(),
            publishing: false,
            watching: false,
            tracks: Vec::new(),
        };
        for id in sessions {
            let m = &self.members[&id];
            match m.kind {
                SessionKind::Subscriber => info.watching = true,
                SessionKind::Publisher => {
                    info.publishing = true;
                    for (t, kind) in fwd.published_tracks() {
                        if t.participant == id {
                            info.tracks.push(track_info(fwd, t, kind, m.source));
                        }
                    }
                }
            }
        }
        Some(info)
    }

    /// `layer` events for video slots whose forwarded layer changed since last reported.
    pub(super) fn report_layers(&mut self, now: Instant, fwd: &mut Forwarder) {
        let mut events = Vec::new();
        for (viewer, slots) in self.viewers.iter_mut() {
            for slot in slots.iter_mut().filter(|s| s.kind == MediaKind::Video) {
                let sub = TrackRef {
                    participant: *viewer,
                    mid: slot.mid,
                };
                let view = fwd.key_of(sub).and_then(|k| fwd.current_layer(now, k));
                let owner = slot.state.current.and_then(|t| {
                    let m = self.members.get(&t.participant)?;
                    Some((
                        m.identity.to_string(),
                        format!("{}-video", m.source.as_str()),
                    ))
                });
                let info = LayerInfo {
                    mid: slot.mid.to_string(),
                    identity: owner.as_ref().map(|o| o.0.clone()),
                    track: owner.map(|o| o.1),
                    rid: view.as_ref().and_then(|v| v.encoding_id.clone()),
                    spatial: view.as_ref().and_then(|v| v.spatial_layer_id),
                    temporal: view.as_ref().map(|v| v.temporal_layer_id),
                    width: view.as_ref().and_then(|v| v.width),
                    height: view.as_ref().and_then(|v| v.height),
                };
                if slot.reported.as_ref() != Some(&info) {
                    if slot.reported.is_some() || view.is_some() {
                        events.push((*viewer, RoomEvent::new("layer", &info)));
                    }
                    slot.reported = Some(info);
                }
            }
        }
        for (viewer, e) in events {
            self.emit(Audience::Viewer(viewer), e);
        }
    }

    // ---- outputs ----

    /// Events queued since the last call, in order.
    pub fn take_events(&mut self) -> Vec<(Audience, RoomEvent)> {
        std::mem::take(&mut self.events)
    }

    /// Joins, leaves and tracks since the last call, in order ([`super::notices`]).
    pub fn take_notices(&mut self) -> Vec<super::Notice> {
        std::mem::take(&mut self.notices)
    }

    /// The current state for a viewer's (re)connecting event stream: `participants`,
    /// `slots`, `active-speaker`, `viewers`. `None` when not a WHEP session.
    pub fn snapshot(&self, fwd: &Forwarder, viewer: ParticipantId) -> Option<Vec<RoomEvent>> {
        self.viewers.get(&viewer)?;
        let participants = serde_json::json!({ "participants": self.participants(fwd) });
        Some(vec![
            RoomEvent::new("participants", &participants),
            RoomEvent::new("slots", &self.slot_map(fwd, viewer)),
            self.active_speaker_event(),
            RoomEvent::new(
                "viewers",
                &serde_json::json!({ "count": self.viewer_count() }),
            ),
        ])
    }

    // ---- internals ----

    pub(super) fn slot_map(&self, fwd: &Forwarder, viewer: ParticipantId) -> serde_json::Value {
        let slots: Vec<SlotInfo> = self
            .viewers
            .get(&viewer)
            .map(|slots| {
                slots
                    .iter()
                    .map(|s| {
                        let owner = s
                            .state
                            .current
                            .and_then(|t| Some((self.members.get(&t.participant)?, t)));
                        SlotInfo {
                            mid: s.mid.to_string(),
                            kind: kind_str(s.kind),
                            identity: owner.map(|(m, _)| m.identity.to_string()),
                            track: owner.map(|(m, _)| {
                                format!("{}-{}", m.source.as_str(), kind_str(s.kind))
                            }),
                            source: owner.map(|(m, _)| m.source),
                            pinned: s.state.pin.is_some(),
                            paused: s.state.paused,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = fwd;
        serde_json::json!({ "slots": slots })
    }

    pub(super) fn active_speaker_event(&self) -> RoomEvent {
        let mut speakers: Vec<SpeakerInfo> = Vec::new();
        for (t, level) in self.speaker.speakers() {
            let Some(m) = self.members.get(&t.participant) else {
                continue;
            };
            if !speakers.iter().any(|s| *s.identity == *m.identity) {
                speakers.push(SpeakerInfo {
                    identity: m.identity.to_string(),
                    level,
                });
            }
        }
        let data = serde_json::json!({
            "identity": self.active.as_deref(),
            "speakers": speakers,
        });
        RoomEvent::new("active-speaker", &data)
    }

    /// Queue `participant-updated` for everybody (a track was muted or unmuted).
    pub fn emit_updated(&mut self, p: ParticipantInfo) {
        self.emit(Audience::All, RoomEvent::new("participant-updated", &p));
    }

    pub(super) fn emit_active_speaker(&mut self) {
        let e = self.active_speaker_event();
        self.emit(Audience::All, e);
    }

    pub(super) fn emit_viewers(&mut self) {
        let data = serde_json::json!({ "count": self.viewer_count() });
        self.emit(Audience::All, RoomEvent::new("viewers", &data));
    }

    pub(super) fn emit(&mut self, audience: Audience, event: RoomEvent) {
        self.events.push((audience, event));
    }
}
