//! A sans-IO room with str0m client peers connected to it in memory, for the fuzz
//! targets that need a live session (`rtp`, `json`, `datagram`).
//!
//! Time is virtual: it starts at one `Instant` taken at construction and only moves by
//! adding durations. Every datagram a peer sends reaches the room at once and every
//! datagram the room sends reaches its peer at once, unless the peer's downlink is told
//! to drop (to make a subscriber send NACKs). A publisher's `Rtc` has no RTP header
//! extensions, so that it can write payloads up to str0m's send buffer (2,000 bytes)
//! less a 12-byte header: as large as a foreign sender (aiortc, GStreamer) may send.
//! A subscriber's `Rtc` encrypts with [`super::inject`]'s provider, so that it can send
//! raw RTCP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Simulcast};
use str0m::media::{Rid, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionMap, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc};
use switchboard::conference::info::JoinOptions;
use switchboard::ids::{SessionId, SessionKind};
use switchboard::limits::RoomLimits;
use switchboard::metrics::Meters;
use switchboard::net::{Datagram, RoomKey};
use switchboard::room::{Room, RoomOutput};

/// The server's one host candidate.
pub const SERVER: &str = "10.0.0.1:3478";

/// Most steps one [`World::run_for`] may take (a stuck run ends, it does not hang).
const STEP_CAP: usize = 20_000;

/// One client peer.
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its str0m instance.
    pub rtc: Rtc,
    /// Its WHIP/WHEP resource.
    pub session: SessionId,
    /// When its `Rtc` wants a timeout.
    pub timeout: Instant,
    /// It reported `Connected`.
    pub connected: bool,
    /// Audio and video m-lines.
    pub mids: (Mid, Mid),
    /// Datagrams from the room to drop before the next one is delivered.
    pub drop_next: u32,
    /// RTP packets it received (subscriber).
    pub received: u64,
    /// Keyframe requests it received (publisher).
    pub keyframe_requests: u64,
    /// The room's SDP answer to it.
    pub answer: String,
}

/// The room and its peers.
pub struct World {
    /// Virtual time now.
    pub now: Instant,
    /// The room under test.
    pub room: Room,
    /// The server's address.
    pub server: SocketAddr,
    /// Peers in joining order.
    pub peers: Vec<Peer>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// An empty room at virtual time zero.
    pub fn new() -> Self {
        super::inject::clear();
        let server: SocketAddr = SERVER.parse().expect("server address");
        let room = Room::new(
            "fuzz".into(),
            RoomKey(0x2a),
            vec![server],
            RoomLimits::default(),
            Meters::new(),
        );
        World {
            now: Instant::now(),
            room,
            server,
            peers: Vec::new(),
        }
    }

