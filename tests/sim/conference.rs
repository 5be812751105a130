//! Conference pieces of the simulation: WHEP viewers whose offer has several `recvonly`
//! video and audio m-lines (the server's slots, `docs/conference.md`), publishers that
//! tag their media with an id and send RFC 6464 audio levels ([`Tag`]), the room events
//! the driver keeps ([`SimEvent`]), and two views for checks: a viewer's `slots` events
//! ([`SlotMap`]) and every packet it received with its slot and source ([`Arrival`]).
//! A default [`Tag`] leaves payloads and headers exactly as the other simulation tests
//! have them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, Mid};
use str0m::rtp::{ExtensionValues, Ssrc};
use switchboard::conference::info::{Audience, RoomEvent};
use switchboard::ids::{ParticipantId, SessionKind};
use switchboard_kit::peer::{self as kit, ClientConfig, OfferSpec, VideoCodecs};

use super::link::LinkConfig;
use super::peer::Peer;
use super::Sim;

/// Bits of a payload counter below the publisher id (see [`Tag::counter`]).
const COUNTER_BITS: u32 = 32;

/// What a publisher's media says about it. With `publisher` non-zero every payload
/// counter carries the id in its high bits, so a viewer can tell whose packet it got
/// whatever slot it arrived in; with `audio_level` set every audio packet carries the
/// RFC 6464 `ssrc-audio-level` extension (0 loudest ..= 127 silence, -dBov).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tag {
    /// The publisher id written into payload counters (0: none).
    pub publisher: u64,
    /// The level written into audio headers (`None`: no extension value).
    pub audio_level: Option<u8>,
}

impl Tag {
    /// The payload counter of the publisher's packet number `n` (per kind).
    pub fn counter(&self, n: u64) -> u64 {
        (self.publisher << COUNTER_BITS) | n
    }

    /// Header extension values of an audio packet. str0m keeps the RFC 6464 level
    /// negated (-dBov) and writes the extension only with a voice activity flag too.
    pub fn ext_vals(&self) -> ExtensionValues {
        let mut ext = ExtensionValues::default();
        if let Some(level) = self.audio_level {
            let level = level.min(127);
            ext.audio_level = Some(-(level as i8));
            ext.voice_activity = Some(level < 127);
        }
        ext
    }
}

/// The publisher id of a received payload counter (0: untagged).
pub fn publisher_of(counter: u64) -> u64 {
    counter >> COUNTER_BITS
}

/// One room event as the driver saw it.
#[derive(Debug, Clone)]
pub struct SimEvent {
    /// Virtual time of the step that queued it.
    pub at: Instant,
    /// Who it is for.
    pub audience: Audience,
    /// The SSE event name.
    pub name: &'static str,
    /// The SSE data.
    pub data: serde_json::Value,
}

impl SimEvent {
    /// Keep `event`, queued at `at` for `audience`.
    pub fn new(at: Instant, audience: Audience, event: &RoomEvent) -> Self {
        let data = serde_json::from_str(&event.data)
            .unwrap_or_else(|e| panic!("{} event data is not JSON: {e}", event.name));
        SimEvent {
            at,
            audience,
            name: event.name,
            data,
        }
    }

    /// Whether peer `index` (a WHEP session) gets it on its event stream.
    pub fn is_for(&self, index: usize) -> bool {
        match self.audience {
            Audience::All => true,
            Audience::Viewer(id) => id == participant_id(index),
        }
    }
}

/// One slot of a `slots` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The m-line's MID.
    pub mid: String,
    /// A video slot (else audio).
    pub video: bool,
    /// Whose track it shows.
    pub identity: Option<String>,
}

/// One `slots` event of a viewer: its whole slot map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// Its index in [`Sim::events`].
    pub event: usize,
    /// When it was queued.
    pub at: Instant,
    /// The slots, in m-line order.
    pub slots: Vec<Slot>,
}

