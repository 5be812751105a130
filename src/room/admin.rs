//! `Room` inputs beyond media: a viewer's slot preferences, the state an event stream
//! starts with, and the room API (list, remove a participant, mute a track, close).
//! Cold path; same rules as the rest of the room (`now` in, no clock, no I/O).

use std::time::Instant;

use str0m::media::Mid;

use super::Room;
use crate::conference::info::{RoomDetail, RoomEvent, RoomSummary};
use crate::conference::{SlotPreference, SlotRefusal};
use crate::forwarder::preferences::LayerPreference;
use crate::ids::TrackRef;
use crate::ids::{ParticipantId, SessionId};
use crate::session::EndReason;

/// A resolution cap on one slot (the tile it is shown in), pixels.
#[derive(Debug, Clone)]
pub struct SlotCap {
    /// The slot's MID.
    pub mid: String,
    /// Widest frame wanted.
    pub max_width: Option<u16>,
    /// Tallest frame wanted.
    pub max_height: Option<u16>,
}

/// What an event stream starts with.
#[derive(Debug)]
pub struct EventStart {
    /// The WHEP session's participant (the key its later events are addressed by).
    pub viewer: ParticipantId,
    /// Its identity.
    pub identity: String,
    /// `participants`, `slots`, `active-speaker`, `viewers`.
    pub events: Vec<RoomEvent>,
}

impl Room {
    /// A WHEP viewer's slot preferences and resolution caps (a `PATCH` with JSON).
    /// `None`: not a live WHEP session here. `Some(Err(why))`: refused (422), nothing
    /// changed.
    pub fn handle_preferences(
        &mut self,
        now: Instant,
        session: &SessionId,
        prefs: &[SlotPreference],
        caps: &[SlotCap],
    ) -> Option<Result<(), SlotRefusal>> {
        let id = self.subscriber_id(session)?;
        // Validate the caps' slots before changing anything.
        for cap in caps {
            let key = self.forwarder.key_of(TrackRef {
                participant: id,
                mid: Mid::from(cap.mid.as_str()),
            });
            if key.is_none() {
                return Some(Err(SlotRefusal::UnknownMid(cap.mid.clone())));
            }
        }
        if let Err(e) = self.conference.set_preferences(id, prefs) {
            return Some(Err(e));
        }
        for cap in caps {
            let pref = LayerPreference::Cap {
                max_spatial: None,
                max_width: cap.max_width,
                max_height: cap.max_height,
            };
            let mid = Some(Mid::from(cap.mid.as_str()));
            if let Err(e) = self
                .forwarder
                .set_preference(now, id, mid, &pref, &mut self.commands)
            {
                return Some(Err(SlotRefusal::Cap(cap.mid.clone(), e)));
            }
        }
        self.reassign(now);
        self.process(now);
        Some(Ok(()))
    }

    /// The state a WHEP session's event stream starts with; `None` when the session is
    /// not a live WHEP session here.
    pub fn event_start(&self, session: &SessionId) -> Option<EventStart> {
        let viewer = self.subscriber_id(session)?;
        let identity = self.conference.member(viewer)?.identity.to_string();
        let events = self.conference.snapshot(&self.forwarder, viewer)?;
        Some(EventStart {
            viewer,
            identity,
            events,
        })
    }

    /// The room in one line (room API list).
    pub fn summary(&self) -> RoomSummary {
        let (participants, publishers) = self.conference.counts();
        RoomSummary {
            name: self.name.clone(),
            participants,
            publishers,
            viewers: self.conference.viewer_count(),
        }
    }

    /// The room with its participants and their tracks (room API).
    pub fn detail(&self) -> RoomDetail {
        RoomDetail {
            name: self.name.clone(),
            viewers: self.conference.viewer_count(),
            participants: self.conference.participants(&self.forwarder),
        }
    }

    /// End every session of an identity (room API). Returns whether it had any.
    pub fn remove_identity(&mut self, now: Instant, identity: &str) -> bool {
        let sessions = self.conference.sessions_of(identity);
        for &id in &sessions {
            self.close_member(id, EndReason::Removed);
        }
        self.process(now);
        !sessions.is_empty()
    }

    /// Mute or unmute an identity's published track `track_id` (`camera-audio`, …).
    /// Returns `false` when there is no such track.
    pub fn mute(&mut self, now: Instant, identity: &str, track_id: &str, muted: bool) -> bool {
        let Some(track) = self
            .conference
            .track_of(&self.forwarder, identity, track_id)
        else {
            return false;
        };
        self.forwarder
            .set_muted(now, track, muted, &mut self.commands);
        if let Some(p) = self.conference.participant(&self.forwarder, identity) {
            self.conference.emit_updated(p);
        }
        self.process(now);
        true
    }

    /// End every session (room API close). Returns how many ended.
    pub fn close_all(&mut self, now: Instant) -> usize {
        let ids = self.member_ids();
        for &id in &ids {
            self.close_member(id, EndReason::Removed);
        }
        let n = ids.len();
        self.process(now);
        n
    }

    /// Whether `session` is a live WHEP session here.
    pub fn is_viewer(&self, session: &SessionId) -> bool {
        self.subscriber_id(session).is_some()
    }
}
