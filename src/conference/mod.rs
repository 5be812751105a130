//! The conference layer of a room: who is who (identities over WHIP/WHEP sessions),
//! each WHEP session's slots and which published track each slot shows, the active
//! speaker, and the room events that tell clients about all of it.
//!
//! Sans-IO and clock-free like the rest of the room: inputs carry `now`; slot changes
//! are applied to the [`Forwarder`] (re-binding subscribed tracks), events are queued
//! for the room actor to fan out. Cold path except [`Conference::observe_audio`], which
//! is O(1) per audio packet.

pub mod info;
pub mod notices;
pub(crate) mod slots;
pub(crate) mod speaker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{MediaKind, Mid, Pt};

use crate::forwarder::{Forwarder, ForwarderOutput};
use crate::ids::{ParticipantId, SessionKind, TrackRef};
use crate::limits::RoomLimits;
use info::{Audience, JoinOptions, LayerInfo, RoomEvent, Source, TrackInfo};
use notices::Notice;
use slots::{AudioCandidate, Pin, SlotState, VideoCandidate};
use speaker::{SpeakerConfig, SpeakerDetector};

/// One session's place in the conference.
#[derive(Debug, Clone)]
pub struct Member {
    /// The participant's identity.
    pub identity: Arc<str>,
    /// Display name.
    pub name: Arc<str>,
    /// WHIP or WHEP.
    pub kind: SessionKind,
    /// What a WHIP session publishes.
    pub source: Source,
    /// A WHEP session that watches only this identity.
    pub watch: Option<Arc<str>>,
    /// Join order in the room (smaller: earlier).
    pub order: u64,
}

/// One slot: a WHEP m-line.
#[derive(Debug, Clone)]
struct Slot {
    mid: Mid,
    kind: MediaKind,
    state: SlotState<TrackRef>,
    /// Last layer reported in a `layer` event: (rid, spatial, temporal, width, height).
    reported: Option<LayerInfo>,
}

/// Why [`Conference::admit`] refused a join: a room limit is reached. The messages are
/// what the client reads in the 429's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// `--max-participants`: the room has this many identities.
    #[error("the room has its maximum of {0} participants")]
    Participants(usize),
    /// `--max-sessions-per-identity`: this identity has this many sessions here.
    #[error("{0:?} has its maximum of {1} sessions in this room")]
    SessionsPerIdentity(String, usize),
    /// `--max-publishers`: the room has this many publishing identities.
    #[error("the room has its maximum of {0} publishers")]
    Publishers(usize),
}

/// Why a viewer's slot preferences or caps were refused (the API answers 422 with the
/// message); nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlotRefusal {
    /// The session is not a WHEP session.
    #[error("not a WHEP session")]
    NotViewer,
    /// No slot of the session has this MID.
    #[error("no slot with mid {0:?} in this session")]
    UnknownMid(String),
    /// A pin names an identity with no session in the room.
    #[error("pin: no participant {0:?} in the room")]
    UnknownPin(String),
    /// The forwarder refused a slot's resolution cap.
    #[error("mid {0:?}: {1}")]
    Cap(String, crate::forwarder::preferences::PreferenceError),
}

/// A join that may go ahead ([`Conference::admit`]).
#[derive(Debug)]
pub struct Admission {
    /// The participant's identity.
    pub identity: Arc<str>,
    /// Its display name.
    pub name: Arc<str>,
    /// Sessions of the same identity and source that the new one replaces.
    pub replaces: Vec<ParticipantId>,
}

/// A viewer's preference for one slot (a `PATCH` JSON request).
#[derive(Debug, Clone, Default)]
pub struct SlotPreference {
    /// The slot's MID.
    pub mid: String,
    /// `Some(Some(p))`: pin; `Some(None)`: unpin; `None`: leave as is.
    pub pin: Option<Option<Pin>>,
    /// Pause (`true`) or resume.
    pub paused: Option<bool>,
}

/// Identities, slots and the active speaker of one room.
pub struct Conference {
    members: HashMap<ParticipantId, Member>,
    viewers: HashMap<ParticipantId, Vec<Slot>>,
    speaker: SpeakerDetector<TrackRef>,
    active: Option<Arc<str>>,
    next_order: u64,
    limits: RoomLimits,
    events: Vec<(Audience, RoomEvent)>,
    /// Joins, leaves and tracks for the webhooks, not taken yet.
    notices: Vec<Notice>,
    /// Next check of the layers forwarded into video slots (while there are viewers).
    next_report: Option<Instant>,
}

