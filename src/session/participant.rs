//! One participant: one str0m `Rtc` (RTP mode) and the invariant that keeps it sound.
//!
//! **The single-mutation invariant.** str0m requires every mutation of an `Rtc` —
//! `handle_input`, a `write_rtp`, a keyframe request, a close — to be followed by a full
//! drain of `poll_output()` until it yields `Output::Timeout`, before the next mutation.
//! Every method here that mutates the `Rtc` ends with [`Participant::drain`]; nothing
//! outside this file touches the `Rtc` mutably. Drained transmits and events go to the
//! room's [`Outbox`].
//!
//! One sanctioned batch: [`Participant::queue_rtp`] only appends to a send stream's queue
//! (str0m's `StreamTx::write_rtp` pushes onto its send queue and arms nothing), so a room
//! queues every packet a batch of datagrams produced for this participant and then calls
//! [`Participant::flush`] once, as str0m's own frame writer queues the many packets of one
//! frame. The flush advances time and drains (repeatedly, see [`Participant::advance`]).
//! Between the two, any other mutation (which also advances time and drains) just sends
//! the queue earlier.
//!
//! Methods are grouped as in quinn's `Connection`: getters, `handle_*` inputs, mutators,
//! and `poll_timeout`. Time is always the caller's monotonic `now`; this file never reads
//! the clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::format::{CodecConfig, PayloadParams};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Receive, Transmit};
use str0m::rtp::{RtpPacket, RtpWrite, Ssrc};
use str0m::{Input, Output, Rtc, RtcError};
use tracing::{debug, info};

use crate::bwe::loss::LossEstimator;
use crate::bwe::meter::BitrateMeter;
use crate::data::ChannelKey;
use crate::forwarder::ForwardRtp;

use crate::ids::{ParticipantId, SessionId, SessionKind};
use crate::net::Datagram;

mod channels;
mod events;
mod restart;
pub use restart::RestartError;

/// How long a new session may take to connect (ICE + DTLS) before it is dropped: the
/// pending-session timeout. Clients connect in well under a second on a LAN and a few
/// seconds through TURN; a POST that never does ICE holds an `Rtc` (and a count of the
/// server's pending limit) this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connected session may stay silent (no datagram at all: no STUN consent
/// check, no RTCP, no media) before it is dropped. Browsers send consent checks every
/// ~5 s (RFC 7675 §5.1) and RTCP about every second, so this only fires for a peer that
/// vanished.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(15);
/// SSRCs whose (mid, rid) a session caches: a publisher's audio, up to four simulcast
/// layers of two video sources and their RTX, with room to spare. Past it, SSRCs that
/// str0m no longer receives are evicted; an SSRC that still does not fit is looked up in
/// str0m per packet (correct, only slower).
const MAX_SSRCS: usize = 32;
/// Where the receiver-report loss fallback estimate starts, bit/s.
const INITIAL_LOSS_ESTIMATE: u64 = 2_000_000;

/// What a participant reports to its room.
#[derive(Debug)]
// Boxing the packet variant would allocate per packet.
#[allow(clippy::large_enum_variant)]
pub enum ParticipantEvent {
    /// ICE and DTLS are up; media can flow.
    Connected,
    /// An RTP packet from a publisher, with the mid/rid it belongs to.
    Rtp {
        /// The m-line.
        mid: Mid,
        /// The simulcast layer, if any.
        rid: Option<Rid>,
        /// The packet (payload shared, never copied).
        packet: RtpPacket,
    },
    /// A new estimate of this subscriber's downlink (TWCC/GCC, else REMB, else
    /// receiver-report loss), and which of them it is.
    Estimate(Bitrate, crate::bwe::EstimateKind),
    /// A receiver report's fraction lost (0.0–1.0) for one of this subscriber's video
    /// streams (str0m averages the reports since its last stats event).
    LossReport(f32),
    /// A subscriber asked for a keyframe (PLI/FIR) on one of its tracks.
    KeyframeRequest {
        /// The subscriber's m-line.
        mid: Mid,
        /// PLI or FIR.
        kind: KeyframeRequestKind,
    },
    /// A data channel opened (RFC 8832 DCEP, or negotiated out of band).
    ChannelOpen {
        /// Its SCTP stream id.
        channel: ChannelKey,
        /// Its label: the topic.
        label: String,
        /// Ordered, without a retransmit or lifetime limit (RFC 8831 §6.1).
        reliable: bool,
    },
    /// A message on a data channel (at most str0m's SCTP message size).
    ChannelData {
        /// The channel.
        channel: ChannelKey,
        /// Sent as binary (else as text).
        binary: bool,
        /// The message.
        data: Vec<u8>,
    },
    /// A data channel closed.
    ChannelClose {
        /// The channel.
        channel: ChannelKey,
    },
}

