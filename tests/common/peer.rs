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
//! 20 ms Opus packets. The OBS-shaped simulcast publisher sends three video
//! layers instead, each with keyframes every 3 s and on requests for its
//! RID. Subscribers check every packet they get and keep per-kind figures in
//! a [`super::report::KindReport`]. The loop itself is in [`super::driver`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::media::{Direction, Rid};
use switchboard_kit::client::Client;
use switchboard_kit::peer::{self as kit, ClientConfig, OfferSpec, VideoCodecs};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::{Cmd, Driver};
use super::publisher::publishing;
use super::report::PeerReport;
use super::{HttpReply, Server};

/// The publisher shapes the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublisherKind {
    /// VP8 (str0m's default payload type, with RTX) plus Opus, str0m's
    /// standard header extensions: what a browser sends.
    BrowserVp8,
    /// H264 only at payload type 96 (packetization-mode 1, 42e01f, no RTX),
    /// Opus at 111, header extensions mid and rid only: what OBS sends.
    ObsH264,
    /// [`PublisherKind::ObsH264`] with simulcast, as OBS 32.1+ sends it:
    /// `a=simulcast:send 0;1;2` with numeric RIDs where `"0"` is the highest
    /// layer (see [`super::media::SIMULCAST_LAYERS`]).
    ObsSimulcastH264,
}

impl PublisherKind {
    /// The OBS-shaped kinds (no RTX, only mid and rid extensions).
    pub fn is_obs(self) -> bool {
        matches!(
            self,
            PublisherKind::ObsH264 | PublisherKind::ObsSimulcastH264
        )
    }
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
    links: Vec<String>,
    local_addr: SocketAddr,
    shared: Arc<Mutex<PeerReport>>,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: Option<JoinHandle<()>>,
}

