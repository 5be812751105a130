//! Simulated client peers: a str0m `Rtc` in RTP mode acting as a full ICE endpoint
//! (controlling role) at a virtual address, with its two links to the server. A publisher sends
//! sendonly Opus + VP8 at 30 fps: one stream ([`media::SINGLE`], four packets per frame) or
//! RFC 8853 simulcast (one RTP stream per RID, e.g. [`media::SIMULCAST`], each with its own
//! SSRC, sequence numbers and packet sizes). Each stream sends a keyframe every 3 s and on
//! the frame after a keyframe request for its RID (a request without a RID refreshes every
//! stream). A subscriber receives recvonly and records every RTP packet, with the layer index
//! its payload carries. Every mutation of an `Rtc` is followed by a full drain of
//! `poll_output`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::SdpPendingOffer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Event, Input, Output, Rtc};
use switchboard_kit::clock::Ticker;
use switchboard_kit::peer::{self as kit, ClientConfig, OfferSpec, VideoCodecs};

use super::conference::Tag;
use super::data::DataLog;
use super::link::{Link, LinkConfig, Packet, Sample};
use super::media::{self, Corrupt, LayerSpec};

/// Video frame interval: 1/30 s.
pub const FRAME_INTERVAL: Duration = Duration::from_nanos(33_333_333);
/// Audio packet interval.
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// Frames between periodic keyframes: 3 s at 30 fps.
pub const KEYFRAME_EVERY: u64 = 90;

/// Publisher or subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends audio and video.
    Publisher,
    /// Receives audio and video.
    Subscriber,
}

pub use switchboard_kit::peer::Feedback;

/// What a publisher sent and was asked.
#[derive(Debug, Default)]
pub struct Sent {
    /// Send time of every video packet (all layers), indexed by its counter.
    pub video_at: Vec<Instant>,
    /// Layer index of every video packet, indexed by its counter.
    pub video_layer: Vec<u8>,
    /// Send time of every audio packet, indexed by its counter.
    pub audio_at: Vec<Instant>,
    /// When each frame with a keyframe on any layer was started.
    pub keyframes_at: Vec<Instant>,
    /// Every keyframe: when, and on which layer.
    pub layer_keyframes: Vec<(Instant, u8)>,
    /// When each keyframe request (PLI/FIR) arrived.
    pub keyframe_requests_at: Vec<Instant>,
    /// Every keyframe request: when, and for which layer (`None`: no RID, every layer).
    pub layer_keyframe_requests: Vec<(Instant, Option<u8>)>,
    /// The publisher's own SSRCs (audio, then video, one per layer).
    pub ssrcs: Vec<Ssrc>,
}

/// One video stream of a publisher.
struct LayerState {
    spec: LayerSpec,
    rid: Option<Rid>,
    /// Packets written so far (the RTP sequence number is 1000 on from this).
    packets: u64,
    force_keyframe: bool,
}

pub(super) struct Source {
    audio_pt: Pt,
    video_pt: Pt,
    /// Video frames, one per [`FRAME_INTERVAL`] from the connection.
    frames: Ticker,
    /// Audio packets, one per [`AUDIO_INTERVAL`]; the item number is the packet counter.
    audio: Ticker,
    layers: Vec<LayerState>,
}

/// One received RTP packet.
#[derive(Debug, Clone, Copy)]
pub struct Got {
    /// Arrival time.
    pub at: Instant,
    /// SSRC in the header.
    pub ssrc: Ssrc,
    /// Extended sequence number.
    pub seq: u64,
    /// The sender's packet counter from the payload.
    pub counter: u64,
    /// Video: starts a keyframe.
    pub keyframe_start: bool,
    /// Video: starts a frame.
    pub frame_start: bool,
    /// Video: the layer index from the payload (0 for audio).
    pub layer: u8,
    /// RTP timestamp in the header.
    pub ts: u32,
    /// RTP marker bit.
    pub marker: bool,
}

