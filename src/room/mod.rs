//! `Room`: the sans-IO state of one room — its participants, the forwarder, and the
//! indexes that route a datagram to its participant. Applies forwarder commands to
//! participants. Never reads the clock (every input carries `now`, monotonic) and never
//! touches a socket: what it sends and raises is handed out by [`Room::poll_output`]
//! (see [`output`] for the drive protocol).
//!
//! Method groups: getters; `handle_*` inputs; outputs in [`output`].
//!
//! Parts: [`join`] (an offer becomes a session), [`admin`] (the room API's reads and
//! actions), [`sharded`] and [`shards`] (the room's side of its subscriber shards),
//! [`signaling`] and [`offer_limits`] (SDP), [`ledger`] (each session's gauges).

pub(crate) mod admin;
mod data;
mod join;
pub(crate) mod ledger;
pub mod offer_limits;
mod output;
mod recording;
mod restart;
mod sharded;
pub(crate) mod shards;
pub mod signaling;

pub use data::ServerMessageError;
pub use output::{drive, RoomOutput, RoomSink, ShardDelivery};
pub use recording::{
    RecordOutput, RecordedTrack, RecordingError, Selection, MAX_RECORDINGS_PER_ROOM,
};
pub use restart::{
    IceRestartError, IceRestarted, RestartBudget, MAX_RESTARTS_PER_WINDOW, RESTART_WINDOW,
};

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::format::Codec;
use str0m::media::{Mid, Rid};
use tracing::info;

use crate::conference::info::{Audience, JoinOptions, RoomEvent};
use crate::conference::notices::Notice;
use crate::conference::Conference;
use crate::data::{DataLimits, DataMeters, DataRelay};
use crate::forwarder::preferences::{LayerPreference, PreferenceError, SubscriberStats};
use crate::forwarder::{Forwarder, ForwarderOutput, InboundRtp};
use crate::ids::{ParticipantId, SessionId, SessionKind, TrackRef};
use crate::limits::RoomLimits;
use crate::metrics::{self, DropReason, Meters, PendingSession};
use crate::net::{Datagram, HostCandidates, RoomKey};
use crate::session::{EndReason, Participant, ParticipantEvent, SessionSet};
use ledger::SessionLedger;
use shards::{Placement, Shards};
use signaling::{LineKind, VIDEO_CODECS};

/// Where a subscriber's bandwidth estimate starts: enough for a 720p single-layer
/// stream, so a viewer starts on the publisher's top layer and adapts down from there
/// when the network says so (GCC reacts to congestion within about a second) rather than
/// starting low and climbing for seconds.
pub const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(2_000);

/// The largest publisher RTP payload forwarded, in bytes. str0m 0.25 builds each
/// outgoing packet in a 2,000-byte buffer (its `DATAGRAM_MAX_PACKET_SIZE`) and panics if
/// header and payload do not fit, while its receive path takes larger datagrams. What we
/// write in front of a payload: the 12-byte fixed header, a one-byte-form extension
/// block (4 bytes plus mid, abs-send-time, transport-cc, audio level, orientation and
/// their padding: under 64 bytes), and on a retransmission the 2-byte original sequence
/// number of RTX (RFC 4588 §4). 1,800 leaves more than twice that. Real senders stay far
/// below: browsers packetize at about 1,200 bytes of payload, GStreamer's default MTU is
/// 1,400, some encoders use up to 1,450; nothing a real sender produces is dropped.
pub const MAX_FORWARD_PAYLOAD: usize = 1_800;

/// A session that joined: what the API returns to the client.
#[derive(Debug)]
pub struct Joined {
    /// The new session's id.
    pub session: SessionId,
    /// The SDP answer.
    pub answer: String,
    /// Strong entity tag of the ICE session (RFC 9725 §4.3.1), quotes included.
    pub etag: String,
}

/// What a session resource's conditional requests compare against (RFC 9725 §4.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTags {
    /// The session's strong entity tag, quotes included: `"<server ufrag>"`.
    pub etag: String,
    /// The client's `a=ice-ufrag` from its offer; a trickle fragment with another one
    /// asks for an ICE restart.
    pub client_ufrag: Option<String>,
    /// The offer's first m-line (port 9) and its `a=mid` value, for the fragment an
    /// ICE restart answers with (RFC 8840 §9).
    pub first_media: Option<(String, String)>,
    /// ICE restarts in the current window (a per-session rate limit).
    pub restarts: RestartBudget,
}

