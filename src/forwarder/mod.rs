//! The forwarding core: the track graph (published track → subscribed tracks), and per
//! subscribed track the decision to forward or drop each packet, the RTP munger that
//! gives the subscriber a continuous stream, and keyframe-request coalescing.
//!
//! Pure: takes `now` and packets, returns [`ForwarderOutput`] commands that the room
//! applies to participants. Never touches an `Rtc`, a socket or the clock. Payloads are
//! shared (`Arc<[u8]>`): fanning a packet out to N subscribers clones N pointers.
//!
//! Selection and rewriting are separate pieces composed here: [`munger`] rewrites
//! sequence numbers and timestamps, [`keyframe`] throttles PLI/FIR, [`codec`] inspects
//! payloads.

pub(crate) mod allocation;
mod graph;
pub(crate) mod keyframe;
pub mod munger;
pub mod preferences;
pub(crate) mod published;
pub(crate) mod selector;
pub(crate) mod subscribed;
pub mod vp8;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;
use str0m::bwe::Bitrate;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket};

use crate::bwe::policy::ViewerPolicy;
use crate::codec::CodecKind;
use crate::ids::ParticipantId;
use crate::ids::TrackRef;
use crate::metrics::Meters;
use allocation::REALLOCATE_EVERY;
use published::PublishedTrack;
use subscribed::SubscribedTrack;

/// Minimum spacing of keyframe requests to one publisher track: about one round trip
/// plus the time an encoder needs to produce a keyframe. Requests inside the window are
/// coalesced into one sent when it ends (mediasoup and LiveKit use similar throttles).
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// While a subscriber waits for a keyframe, re-ask this often: a PLI can be lost.
pub const KEYFRAME_RETRY: Duration = Duration::from_millis(1000);

/// Handle of a subscribed track inside the forwarder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionKey(usize);

/// One packet for one subscriber, ready to become a str0m `RtpWrite`.
#[derive(Debug)]
pub struct ForwardRtp {
    /// The subscriber.
    pub subscriber: ParticipantId,
    /// The subscriber's m-line.
    pub mid: Mid,
    /// The subscriber's payload type for this codec.
    pub pt: Pt,
    /// Munged extended sequence number.
    pub seq: u64,
    /// Munged RTP timestamp.
    pub ts: u32,
    /// RTP marker bit (end of a video frame).
    pub marker: bool,
    /// Whether str0m should keep it for retransmission on NACK (video).
    pub nackable: bool,
    /// Arrival time of the source packet, used as the wallclock for sender reports.
    pub wallclock: Instant,
    /// The payload, shared with every other subscriber.
    pub payload: Arc<[u8]>,
    /// Header extension values carried over (audio level, orientation).
    pub ext: ExtensionValues,
    /// VP8 descriptor rewrite (continuous PictureID/TL0PICIDX/KEYIDX), applied by str0m
    /// while serializing so the shared payload is not copied.
    pub vp8: Option<str0m::rtp::Vp8Patch>,
}

/// An RTP packet from a publisher as the forwarder sees it (str0m's `RtpPacket`
/// reduced to what routing needs; the payload is shared, not copied).
#[derive(Debug, Clone)]
pub struct InboundRtp {
    /// Source SSRC.
    pub ssrc: u32,
    /// Extended sequence number (str0m unwraps rollover).
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// Payload type.
    pub pt: Pt,
    /// Marker bit.
    pub marker: bool,
    /// Arrival time (monotonic).
    pub arrival: Instant,
    /// Payload without the RTP header.
    pub payload: Arc<[u8]>,
    /// Header extension values worth forwarding.
    pub ext: ExtensionValues,
}