/// How often the layers forwarded into video slots are compared with those last
/// reported in `layer` events.
const LAYER_REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl Conference {
    /// An empty conference with per-room `limits`.
    pub fn new(limits: RoomLimits) -> Self {
        Conference {
            members: HashMap::new(),
            viewers: HashMap::new(),
            speaker: SpeakerDetector::new(SpeakerConfig::default()),
            active: None,
            next_order: 1,
            limits,
            events: Vec::new(),
            notices: Vec::new(),
            next_report: None,
        }
    }

    // ---- getters ----

    /// A session's membership.
    pub fn member(&self, id: ParticipantId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// Sessions of an identity.
    pub fn sessions_of(&self, identity: &str) -> Vec<ParticipantId> {
        let mut v: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|(_, m)| &*m.identity == identity)
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// Number of WHEP sessions with at least one media slot: a data-only session
    /// (an offer with only `m=application`) is not a viewer.
    pub fn viewer_count(&self) -> usize {
        self.viewers.values().filter(|s| !s.is_empty()).count()
    }

    /// Whether `id` is a WHEP session with at least one media slot.
    pub fn watches_media(&self, id: ParticipantId) -> bool {
        self.viewers.get(&id).is_some_and(|s| !s.is_empty())
    }

    /// Distinct identities, and those with a WHIP session.
    pub fn counts(&self) -> (usize, usize) {
        let mut all: Vec<&str> = self.members.values().map(|m| &*m.identity).collect();
        let mut publishing: Vec<&str> = self
            .members
            .values()
            .filter(|m| m.kind == SessionKind::Publisher)
            .map(|m| &*m.identity)
            .collect();
        for v in [&mut all, &mut publishing] {
            v.sort_unstable();
            v.dedup();
        }
        (all.len(), publishing.len())
    }

    /// The published track `track_id` (`{source}-{kind}`) of an identity.
    pub fn track_of(&self, fwd: &Forwarder, identity: &str, track_id: &str) -> Option<TrackRef> {
        let (source, kind) = track_id.split_once('-')?;
        let source = Source::parse(source)?;
        let pid = self.sessions_of(identity).into_iter().find(|id| {
            let m = &self.members[id];
            m.kind == SessionKind::Publisher && m.source == source
        })?;
        fwd.published_tracks()
            .into_iter()
            .find(|(t, k)| t.participant == pid && kind_str(*k) == kind)
            .map(|(t, _)| t)
    }

    // ---- inputs ----

    /// Check a join against the room's state and limits; returns the identity, the
    /// display name to use, and the sessions the new one replaces: a WHIP session of an
    /// identity that already publishes that source takes over from the old one (a page
    /// reload or a reconnect must not wait for the old session's ICE timeout).
    /// Errors: [`AdmitError`] (the API answers 429) past a limit.
    pub fn admit(&self, kind: SessionKind, opts: &JoinOptions) -> Result<Admission, AdmitError> {
        let identity: Arc<str> = match &opts.identity {
            Some(i) => i.as_str().into(),
            None => format!("anon-{:08x}", rand::random::<u32>()).into(),
        };
        let name: Arc<str> = opts.name.as_deref().map_or(identity.clone(), Arc::from);
        let sessions = self.sessions_of(&identity);
        let known = !sessions.is_empty();
        let publishing = sessions
            .iter()
            .any(|id| self.members[id].kind == SessionKind::Publisher);
        let replaces: Vec<ParticipantId> = match kind {
            SessionKind::Publisher => sessions
                .iter()
                .filter(|id| {
                    let m = &self.members[id];
                    m.kind == SessionKind::Publisher && m.source == opts.source
                })
                .copied()
                .collect(),
            SessionKind::Subscriber => Vec::new(),
        };
        let (all, publishers) = self.counts();
        let max_all = self.limits.max_participants as usize;
        if !known && max_all > 0 && all >= max_all {
            return Err(AdmitError::Participants(max_all));
        }
        let max_own = self.limits.max_sessions_per_identity as usize;
        if max_own > 0 && sessions.len() >= max_own + replaces.len() {
            return Err(AdmitError::SessionsPerIdentity(
                identity.to_string(),
                max_own,
            ));
        }
        let max_pub = self.limits.max_publishers as usize;
        if kind == SessionKind::Publisher && !publishing && max_pub > 0 && publishers >= max_pub {
            return Err(AdmitError::Publishers(max_pub));
        }
        Ok(Admission {
            identity,
            name,
            replaces,
        })
    }

    /// A session joined (its published or subscribed tracks are already in `fwd`).
    /// `slots`: a WHEP session's m-lines in offer order.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        now: Instant,
        fwd: &Forwarder,
        id: ParticipantId,
        kind: SessionKind,
        identity: Arc<str>,
        name: Arc<str>,
        opts: &JoinOptions,
        slots: Vec<(Mid, MediaKind)>,
    ) {
        let known = !self.sessions_of(&identity).is_empty();
        let before = self.participant(fwd, &identity);
        let order = self.next_order;
        self.next_order += 1;
        self.members.insert(
            id,
            Member {
                identity: identity.clone(),
                name,
                kind,
                source: opts.source,
                watch: opts.watch.as_deref().map(Arc::from),
                order,
            },
        );
        if kind == SessionKind::Subscriber {
            let slots: Vec<Slot> = slots
                .into_iter()
                .map(|(mid, kind)| Slot {
                    mid,
                    kind,
                    state: SlotState::default(),
                    reported: None,
                })
                .collect();
            let counted = !slots.is_empty();
            self.viewers.insert(id, slots);
            self.next_report.get_or_insert(now + LAYER_REPORT_EVERY);
            if counted {
                self.emit_viewers();
            }
        }
        let after = self.participant(fwd, &identity);
        notices::diff(before.as_ref(), after.as_ref(), &mut self.notices);
        if let Some(p) = after {
            let name = if known {
                "participant-updated"
            } else {
                "participant-joined"
            };
            self.emit(Audience::All, RoomEvent::new(name, &p));
        }
    }

    /// A session ended (call before its tracks leave `fwd`).
    pub fn remove(&mut self, fwd: &Forwarder, id: ParticipantId) {
        let Some(identity) = self.members.get(&id).map(|m| m.identity.clone()) else {
            return;
        };
        let before = self.participant(fwd, &identity);
        let Some(m) = self.members.remove(&id) else {
            return;
        };
        for (t, _) in fwd.published_tracks() {
            if t.participant == id {
                self.speaker.remove(t);
            }
        }
        if self.viewers.remove(&id).is_some_and(|s| !s.is_empty()) {
            self.emit_viewers();
        }
        let after = self.participant(fwd, &m.identity);
        notices::diff(before.as_ref(), after.as_ref(), &mut self.notices);
        match after {
            // Built from the remaining sessions: the ended one's tracks are not listed.
            Some(p) => {
                self.emit(Audience::All, RoomEvent::new("participant-updated", &p));
            }
            None => {
                let left = serde_json::json!({ "identity": &*m.identity });
                self.emit(Audience::All, RoomEvent::new("participant-left", &left));
                if self.active.as_deref() == Some(&*m.identity) {
                    self.active = None;
                    self.emit_active_speaker();
                }
            }
        }
    }

    /// One audio packet of a published track with its RFC 6464 level (-dBov, 0..=127).
    pub fn observe_audio(&mut self, now: Instant, track: TrackRef, level: u8) {
        self.speaker.observe(now, track, Some(level));
    }

    /// When [`Conference::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.speaker.poll_timeout(), self.next_report]
            .into_iter()
            .flatten()
            .min()
    }

    /// Evaluate the speakers and report layer changes. Returns whether slots must be
    /// re-assigned.
    pub fn handle_timeout(&mut self, now: Instant, fwd: &mut Forwarder) -> bool {
        if self.viewers.is_empty() {
            self.next_report = None;
        } else if self.next_report.is_none_or(|t| now >= t) {
            self.report_layers(now, fwd);
            self.next_report = Some(now + LAYER_REPORT_EVERY);
        }
        if self.speaker.poll_timeout().is_none_or(|t| now < t) {
            return false;
        }
        let changes = self.speaker.handle_timeout(now);
        if changes.active {
            let active = self
                .speaker
                .active()
                .and_then(|t| self.members.get(&t.participant))
                .map(|m| m.identity.clone());
            if active != self.active {
                self.active = active;
                self.emit_active_speaker();
            }
        }
        changes.active || changes.speaking
    }

    /// Apply a viewer's slot preferences (validated first: nothing changes on error).
    /// Errors are for a 422: an unknown MID, or a pin naming nobody in the room.
    pub fn set_preferences(
        &mut self,
        viewer: ParticipantId,
        prefs: &[SlotPreference],
    ) -> Result<(), SlotRefusal> {
        let Some(slots) = self.viewers.get(&viewer) else {
            return Err(SlotRefusal::NotViewer);
        };
        for p in prefs {
            if !slots.iter().any(|s| s.mid.to_string() == p.mid) {
                return Err(SlotRefusal::UnknownMid(p.mid.clone()));
            }
            if let Some(Some(pin)) = &p.pin {
                if self.sessions_of(&pin.identity).is_empty() {
                    return Err(SlotRefusal::UnknownPin(pin.identity.clone()));
                }
            }
        }
        let slots = self.viewers.get_mut(&viewer).expect("checked above");
        for p in prefs {
            let slot = slots
                .iter_mut()
                .find(|s| s.mid.to_string() == p.mid)
                .expect("checked above");
            if let Some(pin) = &p.pin {
                slot.state.pin = pin.clone();
            }
            if let Some(paused) = p.paused {
                slot.state.paused = paused;
            }
        }
        Ok(())
    }

    /// Re-assign every viewer's slots and apply the changes to `fwd`. `pt_map(slot,
    /// params)` maps a source's payload types to the viewer's (empty: incompatible).
    pub fn reassign(
        &mut self,
        now: Instant,
        fwd: &mut Forwarder,
        pt_map: impl Fn(TrackRef, &[PayloadParams]) -> Vec<(Pt, Pt)>,
        out: &mut Vec<ForwarderOutput>,
    ) {
        let tracks = fwd.published_tracks();
        let mut last_spoke: HashMap<Arc<str>, Instant> = HashMap::new();
        for (t, kind) in &tracks {
            let (Some(m), MediaKind::Audio) = (self.members.get(&t.participant), kind) else {
                continue;
            };
            if let Some(at) = self.speaker.last_spoke(*t) {
                let e = last_spoke.entry(m.identity.clone()).or_insert(at);
                *e = (*e).max(at);
            }
        }
        let mut viewers: Vec<ParticipantId> = self.viewers.keys().copied().collect();
        viewers.sort();
        for viewer in viewers {
            let me = &self.members[&viewer];
            let mut video = Vec::new();
            let mut audio = Vec::new();
            for (t, kind) in &tracks {
                let Some(m) = self.members.get(&t.participant) else {
                    continue;
                };
                if m.identity == me.identity || me.watch.as_ref().is_some_and(|w| *w != m.identity)
                {
                    continue;
                }
                let screen = m.source == Source::Screen;
                let spoke = last_spoke.get(&m.identity).copied();
                match kind {
                    MediaKind::Video => video.push(VideoCandidate {
                        track: *t,
                        identity: m.identity.to_string(),
                        screen,
                        joined: m.order,
                        last_spoke: spoke,
                    }),
                    MediaKind::Audio => audio.push(AudioCandidate {
                        track: *t,
                        identity: m.identity.to_string(),
                        screen,
                        joined: m.order,
                        level: self.speaker.level(*t),
                        last_spoke: spoke,
                    }),
                }
            }
            let slots = self.viewers.get_mut(&viewer).expect("listed above");
            let mut changed = false;
            for kind in [MediaKind::Video, MediaKind::Audio] {
                let idx: Vec<usize> = (0..slots.len())
                    .filter(|i| slots[*i].kind == kind)
                    .collect();
                let Some(&first) = idx.first() else {
                    continue;
                };
                // Every slot of a kind negotiates the same codecs: check compatibility once.
                let probe = TrackRef {
                    participant: viewer,
                    mid: slots[first].mid,
                };
                let ok = |t: TrackRef| {
                    fwd.published_params(t)
                        .is_some_and(|p| !pt_map(probe, p).is_empty())
                };
                let states: Vec<SlotState<TrackRef>> =
                    idx.iter().map(|i| slots[*i].state.clone()).collect();
                let assigned = match kind {
                    MediaKind::Video => {
                        video.retain(|c| ok(c.track));
                        slots::assign_video(&states, &video)
                    }
                    MediaKind::Audio => {
                        audio.retain(|c| ok(c.track));
                        slots::assign_audio(&states, &audio)
                    }
                };
                for (i, new) in idx.into_iter().zip(assigned) {
                    let slot = &mut slots[i];
                    if slot.state.current == new {
                        continue;
                    }
                    changed = true;
                    slot.state.current = new;
                    let sub = TrackRef {
                        participant: viewer,
                        mid: slot.mid,
                    };
                    let Some(key) = fwd.key_of(sub) else {
                        continue;
                    };
                    let source = new.and_then(|src| {
                        let map = pt_map(sub, fwd.published_params(src)?);
                        Some((src, map))
                    });
                    fwd.rebind(now, key, source, out);
                }
            }
            if changed {
                let ev = RoomEvent::new("slots", &self.slot_map(fwd, viewer));
                self.emit(Audience::Viewer(viewer), ev);
            }
        }
    }
}

mod events;

fn kind_str(k: MediaKind) -> &'static str {
    match k {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn track_info(fwd: &Forwarder, t: TrackRef, kind: MediaKind, source: Source) -> TrackInfo {
    TrackInfo {
        id: format!("{}-{}", source.as_str(), kind_str(kind)),
        kind: kind_str(kind),
        source,
        muted: fwd.is_muted(t),
        rids: fwd
            .published_rids(t)
            .iter()
            .map(|r| r.to_string())
            .collect(),
    }
}