/// Why a join was refused.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The offer is not parseable SDP (400).
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    /// Parseable but not acceptable: direction, codecs, track count (422).
    #[error("unacceptable SDP offer: {0}")]
    Unacceptable(String),
    /// A room limit is reached (429).
    #[error(transparent)]
    RoomFull(#[from] crate::conference::AdmitError),
}

/// One room.
pub struct Room {
    name: String,
    key: RoomKey,
    candidates: HostCandidates,
    /// The sessions this room drives itself: every WHIP session, and WHEP sessions
    /// until the shard policy places them in a shard.
    home: SessionSet,
    /// WHEP sessions driven by subscriber shards (see [`crate::shard`]).
    shards: Shards,
    by_session: HashMap<SessionId, ParticipantId>,
    /// Each live session's gauges and counts: given back when it ends, or when the
    /// room is dropped by a panic (see [`SessionLedger`]).
    ledgers: HashMap<ParticipantId, SessionLedger>,
    /// Each session's ICE tags, for PATCH's `If-Match` (RFC 9725 §4.3.1).
    tags: HashMap<SessionId, SessionTags>,
    /// Sessions not connected yet: each holds one count of the server's pending limit
    /// until it connects or ends (see `src/api/admission.rs`).
    pending: HashMap<ParticipantId, PendingSession>,
    conference: Conference,
    forwarder: Forwarder,
    commands: Vec<ForwarderOutput>,
    /// Room events taken from the conference and not handed out yet.
    events: VecDeque<(Audience, RoomEvent)>,
    /// Notices taken from the conference and not handed out yet.
    notices: VecDeque<Notice>,
    /// Bindings taken from the sessions and not handed out yet.
    bindings: Vec<SocketAddr>,
    /// RTP packets and payload bytes written since the last [`Room::process`] ended:
    /// the shared counters are touched once per batch, not per packet.
    rtp_out: (u64, u64),
    next_id: u64,
    used: bool,
    meters: Meters,
    /// The data channel relay (see `data.rs`).
    data: DataRelay,
    data_meters: DataMeters,
    /// The room's recordings (see `recording.rs`).
    recordings: recording::Recordings,
}

impl Room {
    /// An empty room. `candidates` are the host candidates every session advertises
    /// (a `Vec<SocketAddr>` means UDP ones only).
    pub fn new(
        name: String,
        key: RoomKey,
        candidates: impl Into<HostCandidates>,
        limits: RoomLimits,
        meters: Meters,
    ) -> Self {
        Room {
            name,
            key,
            candidates: candidates.into(),
            home: SessionSet::default(),
            shards: Shards::new(limits.shards),
            by_session: HashMap::new(),
            ledgers: HashMap::new(),
            tags: HashMap::new(),
            pending: HashMap::new(),
            conference: Conference::new(limits),
            forwarder: Forwarder::new(meters.clone()),
            commands: Vec::new(),
            events: VecDeque::new(),
            notices: VecDeque::new(),
            bindings: Vec::new(),
            rtp_out: (0, 0),
            next_id: 1,
            used: false,
            meters,
            data: DataRelay::new(DataLimits::default()),
            data_meters: DataMeters::new(),
            recordings: recording::Recordings::default(),
        }
    }

    // ---- getters ----

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// No participants left (in the room or its shards).
    pub fn is_empty(&self) -> bool {
        self.home.is_empty() && self.shards.is_empty()
    }

    /// Number of participants (in the room or its shards).
    pub fn len(&self) -> usize {
        self.home.len() + self.shards.len()
    }

    /// Whether a join was ever attempted here (a used room that empties is closed).
    pub fn ever_joined(&self) -> bool {
        self.used
    }

    /// Whether a participant (session) is live here.
    pub fn has_participant(&self, id: ParticipantId) -> bool {
        self.home.contains(id) || self.shards.get(id).is_some()
    }

    /// `session`'s ICE tags, when it is live here.
    pub fn session_tags(&self, session: &SessionId) -> Option<SessionTags> {
        self.tags.get(session).cloned()
    }

    // ---- inputs ----

    /// Remove a session (DELETE). Returns whether it existed.
    pub fn handle_leave(&mut self, now: Instant, session: &SessionId) -> bool {
        let Some(id) = self.by_session.get(session).copied() else {
            return false;
        };
        self.close_member(id, EndReason::Delete);
        self.process(now);
        true
    }

    /// A WHEP viewer's layer preference (`mid`: one video track, or all). `None` when the
    /// session is not a live subscriber here.
    pub fn handle_set_layer(
        &mut self,
        now: Instant,
        session: &SessionId,
        mid: Option<&str>,
        pref: &LayerPreference,
    ) -> Option<Result<(), PreferenceError>> {
        let id = self.subscriber_id(session)?;
        let res =
            self.forwarder
                .set_preference(now, id, mid.map(Mid::from), pref, &mut self.commands);
        self.process(now);
        Some(res)
    }