impl SlotMap {
    /// The identities in the map's video (`true`) or audio slots, in slot order.
    pub fn shown(&self, video: bool) -> Vec<&str> {
        self.slots
            .iter()
            .filter(|s| s.video == video)
            .filter_map(|s| s.identity.as_deref())
            .collect()
    }

    /// Who slot `mid` shows.
    pub fn owner(&self, mid: &str) -> Option<&str> {
        let slot = self.slots.iter().find(|s| s.mid == mid)?;
        slot.identity.as_deref()
    }
}

/// The map in force at `t`: the last one queued at or before it.
pub fn map_at(maps: &[SlotMap], t: Instant) -> Option<&SlotMap> {
    maps.iter().rev().find(|m| m.at <= t)
}

/// One RTP packet a viewer received.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When.
    pub at: Instant,
    /// The m-line (slot) of its stream; `None`: a stream str0m does not know.
    pub mid: Option<String>,
    /// Video (else audio).
    pub video: bool,
    /// The publisher id in its payload ([`Tag::publisher`]).
    pub from: u64,
    /// Video: it starts a keyframe.
    pub keyframe: bool,
    /// Its sequence number is above every earlier one of its stream (else a repair).
    pub in_order: bool,
}

/// The room's id of the session of peer `index`: the room counts joins from 1, in the
/// order of [`Sim::peers`] (every simulated join is accepted).
pub fn participant_id(index: usize) -> ParticipantId {
    ParticipantId(index as u64 + 1)
}

impl Peer {
    /// A WHEP viewer at `addr` whose offer has `video` then `audio` `recvonly` m-lines;
    /// `links` are (uplink, downlink). The caller posts the offer and calls
    /// [`Peer::accept_answer`] with the answer.
    pub fn offer_viewer(
        now: Instant,
        name: &str,
        addr: SocketAddr,
        links: (LinkConfig, LinkConfig),
        video: usize,
        audio: usize,
    ) -> (Peer, String, SdpPendingOffer) {
        assert!(
            video + audio > 0,
            "{name}: a viewer needs at least one slot"
        );
        let spec = OfferSpec {
            video: video as u32,
            audio: audio as u32,
            video_first: true,
            ..OfferSpec::one_each(Direction::RecvOnly)
        };
        let client = ClientConfig::browser(VideoCodecs::Vp8);
        let made = kit::offer(&client, &spec, addr, now).expect("offer");
        // Any mid will do for a kind the offer lacks: nothing is ever sent on it.
        let any = made.video_mids.first().or(made.audio_mids.first()).copied();
        let first = |mids: &[Mid]| mids.first().copied().or(any).expect("a slot");
        let (audio_mid, video_mid) = (first(&made.audio_mids), first(&made.video_mids));
        let (rtc, offer, pending) = (made.rtc, made.sdp, made.pending);
        let peer = Peer::receiver(now, name, addr, links, rtc, (audio_mid, video_mid));
        (peer, offer, pending)
    }

    /// The m-line (for a WHEP viewer: the slot) of the RTP stream `ssrc` this peer
    /// receives, once str0m knows the stream.
    pub fn mid_of(&mut self, ssrc: Ssrc) -> Option<Mid> {
        self.client
            .rtc()
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| s.mid())
    }
}

impl Sim {
    /// Join a WHEP viewer now with `video` video slots and `audio` audio slots (see
    /// [`Peer::offer_viewer`]), as the identity of its name.
    pub fn join_viewer(
        &mut self,
        name: &str,
        video: usize,
        audio: usize,
        up: LinkConfig,
        down: LinkConfig,
    ) -> usize {
        let addr = self.next_addr();
        let (peer, offer, pending) =
            Peer::offer_viewer(self.now, name, addr, (up, down), video, audio);
        self.admit(SessionKind::Subscriber, peer, &offer, pending)
    }