pub use super::end::{DtlsFailure, EndReason};

/// Where drained output goes: the room's queues.
#[derive(Default)]
pub struct Outbox {
    /// Datagrams to send.
    pub transmits: VecDeque<Transmit>,
    /// Events for the room, tagged with the participant.
    pub events: VecDeque<(ParticipantId, ParticipantEvent)>,
}

/// A subscriber's negotiated payload types, detached from its `Rtc`: see
/// [`Participant::pt_matcher`].
#[derive(Debug, Clone)]
pub struct PtMatcher {
    config: CodecConfig,
    remote: Vec<(Mid, Vec<Pt>)>,
}

impl PtMatcher {
    /// Same as [`Participant::matching_pt`].
    pub fn matching_pt(&self, mid: Mid, params: &PayloadParams) -> Option<Pt> {
        let (_, remote) = self.remote.iter().find(|(m, _)| *m == mid)?;
        let local = self.config.match_params(*params)?;
        remote.contains(&local.pt()).then(|| local.pt())
    }
}

/// One WHIP or WHEP session.
pub struct Participant {
    id: ParticipantId,
    session: SessionId,
    kind: SessionKind,
    ufrag: String,
    /// The SDP offer the session was made from, replayed by an ICE restart.
    offer: Option<Box<str>>,
    /// The client's current ICE credentials (from the offer, or the last restart).
    remote_creds: Option<str0m::IceCreds>,
    /// When [`Participant::follow_move`] last flushed the ICE pairs.
    last_move: Option<Instant>,
    rtc: Rtc,
    rtc_timeout: Instant,
    created: Instant,
    last_rx: Instant,
    connected: bool,
    /// ICE connected at this time (the DTLS handshake starts then).
    ice_connected: Option<Instant>,
    /// The send m-lines media is forwarded into (`prepare_forwarding`): they get
    /// keyframes when ICE connects again after a restart.
    forwarding_mids: Vec<Mid>,
    /// The latest `now` this participant was given (for event timestamps).
    last_now: Instant,
    ended: Option<EndReason>,
    /// Receive stream SSRC → (mid, rid): str0m's event has the SSRC only.
    ssrcs: HashMap<Ssrc, (Mid, Option<Rid>)>,
    /// A TWCC (with probing) or REMB estimate has been seen: the loss fallback is off.
    feedback_estimates: bool,
    /// Fallback estimate from receiver-report loss, for subscribers without TWCC/REMB.
    loss: LossEstimator,
    /// What is written to this session (RTP payload plus per-packet overhead), for the
    /// loss fallback's growth cap; and when the last write happened.
    sent: BitrateMeter,
    last_write: Instant,
    /// The rate the allocator would like to send (every track's best layer, with its
    /// headroom): the loss fallback may grow that far, and no further.
    probe_bps: u64,
    /// RTP was queued by [`Participant::queue_rtp`] and not yet flushed.
    unflushed: bool,
    /// Open data channels: str0m's id → SCTP stream id (str0m forgets the mapping
    /// before its close event). At most [`channels::MAX_TRACKED`].
    channels: HashMap<str0m::channel::ChannelId, ChannelKey>,
}

/// How long a subscriber's sent packets stay available for retransmission.
pub const RTX_HISTORY: Duration = Duration::from_secs(1);
/// At most this many packets per send stream in the retransmission history (1 s of a
/// 5 Mbit/s stream of 1,200-byte packets).
const RTX_HISTORY_PACKETS: usize = 512;
/// Queued resends are dropped when retransmissions exceed this share of what is sent
/// (str0m's default).
const RTX_RATIO_CAP: f32 = 0.15;

