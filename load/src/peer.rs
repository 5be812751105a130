//! One WHIP publisher or WHEP viewer up to its answer: its own UDP socket, its str0m
//! `Rtc` (RTP mode; Opus plus VP8 or H264 for publishers, all three for viewers), the
//! SDP offer (simulcast `q;h;f` send layers for a VP8 publisher; for a viewer one
//! `recvonly` m-line per [`Slots`] entry, audio first), and accepting the answer
//! (payload types the server kept). The task that then drives the `Rtc` is in
//! [`crate::driver`]; the run-wide [`Live`] counters and [`Phase`] commands are here.
//! Never does HTTP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Simulcast, SimulcastLayer};
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;

use crate::cli::VideoCodec;
use crate::driver::{Ready, Sender};
use crate::media::PayloadCodec;
use crate::publisher::{Generator, LayerPlan, SentStats};
use crate::stats::RecvStats;
/// str0m's H264 payload types for constrained baseline, packetization mode 1 (+RTX).
const H264_PT: (u8, u8) = (108, 109);

/// What a peer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// WHIP: sends media.
    Publisher,
    /// WHEP: receives media.
    Viewer,
}

/// The m-lines of a session's offer: a publisher sends one of each; a conference
/// viewer asks for one WHEP slot per m-line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    /// Video m-lines.
    pub video: u32,
    /// Audio m-lines.
    pub audio: u32,
}

impl Slots {
    /// One audio and one video m-line: a publisher, or a plain WHEP viewer.
    pub const ONE: Slots = Slots { video: 1, audio: 1 };
}

/// What a session is: from the scenario's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// Publisher or viewer.
    pub role: Role,
    /// A publisher's id (written into every payload); a viewer's own publisher, whose
    /// media it must never receive (`None`: it publishes nothing).
    pub participant: Option<u32>,
    /// The m-lines of the offer.
    pub slots: Slots,
}

/// The media a publisher sends (from the command line).
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Video codec.
    pub codec: VideoCodec,
    /// Simulcast layers (or one).
    pub layers: Vec<LayerPlan>,
    /// Frames per second.
    pub fps: u32,
    /// Periodic keyframe interval.
    pub keyframe_interval: Duration,
    /// VP8 temporal layers (1..=3).
    pub temporal_layers: u8,
}

/// Run-wide figures every task updates, for the progress display and the window.
#[derive(Debug)]
pub struct Live {
    /// The tool's time origin: send and receive stamps are microseconds since it.
    pub epoch: Instant,
    /// The measurement window is open.
    pub measuring: AtomicBool,
    /// RTP packets received by all viewers.
    pub viewer_packets: AtomicU64,
    /// RTP payload bytes received by all viewers.
    pub viewer_bytes: AtomicU64,
    /// RTP packets written by all publishers.
    pub sent_packets: AtomicU64,
}

impl Live {
    /// Counters at zero, the epoch now.
    pub fn new() -> Self {
        Live {
            epoch: Instant::now(),
            measuring: AtomicBool::new(false),
            viewer_packets: AtomicU64::new(0),
            viewer_bytes: AtomicU64::new(0),
            sent_packets: AtomicU64::new(0),
        }
    }

    /// Microseconds since the epoch at `t`.
    pub fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }
}

/// Commands to every task at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Connect and stream.
    Run,
    /// Publishers stop writing media; connections stay up.
    StopMedia,
    /// Close the `Rtc` (DTLS close_notify) and end.
    Close,
}

/// When a peer connected.
#[derive(Clone, Copy, Debug)]
pub struct Connected {
    /// ICE connectivity established.
    pub ice_at: Option<Instant>,
    /// DTLS done, SRTP keys set (str0m's `Event::Connected`).
    pub at: Instant,
}

/// What a task reports when it ends.
#[derive(Debug, Default)]
pub struct PeerReport {
    /// Viewers: what was received.
    pub recv: Option<RecvStats>,
    /// Publishers: what was sent.
    pub sent: Option<SentStats>,
    /// The `Rtc` failed or died before it was told to close.
    pub error: Option<String>,
    /// Times ICE went to disconnected.
    pub ice_disconnects: u64,
}

