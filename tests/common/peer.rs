//! WHIP publishers and WHEP subscribers built on str0m, each driven by its own
//! tokio task over a real UDP socket on 127.0.0.1.
//!
//! A peer binds a socket, adds it as its host candidate, creates an SDP offer
//! with the SDP API, POSTs it, and accepts the answer. The task then runs the
//! str0m loop: every mutation of the `Rtc` (input, timeout, RTP write) is
//! followed by a full drain of `poll_output`, transmits go out with
//! `send_to`, and received datagrams are fed back as `Input::Receive`.
//!
//! Publishers write synthetic RTP (see [`super::media`]) once connected:
//! 30 fps video with a keyframe every 2 s and on every keyframe request, and
//! 20 ms Opus packets. Subscribers check every packet they get and keep
//! per-kind figures in a [`KindReport`].

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::format::{Codec, CodecConfig, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::media::{self, RecvCodec, VideoCodec};
use super::{HttpReply, Server};

/// The two publisher shapes the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublisherKind {
    /// VP8 (str0m's default payload type, with RTX) plus Opus, str0m's
    /// standard header extensions: what a browser sends.
    BrowserVp8,
    /// H264 only at payload type 96 (packetization-mode 1, 42e01f, no RTX),
    /// Opus at 111, header extensions mid and rid only: what OBS sends.
    ObsH264,
}

/// What a peer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Publisher(PublisherKind),
    Subscriber,
}

/// Signalling failed: the server answered something other than 201, or the
/// exchange did not complete.
#[derive(Debug, Clone)]
pub struct SignalError {
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// Response body or a description of what went wrong.
    pub message: String,
    /// The offer that was sent.
    pub offer: String,
}

impl std::fmt::Display for SignalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "status {:?}: {}", self.status, self.message)
    }
}

/// Per-kind receive figures of a subscriber.
#[derive(Clone, Debug, Default)]
pub struct KindReport {
    /// RTP packets received (str0m filters duplicates).
    pub packets: u64,
    pub bytes: u64,
    /// Decoded counters in arrival order.
    pub counters: Vec<u64>,
    /// Payloads whose length and pattern were exactly as sent.
    pub intact: u64,
    /// Payloads that were not.
    pub corrupt: u64,
    pub first_corruption: Option<String>,
    pub ssrcs: BTreeSet<u32>,
    pub pts: BTreeSet<u8>,
    /// Extended sequence numbers received.
    pub seqs: BTreeSet<u64>,
    /// Packets whose sequence number was not above every earlier one
    /// (reordering, or a retransmission filling a hole).
    pub seq_backwards: u64,
    /// Packets whose RTP timestamp went backwards (video only matters).
    pub ts_backwards: u64,
    /// Whether the first packet of this kind started a keyframe.
    pub first_starts_keyframe: Option<bool>,
    /// Keyframes whose start was received (counted once per RTP timestamp).
    pub keyframes: u64,
    pub first_packet_at: Option<Instant>,
    /// Counter of the first packet.
    pub first_counter: Option<u64>,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    last_seq: Option<u64>,
    last_ts: Option<u32>,
    last_keyframe_ts: Option<u32>,
}