    /// Join a publisher of Opus and `codec` video (simulcast with `rids` when not
    /// empty), or a subscriber (`codec` and `rids` ignored). Returns its index, or `None`
    /// when the room refused the offer.
    pub fn join(&mut self, kind: SessionKind, codec: Codec, rids: &[&str]) -> Option<usize> {
        let index = self.peers.len();
        let addr: SocketAddr = format!("10.0.0.{}:5000", index + 2).parse().ok()?;
        let mut cfg = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false);
        cfg = match codec {
            Codec::H264 => cfg.enable_h264(true),
            Codec::Vp9 => cfg.enable_vp9(true),
            _ => cfg.enable_vp8(true),
        };
        if kind == SessionKind::Publisher {
            cfg = cfg.set_extension_map(ExtensionMap::empty());
        } else {
            cfg = cfg.set_crypto_provider(super::inject::provider());
        }
        let mut rtc = cfg.build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").ok()?);
        let dir = match kind {
            SessionKind::Publisher => Direction::SendOnly,
            SessionKind::Subscriber => Direction::RecvOnly,
        };
        let simulcast = (kind == SessionKind::Publisher && !rids.is_empty()).then(|| {
            let mut s = Simulcast::new();
            for rid in rids {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
        let video = api.add_media(MediaKind::Video, dir, None, None, simulcast);
        let (offer, pending) = api.apply()?;
        let opts = JoinOptions {
            identity: Some(format!("peer{index}")),
            ..Default::default()
        };
        let joined = self
            .room
            .handle_join(self.now, kind, &offer.to_sdp_string(), &opts)
            .ok()?;
        self.peers.push(Peer {
            addr,
            rtc,
            session: joined.session,
            timeout: self.now,
            connected: false,
            mids: (audio, video),
            drop_next: 0,
            received: 0,
            keyframe_requests: 0,
            answer: joined.answer.clone(),
        });
        self.accept(index, pending, &joined.answer);
        self.pump();
        Some(index)
    }

    fn accept(&mut self, index: usize, pending: SdpPendingOffer, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).expect("the room's answer parses");
        self.peers[index]
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("the room's answer is acceptable");
        self.drain(index);
    }

    /// Run until every peer is connected, at most `limit` of virtual time. Returns
    /// whether they all are.
    pub fn connect(&mut self, limit: Duration) -> bool {
        let end = self.now + limit;
        let mut steps = 0;
        while !self.peers.iter().all(|p| p.connected) && self.now < end && steps < STEP_CAP {
            self.step(end);
            steps += 1;
        }
        self.peers.iter().all(|p| p.connected)
    }

    /// Advance virtual time by `d`, handling every timeout due on the way.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut steps = 0;
        while self.now < end && steps < STEP_CAP {
            self.step(end);
            steps += 1;
        }
        self.now = self.now.max(end);
    }