/// What a subscriber received.
#[derive(Debug, Default)]
pub struct Received {
    /// Video packets in arrival order.
    pub video: Vec<Got>,
    /// Audio packets in arrival order.
    pub audio: Vec<Got>,
    /// Payloads that failed verification.
    pub corrupt: Vec<Corrupt>,
    /// Packets of a payload type that is neither Opus nor VP8.
    pub unknown: u64,
}

/// What a datagram on a peer's link carries, by its RTP payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traffic {
    /// VP8 media.
    Video,
    /// VP8 retransmissions (RFC 4588), repairs or padding.
    VideoRtx,
    /// Opus media.
    Audio,
    /// Any other RTP payload type.
    OtherRtp,
    /// Not RTP: RTCP, STUN, DTLS.
    NotRtp,
}

/// One simulated client.
pub struct Peer {
    /// A name for messages.
    pub name: String,
    /// Publisher or subscriber.
    pub role: Role,
    /// Its virtual address.
    pub addr: SocketAddr,
    /// Peer → server.
    pub uplink: Link,
    /// Server → peer.
    pub downlink: Link,
    /// When it sent its offer.
    pub joined_at: Instant,
    /// When its `Rtc` reported `Connected`.
    pub connected_at: Option<Instant>,
    /// Publisher: what it sent.
    pub sent: Sent,
    /// Subscriber: what it received.
    pub received: Received,
    /// It left: the driver no longer runs it.
    pub gone: bool,
    /// Publisher: what its payloads and audio headers say about it ([`Tag`]).
    pub tag: Tag,
    pub(super) rtc: Rtc,
    pub(super) timeout: Instant,
    pub(super) audio_mid: Mid,
    pub(super) video_mid: Mid,
    pub(super) layers: Vec<LayerSpec>,
    pub(super) source: Option<Source>,
    /// Data channels and what went over them.
    pub data: DataLog,
}

impl Peer {
    /// A peer at `addr` with its offer: the caller posts the offer and calls
    /// [`Peer::accept_answer`] with the answer. A publisher encodes its video as `layers`:
    /// one stream without a RID, or one simulcast stream per RID (lowest first, offered in
    /// that order). A subscriber ignores `layers`.
    pub fn offer(
        now: Instant,
        name: &str,
        role: Role,
        layers: &[LayerSpec],
        addr: SocketAddr,
        up: LinkConfig,
        down: LinkConfig,
    ) -> (Peer, String, SdpPendingOffer) {
        Peer::offer_with(now, name, role, layers, addr, (up, down), Feedback::Default)
    }

    /// [`Peer::offer`] with the congestion-control feedback `feedback` negotiates;
    /// `links` are (uplink, downlink).
    pub fn offer_with(
        now: Instant,
        name: &str,
        role: Role,
        layers: &[LayerSpec],
        addr: SocketAddr,
        links: (LinkConfig, LinkConfig),
        feedback: Feedback,
    ) -> (Peer, String, SdpPendingOffer) {
        let (up, down) = links;
        let direction = match role {
            Role::Publisher => Direction::SendOnly,
            Role::Subscriber => Direction::RecvOnly,
        };
        let layers = match role {
            Role::Publisher => layers.to_vec(),
            Role::Subscriber => Vec::new(),
        };
        let single = layers.len() == 1 && layers[0].rid.is_none();
        let simulcast = !layers.is_empty() && layers.iter().all(|l| l.rid.is_some());
        assert!(
            role == Role::Subscriber || single || simulcast,
            "{name}: one stream without a RID, or simulcast layers that all have one"
        );
        let client = ClientConfig {
            feedback,
            ..ClientConfig::browser(VideoCodecs::Vp8)
        };
        let spec = OfferSpec {
            simulcast: layers
                .iter()
                .filter_map(|l| l.rid.map(str::to_owned))
                .collect(),
            ..OfferSpec::one_each(direction)
        };
        let made = kit::offer(&client, &spec, addr, now).expect("offer");
        let (rtc, offer, pending) = (made.rtc, made.sdp, made.pending);
        let (audio_mid, video_mid) = (made.audio_mids[0], made.video_mids[0]);
        let peer = Peer {
            name: name.to_owned(),
            role,
            addr,
            uplink: Link::new(up),
            downlink: Link::new(down),
            joined_at: now,
            connected_at: None,
            sent: Sent::default(),
            received: Received::default(),
            gone: false,
            rtc,
            timeout: now,
            audio_mid,
            video_mid,
            layers,
            source: None,
            tag: Tag::default(),
            data: DataLog::default(),
        };
        (peer, offer, pending)
    }