impl KindReport {
    /// Mean one-way latency (publisher write to subscriber receive).
    pub fn mean_latency(&self) -> Duration {
        if self.packets == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.latency_sum_us / self.packets)
    }

    pub fn max_latency(&self) -> Duration {
        Duration::from_micros(self.latency_max_us)
    }

    /// Sequence numbers missing between the lowest and highest received.
    pub fn seq_gaps(&self) -> u64 {
        match (self.seqs.first(), self.seqs.last()) {
            (Some(lo), Some(hi)) => hi - lo + 1 - self.seqs.len() as u64,
            _ => 0,
        }
    }

    /// Distinct counters received.
    pub fn distinct_counters(&self) -> BTreeSet<u64> {
        self.counters.iter().copied().collect()
    }

    fn record(&mut self, codec: RecvCodec, pkt: &RtpPacket, now: Instant) {
        self.packets += 1;
        self.bytes += pkt.payload.len() as u64;
        self.ssrcs.insert(*pkt.header.ssrc);
        self.pts.insert(*pkt.header.payload_type);
        let seq = *pkt.seq_no;
        if self.last_seq.is_some_and(|last| seq <= last) {
            self.seq_backwards += 1;
        }
        self.seqs.insert(seq);
        self.last_seq = Some(self.last_seq.map_or(seq, |l| l.max(seq)));
        let ts = pkt.header.timestamp;
        if let Some(last) = self.last_ts {
            // Wrapping comparison: "behind" means within half the range below.
            if ts != last && ts.wrapping_sub(last) > u32::MAX / 2 {
                self.ts_backwards += 1;
            }
        }
        self.last_ts = Some(ts);
        if self.first_packet_at.is_none() {
            self.first_packet_at = Some(now);
        }
        match media::parse_payload(codec, &pkt.payload) {
            Ok(parsed) => {
                if self.first_starts_keyframe.is_none() {
                    self.first_starts_keyframe = Some(parsed.starts_keyframe);
                }
                if self.first_counter.is_none() {
                    self.first_counter = Some(parsed.counter);
                }
                if parsed.starts_keyframe && self.last_keyframe_ts != Some(ts) {
                    self.keyframes += 1;
                    self.last_keyframe_ts = Some(ts);
                }
                self.counters.push(parsed.counter);
                let lat = media::micros_since_epoch(now).saturating_sub(parsed.send_us);
                self.latency_sum_us += lat;
                self.latency_max_us = self.latency_max_us.max(lat);
                if parsed.intact {
                    self.intact += 1;
                } else {
                    self.corrupt += 1;
                    self.first_corruption.get_or_insert_with(|| {
                        format!(
                            "{codec:?} seq {seq} counter {} len {}: pattern or length differs",
                            parsed.counter,
                            pkt.payload.len()
                        )
                    });
                }
            }
            Err(why) => {
                if self.first_starts_keyframe.is_none() {
                    self.first_starts_keyframe = Some(false);
                }
                self.corrupt += 1;
                self.first_corruption
                    .get_or_insert_with(|| format!("{codec:?} seq {seq}: {why}"));
            }
        }
    }
}

/// What a subscriber received.
#[derive(Clone, Debug, Default)]
pub struct SubscriberReport {
    pub audio: KindReport,
    pub video: KindReport,
    /// Packets with a payload type the subscriber did not offer.
    pub unknown_pt: u64,
}

/// What a publisher sent.
#[derive(Clone, Debug, Default)]
pub struct PublisherReport {
    /// Counters of the video packets written, in order.
    pub video_counters: Vec<u64>,
    /// Counters of the audio packets written, in order.
    pub audio_counters: Vec<u64>,
    pub video_frames: u64,
    pub keyframes_sent: u64,
    /// `Event::KeyframeRequest`s received (PLI/FIR from the server).
    pub keyframe_requests: u64,
    pub video_ssrc: Option<u32>,
    pub audio_ssrc: Option<u32>,
    /// Writes that found no send stream.
    pub missing_stream: u64,
}

impl PublisherReport {
    /// Video packets written with a counter of at least `counter`.
    pub fn video_sent_from(&self, counter: u64) -> usize {
        self.video_counters
            .iter()
            .filter(|c| **c >= counter)
            .count()
    }

    /// Whether `counter` is one this publisher wrote.
    pub fn wrote(&self, counter: u64) -> bool {
        self.video_counters.binary_search(&counter).is_ok()
            || self.audio_counters.binary_search(&counter).is_ok()
    }
}

/// Snapshot of a peer's state and figures.
#[derive(Clone, Debug, Default)]
pub struct PeerReport {
    /// `Event::Connected` (ICE + DTLS) was seen.
    pub connected_at: Option<Instant>,
    pub ice_state: Option<String>,
    /// The remote closed DTLS.
    pub remote_closed: bool,
    /// The task stopped (closed, vanished, or failed).
    pub finished: bool,
    /// str0m or socket error that stopped the task.
    pub error: Option<String>,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// Datagrams str0m could not classify.
    pub datagrams_unparsable: u64,
    pub publisher: PublisherReport,
    pub subscriber: SubscriberReport,
}

enum Cmd {
    PauseMedia,
    /// Send a datagram from the peer's own socket, outside of str0m.
    SendRaw(SocketAddr, Vec<u8>),
    Close,
}

/// A connected (or connecting) WHIP/WHEP peer.
pub struct Peer {
    role: Role,
    base_url: String,
    token: Option<String>,
    location: String,
    location_header: String,
    etag: Option<String>,
    offer: String,
    answer: String,
    answer_content_type: Option<String>,
    local_addr: SocketAddr,
    shared: Arc<Mutex<PeerReport>>,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: Option<JoinHandle<()>>,
}

