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

pub mod codec;
pub mod keyframe;
pub mod munger;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket};

use crate::metrics::{DropReason, Meters};
use crate::room::ParticipantId;
use codec::{is_keyframe_start, CodecKind};
use keyframe::KeyframeThrottle;
use munger::RtpMunger;

/// Minimum spacing of keyframe requests to one publisher track: about one round trip
/// plus the time an encoder needs to produce a keyframe. Requests inside the window are
/// coalesced into one sent when it ends (mediasoup and LiveKit use similar throttles).
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);
/// While a subscriber waits for a keyframe, re-ask this often: a PLI can be lost.
pub const KEYFRAME_RETRY: Duration = Duration::from_millis(1000);

/// A track: a participant's m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackRef {
    /// The participant.
    pub participant: ParticipantId,
    /// Its m-line.
    pub mid: Mid,
}

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
}

struct PublishedTrack {
    kind: MediaKind,
    /// Negotiated payload types and what they carry.
    params: Vec<PayloadParams>,
    /// Subscribed tracks fed by this one.
    subscribers: Vec<SubscriptionKey>,
    /// The one layer forwarded: the first (rid) seen. Layer selection replaces this.
    layer: Option<Option<Rid>>,
    keyframes: KeyframeThrottle,
    /// When to re-ask for a keyframe if someone still waits.
    retry_at: Option<Instant>,
}

impl PublishedTrack {
    fn codec_of(&self, pt: Pt) -> CodecKind {
        self.params
            .iter()
            .find(|p| p.pt() == pt)
            .map(|p| codec_kind(p.spec().codec))
            .unwrap_or(CodecKind::Other)
    }
}

struct SubscribedTrack {
    subscriber: ParticipantId,
    mid: Mid,
    kind: MediaKind,
    source: Option<TrackRef>,
    /// Publisher payload type → this subscriber's payload type.
    pt_map: Vec<(Pt, Pt)>,
    munger: RtpMunger,
    connected: bool,
    /// Video only: drop until the source's next keyframe (a decoder cannot start on a
    /// delta frame).
    needs_keyframe: bool,
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
    meters: Meters,
}

impl Forwarder {
    /// An empty graph.
    pub fn new(meters: Meters) -> Self {
        Forwarder {
            published: HashMap::new(),
            subscribed: Slab::new(),
            by_subscriber: HashMap::new(),
            meters,
        }
    }

    // ---- graph changes ----

    /// A publisher's m-line with its negotiated payload types.
    pub fn add_published(&mut self, track: TrackRef, kind: MediaKind, params: Vec<PayloadParams>) {
        self.published.insert(
            track,
            PublishedTrack {
                kind,
                params,
                subscribers: Vec::new(),
                layer: None,
                keyframes: KeyframeThrottle::new(KEYFRAME_MIN_INTERVAL),
                retry_at: None,
            },
        );
    }

    /// A subscriber's m-line, not yet fed by any source. `initial_seq`/`initial_ts` seed
    /// its outgoing sequence number and timestamp spaces (random, RFC 3550 §5.1).
    pub fn add_subscribed(
        &mut self,
        track: TrackRef,
        kind: MediaKind,
        initial_seq: u16,
        initial_ts: u32,
    ) -> SubscriptionKey {
        let clock_rate = if kind == MediaKind::Audio {
            48_000
        } else {
            90_000
        };
        let key = SubscriptionKey(self.subscribed.insert(SubscribedTrack {
            subscriber: track.participant,
            mid: track.mid,
            kind,
            source: None,
            pt_map: Vec::new(),
            munger: RtpMunger::new(clock_rate, initial_seq, initial_ts),
            connected: false,
            needs_keyframe: kind == MediaKind::Video,
        }));
        self.by_subscriber.insert(track, key);
        key
    }

    /// Subscribed tracks without a source: (key, subscriber track, kind).
    pub fn unbound(&self) -> Vec<(SubscriptionKey, TrackRef, MediaKind)> {
        self.subscribed
            .iter()
            .filter(|(_, s)| s.source.is_none())
            .map(|(k, s)| {
                let t = TrackRef {
                    participant: s.subscriber,
                    mid: s.mid,
                };
                (SubscriptionKey(k), t, s.kind)
            })
            .collect()
    }

    /// A publisher's first track of `kind`, with its negotiated payload types.
    pub fn published_of(
        &self,
        publisher: ParticipantId,
        kind: MediaKind,
    ) -> Option<(TrackRef, &[PayloadParams])> {
        self.published
            .iter()
            .filter(|(t, p)| t.participant == publisher && p.kind == kind)
            .min_by_key(|(t, _)| t.mid.to_string())
            .map(|(t, p)| (*t, p.params.as_slice()))
    }

    /// Feed subscribed track `key` from `source`, mapping payload types with `pt_map`
    /// (publisher PT → subscriber PT). Asks for a keyframe when the subscriber is
    /// already connected.
    pub fn bind(
        &mut self,
        now: Instant,
        key: SubscriptionKey,
        source: TrackRef,
        pt_map: Vec<(Pt, Pt)>,
        out: &mut Vec<ForwarderOutput>,
    ) {
        let Some(sub) = self.subscribed.get_mut(key.0) else {
            return;
        };
        let Some(track) = self.published.get_mut(&source) else {
            return;
        };
        sub.source = Some(source);
        sub.pt_map = pt_map;
        sub.needs_keyframe = sub.kind == MediaKind::Video;
        track.subscribers.push(key);
        if sub.connected && sub.needs_keyframe {
            request_keyframe(
                now,
                source,
                track,
                KeyframeRequestKind::Pli,
                &self.meters,
                out,
            );
        }
    }