    /// A receiving peer around `rtc` (its offer made), at `addr` over `links` (uplink,
    /// downlink); `mids` are its first audio and video m-lines.
    pub(super) fn receiver(
        now: Instant,
        name: &str,
        addr: SocketAddr,
        links: (LinkConfig, LinkConfig),
        rtc: Rtc,
        (audio_mid, video_mid): (Mid, Mid),
    ) -> Peer {
        Peer {
            name: name.to_owned(),
            role: Role::Subscriber,
            addr,
            uplink: Link::new(links.0),
            downlink: Link::new(links.1),
            joined_at: now,
            connected_at: None,
            sent: Sent::default(),
            received: Received::default(),
            gone: false,
            tag: Tag::default(),
            rtc,
            timeout: now,
            audio_mid,
            video_mid,
            layers: Vec::new(),
            source: None,
            data: DataLog::default(),
        }
    }

    /// Apply the server's answer.
    pub fn accept_answer(&mut self, now: Instant, pending: SdpPendingOffer, answer: &str) {
        kit::accept_answer(&mut self.rtc, pending, answer)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.drain(now, false);
    }

    /// What a packet recorded on one of this peer's links carries.
    pub fn traffic(&self, sample: &Sample) -> Traffic {
        let Some((pt, _)) = sample.rtp() else {
            return Traffic::NotRtp;
        };
        for p in self.rtc.codec_config().params() {
            let codec = p.spec().codec;
            let rtx = p.resend().is_some_and(|r| *r == pt);
            match codec {
                Codec::Vp8 if *p.pt() == pt => return Traffic::Video,
                Codec::Vp8 if rtx => return Traffic::VideoRtx,
                Codec::Opus if *p.pt() == pt => return Traffic::Audio,
                _ => {}
            }
        }
        Traffic::OtherRtp
    }

    /// When the `Rtc` wants a timeout.
    pub fn poll_timeout(&self) -> Instant {
        self.timeout
    }

    /// Publisher: when the next audio or video packet is due, once connected.
    pub fn next_media_at(&self) -> Option<Instant> {
        let s = self.source.as_ref()?;
        Some(video_at(s).min(audio_at(s)))
    }