    /// What a WHEP viewer receives; `None` when the session is not a live subscriber.
    pub fn subscriber_stats(
        &mut self,
        now: Instant,
        session: &SessionId,
    ) -> Option<SubscriberStats> {
        let id = self.subscriber_id(session)?;
        Some(self.forwarder.stats(now, id))
    }

    pub(super) fn subscriber_id(&self, session: &SessionId) -> Option<ParticipantId> {
        let id = *self.by_session.get(session)?;
        match self.home.get(id) {
            Some(p) => (p.kind() == SessionKind::Subscriber).then_some(id),
            None => self.shards.get(id).map(|_| id),
        }
    }

    /// WHEP sessions with media that this room drives itself (not in a shard): what
    /// `--shard-after` counts. Data-only sessions always stay here and are not counted.
    fn home_subscribers(&self) -> usize {
        self.home
            .iter()
            .filter(|p| self.conference.watches_media(p.id()))
            .count()
    }

    /// A datagram from the network for this room: a batch of one.
    pub fn handle_datagram(&mut self, now: Instant, d: Datagram) {
        self.handle_datagrams(now, std::iter::once(d));
    }

    /// Datagrams from the network for this room, handled in order. What they produce for
    /// each subscriber is queued on its `Rtc` and flushed once at the end (one
    /// [`Participant::flush`] per subscriber and batch, not one drive per packet). `now`
    /// is when the batch is handled; each datagram keeps its own receive time.
    pub fn handle_datagrams(
        &mut self,
        now: Instant,
        datagrams: impl IntoIterator<Item = Datagram>,
    ) {
        for d in datagrams {
            self.home.receive(now, &d, &self.meters);
            self.route(now);
        }
        self.process(now);
    }