/// The client kit's shape and offer for a peer of `role`.
fn client_setup(role: Role) -> (ClientConfig, OfferSpec) {
    let (client, direction) = match role {
        Role::Publisher(PublisherKind::BrowserVp8) => {
            (ClientConfig::browser(VideoCodecs::Vp8), Direction::SendOnly)
        }
        Role::Publisher(_) => (ClientConfig::obs(), Direction::SendOnly),
        Role::Subscriber => (
            ClientConfig::browser(VideoCodecs::Both),
            Direction::RecvOnly,
        ),
    };
    // OBS-style simulcast: RIDs "0", "1", "2" in that order, highest first.
    let simulcast = if role == Role::Publisher(PublisherKind::ObsSimulcastH264) {
        super::media::SIMULCAST_LAYERS
            .iter()
            .map(|l| l.rid.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let offer = OfferSpec {
        simulcast,
        ..OfferSpec::one_each(direction)
    };
    (client, offer)
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
        Self::connect_from([127, 0, 0, 1].into(), base_url, path, token, role).await
    }

    /// [`Peer::connect`] with the peer's UDP socket (and host candidate) on `bind`.
    pub async fn connect_from(
        bind: std::net::IpAddr,
        base_url: &str,
        path: &str,
        token: Option<&str>,
        role: Role,
    ) -> Result<Peer, SignalError> {
        let socket = UdpSocket::bind(SocketAddr::new(bind, 0))
            .await
            .expect("bind a UDP socket");
        let local_addr = socket.local_addr().unwrap();

        let (client, spec) = client_setup(role);
        let made = kit::offer(&client, &spec, local_addr, Instant::now()).expect("offer");
        let (mut rtc, offer, pending) = (made.rtc, made.sdp, made.pending);
        let (audio_mid, video_mid) = (made.audio_mids[0], made.video_mids[0]);

        let fail = |status: Option<u16>, message: String, offer: &str| SignalError {
            status,
            message,
            offer: offer.to_string(),
        };

        let reply = super::post_sdp(base_url, path, &offer, token)
            .await
            .map_err(|e| fail(None, e, &offer))?;
        let created = reply
            .created()
            .map_err(|e| fail(e.status, e.detail, &offer))?;
        let location_header = reply.header("location").unwrap_or_default().to_string();
        let answer = created.answer;
        kit::accept_answer(&mut rtc, pending, &answer).map_err(|e| fail(Some(201), e, &offer))?;

        let mut report = PeerReport::default();
        let publishing = match role {
            Role::Publisher(kind) => {
                let (p, layers) = publishing(&rtc, kind, audio_mid, video_mid);
                report.publisher.layers = layers;
                Some(p)
            }
            Role::Subscriber => None,
        };
        let rids: Vec<Rid> = report
            .publisher
            .layers
            .iter()
            .map(|l| Rid::from(l.rid.as_str()))
            .collect();
        let shared = Arc::new(Mutex::new(report));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();

        let pt_codecs = kit::payload_codecs(&rtc)
            .into_iter()
            .map(|(pt, c)| (*pt, c))
            .collect();

        let streams = publishing.as_ref().map_or(0, |p| p.source.layers());
        let mut client = Client::new(rtc, Instant::now());
        if let Some(p) = publishing {
            client.publish(p);
        }
        let driver = Driver {
            client,
            socket,
            local_addr,
            shared: shared.clone(),
            pt_codecs,
            video_mid,
            rids,
            counted: vec![None; streams],
        };
        let task = tokio::spawn(driver.run(cmd_rx));

        Ok(Peer {
            role,
            base_url: base_url.to_string(),
            token: token.map(str::to_string),
            location: created.location,
            location_header,
            etag: created.etag,
            offer,
            answer,
            answer_content_type: reply.header("content-type").map(str::to_string),
            links: reply
                .headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect(),
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

    /// The `Link` header values of the 201 response, in order.
    pub fn links(&self) -> &[String] {
        &self.links
    }

    /// The target of the first `Link` of the 201 response whose `rel` is
    /// `rel`, resolved against the server.
    pub fn link_with_rel(&self, rel: &str) -> Option<String> {
        self.links
            .iter()
            .flat_map(|h| super::split_links(h))
            .find(|(_, rels)| rels.iter().any(|r| r == rel))
            .map(|(target, _)| super::resolve(&self.base_url, &target))
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

    /// Publishers: write `count` video RTP packets of `len` payload bytes each (a
    /// payload no generator made), in sequence with the real ones.
    pub fn send_oversize(&self, len: usize, count: usize) {
        let _ = self.cmd.send(Cmd::Oversize { len, count });
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

#[cfg(test)]
mod self_check {
    use super::*;

    fn offer_for(role: Role) -> String {
        let (client, spec) = client_setup(role);
        let local = "127.0.0.1:40000".parse().unwrap();
        kit::offer(&client, &spec, local, Instant::now())
            .expect("offer")
            .sdp
    }

    #[test]
    fn obs_shaped_offer_has_only_h264_96_and_opus_111() {
        let sdp = offer_for(Role::Publisher(PublisherKind::ObsH264));
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

    #[test]
    fn obs_simulcast_offer_sends_rids_0_1_2_without_transport_cc() {
        let sdp = offer_for(Role::Publisher(PublisherKind::ObsSimulcastH264));
        let sections = super::super::sdp_sections(&sdp);
        assert_eq!(sections.len(), 2, "{sdp}");
        let video = &sections[1];
        assert!(
            video[0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 96"),
            "{sdp}"
        );
        assert!(video.contains(&"a=simulcast:send 0;1;2"), "{sdp}");
        for rid in ["0", "1", "2"] {
            let line = format!("a=rid:{rid} send");
            assert!(video.iter().any(|l| *l == line), "{line} missing:\n{sdp}");
        }
        assert!(!sections[0].iter().any(|l| l.starts_with("a=simulcast")));
        let extmaps: Vec<&str> = sdp.lines().filter(|l| l.starts_with("a=extmap:")).collect();
        assert!(!extmaps.is_empty(), "{sdp}");
        for l in &extmaps {
            assert!(
                l.ends_with("urn:ietf:params:rtp-hdrext:sdes:mid")
                    || l.ends_with("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
                "unexpected extension {l}:\n{sdp}"
            );
        }
        for absent in ["rtx", "transport-cc", "transport-wide-cc", "ssrc-group:FID"] {
            assert!(!sdp.contains(absent), "offer contains {absent}:\n{sdp}");
        }
    }
}