/// Header-extension ids the OBS-shaped publisher uses.
const OBS_EXT_MID: u8 = 1;
const OBS_EXT_RID: u8 = 2;

fn build_rtc(role: Role) -> Rtc {
    let now = Instant::now();
    let base = Rtc::builder().set_rtp_mode(true);
    match role {
        Role::Publisher(PublisherKind::BrowserVp8) => base
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false)
            .build(now),
        Role::Publisher(PublisherKind::ObsH264) => {
            let mut cfg = base
                .clear_codecs()
                .clear_extension_map()
                .set_extension(OBS_EXT_MID, Extension::RtpMid)
                .set_extension(OBS_EXT_RID, Extension::RtpStreamId);
            let mut h264 = PayloadParams::new(
                96.into(),
                None,
                CodecSpec {
                    codec: Codec::H264,
                    clock_rate: Frequency::NINETY_KHZ,
                    channels: None,
                    format: FormatParams {
                        level_asymmetry_allowed: Some(true),
                        packetization_mode: Some(1),
                        profile_level_id: Some(0x42e01f),
                        ..Default::default()
                    },
                },
            );
            h264.set_fb_transport_cc(false);
            h264.set_fb_fir(false);
            let mut opus = PayloadParams::new(
                111.into(),
                None,
                CodecSpec {
                    codec: Codec::Opus,
                    clock_rate: Frequency::FORTY_EIGHT_KHZ,
                    channels: Some(2),
                    format: FormatParams {
                        min_p_time: Some(10),
                        use_inband_fec: Some(true),
                        stereo: Some(true),
                        sprop_stereo: Some(true),
                        ..Default::default()
                    },
                },
            );
            opus.set_fb_transport_cc(false);
            *cfg.codec_config() = CodecConfig::new_from_payload_params(vec![opus, h264]);
            cfg.build(now)
        }
        Role::Subscriber => base
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .build(now),
    }
}

/// Remove the RTX SSRC lines str0m always declares for video, so the offer
/// looks like one from an encoder that has no RTX at all.
fn strip_rtx_ssrcs(sdp: &str) -> String {
    let mut rtx = Vec::new();
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("a=ssrc-group:FID ") {
            if let Some(r) = rest.split_whitespace().nth(1) {
                rtx.push(format!("a=ssrc:{r} "));
            }
        }
    }
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let l = line.trim_end();
        if l.starts_with("a=ssrc-group:FID ") || rtx.iter().any(|p| l.starts_with(p.as_str())) {
            continue;
        }
        out.push_str(line);
    }
    out
}

impl Peer {
    /// Publish to `/whip/{room}` of `server`.
    pub async fn publish(
        server: &Server,
        room: &str,
        kind: PublisherKind,
    ) -> Result<Peer, SignalError> {
        Self::connect(
            server.base_url(),
            &format!("/whip/{room}"),
            server.token(),
            Role::Publisher(kind),
        )
        .await
    }

    /// Subscribe to `/whep/{room}` of `server`.
    pub async fn subscribe(server: &Server, room: &str) -> Result<Peer, SignalError> {
        Self::connect(
            server.base_url(),
            &format!("/whep/{room}"),
            server.token(),
            Role::Subscriber,
        )
        .await
    }

    /// Create the offer for `role`, POST it to `base_url + path`, accept the
    /// answer and start the peer's task.
    pub async fn connect(
        base_url: &str,
        path: &str,
        token: Option<&str>,
        role: Role,
    ) -> Result<Peer, SignalError> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a UDP socket");
        let local_addr = socket.local_addr().unwrap();

        let mut rtc = build_rtc(role);
        let cand = Candidate::host(local_addr, "udp").expect("host candidate");
        rtc.add_local_candidate(cand);

        let dir = match role {
            Role::Publisher(_) => Direction::SendOnly,
            Role::Subscriber => Direction::RecvOnly,
        };
        let mut api = rtc.sdp_api();
        let audio_mid = api.add_media(MediaKind::Audio, dir, None, None, None);
        let video_mid = api.add_media(MediaKind::Video, dir, None, None, None);
        let (offer, pending) = api.apply().expect("offer for new media");
        let mut offer = offer.to_sdp_string();
        if role == Role::Publisher(PublisherKind::ObsH264) {
            offer = strip_rtx_ssrcs(&offer);
        }