    /// Remove everything of a participant: its published tracks (their subscribers are
    /// unbound and will wait for a keyframe from whatever feeds them next) and its
    /// subscribed tracks.
    pub fn remove_participant(&mut self, participant: ParticipantId) {
        let gone: Vec<TrackRef> = self
            .published
            .keys()
            .filter(|t| t.participant == participant)
            .copied()
            .collect();
        for t in gone {
            if let Some(track) = self.published.remove(&t) {
                for key in track.subscribers {
                    if let Some(sub) = self.subscribed.get_mut(key.0) {
                        sub.source = None;
                        sub.pt_map.clear();
                    }
                }
            }
        }
        let subs: Vec<TrackRef> = self
            .by_subscriber
            .keys()
            .filter(|t| t.participant == participant)
            .copied()
            .collect();
        for t in subs {
            if let Some(key) = self.by_subscriber.remove(&t) {
                let sub = self.subscribed.remove(key.0);
                if let Some(track) = sub.source.and_then(|s| self.published.get_mut(&s)) {
                    track.subscribers.retain(|k| *k != key);
                }
            }
        }
    }

    // ---- inputs ----

    /// A subscriber's transport came up: start its tracks, asking for keyframes.
    pub fn handle_connected(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        out: &mut Vec<ForwarderOutput>,
    ) {
        for (_, sub) in self.subscribed.iter_mut() {
            if sub.subscriber != participant {
                continue;
            }
            sub.connected = true;
            let Some(source) = sub.source else {
                continue;
            };
            if sub.needs_keyframe {
                if let Some(track) = self.published.get_mut(&source) {
                    request_keyframe(
                        now,
                        source,
                        track,
                        KeyframeRequestKind::Pli,
                        &self.meters,
                        out,
                    );
                }
            }
        }
    }

    /// A subscriber asked for a keyframe (PLI/FIR) on its m-line `mid`: pass it on to the
    /// source, throttled.
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
        let Some(source) = self
            .by_subscriber
            .get(&key)
            .and_then(|k| self.subscribed.get(k.0))
            .and_then(|s| s.source)
        else {
            return;
        };
        if let Some(track) = self.published.get_mut(&source) {
            request_keyframe(now, source, track, kind, &self.meters, out);
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
        match track.layer {
            None => track.layer = Some(rid),
            Some(l) if l != rid => {
                self.meters.dropped(DropReason::OtherLayer);
                return;
            }
            Some(_) => {}
        }
        let is_video = track.kind == MediaKind::Video;
        let keyframe = is_video && is_keyframe_start(track.codec_of(packet.pt), &packet.payload);
        if keyframe {
            track.keyframes.on_keyframe(now);
            track.retry_at = None;
        }
        for key in &track.subscribers {
            let Some(sub) = self.subscribed.get_mut(key.0) else {
                continue;
            };
            if !sub.connected {
                self.meters.dropped(DropReason::NotConnected);
                continue;
            }
            if sub.needs_keyframe {
                if !keyframe {
                    self.meters.dropped(DropReason::WaitingKeyframe);
                    continue;
                }
                sub.needs_keyframe = false;
            }
            let Some(&(_, pt)) = sub.pt_map.iter().find(|(p, _)| *p == packet.pt) else {
                self.meters.dropped(DropReason::CodecMismatch);
                continue;
            };
            let Some(m) = sub.munger.forward(now, packet.ssrc, packet.seq, packet.ts) else {
                self.meters.dropped(DropReason::TooOld);
                continue;
            };
            out.push(ForwarderOutput::Rtp(ForwardRtp {
                subscriber: sub.subscriber,
                mid: sub.mid,
                pt,
                seq: m.seq,
                ts: m.ts,
                marker: packet.marker,
                nackable: is_video,
                wallclock: packet.arrival,
                payload: Arc::clone(&packet.payload),
                ext: packet.ext.clone(),
            }));
        }
    }

    /// Deferred and retried keyframe requests that are due.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<ForwarderOutput>) {
        for (source, track) in self.published.iter_mut() {
            if track.keyframes.handle_timeout(now) {
                emit_keyframe_request(*source, track, KeyframeRequestKind::Pli, &self.meters, out);
            }
            if track.retry_at.is_some_and(|t| now >= t) {
                track.retry_at = None;
                let waiting = track.subscribers.iter().any(|k| {
                    self.subscribed
                        .get(k.0)
                        .is_some_and(|s| s.connected && s.needs_keyframe)
                });
                if waiting {
                    request_keyframe(
                        now,
                        *source,
                        track,
                        KeyframeRequestKind::Pli,
                        &self.meters,
                        out,
                    );
                }
            }
        }
    }

    /// When [`Forwarder::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.published
            .values()
            .flat_map(|t| [t.keyframes.poll_timeout(), t.retry_at])
            .flatten()
            .min()
    }
}

/// Ask for a keyframe through the track's throttle; arms the retry while waiting.
fn request_keyframe(
    now: Instant,
    source: TrackRef,
    track: &mut PublishedTrack,
    kind: KeyframeRequestKind,
    meters: &Meters,
    out: &mut Vec<ForwarderOutput>,
) {
    if track.kind != MediaKind::Video {
        return;
    }
    if track.keyframes.request(now) {
        emit_keyframe_request(source, track, kind, meters, out);
    }
    if track.retry_at.is_none() {
        track.retry_at = Some(now + KEYFRAME_RETRY);
    }
}

fn emit_keyframe_request(
    source: TrackRef,
    track: &PublishedTrack,
    kind: KeyframeRequestKind,
    meters: &Meters,
    out: &mut Vec<ForwarderOutput>,
) {
    meters.keyframe_requests_sent.increment(1);
    out.push(ForwarderOutput::RequestKeyframe {
        publisher: source.participant,
        mid: source.mid,
        rid: track.layer.flatten(),
        kind,
    });
}