/// A peer with its offer made, waiting for the answer.
pub struct Offered {
    spec: PeerSpec,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: SdpPendingOffer,
    video_mid: Mid,
    audio_mid: Mid,
    /// The SDP offer to POST.
    pub offer: String,
}

/// Bind a socket on `ip`, build the `Rtc` for `spec` and make the offer.
pub async fn offer(spec: PeerSpec, cfg: &MediaConfig, ip: IpAddr) -> Result<Offered, String> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| format!("bind UDP on {ip}: {e}"))?;
    let local = socket
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    let made = make_offer(spec, cfg, local)?;
    Ok(Offered {
        spec,
        rtc: made.rtc,
        socket,
        local,
        pending: made.pending,
        video_mid: made.video_mid,
        audio_mid: made.audio_mid,
        offer: made.offer,
    })
}

/// An `Rtc` with its offer, before any socket exists.
struct Made {
    rtc: Rtc,
    pending: SdpPendingOffer,
    /// The first video and audio m-lines (a publisher's only ones).
    video_mid: Mid,
    audio_mid: Mid,
    offer: String,
}

/// Build the `Rtc` for `spec` with the host candidate `local` and make the offer.
fn make_offer(spec: PeerSpec, cfg: &MediaConfig, local: SocketAddr) -> Result<Made, String> {
    let mut rtc = build_rtc(spec.role, cfg.codec);
    let cand = Candidate::host(local, "udp").map_err(|e| format!("host candidate: {e}"))?;
    rtc.add_local_candidate(cand);
    let (dir, slots) = match spec.role {
        Role::Publisher => (Direction::SendOnly, Slots::ONE),
        Role::Viewer => (Direction::RecvOnly, spec.slots),
    };
    if slots.video == 0 && slots.audio == 0 {
        return Err("an offer needs at least one m-line".into());
    }
    let simulcast = (spec.role == Role::Publisher && cfg.layers.len() > 1).then(|| {
        let mut s = Simulcast::new();
        for rid in cfg.layers.iter().filter_map(|l| l.rid) {
            s.add_send_layer(SimulcastLayer::new(&rid));
        }
        s
    });
    let mut api = rtc.sdp_api();
    let audio: Vec<Mid> = (0..slots.audio)
        .map(|_| api.add_media(MediaKind::Audio, dir, None, None, None))
        .collect();
    let mut simulcast = simulcast;
    let video: Vec<Mid> = (0..slots.video)
        .map(|_| api.add_media(MediaKind::Video, dir, None, None, simulcast.take()))
        .collect();
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| "str0m made no offer".to_string())?;
    // A viewer without m-lines of one kind never looks at that kind's mid.
    let first = |m: &[Mid]| m.first().copied().unwrap_or_else(Mid::new);
    Ok(Made {
        video_mid: first(&video),
        audio_mid: first(&audio),
        rtc,
        pending,
        offer: offer.to_sdp_string(),
    })
}

fn build_rtc(role: Role, codec: VideoCodec) -> Rtc {
    let mut cfg = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false);
    match (role, codec) {
        (Role::Publisher, VideoCodec::Vp8) => cfg = cfg.enable_vp8(true),
        (Role::Publisher, VideoCodec::H264) => {
            cfg.codec_config()
                .add_h264(H264_PT.0.into(), Some(H264_PT.1.into()), true, 0x42e01f);
        }
        (Role::Viewer, _) => cfg = cfg.enable_vp8(true).enable_h264(true),
    }
    cfg.build(Instant::now())
}

