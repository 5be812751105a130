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
//! per-kind figures in a [`super::report::KindReport`]. The loop itself is
//! in [`super::driver`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::format::{Codec, CodecConfig, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Direction, Frequency, MediaKind};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::driver::{Cmd, Driver, MediaGen};
use super::media::RecvCodec;
use super::report::PeerReport;
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