        let fail = |status: Option<u16>, message: String, offer: &str| SignalError {
            status,
            message,
            offer: offer.to_string(),
        };

        let reply = super::post_sdp(base_url, path, &offer, token)
            .await
            .map_err(|e| fail(None, e, &offer))?;
        if reply.status != 201 {
            return Err(fail(Some(reply.status), reply.body, &offer));
        }
        let location_header = reply
            .header("location")
            .ok_or_else(|| fail(Some(201), "201 without Location".into(), &offer))?
            .to_string();
        let answer = reply.body.clone();
        let parsed = SdpAnswer::from_sdp_string(&answer)
            .map_err(|e| fail(Some(201), format!("answer does not parse: {e}"), &offer))?;
        rtc.sdp_api()
            .accept_answer(pending, parsed)
            .map_err(|e| fail(Some(201), format!("accept_answer: {e}"), &offer))?;

        let shared = Arc::new(Mutex::new(PeerReport::default()));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();

        let gen = match role {
            Role::Publisher(kind) => Some(MediaGen::new(&rtc, kind, audio_mid, video_mid)),
            Role::Subscriber => None,
        };
        let pt_codecs = rtc
            .codec_config()
            .params()
            .iter()
            .filter_map(|p| {
                let c = match p.spec().codec {
                    Codec::Vp8 => RecvCodec::Vp8,
                    Codec::H264 => RecvCodec::H264,
                    Codec::Opus => RecvCodec::Opus,
                    _ => return None,
                };
                Some((*p.pt(), c))
            })
            .collect();

        let driver = Driver {
            rtc,
            socket,
            local_addr,
            shared: shared.clone(),
            gen,
            pt_codecs,
            video_mid,
        };
        let task = tokio::spawn(driver.run(cmd_rx));

        Ok(Peer {
            role,
            base_url: base_url.to_string(),
            token: token.map(str::to_string),
            location: super::resolve(base_url, &location_header),
            location_header,
            etag: reply.header("etag").map(str::to_string),
            offer,
            answer,
            answer_content_type: reply.header("content-type").map(str::to_string),
            local_addr,
            shared,
            cmd: cmd_tx,
            task: Some(task),
        })
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The resource URL (Location resolved against the server).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The Location header exactly as the server sent it.
    pub fn location_header(&self) -> &str {
        &self.location_header
    }

    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    pub fn offer(&self) -> &str {
        &self.offer
    }

    pub fn answer(&self) -> &str {
        &self.answer
    }

    pub fn answer_content_type(&self) -> Option<&str> {
        self.answer_content_type.as_deref()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Snapshot of everything the peer has seen so far.
    pub fn report(&self) -> PeerReport {
        self.shared.lock().unwrap().clone()
    }

    /// Wait until `cond` holds for the report, or `timeout` passes.
    /// Returns the last report and whether `cond` held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        cond: impl Fn(&PeerReport) -> bool,
    ) -> (bool, PeerReport) {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.report();
            if cond(&r) {
                return (true, r);
            }
            if Instant::now() >= deadline || r.finished {
                return (false, r);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait for ICE + DTLS to complete.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |r| r.connected_at.is_some()).await.0
    }

    /// Publishers: stop writing media, keep the connection up.
    pub fn pause_media(&self) {
        let _ = self.cmd.send(Cmd::PauseMedia);
    }

    /// Send `bytes` to `to` from this peer's socket, bypassing str0m (to
    /// inject junk from an address the server knows).
    pub fn send_raw(&self, to: SocketAddr, bytes: Vec<u8>) {
        let _ = self.cmd.send(Cmd::SendRaw(to, bytes));
    }

    /// `DELETE` the resource; returns the status.
    pub async fn delete(&self) -> Result<HttpReply, String> {
        super::delete(&self.location, self.token.as_deref()).await
    }

    /// `DELETE` the resource, then close the `Rtc` and wait for the task.
    /// Returns the DELETE status.
    pub async fn stop(mut self) -> Option<u16> {
        let status = self.delete().await.ok().map(|r| r.status);
        let _ = self.cmd.send(Cmd::Close);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        status
    }

    /// Close the `Rtc` (DTLS close_notify) without a DELETE.
    pub async fn close(mut self) {
        let _ = self.cmd.send(Cmd::Close);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
    }