impl InboundRtp {
    /// View of a str0m packet; keeps only the extensions a subscriber can use
    /// (RFC 6464 audio level, voice activity, video orientation).
    pub fn from_str0m(p: &RtpPacket) -> Self {
        let h = &p.header;
        InboundRtp {
            ssrc: *h.ssrc,
            seq: *p.seq_no,
            ts: h.timestamp,
            pt: h.payload_type,
            marker: h.marker,
            arrival: p.timestamp,
            payload: Arc::clone(&p.payload),
            ext: ExtensionValues {
                audio_level: h.ext_vals.audio_level,
                voice_activity: h.ext_vals.voice_activity,
                video_orientation: h.ext_vals.video_orientation,
                ..Default::default()
            },
        }
    }
}

/// What the room must do after a forwarder call.
#[derive(Debug)]
// Boxing the packet variant would allocate per packet per subscriber.
#[allow(clippy::large_enum_variant)]
pub enum ForwarderOutput {
    /// Write this packet to the subscriber.
    Rtp(ForwardRtp),
    /// Ask a publisher for a keyframe.
    RequestKeyframe {
        /// The publisher.
        publisher: ParticipantId,
        /// Its m-line.
        mid: Mid,
        /// The simulcast layer, if any.
        rid: Option<Rid>,
        /// PLI or FIR.
        kind: KeyframeRequestKind,
    },
    /// Tell a subscriber's bandwidth estimator what we would like to send, so it probes
    /// for that much before we climb (str0m `Bwe::set_bitrate`).
    SetBitrate {
        /// The subscriber.
        subscriber: ParticipantId,
        /// Rate to sustain with padding: the next layer up (inside a probe window) or
        /// what is sent.
        minimum: Bitrate,
        /// Everything it could use: where str0m probes.
        desired: Bitrate,
    },
}

/// Map str0m's codec to ours.
pub fn codec_kind(c: Codec) -> CodecKind {
    match c {
        Codec::Opus => CodecKind::Opus,
        Codec::Vp8 => CodecKind::Vp8,
        Codec::Vp9 => CodecKind::Vp9,
        Codec::H264 => CodecKind::H264,
        Codec::H265 => CodecKind::H265,
        Codec::Av1 => CodecKind::Av1,
        _ => CodecKind::Other,
    }
}

/// The track graph of one room.
pub struct Forwarder {
    published: HashMap<TrackRef, PublishedTrack>,
    subscribed: Slab<SubscribedTrack>,
    by_subscriber: HashMap<TrackRef, SubscriptionKey>,
    bwe: HashMap<ParticipantId, ViewerPolicy>,
    next_reallocate: Option<Instant>,
    meters: Meters,
}

impl Forwarder {
    /// An empty graph.
    pub fn new(meters: Meters) -> Self {
        Forwarder {
            published: HashMap::new(),
            subscribed: Slab::new(),
            by_subscriber: HashMap::new(),
            bwe: HashMap::new(),
            next_reallocate: None,
            meters,
        }
    }

    // ---- inputs ----

    /// A subscriber's transport came up: start its tracks (asking for keyframes).
    pub fn handle_connected(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        out: &mut Vec<ForwarderOutput>,
    ) {
        for (_, sub) in self.subscribed.iter_mut() {
            if sub.subscriber == participant {
                sub.connected = true;
            }
        }
        self.reallocate(now, participant, out);
    }

    /// A new bandwidth estimate for a subscriber's downlink and where it came
    /// from (str0m's GCC over TWCC feedback, else the receiver's REMB, else the
    /// receiver-report loss fallback of `bwe::loss`): count it and recompute the
    /// subscriber's layers. The kind decides how a paused track comes back
    /// (`bwe::pause`).
    pub fn handle_estimate(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        estimate: Bitrate,
        kind: crate::bwe::EstimateKind,
        out: &mut Vec<ForwarderOutput>,
    ) {
        let estimate_bps = estimate.as_u64();
        tracing::debug!(
            subscriber = subscriber.0,
            estimate_bps,
            kind = kind.as_str(),
            "bandwidth estimate"
        );
        self.meters.estimate(kind);
        if let Some(b) = self.bwe.get_mut(&subscriber) {
            b.on_estimate(now, estimate_bps, kind);
        }
        self.reallocate(now, subscriber, out);
    }