    /// Advance the `Rtc`'s time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.rtc
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout: {e}", self.name));
        self.drain(now, true);
    }

    /// A datagram from the server.
    pub fn handle_receive(&mut self, now: Instant, p: Packet) {
        let recv = Receive::new(Protocol::Udp, p.source, p.destination, &p.contents)
            .unwrap_or_else(|e| panic!("{}: unparseable datagram: {e}", self.name));
        self.rtc
            .handle_input(Input::Receive(now, recv))
            .unwrap_or_else(|e| panic!("{}: receive: {e}", self.name));
        self.drain(now, false);
    }

    /// Subscriber: ask the server for a keyframe (PLI) on the video m-line.
    pub fn request_keyframe(&mut self, now: Instant) {
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(self.video_mid, None) else {
            panic!("{}: no video receive stream yet", self.name);
        };
        stream.request_keyframe(KeyframeRequestKind::Pli);
        self.rtc
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after PLI: {e}", self.name));
        self.drain(now, true);
    }

    /// Subscriber: send a REMB (draft-alvestrand-rmcat-remb) of `bps` bit/s for the
    /// video m-line's receive stream.
    pub fn send_remb(&mut self, now: Instant, bps: u64) {
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(self.video_mid, None) else {
            panic!("{}: no video receive stream yet", self.name);
        };
        stream.request_remb(Bitrate::from(bps as f64));
        self.rtc
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after REMB: {e}", self.name));
        self.drain(now, true);
    }

    /// Publisher: write every media packet due by `now`.
    pub fn write_media(&mut self, now: Instant) {
        loop {
            let Some(s) = self.source.as_ref() else {
                return;
            };
            let (v, a) = (video_at(s), audio_at(s));
            if v.min(a) > now {
                return;
            }
            if v <= a {
                self.write_frame(now);
            } else {
                self.write_audio(now);
            }
        }
    }

    fn write_frame(&mut self, now: Instant) {
        let s = self.source.as_mut().expect("source");
        let frame = s.frames.advance();
        let periodic = frame.is_multiple_of(KEYFRAME_EVERY);
        let pt = s.video_pt;
        let ts = 90_000u32.wrapping_add((frame * 3000) as u32);
        let mut any_keyframe = false;
        for layer in 0..s.layers.len() {
            let s = self.source.as_mut().expect("source");
            let l = &mut s.layers[layer];
            let keyframe = periodic || l.force_keyframe;
            l.force_keyframe = false;
            let (spec, rid, first) = (l.spec, l.rid, l.packets);
            let count = spec.packets(keyframe);
            l.packets += count;
            if keyframe {
                any_keyframe = true;
                self.sent.layer_keyframes.push((now, layer as u8));
            }
            let (tag, base) = (self.tag, self.sent.video_at.len() as u64);
            let payloads =
                media::vp8_frame(&spec, layer as u8, keyframe, |i| tag.counter(base + i));
            for (i, payload) in (0..count).zip(payloads) {
                self.sent.video_at.push(now);
                self.sent.video_layer.push(layer as u8);
                let write = RtpWrite::new(pt, (1000 + first + i).into(), ts, now, payload)
                    .marker(i + 1 == count)
                    .nackable(true);
                self.write(now, self.video_mid, rid, write);
            }
        }
        if any_keyframe {
            self.sent.keyframes_at.push(now);
        }
    }

    /// Publisher: write one RTP packet with `len` bytes of payload on the lowest video
    /// layer, next in that layer's sequence, as a broken or hostile sender would (a
    /// payload no generator made: a subscriber that receives it counts it corrupt).
    pub fn write_raw_video(&mut self, now: Instant, len: usize) {
        let s = self.source.as_mut().expect("a publisher");
        let (pt, ts) = (
            s.video_pt,
            90_000u32.wrapping_add((s.frames.next() * 3000) as u32),
        );
        let l = &mut s.layers[0];
        let (seq, rid) = (1000 + l.packets, l.rid);
        l.packets += 1;
        let write = RtpWrite::new(pt, seq.into(), ts, now, vec![0x5a; len]);
        self.write(now, self.video_mid, rid, write);
    }

    fn write_audio(&mut self, now: Instant) {
        let s = self.source.as_mut().expect("source");
        let counter = s.audio.advance();
        let pt = s.audio_pt;
        self.sent.audio_at.push(now);
        let ts = 48_000u32.wrapping_add((counter * 960) as u32);
        let payload = media::opus_payload(self.tag.counter(counter));
        let write = RtpWrite::new(pt, (500 + counter).into(), ts, now, payload)
            .ext_vals(self.tag.ext_vals());
        self.write(now, self.audio_mid, None, write);
    }

    fn write(&mut self, now: Instant, mid: Mid, rid: Option<Rid>, write: RtpWrite) {
        let mut api = self.rtc.direct_api();
        let stream = api
            .stream_tx_by_mid(mid, rid)
            .unwrap_or_else(|| panic!("{}: no send stream for {mid} {rid:?}", self.name));
        stream.write_rtp(write);
        self.rtc
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after write: {e}", self.name));
        self.drain(now, true);
    }

    /// [`Peer::drain`] after a mutation at `now` that was followed by a timeout input.
    pub(super) fn drain_now(&mut self, now: Instant) {
        self.drain(now, true);
    }

    /// Poll the `Rtc` until its next timeout. `after_timeout`: the mutation was a
    /// `Timeout(now)`; a deadline not after `now` is then pushed 1 ms on so that a
    /// deadline str0m keeps at `now` cannot stall virtual time.
    fn drain(&mut self, now: Instant, after_timeout: bool) {
        loop {
            let out = self
                .rtc
                .poll_output()
                .unwrap_or_else(|e| panic!("{}: poll_output: {e}", self.name));
            match out {
                Output::Timeout(t) => {
                    self.timeout = if after_timeout && t <= now {
                        now + Duration::from_millis(1)
                    } else {
                        t.max(now)
                    };
                    return;
                }
                Output::Transmit(t) => self.uplink.push(
                    now,
                    Packet {
                        source: self.addr,
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    },
                ),
                Output::Event(e) => self.on_event(now, e),
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => {
                self.connected_at.get_or_insert(now);
                if self.role == Role::Publisher && self.source.is_none() {
                    self.start_source(now);
                }
            }
            Event::KeyframeRequest(req) => {
                let layer = req
                    .rid
                    .and_then(|rid| {
                        self.layers
                            .iter()
                            .position(|l| l.rid.map(Rid::from) == Some(rid))
                    })
                    .map(|i| i as u8);
                self.sent.keyframe_requests_at.push(now);
                self.sent.layer_keyframe_requests.push((now, layer));
                if let Some(s) = self.source.as_mut() {
                    for (i, l) in s.layers.iter_mut().enumerate() {
                        if layer.is_none_or(|want| want as usize == i) {
                            l.force_keyframe = true;
                        }
                    }
                }
            }
            Event::RtpPacket(p) => {
                let codec = self
                    .rtc
                    .codec_config()
                    .find(|c| c.pt() == p.header.payload_type)
                    .map(|c| c.spec().codec);
                let parsed = match codec {
                    Some(Codec::Vp8) => media::parse_vp8(&p.payload).map(|m| (true, m)),
                    Some(Codec::Opus) => media::parse_opus(&p.payload).map(|m| (false, m)),
                    _ => {
                        self.received.unknown += 1;
                        return;
                    }
                };
                match parsed {
                    Ok((video, m)) => {
                        let got = Got {
                            at: now,
                            ssrc: p.header.ssrc,
                            seq: *p.seq_no,
                            counter: m.counter,
                            keyframe_start: m.keyframe_start,
                            frame_start: m.frame_start,
                            layer: m.layer,
                            ts: p.header.timestamp,
                            marker: p.header.marker,
                        };
                        if video {
                            self.received.video.push(got);
                        } else {
                            self.received.audio.push(got);
                        }
                    }
                    Err(c) => self.received.corrupt.push(c),
                }
            }
            e => self.on_channel_event(now, e),
        }
    }

    fn start_source(&mut self, now: Instant) {
        let pt_of = |rtc: &Rtc, codec: Codec| {
            rtc.codec_config()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .unwrap_or_else(|| panic!("no {codec} payload type"))
        };
        let audio_pt = pt_of(&self.rtc, Codec::Opus);
        let video_pt = pt_of(&self.rtc, Codec::Vp8);
        let layers: Vec<LayerState> = self
            .layers
            .iter()
            .map(|spec| LayerState {
                spec: *spec,
                rid: spec.rid.map(Rid::from),
                packets: 0,
                force_keyframe: false,
            })
            .collect();
        let streams = std::iter::once((self.audio_mid, None))
            .chain(layers.iter().map(|l| (self.video_mid, l.rid)));
        let mut api = self.rtc.direct_api();
        for (mid, rid) in streams {
            let ssrc = api
                .stream_tx_by_mid(mid, rid)
                .unwrap_or_else(|| panic!("{}: no send stream for {mid} {rid:?}", self.name))
                .ssrc();
            self.sent.ssrcs.push(ssrc);
        }
        self.source = Some(Source {
            audio_pt,
            video_pt,
            frames: started(FRAME_INTERVAL, now),
            audio: started(AUDIO_INTERVAL, now),
            layers,
        });
    }
}

fn started(period: Duration, now: Instant) -> Ticker {
    let mut t = Ticker::new(period);
    t.start(now);
    t
}

fn video_at(s: &Source) -> Instant {
    s.frames.next_due().expect("started")
}

fn audio_at(s: &Source) -> Instant {
    s.audio.next_due().expect("started")
}