    /// Advance time: participants' timers, keyframe retries, liveness.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.home.handle_timeout(now);
        if self.forwarder.poll_timeout().is_some_and(|t| now >= t) {
            self.forwarder.handle_timeout(now, &mut self.commands);
        }
        if self.conference.poll_timeout().is_some_and(|t| now >= t)
            && self.conference.handle_timeout(now, &mut self.forwarder)
        {
            self.reassign(now);
        }
        if self.recordings.poll_timeout().is_some_and(|t| now >= t) {
            self.handle_recordings_timeout(now);
        }
        self.process(now);
    }

    // ---- outputs ----

    /// When [`Room::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.home.poll_timeout(),
            self.forwarder.poll_timeout(),
            self.conference.poll_timeout(),
            self.recordings.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- internals ----

    /// Re-assign every WHEP session's slots (joins, leaves, speaker changes, pins).
    fn reassign(&mut self, now: Instant) {
        let (home, shards) = (&self.home, &self.shards);
        self.conference.reassign(
            now,
            &mut self.forwarder,
            |slot, params| {
                let (local, remote) = (home.get(slot.participant), shards.get(slot.participant));
                params
                    .iter()
                    .filter_map(|p| {
                        let pt = match (local, remote) {
                            (Some(sub), _) => sub.matching_pt(slot.mid, p),
                            (None, Some(r)) => r.pts.matching_pt(slot.mid, p),
                            (None, None) => None,
                        };
                        pt.map(|pt| (p.pt(), pt))
                    })
                    .collect()
            },
            &mut self.commands,
        );
        self.sync_recordings(now);
    }

    /// Handle participant events and forwarder commands until both queues are empty,
    /// flush the participants that had RTP queued (which may raise more events), then
    /// remove participants that ended.
    fn process(&mut self, now: Instant) {
        loop {
            self.route(now);
            if self.home.has_unflushed() {
                self.home.flush(now);
                continue;
            }
            if !self.reap(now) && !self.collect_events(now) {
                break;
            }
        }
        let (packets, bytes) = std::mem::take(&mut self.rtp_out);
        if packets > 0 {
            self.meters.rtp_out_packets.increment(packets);
            self.meters.rtp_out_bytes.increment(bytes);
        }
    }

    /// Handle participant events and forwarder commands until both queues are empty.
    /// RTP for subscribers is queued, not yet flushed.
    fn route(&mut self, now: Instant) {
        loop {
            self.apply_commands(now);
            let Some((id, event)) = self.home.out.events.pop_front() else {
                break;
            };
            match event {
                ParticipantEvent::Connected => {
                    info!(room = %self.name, participant = id.0, "connected");
                    self.pending.remove(&id);
                    self.forwarder.handle_connected(now, id, &mut self.commands);
                }
                ParticipantEvent::Rtp { mid, rid, packet } => {
                    if packet.payload.len() > MAX_FORWARD_PAYLOAD {
                        // Before any subscriber's send path (in this room or a shard).
                        self.meters.dropped(DropReason::Oversize);
                        continue;
                    }
                    if let Some(level) = packet.header.ext_vals.audio_level {
                        let track = TrackRef {
                            participant: id,
                            mid,
                        };
                        // str0m gives the RFC 6464 level negated (-dBov).
                        let level = level.unsigned_abs().min(127);
                        self.conference.observe_audio(now, track, level);
                    }
                    self.meters.rtp_in_packets.increment(1);
                    self.meters
                        .rtp_in_bytes
                        .increment(packet.payload.len() as u64);
                    let packet = InboundRtp::from_str0m(&packet);
                    self.forwarder
                        .route_rtp(now, id, mid, rid, &packet, &mut self.commands);
                }
                ParticipantEvent::Estimate(bps, kind) => {
                    self.forwarder
                        .handle_estimate(now, id, bps, kind, &mut self.commands);
                }
                ParticipantEvent::LossReport(fraction) => {
                    self.forwarder.handle_loss_report(now, id, fraction);
                }
                ParticipantEvent::KeyframeRequest { mid, kind } => {
                    self.forwarder
                        .handle_keyframe_request(now, id, mid, kind, &mut self.commands);
                }
                e @ (ParticipantEvent::ChannelOpen { .. }
                | ParticipantEvent::ChannelData { .. }
                | ParticipantEvent::ChannelClose { .. }) => self.on_channel_event(now, id, e),
            }
        }
    }

    fn apply_commands(&mut self, now: Instant) {
        // A recorder's keyframe request adds commands: apply until none is left.
        while !self.commands.is_empty() {
            let recorded = self.apply_command_batch(now);
            for f in recorded {
                self.record_rtp(now, f);
            }
        }
    }

    /// Apply the queued forwarder commands; returns the packets routed to recordings.
    fn apply_command_batch(&mut self, now: Instant) -> Vec<crate::forwarder::ForwardRtp> {
        let mut recorded = Vec::new();
        for cmd in self.commands.drain(..) {
            match cmd {
                ForwarderOutput::Rtp(f) => {
                    if self.recordings.owns(f.subscriber) {
                        recorded.push(f);
                        continue;
                    }
                    if !self.home.contains(f.subscriber) {
                        // Counted by the shard that sends it.
                        self.shards.forward(f);
                        continue;
                    }
                    if let Some(len) = self.home.queue_forward(now, f) {
                        self.rtp_out.0 += 1;
                        self.rtp_out.1 += len;
                    }
                }
                ForwarderOutput::SetBitrate {
                    subscriber,
                    minimum,
                    desired,
                } => {
                    if let Some((p, out)) = self.home.get_mut(subscriber) {
                        p.set_bitrate(now, minimum, desired, out);
                    } else {
                        self.shards.set_bitrate(subscriber, minimum, desired);
                    }
                }
                ForwarderOutput::RequestKeyframe {
                    publisher,
                    mid,
                    rid,
                    kind,
                } => {
                    if let Some((p, out)) = self.home.get_mut(publisher) {
                        p.request_keyframe(now, mid, rid, kind, out);
                    }
                }
            }
        }
        recorded
    }

    /// Remove ended participants and everything that points at them, and re-assign the
    /// slots they filled. Returns whether any was removed.
    fn reap(&mut self, now: Instant) -> bool {
        let mut ended = self.home.ended();
        ended.extend(self.shards.ended());
        if ended.is_empty() {
            return false;
        }
        for (id, reason) in ended {
            let session = if let Some(p) = self.home.remove(id, reason) {
                p.session().clone()
            } else if let Some(r) = self.shards.remove(id) {
                // Closed by its shard (which reported the end) or by this room (a Close
                // is on its way to the shard); nothing is left to close here.
                r.session
            } else {
                continue;
            };
            self.by_session.remove(&session);
            self.tags.remove(&session);
            self.pending.remove(&id);
            self.conference.remove(&self.forwarder, id);
            self.forwarder.remove_participant(id);
            self.data.remove(id);
            if let Some(ledger) = self.ledgers.remove(&id) {
                ledger.end(reason.as_str());
            }
            info!(room = %self.name, session = %session, reason = reason.as_str(), "session ended");
        }
        // Slots the ended sessions filled (or watched from) are re-assigned.
        self.reassign(now);
        true
    }
}