impl Offered {
    /// Accept the server's `answer`; the peer is then ready to [`run`](Ready::run)
    /// (a freeze is a frame gap above three frame intervals).
    pub fn accept(mut self, answer: &str, cfg: &MediaConfig, live: &Live) -> Result<Ready, String> {
        let answer = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| format!("answer does not parse: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|e| format!("answer not accepted: {e}"))?;
        let codecs: HashMap<Pt, PayloadCodec> = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .filter_map(|p| {
                let c = match p.spec().codec {
                    Codec::Vp8 => PayloadCodec::Vp8,
                    Codec::H264 => PayloadCodec::H264,
                    Codec::Opus => PayloadCodec::Opus,
                    _ => return None,
                };
                Some((p.pt(), c))
            })
            .collect();
        let publisher = match self.spec.role {
            Role::Viewer => None,
            Role::Publisher => {
                let want = match cfg.codec {
                    VideoCodec::Vp8 => PayloadCodec::Vp8,
                    VideoCodec::H264 => PayloadCodec::H264,
                };
                let video_pt = negotiated_pt(&self.rtc, self.video_mid, &codecs, want)?;
                let audio_pt =
                    negotiated_pt(&self.rtc, self.audio_mid, &codecs, PayloadCodec::Opus)?;
                let gen = Generator::new(
                    self.spec.participant.unwrap_or(0),
                    want,
                    cfg.layers.clone(),
                    cfg.fps,
                    cfg.keyframe_interval,
                    cfg.temporal_layers,
                    live.epoch,
                );
                Some(Sender {
                    gen,
                    video_pt,
                    audio_pt,
                })
            }
        };
        let frame_us = 1_000_000 / u64::from(cfg.fps.max(1));
        Ok(Ready {
            rtc: self.rtc,
            socket: self.socket,
            local: self.local,
            video_mid: self.video_mid,
            audio_mid: self.audio_mid,
            codecs,
            publisher,
            recv: (self.spec.role == Role::Viewer).then(|| RecvStats::new(self.spec.participant)),
            freeze_us: 3 * frame_us,
            report: PeerReport::default(),
            ice_at: None,
        })
    }
}

/// The payload type the answer kept for `want` on `mid` (the server's preference first).
fn negotiated_pt(
    rtc: &Rtc,
    mid: Mid,
    codecs: &HashMap<Pt, PayloadCodec>,
    want: PayloadCodec,
) -> Result<Pt, String> {
    let media = rtc
        .media(mid)
        .ok_or_else(|| format!("answer dropped m-line {mid}"))?;
    media
        .remote_pts()
        .iter()
        .copied()
        .find(|pt| codecs.get(pt) == Some(&want))
        .ok_or_else(|| format!("answer has no {want:?} on m-line {mid}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::layer_plan;

    fn cfg() -> MediaConfig {
        MediaConfig {
            codec: VideoCodec::Vp8,
            layers: layer_plan(true, 1_500_000),
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            temporal_layers: 1,
        }
    }

    /// The `m=` lines of an offer, as (kind, direction) in order.
    fn mlines(sdp: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for line in sdp.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                let kind = m.split(' ').next().unwrap_or_default().to_string();
                out.push((kind, String::new()));
            } else if let Some(last) = out.last_mut() {
                let dir = line.strip_prefix("a=");
                if let Some(d @ ("recvonly" | "sendonly" | "sendrecv" | "inactive")) = dir {
                    last.1 = d.to_string();
                }
            }
        }
        out
    }

    #[test]
    fn viewer_offer_has_one_recvonly_mline_per_slot() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let spec = PeerSpec {
            role: Role::Viewer,
            participant: Some(2),
            slots: Slots { video: 4, audio: 3 },
        };
        let made = make_offer(spec, &cfg(), local).unwrap();
        let m = mlines(&made.offer);
        let kinds: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            ["audio", "audio", "audio", "video", "video", "video", "video"]
        );
        assert!(m.iter().all(|(_, d)| d == "recvonly"), "{m:?}");
        // A publisher offers one of each, sendonly, simulcast on the video.
        let spec = PeerSpec {
            role: Role::Publisher,
            participant: Some(2),
            slots: Slots { video: 4, audio: 3 },
        };
        let made = make_offer(spec, &cfg(), local).unwrap();
        assert_eq!(mlines(&made.offer).len(), 2);
        assert!(
            made.offer.contains("a=simulcast:send q;h;f"),
            "{}",
            made.offer
        );
    }
}