    /// The `slots` events of peer `index` (a WHEP session), in order.
    pub fn slot_maps(&self, index: usize) -> Vec<SlotMap> {
        let events = self.events.iter().enumerate();
        let of_viewer = events.filter(|(_, e)| e.name == "slots" && e.is_for(index));
        of_viewer
            .map(|(i, e)| {
                let slots = e.data["slots"].as_array().expect("slots: an array");
                let slots = slots.iter().map(|s| Slot {
                    mid: s["mid"].as_str().expect("slot mid").to_owned(),
                    video: s["kind"] == "video",
                    identity: s["identity"].as_str().map(str::to_owned),
                });
                SlotMap {
                    event: i,
                    at: e.at,
                    slots: slots.collect(),
                }
            })
            .collect()
    }

    /// Every RTP packet peer `index` received, in arrival order (video before audio at
    /// the same instant).
    pub fn arrivals(&mut self, index: usize) -> Vec<Arrival> {
        let peer = &mut self.peers[index];
        let video = peer.received.video.iter().map(|g| (true, *g));
        let audio = peer.received.audio.iter().map(|g| (false, *g));
        let mut got: Vec<_> = video.chain(audio).collect();
        got.sort_by_key(|(_, g)| g.at);
        let mut mids: HashMap<Ssrc, Option<Mid>> = HashMap::new();
        let mut highest: HashMap<Ssrc, u64> = HashMap::new();
        let mut out = Vec::with_capacity(got.len());
        for (video, g) in got {
            let mid = *mids.entry(g.ssrc).or_insert_with(|| peer.mid_of(g.ssrc));
            let in_order = highest.get(&g.ssrc).is_none_or(|top| g.seq > *top);
            if in_order {
                highest.insert(g.ssrc, g.seq);
            }
            out.push(Arrival {
                at: g.at,
                mid: mid.map(|m| m.to_string()),
                video,
                from: publisher_of(g.counter),
                keyframe: g.keyframe_start,
                in_order,
            });
        }
        out
    }

    /// The room events in a form two runs of one scenario must agree on: time, audience,
    /// name and data, sorted (the room keeps sessions in hash maps, so events of one
    /// instant may come in any order), with each MID (random in str0m's offers) replaced
    /// by its slot's index and each participant's tracks sorted by id.
    pub fn replayable_events(&self) -> Vec<String> {
        let mut slot_of: HashMap<String, usize> = HashMap::new();
        for e in self.events.iter().filter(|e| e.name == "slots") {
            let slots = e.data["slots"].as_array().into_iter().flatten();
            for (i, s) in slots.enumerate() {
                slot_of.insert(s["mid"].as_str().unwrap_or_default().to_owned(), i);
            }
        }
        let mut out: Vec<String> = self
            .events
            .iter()
            .map(|e| {
                let mut data = e.data.clone();
                canonical(&mut data, &slot_of);
                let at = e.at.saturating_duration_since(self.t0);
                format!("{at:?} {:?} {} {data}", e.audience, e.name)
            })
            .collect();
        out.sort();
        out
    }

    /// The events peer `index` (a WHEP session) got on its event stream, in order.
    pub fn events_for(&self, index: usize) -> impl Iterator<Item = &SimEvent> + '_ {
        self.events.iter().filter(move |e| e.is_for(index))
    }
}

/// See [`Sim::replayable_events`].
fn canonical(v: &mut serde_json::Value, slot_of: &HashMap<String, usize>) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            if let Some(Value::String(mid)) = o.get("mid") {
                let slot = slot_of.get(mid).map_or(-1, |i| *i as i64);
                o.insert("mid".into(), slot.into());
            }
            if let Some(Value::Array(tracks)) = o.get_mut("tracks") {
                tracks.sort_by_key(|t| t["id"].as_str().unwrap_or_default().to_owned());
            }
            o.values_mut().for_each(|v| canonical(v, slot_of));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| canonical(v, slot_of)),
        _ => {}
    }
}