    /// Disappear without a word: drop the task and its socket, no DELETE,
    /// no DTLS close.
    pub async fn vanish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Publisher media clock and counters.
struct MediaGen {
    codec: VideoCodec,
    audio_mid: Mid,
    video_mid: Mid,
    audio_pt: Pt,
    video_pt: Pt,
    next_counter: u64,
    video_seq: u64,
    audio_seq: u64,
    video_ts_base: u32,
    audio_ts_base: u32,
    /// Set at `Event::Connected`.
    start: Option<Instant>,
    next_frame: u64,
    next_audio: u64,
    force_keyframe: bool,
    paused: bool,
}

const VIDEO_PERIOD: Duration = Duration::from_nanos(1_000_000_000 / media::VIDEO_FPS as u64);
const AUDIO_PERIOD: Duration = Duration::from_millis(media::AUDIO_PTIME_MS as u64);
/// When the task falls further behind than this many periods, skip ahead.
const MAX_CATCH_UP: u64 = 3;

impl MediaGen {
    fn new(rtc: &Rtc, kind: PublisherKind, audio_mid: Mid, video_mid: Mid) -> Self {
        let codec = match kind {
            PublisherKind::BrowserVp8 => VideoCodec::Vp8,
            PublisherKind::ObsH264 => VideoCodec::H264,
        };
        let want = match codec {
            VideoCodec::Vp8 => Codec::Vp8,
            VideoCodec::H264 => Codec::H264,
        };
        let pt_of = |c: Codec| {
            rtc.codec_config()
                .find(|p| p.spec().codec == c)
                .map(|p| p.pt())
                .expect("codec configured")
        };
        Self {
            codec,
            audio_mid,
            video_mid,
            audio_pt: pt_of(Codec::Opus),
            video_pt: pt_of(want),
            next_counter: 1,
            video_seq: rand::random_range(1_000..30_000),
            audio_seq: rand::random_range(1_000..30_000),
            video_ts_base: rand::random(),
            audio_ts_base: rand::random(),
            start: None,
            next_frame: 0,
            next_audio: 0,
            force_keyframe: false,
            paused: false,
        }
    }

    fn frame_due(&self, n: u64) -> Option<Instant> {
        self.start.map(|s| s + VIDEO_PERIOD * n as u32)
    }

    fn audio_due(&self, n: u64) -> Option<Instant> {
        self.start.map(|s| s + AUDIO_PERIOD * n as u32)
    }