    /// Handle the earliest due timeout (room or peer) not after `end`; else move to
    /// `end`.
    fn step(&mut self, end: Instant) {
        let room = self.room.poll_timeout();
        let peer = self
            .peers
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.timeout)
            .map(|(i, p)| (i, p.timeout));
        let next = [room, peer.map(|(_, t)| t)].into_iter().flatten().min();
        let Some(t) = next.filter(|t| *t <= end) else {
            self.now = end;
            return;
        };
        // A deadline at or before now still moves time on by 1 ms: no spinning.
        self.now = t.max(self.now + Duration::from_millis(1)).min(end);
        if room.is_some_and(|r| r <= self.now) {
            self.room.handle_timeout(self.now);
        }
        for i in 0..self.peers.len() {
            if self.peers[i].timeout <= self.now {
                let now = self.now;
                let _ = self.peers[i].rtc.handle_input(Input::Timeout(now));
                self.drain(i);
            }
        }
        self.pump();
    }

    /// Poll peer `index` until its next timeout, delivering what it sends to the room.
    fn drain(&mut self, index: usize) {
        loop {
            let now = self.now;
            let p = &mut self.peers[index];
            let out = match p.rtc.poll_output() {
                Ok(o) => o,
                Err(_) => {
                    p.timeout = now + Duration::from_secs(3600);
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    p.timeout = t.max(now);
                    return;
                }
                Output::Transmit(t) => {
                    let d = Datagram::udp(p.addr, t.destination, now, t.contents.to_vec());
                    self.room.handle_datagram(now, d);
                }
                Output::Event(e) => match e {
                    Event::Connected => p.connected = true,
                    Event::RtpPacket(_) => p.received += 1,
                    Event::KeyframeRequest(_) => p.keyframe_requests += 1,
                    _ => {}
                },
            }
        }
    }

    /// Deliver everything the room has to send (and what the peers answer), until
    /// quiet.
    pub fn pump(&mut self) {
        for _ in 0..STEP_CAP {
            let Some(t) = next_transmit(&mut self.room) else {
                return;
            };
            let Some(i) = self.peers.iter().position(|p| p.addr == t.destination) else {
                continue;
            };
            if self.peers[i].drop_next > 0 {
                self.peers[i].drop_next -= 1;
                continue;
            }
            let now = self.now;
            let recv = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents);
            if let Ok(recv) = recv {
                let _ = self.peers[i].rtc.handle_input(Input::Receive(now, recv));
            }
            self.drain(i);
        }
    }

    /// A datagram to the room from peer `index`'s address, as given (not SRTP-protected).
    pub fn raw_from(&mut self, index: usize, contents: Vec<u8>) {
        let Some(p) = self.peers.get(index) else {
            return;
        };
        let d = Datagram::udp(p.addr, self.server, self.now, contents);
        self.room.handle_datagram(self.now, d);
        self.pump();
    }

    /// Publisher `index` writes one RTP packet on its audio (`video` false) or video
    /// m-line (simulcast layer `rid`), with its own payload type for that m-line.
    pub fn write_rtp(&mut self, index: usize, video: bool, rid: Option<Rid>, w: RtpFields) {
        let Some(p) = self.peers.get_mut(index) else {
            return;
        };
        let mid = if video { p.mids.1 } else { p.mids.0 };
        let Some(pt) = payload_type(&p.rtc, video) else {
            return;
        };
        let now = self.now;
        let mut api = p.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, rid) else {
            return;
        };
        let write = RtpWrite::new(pt, w.seq.into(), w.timestamp, now, w.payload)
            .marker(w.marker)
            .nackable(true);
        stream.write_rtp(write);
        let _ = p.rtc.handle_input(Input::Timeout(now));
        self.drain(index);
        self.pump();
    }

    /// Subscriber `index` asks for a keyframe (PLI, or FIR when `fir`).
    pub fn request_keyframe(&mut self, index: usize, fir: bool) {
        let Some(p) = self.peers.get_mut(index) else {
            return;
        };
        let kind = if fir {
            KeyframeRequestKind::Fir
        } else {
            KeyframeRequestKind::Pli
        };
        let mid = p.mids.1;
        if let Some(s) = p.rtc.direct_api().stream_rx_by_mid(mid, None) {
            s.request_keyframe(kind);
        }
        let now = self.now;
        let _ = p.rtc.handle_input(Input::Timeout(now));
        self.drain(index);
        self.pump();
    }

    /// Subscriber `index` sends an RTCP compound whose bytes after the first 8 are
    /// `bytes` (see [`super::inject`]): it asks for a keyframe, and that compound carries
    /// them instead.
    pub fn inject_rtcp(&mut self, index: usize, bytes: Vec<u8>) {
        super::inject::next_rtcp(bytes);
        self.request_keyframe(index, false);
    }

    /// Subscriber `index` sends a REMB of `bps` bit/s.
    pub fn send_remb(&mut self, index: usize, bps: u64) {
        let Some(p) = self.peers.get_mut(index) else {
            return;
        };
        let mid = p.mids.1;
        if let Some(s) = p.rtc.direct_api().stream_rx_by_mid(mid, None) {
            s.request_remb(Bitrate::from(bps as f64));
        }
        let now = self.now;
        let _ = p.rtc.handle_input(Input::Timeout(now));
        self.drain(index);
        self.pump();
    }
}

/// The fields of one RTP packet a publisher writes.
pub struct RtpFields {
    /// Extended sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload.
    pub payload: Vec<u8>,
}

/// The payload type `rtc` negotiated for Opus (`video` false) or its video codec.
fn payload_type(rtc: &Rtc, video: bool) -> Option<Pt> {
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.spec().codec.is_video() == video && p.spec().codec != Codec::Rtx)
        .map(|p| p.pt())
}

/// Largest RTP payload a publisher of [`World`] can write: str0m's send buffer
/// (2,000 bytes) less its 16-byte header (the 12 fixed bytes and an empty extension
/// block, as str0m writes it without extensions). Found by the `rtp` target: one byte
/// more panics in the publisher's own `Rtc`.
pub const PUBLISHER_MAX_PAYLOAD: usize = 2000 - 16;

/// The room's next datagram; events, bindings and shard deliveries before it are of no
/// use here and are dropped. `None` when the room has nothing more to send.
fn next_transmit(room: &mut Room) -> Option<str0m::net::Transmit> {
    loop {
        match room.poll_output() {
            RoomOutput::Transmit(t) => return Some(t),
            RoomOutput::Timeout(_) => return None,
            _ => {}
        }
    }
}
