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
use str0m::media::{Direction, KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Rtc};
use switchboard_kit::client::{Client, Out};
use switchboard_kit::media::PayloadCodec;
use switchboard_kit::peer::{self as kit, ClientConfig, OfferSpec, VideoCodecs};

use super::conference::Tag;
use super::data::DataLog;
use super::link::{Link, LinkConfig, Packet, Sample};
use super::media::LayerSpec;

#[path = "peer_source.rs"]
mod source;
pub(super) use source::plan as source_plan;
pub use source::Sent;

/// Publisher or subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends audio and video.
    Publisher,
    /// Receives audio and video.
    Subscriber,
}

pub use switchboard_kit::peer::Feedback;

pub use switchboard_kit::recv::{Got, Received};

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
    pub(super) client: Client,
    pub(super) timeout: Instant,
    pub(super) audio_mid: Mid,
    pub(super) video_mid: Mid,
    pub(super) layers: Vec<LayerSpec>,
    /// Publisher: the frame of each video stream last written.
    pub(super) last_frame: Vec<Option<u64>>,
    /// Publisher: the last frame with a keyframe on any stream.
    pub(super) last_keyframe: Option<u64>,
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
            client: Client::new(rtc, now),
            timeout: now,
            audio_mid,
            video_mid,
            layers,
            last_frame: Vec::new(),
            last_keyframe: None,
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
            client: Client::new(rtc, now),
            timeout: now,
            audio_mid,
            video_mid,
            layers: Vec::new(),
            last_frame: Vec::new(),
            last_keyframe: None,
            data: DataLog::default(),
        }
    }

    /// Apply the server's answer.
    pub fn accept_answer(&mut self, now: Instant, pending: SdpPendingOffer, answer: &str) {
        kit::accept_answer(self.client.rtc(), pending, answer)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.drain(now, false);
    }

    /// What a packet recorded on one of this peer's links carries.
    pub fn traffic(&self, sample: &Sample) -> Traffic {
        let Some((pt, _)) = sample.rtp() else {
            return Traffic::NotRtp;
        };
        for p in self.client.rtc_ref().codec_config().params() {
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
        self.client.next_due()
    }

    /// Advance the `Rtc`'s time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.client
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout: {e}", self.name));
        self.drain(now, true);
    }

    /// A datagram from the server.
    pub fn handle_receive(&mut self, now: Instant, p: Packet) {
        let recv = Receive::new(Protocol::Udp, p.source, p.destination, &p.contents)
            .unwrap_or_else(|e| panic!("{}: unparseable datagram: {e}", self.name));
        self.client
            .handle_input(Input::Receive(now, recv))
            .unwrap_or_else(|e| panic!("{}: receive: {e}", self.name));
        self.drain(now, false);
    }

    /// Publisher: stop or resume simulcast stream `layer` alone, as an encoder drops a
    /// layer; it resumes with a keyframe. `false` when not publishing such a stream.
    pub fn set_layer_paused(&mut self, layer: usize, paused: bool) -> bool {
        self.client
            .publishing()
            .is_some_and(|p| p.source.set_stream_paused(layer, paused))
    }

    /// Subscriber: ask the server for a keyframe (PLI) on the video m-line.
    pub fn request_keyframe(&mut self, now: Instant) {
        let mut api = self.client.rtc().direct_api();
        let Some(stream) = api.stream_rx_by_mid(self.video_mid, None) else {
            panic!("{}: no video receive stream yet", self.name);
        };
        stream.request_keyframe(KeyframeRequestKind::Pli);
        self.client
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after PLI: {e}", self.name));
        self.drain(now, true);
    }

    /// Subscriber: send a REMB (draft-alvestrand-rmcat-remb) of `bps` bit/s for the
    /// video m-line's receive stream.
    pub fn send_remb(&mut self, now: Instant, bps: u64) {
        let mut api = self.client.rtc().direct_api();
        let Some(stream) = api.stream_rx_by_mid(self.video_mid, None) else {
            panic!("{}: no video receive stream yet", self.name);
        };
        stream.request_remb(Bitrate::from(bps as f64));
        self.client
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after REMB: {e}", self.name));
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
                .client
                .poll_output()
                .unwrap_or_else(|e| panic!("{}: poll_output: {e}", self.name));
            match out {
                Out::Timeout(t) => {
                    self.timeout = if after_timeout && t <= now {
                        now + Duration::from_millis(1)
                    } else {
                        t.max(now)
                    };
                    return;
                }
                Out::Transmit(t) => self.uplink.push(
                    now,
                    Packet {
                        source: self.addr,
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    },
                ),
                Out::Event(e) => self.on_event(now, e),
                Out::Written(w) => self.on_written(now, w),
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => {
                self.connected_at.get_or_insert(now);
                if self.role == Role::Publisher && self.client.publishing().is_none() {
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
                // The client scheduled the keyframes (a RID no layer has: every layer).
                self.sent.keyframe_requests_at.push(now);
                self.sent.layer_keyframe_requests.push((now, layer));
            }
            Event::RtpPacket(p) => {
                let codec = self
                    .client
                    .rtc_ref()
                    .codec_config()
                    .find(|c| c.pt() == p.header.payload_type)
                    .and_then(|c| match c.spec().codec {
                        Codec::Vp8 => Some(PayloadCodec::Vp8),
                        Codec::Opus => Some(PayloadCodec::Opus),
                        _ => None,
                    });
                // Unknown payload types and unreadable payloads are counted in the log.
                let _ = self.received.record(now, codec, &p);
            }
            e => self.on_channel_event(now, e),
        }
    }
}