    fn next_due(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        match (
            self.frame_due(self.next_frame),
            self.audio_due(self.next_audio),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        }
    }
}

/// One packet to write.
struct Write {
    mid: Mid,
    pt: Pt,
    seq: u64,
    ts: u32,
    wallclock: Instant,
    payload: Vec<u8>,
    marker: bool,
    nackable: bool,
    counter: u64,
    video: bool,
}

struct Driver {
    rtc: Rtc,
    socket: UdpSocket,
    local_addr: SocketAddr,
    shared: Arc<Mutex<PeerReport>>,
    gen: Option<MediaGen>,
    pt_codecs: HashMap<u8, RecvCodec>,
    video_mid: Mid,
}

impl Driver {
    async fn run(mut self, mut cmd_rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut buf = vec![0u8; 2048];
        let mut closing = false;
        let mut close_deadline = None;
        loop {
            let timeout = match self.drain().await {
                Ok(t) => t,
                Err(e) => return self.finish(Some(format!("poll_output: {e}"))),
            };
            if !self.rtc.is_alive() {
                return self.finish(None);
            }
            let now = Instant::now();
            if let Some(d) = close_deadline {
                if now >= d {
                    self.rtc.disconnect();
                    return self.finish(None);
                }
            }
            let mut wake = timeout.min(now + Duration::from_millis(500));
            if !closing {
                if let Some(due) = self.gen.as_ref().and_then(MediaGen::next_due) {
                    wake = wake.min(due);
                }
            }
            if let Some(d) = close_deadline {
                wake = wake.min(d);
            }

            tokio::select! {
                cmd = cmd_rx.recv(), if !closing => match cmd {
                    Some(Cmd::PauseMedia) => {
                        if let Some(g) = self.gen.as_mut() {
                            g.paused = true;
                        }
                    }
                    Some(Cmd::SendRaw(to, bytes)) => {
                        let _ = self.socket.send_to(&bytes, to).await;
                    }
                    Some(Cmd::Close) | None => {
                        closing = true;
                        close_deadline = Some(Instant::now() + Duration::from_millis(500));
                        if let Err(e) = self.rtc.close() {
                            self.rtc.disconnect();
                            return self.finish(Some(format!("close: {e}")));
                        }
                    }
                },
                res = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = res {
                        let now = Instant::now();
                        self.shared.lock().unwrap().datagrams_in += 1;
                        match Receive::new(Protocol::Udp, source, self.local_addr, &buf[..n]) {
                            Ok(recv) => {
                                if let Err(e) = self.rtc.handle_input(Input::Receive(now, recv)) {
                                    return self.finish(Some(format!("handle_input(receive): {e}")));
                                }
                            }
                            Err(_) => self.shared.lock().unwrap().datagrams_unparsable += 1,
                        }
                    }
                    // Errors (e.g. ICMP port unreachable surfacing as
                    // ConnectionRefused) are not fatal for a UDP socket.
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        return self.finish(Some(format!("handle_input(timeout): {e}")));
                    }
                    if let Err(e) = self.drain().await {
                        return self.finish(Some(format!("poll_output: {e}")));
                    }
                    if !closing {
                        if let Err(e) = self.write_due_media(now).await {
                            return self.finish(Some(e));
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, error: Option<String>) {
        let mut s = self.shared.lock().unwrap();
        s.finished = true;
        if error.is_some() && s.error.is_none() {
            s.error = error;
        }
    }

    /// Poll until str0m wants a timeout; send transmits, handle events.
    async fn drain(&mut self) -> Result<Instant, RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    if self
                        .socket
                        .send_to(&t.contents, t.destination)
                        .await
                        .is_ok()
                    {
                        self.shared.lock().unwrap().datagrams_out += 1;
                    }
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        let now = Instant::now();
        match e {
            Event::Connected => {
                self.shared.lock().unwrap().connected_at = Some(now);
                if let Some(g) = self.gen.as_mut() {
                    if g.start.is_none() {
                        g.start = Some(now);
                    }
                }
            }
            Event::IceConnectionStateChange(state) => {
                self.shared.lock().unwrap().ice_state = Some(format!("{state:?}"));
                if state == IceConnectionState::Disconnected {
                    tracing::debug!("peer {} ICE disconnected", self.local_addr);
                }
            }
            Event::KeyframeRequest(req) => {
                if req.mid == self.video_mid {
                    if let Some(g) = self.gen.as_mut() {
                        g.force_keyframe = true;
                    }
                }
                self.shared.lock().unwrap().publisher.keyframe_requests += 1;
            }
            Event::RtpPacket(pkt) => {
                let mut s = self.shared.lock().unwrap();
                let sub = &mut s.subscriber;
                match self.pt_codecs.get(&*pkt.header.payload_type) {
                    Some(&codec) => {
                        let kind = if codec.is_video() {
                            &mut sub.video
                        } else {
                            &mut sub.audio
                        };
                        kind.record(codec, &pkt, now);
                    }
                    None => sub.unknown_pt += 1,
                }
            }
            Event::Closed => {
                self.shared.lock().unwrap().remote_closed = true;
            }
            _ => {}
        }
    }

    /// Write every video frame and audio packet that is due by `now`.
    async fn write_due_media(&mut self, now: Instant) -> Result<(), String> {
        let Some(gen) = self.gen.as_mut() else {
            return Ok(());
        };
        if gen.paused || gen.start.is_none() {
            return Ok(());
        }
        let mut writes = Vec::new();
        let send_us = media::micros_since_epoch(now);

        // Video frames.
        let start = gen.start.unwrap();
        let due_frames = now.saturating_duration_since(start).as_nanos() / VIDEO_PERIOD.as_nanos();
        let due_frames = due_frames as u64;
        if due_frames >= gen.next_frame + MAX_CATCH_UP {
            gen.next_frame = due_frames + 1 - MAX_CATCH_UP;
        }
        while gen.next_frame <= due_frames {
            let n = gen.next_frame;
            gen.next_frame += 1;
            let keyframe = n % media::KEYFRAME_INTERVAL_FRAMES == 0 || gen.force_keyframe;
            gen.force_keyframe = false;
            let ts = gen
                .video_ts_base
                .wrapping_add((n * (media::VIDEO_CLOCK / media::VIDEO_FPS) as u64) as u32);
            let wallclock = gen.frame_due(n).unwrap();
            let pkts = media::video_frame(gen.codec, keyframe, n, &mut gen.next_counter, send_us);
            {
                let mut s = self.shared.lock().unwrap();
                s.publisher.video_frames += 1;
                if keyframe {
                    s.publisher.keyframes_sent += 1;
                }
            }
            for p in pkts {
                let seq = gen.video_seq;
                gen.video_seq += 1;
                writes.push(Write {
                    mid: gen.video_mid,
                    pt: gen.video_pt,
                    seq,
                    ts,
                    wallclock,
                    payload: p.payload,
                    marker: p.last,
                    nackable: true,
                    counter: p.counter,
                    video: true,
                });
            }
        }

        // Audio packets.
        let due_audio =
            (now.saturating_duration_since(start).as_nanos() / AUDIO_PERIOD.as_nanos()) as u64;
        if due_audio >= gen.next_audio + MAX_CATCH_UP {
            gen.next_audio = due_audio + 1 - MAX_CATCH_UP;
        }
        while gen.next_audio <= due_audio {
            let n = gen.next_audio;
            gen.next_audio += 1;
            let counter = gen.next_counter;
            gen.next_counter += 1;
            let seq = gen.audio_seq;
            gen.audio_seq += 1;
            let samples = media::AUDIO_CLOCK / 1000 * media::AUDIO_PTIME_MS;
            writes.push(Write {
                mid: gen.audio_mid,
                pt: gen.audio_pt,
                seq,
                ts: gen.audio_ts_base.wrapping_add((n * samples as u64) as u32),
                wallclock: gen.audio_due(n).unwrap(),
                payload: media::opus_packet(counter, send_us),
                marker: n == 0,
                nackable: false,
                counter,
                video: false,
            });
        }

        for w in writes {
            self.write(w, now).await?;
        }
        Ok(())
    }

    /// Write one packet, hand str0m a timeout so it moves it to the wire,
    /// and drain.
    async fn write(&mut self, w: Write, now: Instant) -> Result<(), String> {
        let written = {
            let mut api = self.rtc.direct_api();
            match api.stream_tx_by_mid(w.mid, None) {
                Some(tx) => {
                    let ssrc = *tx.ssrc();
                    tx.write_rtp(
                        RtpWrite::new(w.pt, w.seq.into(), w.ts, w.wallclock, w.payload)
                            .marker(w.marker)
                            .nackable(w.nackable),
                    );
                    Some(ssrc)
                }
                None => None,
            }
        };
        {
            let mut s = self.shared.lock().unwrap();
            let p = &mut s.publisher;
            match written {
                Some(ssrc) if w.video => {
                    p.video_ssrc = Some(ssrc);
                    p.video_counters.push(w.counter);
                }
                Some(ssrc) => {
                    p.audio_ssrc = Some(ssrc);
                    p.audio_counters.push(w.counter);
                }
                None => p.missing_stream += 1,
            }
        }
        self.drain()
            .await
            .map_err(|e| format!("poll_output after write: {e}"))?;
        self.rtc
            .handle_input(Input::Timeout(now.max(Instant::now())))
            .map_err(|e| format!("handle_input(timeout) after write: {e}"))?;
        self.drain()
            .await
            .map_err(|e| format!("poll_output after write: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod self_check {
    use super::*;

    #[test]
    fn obs_shaped_offer_has_only_h264_96_and_opus_111() {
        let mut rtc = build_rtc(Role::Publisher(PublisherKind::ObsH264));
        let cand = Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap();
        rtc.add_local_candidate(cand);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, _pending) = api.apply().unwrap();
        let sdp = strip_rtx_ssrcs(&offer.to_sdp_string());
        assert!(sdp.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"), "{sdp}");
        assert!(sdp.contains("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:96 H264/90000"), "{sdp}");
        assert!(sdp.contains("packetization-mode=1"), "{sdp}");
        assert!(sdp.contains("profile-level-id=42e01f"), "{sdp}");
        assert!(sdp.contains("a=sendonly"), "{sdp}");
        assert!(sdp.contains("urn:ietf:params:rtp-hdrext:sdes:mid"), "{sdp}");
        for absent in [
            "rtx",
            "transport-cc",
            "transport-wide-cc",
            "abs-send-time",
            "ssrc-group",
        ] {
            assert!(!sdp.contains(absent), "offer contains {absent}:\n{sdp}");
        }
        assert!(
            sdp.contains("a=candidate:"),
            "host candidate missing:\n{sdp}"
        );
    }
}
