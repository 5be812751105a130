//! One WHIP publisher or WHEP viewer up to its answer: its own UDP socket, its str0m
//! `Rtc` (RTP mode; Opus plus VP8 or H264 for publishers, all three for viewers), the
//! SDP offer (simulcast `q;h;f` send layers for a VP8 publisher; for a viewer one
//! `recvonly` m-line per [`Slots`] entry, audio first; for a data-only session only
//! `m=application` with the [`Topic`] channels), and accepting the answer (payload
//! types the server kept). The task that then drives the `Rtc` is in
//! [`crate::driver`]; the run-wide [`Live`] counters and [`Phase`] commands are here.
//! Never does HTTP.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::media::{Direction, Mid};
use str0m::Rtc;
use switchboard_kit::client::Client;
use switchboard_kit::peer::{self as kit, ClientConfig, OfferSpec, VideoCodecs};
use tokio::net::UdpSocket;

use crate::cli::VideoCodec;
use crate::data::{DataConfig, DataPeer, DataStats, Topic};
use crate::driver::Ready;
use crate::publisher::{publishing, LayerPlan, SentStats};
use switchboard_kit::media::PayloadCodec;
use switchboard_kit::recv::RecvStats;

/// What a peer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// WHIP: sends media.
    Publisher,
    /// WHEP: receives media.
    Viewer,
    /// WHEP without media: data channels only (the `data` scenario).
    Data,
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
    /// What data-only sessions send.
    pub data: DataConfig,
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
    /// Data channels of data-only sessions that opened.
    pub channels_open: AtomicU64,
    /// Data messages str0m took from all data-only sessions.
    pub data_sent: AtomicU64,
    /// Data messages of other participants received (the first time) by all of them.
    pub data_received: AtomicU64,
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
            channels_open: AtomicU64::new(0),
            data_sent: AtomicU64::new(0),
            data_received: AtomicU64::new(0),
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
    /// Data-only sessions start sending messages.
    SendData,
    /// Publishers stop writing media, data-only sessions stop sending; connections stay up.
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
    /// Data-only sessions: what was sent and received.
    pub data: Option<DataStats>,
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
    channels: Vec<ChannelId>,
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
        channels: made.channels,
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
    /// The data channels, in [`Topic::ALL`] order.
    channels: Vec<ChannelId>,
    offer: String,
}

/// Build the `Rtc` for `spec` with the host candidate `local` and make the offer (the
/// client kit's peer setup: a browser-shaped client).
fn make_offer(spec: PeerSpec, cfg: &MediaConfig, local: SocketAddr) -> Result<Made, String> {
    let (client, offer) = match spec.role {
        Role::Publisher => {
            let video = match cfg.codec {
                VideoCodec::Vp8 => VideoCodecs::Vp8,
                VideoCodec::H264 => VideoCodecs::H264,
            };
            let simulcast = if cfg.layers.len() > 1 {
                cfg.layers
                    .iter()
                    .filter_map(|l| l.rid.map(|r| r.to_string()))
                    .collect()
            } else {
                Vec::new()
            };
            let offer = OfferSpec {
                simulcast,
                ..OfferSpec::one_each(Direction::SendOnly)
            };
            (ClientConfig::browser(video), offer)
        }
        Role::Viewer => {
            let offer = OfferSpec {
                audio: spec.slots.audio,
                video: spec.slots.video,
                ..OfferSpec::one_each(Direction::RecvOnly)
            };
            (ClientConfig::browser(VideoCodecs::Both), offer)
        }
        Role::Data => {
            let offer = OfferSpec {
                audio: 0,
                video: 0,
                channels: Topic::ALL.iter().map(|t| t.channel()).collect(),
                ..OfferSpec::one_each(Direction::RecvOnly)
            };
            (ClientConfig::browser(VideoCodecs::Vp8), offer)
        }
    };
    let made = kit::offer(&client, &offer, local, Instant::now())?;
    // A viewer without m-lines of one kind never looks at that kind's mid.
    let first = |m: &[Mid]| m.first().copied().unwrap_or_else(Mid::new);
    Ok(Made {
        video_mid: first(&made.video_mids),
        audio_mid: first(&made.audio_mids),
        rtc: made.rtc,
        pending: made.pending,
        channels: made.channels,
        offer: made.sdp,
    })
}

impl Offered {
    /// Accept the server's `answer`; the peer is then ready to [`run`](Ready::run)
    /// (a freeze is a frame gap above three frame intervals).
    pub fn accept(mut self, answer: &str, cfg: &MediaConfig, live: &Live) -> Result<Ready, String> {
        kit::accept_answer(&mut self.rtc, self.pending, answer)?;
        let codecs = kit::payload_codecs(&self.rtc);
        let mut client = Client::new(self.rtc, Instant::now());
        // Many peers per core: one timeout input per batch of writes.
        client.batch_writes(true);
        if self.spec.role == Role::Publisher {
            let want = match cfg.codec {
                VideoCodec::Vp8 => PayloadCodec::Vp8,
                VideoCodec::H264 => PayloadCodec::H264,
            };
            let rtc = client.rtc_ref();
            let video_pt = kit::negotiated_pt(rtc, self.video_mid, want)?;
            let audio_pt = kit::negotiated_pt(rtc, self.audio_mid, PayloadCodec::Opus)?;
            client.publish(publishing(
                self.spec.participant.unwrap_or(0),
                want,
                cfg.layers.clone(),
                cfg.fps,
                cfg.keyframe_interval,
                cfg.temporal_layers,
                live.epoch,
                ((self.audio_mid, audio_pt), (self.video_mid, video_pt)),
            ));
        }
        let frame_us = 1_000_000 / u64::from(cfg.fps.max(1));
        Ok(Ready {
            client,
            socket: self.socket,
            local: self.local,
            codecs,
            recv: (self.spec.role == Role::Viewer).then(|| RecvStats::new(self.spec.participant)),
            freeze_us: 3 * frame_us,
            data: (self.spec.role == Role::Data).then(|| {
                let me = self.spec.participant.unwrap_or(0);
                DataPeer::new(me, cfg.data, &self.channels)
            }),
            report: PeerReport::default(),
            ice_at: None,
        })
    }
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
            data: DataConfig::default(),
        }
    }

    #[test]
    fn a_viewer_asks_for_its_slots_and_a_publisher_for_one_of_each() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let spec = PeerSpec {
            role: Role::Viewer,
            participant: Some(2),
            slots: Slots { video: 4, audio: 3 },
        };
        let made = make_offer(spec, &cfg(), local).unwrap();
        assert_eq!(made.offer.matches("m=audio").count(), 3);
        assert_eq!(made.offer.matches("m=video").count(), 4);
        assert_eq!(made.offer.matches("a=recvonly").count(), 7);
        // A publisher offers one of each, sendonly, simulcast on the video.
        let spec = PeerSpec {
            role: Role::Publisher,
            ..spec
        };
        let made = make_offer(spec, &cfg(), local).unwrap();
        assert_eq!(made.offer.matches("m=").count(), 2);
        assert!(
            made.offer.contains("a=simulcast:send q;h;f"),
            "{}",
            made.offer
        );
        // A data-only session offers only m=application, with both channels.
        let spec = PeerSpec {
            role: Role::Data,
            participant: Some(0),
            slots: Slots { video: 0, audio: 0 },
        };
        let made = make_offer(spec, &cfg(), local).unwrap();
        assert_eq!(made.offer.matches("m=").count(), 1, "{}", made.offer);
        assert!(made.offer.contains("m=application"), "{}", made.offer);
        assert_eq!(made.channels.len(), 2);
    }
}