/// Time advances per [`Participant::advance`] call: more than a wake-up's batch of
/// queued packets, few enough that a timeout stuck at `now` cannot stall the room.
const MAX_ADVANCES: usize = 256;
/// How far past `now` [`Participant::advance`] may move an `Rtc`'s clock to let the
/// pacer's 1 µs follow-up timeouts fire in one go (256 packets × 1 µs, rounded up).
const ADVANCE_HORIZON: Duration = Duration::from_micros(300);

/// Bytes a written RTP packet costs beyond its payload (header, SRTP tag, UDP/IP).
const PACKET_OVERHEAD: usize = 60;

impl Participant {
    /// Wrap an `Rtc` whose offer was accepted, and drain it.
    pub fn new(
        now: Instant,
        id: ParticipantId,
        session: SessionId,
        kind: SessionKind,
        ufrag: String,
        rtc: Rtc,
        out: &mut Outbox,
    ) -> Self {
        let mut p = Participant {
            id,
            session,
            kind,
            ufrag,
            offer: None,
            remote_creds: None,
            last_move: None,
            rtc,
            rtc_timeout: now,
            created: now,
            last_rx: now,
            connected: false,
            ice_connected: None,
            forwarding_mids: Vec::new(),
            last_now: now,
            ended: None,
            ssrcs: HashMap::new(),
            feedback_estimates: false,
            loss: LossEstimator::new(INITIAL_LOSS_ESTIMATE),
            sent: BitrateMeter::new(Duration::from_secs(2)),
            last_write: now,
            probe_bps: 0,
            unflushed: false,
            channels: HashMap::new(),
        };
        p.drain(out);
        p
    }

    // ---- getters ----

    /// The participant's id in its room.
    pub fn id(&self) -> ParticipantId {
        self.id
    }

    /// The session id (the resource URL's last segment).
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// Publisher or subscriber.
    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    /// The server's ICE ufrag for this session.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Whether ICE and DTLS completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Why it ended, once it has.
    pub fn ended(&self) -> Option<EndReason> {
        self.ended
    }

    /// The m-lines of this session: (mid, kind).
    pub fn medias(&self, mids: &[Mid]) -> Vec<(Mid, MediaKind)> {
        mids.iter()
            .filter_map(|m| self.rtc.media(*m).map(|media| (*m, media.kind())))
            .collect()
    }

    /// The payload types negotiated on `mid`, with their parameters, in the remote's
    /// order of preference.
    pub fn negotiated_params(&self, mid: Mid) -> Vec<PayloadParams> {
        let Some(media) = self.rtc.media(mid) else {
            return Vec::new();
        };
        let config = self.rtc.codec_config();
        media
            .remote_pts()
            .iter()
            .filter_map(|pt| config.find(|p| p.pt() == *pt).copied())
            .collect()
    }