    /// A receiver report's fraction lost (0.0–1.0, RFC 3550 §6.4.1) for one of a
    /// subscriber's video streams: the congestion evidence without which a low estimate
    /// never pauses video (`bwe::pause`). Takes effect at the next reallocation.
    pub fn handle_loss_report(&mut self, now: Instant, subscriber: ParticipantId, fraction: f32) {
        if fraction > 0.0 {
            tracing::debug!(subscriber = subscriber.0, fraction, "receiver report loss");
        }
        if let Some(b) = self.bwe.get_mut(&subscriber) {
            b.on_loss_report(now, fraction);
        }
    }

    /// A subscriber asked for a keyframe (PLI/FIR) on its m-line `mid`: ask the layer it
    /// is on (or waits for), throttled.
    pub fn handle_keyframe_request(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        mid: Mid,
        kind: KeyframeRequestKind,
        out: &mut Vec<ForwarderOutput>,
    ) {
        self.meters.keyframe_requests_received.increment(1);
        let key = TrackRef {
            participant: subscriber,
            mid,
        };
        let Some(sub) = self
            .by_subscriber
            .get(&key)
            .and_then(|k| self.subscribed.get(k.0))
        else {
            return;
        };
        let Some(source) = sub.source else {
            return;
        };
        let spatial = sub
            .selector
            .waiting_for_keyframe()
            .or(sub.selector.current().map(|l| l.spatial))
            .unwrap_or(0);
        if let Some(track) = self.published.get_mut(&source) {
            request_keyframe(now, source, track, spatial, kind, &self.meters, out);
        }
    }

    /// Route one RTP packet from a publisher's m-line `mid` (layer `rid`) to every
    /// subscribed track it feeds.
    pub fn route_rtp(
        &mut self,
        now: Instant,
        publisher: ParticipantId,
        mid: Mid,
        rid: Option<Rid>,
        packet: &InboundRtp,
        out: &mut Vec<ForwarderOutput>,
    ) {
        let Some(track) = self.published.get_mut(&TrackRef {
            participant: publisher,
            mid,
        }) else {
            return;
        };
        if track.muted {
            self.meters.dropped(crate::metrics::DropReason::Muted);
            return;
        }
        let Some(spatial) = track.layer_of(rid) else {
            self.meters.dropped(crate::metrics::DropReason::OtherLayer);
            return;
        };
        let (info, vp8, activated) = track.observe(now, spatial, packet.pt, &packet.payload);
        if activated {
            // A layer started (or came back): give its subscribers targets now rather
            // than at the next periodic reallocation.
            let subscribers: Vec<ParticipantId> = track
                .subscribers
                .iter()
                .filter_map(|k| self.subscribed.get(k.0).map(|s| s.subscriber))
                .collect();
            for s in subscribers {
                self.reallocate(now, s, out);
            }
        }
        let Some(track) = self.published.get_mut(&TrackRef {
            participant: publisher,
            mid,
        }) else {
            return;
        };
        for key in &track.subscribers {
            let Some(sub) = self.subscribed.get_mut(key.0) else {
                continue;
            };
            match sub.route(now, packet, &info, vp8.as_ref(), &track.ranks, &self.meters) {
                Ok(f) => out.push(ForwarderOutput::Rtp(f)),
                Err(reason) => self.meters.dropped(reason),
            }
        }
    }

    /// Deferred and retried keyframe requests, periodic reallocation.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<ForwarderOutput>) {
        for (source, track) in self.published.iter_mut() {
            for spatial in 0..track.layers.len() {
                let layer = &mut track.layers[spatial];
                if layer.keyframes.handle_timeout(now) {
                    emit_keyframe_request(
                        *source,
                        layer.rid,
                        KeyframeRequestKind::Pli,
                        &self.meters,
                        out,
                    );
                }
                if layer.retry_at.is_some_and(|t| now >= t) {
                    layer.retry_at = None;
                    let waiting = track.subscribers.iter().any(|k| {
                        self.subscribed.get(k.0).is_some_and(|s| {
                            s.connected && s.selector.waiting_for_keyframe() == Some(spatial as u8)
                        })
                    });
                    if waiting {
                        let kind = KeyframeRequestKind::Pli;
                        request_keyframe(
                            now,
                            *source,
                            track,
                            spatial as u8,
                            kind,
                            &self.meters,
                            out,
                        );
                    }
                }
            }
        }
        if self.next_reallocate.is_some_and(|t| now >= t) {
            let subscribers: Vec<ParticipantId> = self.bwe.keys().copied().collect();
            for s in subscribers {
                self.reallocate(now, s, out);
            }
            self.next_reallocate = Some(now + REALLOCATE_EVERY);
        }
    }

    /// When [`Forwarder::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.published
            .values()
            .flat_map(|t| t.layers.iter())
            .flat_map(|l| [l.keyframes.poll_timeout(), l.retry_at])
            .chain([self.next_reallocate])
            .flatten()
            .min()
    }

    // ---- viewer preferences and stats ----

    /// Apply a viewer's layer preference to its video track `mid` (all video tracks when
    /// `None`), then reallocate.
    pub fn set_preference(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        mid: Option<Mid>,
        pref: &preferences::LayerPreference,
        out: &mut Vec<ForwarderOutput>,
    ) -> Result<(), preferences::PreferenceError> {
        let keys: Vec<usize> = self
            .subscribed
            .iter()
            .filter(|(_, s)| s.subscriber == subscriber && preferences::matches(s, mid))
            .map(|(k, _)| k)
            .collect();
        if keys.is_empty() {
            let m = mid.map(|m| m.to_string()).unwrap_or_default();
            return Err(preferences::PreferenceError::UnknownMid(m));
        }
        for k in keys {
            let sub = &mut self.subscribed[k];
            let source = sub.source.and_then(|s| self.published.get_mut(&s));
            preferences::apply(now, sub, source, pref)?;
        }
        self.reallocate(now, subscriber, out);
        Ok(())
    }

    /// What a subscriber receives.
    pub fn stats(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
    ) -> preferences::SubscriberStats {
        let mut tracks = Vec::new();
        for (_, sub) in self.subscribed.iter() {
            if sub.subscriber != subscriber {
                continue;
            }
            let source = sub.source.and_then(|s| self.published.get_mut(&s));
            tracks.push(preferences::track_stats(now, sub, source));
        }
        tracks.sort_by(|a, b| a.mid.cmp(&b.mid));
        preferences::SubscriberStats {
            estimate_bps: self
                .bwe
                .get(&subscriber)
                .and_then(ViewerPolicy::estimate_bps),
            tracks,
        }
    }
}

/// Ask layer `spatial` of a track for a keyframe through its throttle; arms the retry.
fn request_keyframe(
    now: Instant,
    source: TrackRef,
    track: &mut PublishedTrack,
    spatial: u8,
    kind: KeyframeRequestKind,
    meters: &Meters,
    out: &mut Vec<ForwarderOutput>,
) {
    if track.kind != MediaKind::Video {
        return;
    }
    let Some(layer) = track.layers.get_mut(spatial as usize) else {
        return;
    };
    if layer.keyframes.request(now) {
        emit_keyframe_request(source, layer.rid, kind, meters, out);
    }
    if layer.retry_at.is_none() {
        layer.retry_at = Some(now + KEYFRAME_RETRY);
    }
}

fn emit_keyframe_request(
    source: TrackRef,
    rid: Option<Rid>,
    kind: KeyframeRequestKind,
    meters: &Meters,
    out: &mut Vec<ForwarderOutput>,
) {
    meters.keyframe_requests_sent.increment(1);
    out.push(ForwarderOutput::RequestKeyframe {
        publisher: source.participant,
        mid: source.mid,
        rid,
        kind,
    });
}