    /// This session's payload type for a stream described by `params` on `mid`
    /// (codec and format parameters matched by str0m's scoring, RFC 8866 §6.6), if the
    /// remote negotiated one.
    pub fn matching_pt(&self, mid: Mid, params: &PayloadParams) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let local = self.rtc.codec_config().match_params(*params)?;
        media.remote_pts().contains(&local.pt()).then(|| local.pt())
    }

    /// What [`Participant::matching_pt`] answers, as a value that outlives this
    /// participant's move to a subscriber shard (a WHEP session is never renegotiated,
    /// so its payload types are fixed once the offer is accepted).
    pub fn pt_matcher(&self, mids: &[Mid]) -> PtMatcher {
        PtMatcher {
            config: self.rtc.codec_config().clone(),
            remote: mids
                .iter()
                .filter_map(|&mid| Some((mid, self.rtc.media(mid)?.remote_pts().to_vec())))
                .collect(),
        }
    }

    // ---- inputs ----

    /// Feed a datagram from the network. Returns `false` if str0m rejected it (counted
    /// by the caller; the session lives on unless the `Rtc` died).
    pub fn handle_receive(&mut self, now: Instant, d: &Datagram, out: &mut Outbox) -> bool {
        self.last_rx = now.max(self.last_rx);
        self.last_now = now.max(self.last_now);
        let Ok(recv) = Receive::new(d.proto(), d.source, d.destination, &d.contents) else {
            return false;
        };
        let result = self.rtc.handle_input(Input::Receive(d.received, recv));
        if let Err(e) = &result {
            self.on_error(e);
        }
        self.drain(out);
        result.is_ok()
    }

    /// Whether this session's `Rtc` accepts `d` as a STUN message of its own: the
    /// USERNAME names its ICE session and MESSAGE-INTEGRITY verifies with its password
    /// (RFC 8445 §7.3, RFC 8489 §14.5). Reads the `Rtc`, never mutates it.
    pub fn verifies(&self, d: &Datagram) -> bool {
        match Receive::new(d.proto(), d.source, d.destination, &d.contents) {
            Ok(recv) => self.rtc.accepts(&Input::Receive(d.received, recv)),
            Err(_) => false,
        }
    }

    /// Advance time. Cheap when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox) {
        if self.ended.is_some() {
            return;
        }
        self.last_now = now.max(self.last_now);
        if now >= self.rtc_timeout {
            self.advance(now, out);
        }
        if !self.connected && now.saturating_duration_since(self.created) >= CONNECT_TIMEOUT {
            if self.ice_connected.is_some() {
                self.dtls_failed(
                    DtlsFailure::Timeout,
                    "no DTLS handshake after ICE connected",
                );
            }
            self.end(EndReason::Timeout);
        }
        if self.connected && now.saturating_duration_since(self.last_rx) >= SILENCE_TIMEOUT {
            self.end(EndReason::Timeout);
        }
    }

    /// When [`Participant::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let liveness = if self.connected {
            self.last_rx + SILENCE_TIMEOUT
        } else {
            self.created + CONNECT_TIMEOUT
        };
        self.rtc_timeout.min(liveness)
    }

    // ---- mutators ----

    /// Queue an RTP packet (`payload_len` bytes of payload) on the send stream of `mid`.
    /// str0m packetizes, paces and encrypts it on the next [`Participant::flush`]: a room
    /// queues every packet of a batch first and drives each `Rtc` once, not once per
    /// packet (str0m's send queue takes any number of writes between time advances).
    /// Returns `None` if this session has no send stream for `mid`, else whether this
    /// write made the participant need a flush (the first write since the last one).
    pub fn queue_rtp(
        &mut self,
        now: Instant,
        mid: Mid,
        write: RtpWrite,
        payload_len: usize,
    ) -> Option<bool> {
        let mut api = self.rtc.direct_api();
        let stream = api.stream_tx_by_mid(mid, None)?;
        stream.write_rtp(write);
        self.sent.record(now, payload_len + PACKET_OVERHEAD);
        self.last_write = now;
        let first = !self.unflushed;
        self.unflushed = true;
        Some(first)
    }

    /// Queue a packet the forwarder routed to this subscriber (see
    /// [`Participant::queue_rtp`]): the munged header fields and the shared payload
    /// become one `RtpWrite`. Returns what `queue_rtp` returns.
    pub fn queue_forward(&mut self, now: Instant, f: ForwardRtp) -> Option<bool> {
        let len = f.payload.len();
        let mut write = RtpWrite::new(f.pt, f.seq.into(), f.ts, f.wallclock, f.payload)
            .marker(f.marker)
            .nackable(f.nackable)
            .ext_vals(f.ext);
        if let Some(patch) = f.vp8 {
            write = write.vp8_patch(patch);
        }
        self.queue_rtp(now, f.mid, write, len)
    }

    /// Move what [`Participant::queue_rtp`] queued to the wire: advance time (str0m marks
    /// queued packets as sendable on it) and drain, see [`Participant::advance`]. No-op
    /// when nothing is queued.
    pub fn flush(&mut self, now: Instant, out: &mut Outbox) {
        if !std::mem::take(&mut self.unflushed) || self.ended.is_some() {
            return;
        }
        self.advance(now, out);
    }

    /// Set up the send streams of `mids` for forwarding: a retransmission history of
    /// [`RTX_HISTORY`] (str0m keeps 3 s). A NACK (RFC 4585 §6.2.1) for an older packet
    /// cannot be repaired in time for real-time playout, and the history is most of a
    /// viewer's memory.
    ///
    /// Forwarded media stays paced (str0m's leaky bucket at its pacing rate): tried
    /// unpaced, as LiveKit forwards by default, it saved no CPU at 1 → 100, and a
    /// viewer behind a 400 kbit/s bottleneck read the publisher's bursts as congestion
    /// (its estimate fell to 110–300 kbit/s, 8 fps instead of 22).
    pub fn prepare_forwarding(&mut self, mids: &[Mid]) {
        self.forwarding_mids = mids.to_vec();
        let mut api = self.rtc.direct_api();
        for &mid in mids {
            if let Some(stream) = api.stream_tx_by_mid(mid, None) {
                stream.set_rtx_cache(RTX_HISTORY_PACKETS, RTX_HISTORY, Some(RTX_RATIO_CAP));
            }
        }
    }

    /// Ask this publisher for a keyframe on `mid`/`rid` (RFC 4585 §6.3.1 PLI or
    /// RFC 5104 §4.3.1 FIR). Returns `false` if there is no such receive stream yet.
    pub fn request_keyframe(
        &mut self,
        now: Instant,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
        out: &mut Outbox,
    ) -> bool {
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, rid) else {
            return false;
        };
        stream.request_keyframe(kind);
        self.advance(now, out);
        true
    }

    /// Tell the bandwidth estimator what to sustain and probe for
    /// (str0m `Bwe::set_bitrate`). No-op without BWE.
    pub fn set_bitrate(
        &mut self,
        now: Instant,
        minimum: Bitrate,
        desired: Bitrate,
        out: &mut Outbox,
    ) {
        self.probe_bps = desired.as_u64();
        self.rtc.bwe().set_bitrate(minimum, desired);
        self.advance(now, out);
    }

    /// End the session: send RTCP BYE and DTLS close_notify (revoking consent) and drain.
    pub fn close(&mut self, reason: EndReason, out: &mut Outbox) {
        let _ = self.rtc.close();
        self.drain(out);
        self.rtc.disconnect();
        self.end(reason);
    }

    /// An error from the `Rtc`: a DTLS one before the session connected is a failed
    /// handshake, which ends the session; others are the caller's to count.
    fn on_error(&mut self, e: &RtcError) {
        if self.connected || self.ended.is_some() {
            return;
        }
        if let Some(cause) = DtlsFailure::of(e) {
            self.dtls_failed(cause, &e.to_string());
            self.rtc.disconnect();
        }
    }

    /// Log (once, at info), count and end: a failed DTLS handshake.
    fn dtls_failed(&mut self, cause: DtlsFailure, error: &str) {
        if self.ended.is_some() {
            return;
        }
        info!(
            participant = self.id.0,
            session = %self.session,
            kind = self.kind.as_str(),
            cause = cause.as_str(),
            error,
            "DTLS handshake failed: session ended"
        );
        metrics::counter!(crate::metrics::names::DTLS_FAILURES, "cause" => cause.as_str())
            .increment(1);
        self.end(EndReason::DtlsFailed);
    }

    fn end(&mut self, reason: EndReason) {
        if self.ended.is_none() {
            debug!(
                participant = self.id.0,
                reason = reason.as_str(),
                "participant ended"
            );
            self.ended = Some(reason);
        }
    }

    /// Advance the `Rtc` to `now`: time input and full drain, repeated while the next
    /// timeout is (all but) due. str0m's pacer hands out one queue per time advance and
    /// then asks for a timeout 1 µs later, so without the repeat a batch of queued
    /// packets would leave one per room wake-up. Repeats feed the requested time (at
    /// most [`ADVANCE_HORIZON`] past `now`, never backwards), each followed by a full
    /// drain (the single-mutation invariant); at most [`MAX_ADVANCES`] rounds, so a
    /// timeout stuck in the past cannot spin the room.
    fn advance(&mut self, now: Instant, out: &mut Outbox) {
        self.last_now = now.max(self.last_now);
        let horizon = now + ADVANCE_HORIZON;
        let mut t = now;
        for _ in 0..MAX_ADVANCES {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(t)) {
                self.on_error(&e);
                self.end(EndReason::Error);
            }
            self.drain(out);
            if self.ended.is_some() || self.rtc_timeout > horizon {
                return;
            }
            t = t.max(self.rtc_timeout);
        }
    }

    /// Drain `poll_output()` until the next timeout. Every mutator ends here.
    fn drain(&mut self, out: &mut Outbox) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => out.transmits.push_back(t),
                Ok(Output::Event(e)) => self.on_event(e, out),
                Err(e) => {
                    debug!(participant = self.id.0, error = %e, "rtc failed");
                    self.on_error(&e);
                    self.end(EndReason::Error);
                    self.rtc.disconnect();
                    return;
                }
            }
        }
    }
}
