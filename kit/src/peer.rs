//! The one sans-IO client peer setup: a str0m `Rtc` in RTP mode configured as a real
//! client of a given shape would be (a browser, OBS), its SDP offer with the m-lines a
//! WHIP publisher or WHEP viewer sends, the answer accepted, and the payload types the
//! answer kept mapped to the kit's [`PayloadCodec`]. The tests' tokio peers, the
//! virtual-time simulation and the load tool all build their `Rtc` here; each keeps only
//! its own driver (a UDP socket and a task, or a simulated link).
//!
//! Never does I/O, never reads the clock (`now` is passed in).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::{Codec, CodecConfig, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt, Simulcast, SimulcastLayer};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Rtc, RtcConfig};

use crate::media::PayloadCodec;

/// The video codecs a client offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodecs {
    /// VP8 only (str0m's payload types, with RTX).
    Vp8,
    /// H.264 constrained baseline, packetization mode 1, profile-level-id 42e01f, at
    /// payload type 108 with RTX at 109, as a browser offers it.
    H264,
    /// VP8 and H.264, as a viewer that takes either.
    Both,
}

/// Which client a peer imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// str0m's standard header extensions, RTX on video, Opus at str0m's payload type.
    Browser,
    /// What OBS sends (see the WHIP notes): H.264 at payload type 96 without RTX,
    /// transport-cc or FIR, Opus (stereo, in-band FEC) at 111, only the `mid` (id 1) and
    /// `rid` (id 2) header extensions, and no RTX SSRCs in the offer. Ignores
    /// [`ClientConfig::video`].
    Obs,
}

/// Which congestion-control feedback a peer's offer negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Feedback {
    /// str0m's defaults: the transport-wide sequence number extension and the
    /// `transport-cc` and `goog-remb` rtcp-fb (the server estimates with TWCC/GCC).
    #[default]
    Default,
    /// Neither transport-cc (no extension, no rtcp-fb) nor `goog-remb`: the server only
    /// gets RTCP receiver reports.
    ReportsOnly,
    /// `goog-remb` but no transport-cc.
    Remb,
}

/// How a client's `Rtc` is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Video codecs offered.
    pub video: VideoCodecs,
    /// The client imitated.
    pub shape: Shape,
    /// Congestion-control feedback ([`Shape::Browser`] only).
    pub feedback: Feedback,
}

impl ClientConfig {
    /// A browser-shaped client offering `video`, with str0m's default feedback.
    pub fn browser(video: VideoCodecs) -> Self {
        ClientConfig {
            video,
            shape: Shape::Browser,
            feedback: Feedback::Default,
        }
    }

    /// An OBS-shaped client.
    pub fn obs() -> Self {
        ClientConfig {
            video: VideoCodecs::H264,
            shape: Shape::Obs,
            feedback: Feedback::Default,
        }
    }

    /// The `Rtc` configuration (RTP mode, Opus first, then video).
    pub fn rtc_config(&self) -> RtcConfig {
        let base = Rtc::builder().set_rtp_mode(true).clear_codecs();
        let cfg = match self.shape {
            Shape::Obs => return obs_config(base),
            Shape::Browser => base.enable_opus(true, false),
        };
        let mut cfg = match self.video {
            VideoCodecs::Vp8 => cfg.enable_vp8(true),
            VideoCodecs::Both => cfg.enable_vp8(true).enable_h264(true),
            VideoCodecs::H264 => {
                let mut cfg = cfg;
                cfg.codec_config()
                    .add_h264(108.into(), Some(109.into()), true, 0x42e01f);
                cfg
            }
        };
        if self.feedback == Feedback::Default {
            return cfg;
        }
        let mut exts = ExtensionMap::empty();
        for (id, ext) in ExtensionMap::standard().iter() {
            if *ext != Extension::TransportSequenceNumber {
                exts.set(id, ext.clone());
            }
        }
        let params: Vec<PayloadParams> = cfg
            .codec_config()
            .params()
            .iter()
            .map(|p| {
                let mut p = *p;
                p.set_fb_transport_cc(false);
                p.set_fb_remb(self.feedback == Feedback::Remb && p.spec().codec.is_video());
                p
            })
            .collect();
        *cfg.codec_config() = CodecConfig::new_from_payload_params(params);
        cfg.set_extension_map(exts)
    }
}

/// Header-extension ids the OBS-shaped client uses.
const OBS_EXT_MID: u8 = 1;
const OBS_EXT_RID: u8 = 2;

fn obs_config(base: RtcConfig) -> RtcConfig {
    let mut cfg = base
        .clear_extension_map()
        .set_extension(OBS_EXT_MID, Extension::RtpMid)
        .set_extension(OBS_EXT_RID, Extension::RtpStreamId);
    let format = FormatParams {
        level_asymmetry_allowed: Some(true),
        packetization_mode: Some(1),
        profile_level_id: Some(0x42e01f),
        ..Default::default()
    };
    let spec = CodecSpec {
        codec: Codec::H264,
        clock_rate: Frequency::NINETY_KHZ,
        channels: None,
        format,
    };
    let mut h264 = PayloadParams::new(96.into(), None, spec);
    h264.set_fb_transport_cc(false);
    h264.set_fb_fir(false);
    let format = FormatParams {
        min_p_time: Some(10),
        use_inband_fec: Some(true),
        stereo: Some(true),
        sprop_stereo: Some(true),
        ..Default::default()
    };
    let spec = CodecSpec {
        codec: Codec::Opus,
        clock_rate: Frequency::FORTY_EIGHT_KHZ,
        channels: Some(2),
        format,
    };
    let mut opus = PayloadParams::new(111.into(), None, spec);
    opus.set_fb_transport_cc(false);
    *cfg.codec_config() = CodecConfig::new_from_payload_params(vec![opus, h264]);
    cfg
}

/// The m-lines of an offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferSpec {
    /// `SendOnly` for a WHIP publisher, `RecvOnly` for a WHEP viewer.
    pub direction: Direction,
    /// Audio m-lines (a publisher sends one; a conference viewer one per slot).
    pub audio: u32,
    /// Video m-lines.
    pub video: u32,
    /// The video m-lines come first (else the audio ones do).
    pub video_first: bool,
    /// RFC 8853 send layers of the first video m-line, by RID in offer order (empty:
    /// no simulcast).
    pub simulcast: Vec<String>,
    /// Data channels opened with the offer (its `m=application`, RFC 8841), in order.
    pub channels: Vec<ChannelSpec>,
}

/// A data channel of an offer (RFC 8831 §6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The label (Switchboard's topic).
    pub label: String,
    /// Ordered and fully reliable; else unordered without retransmissions
    /// (`maxRetransmits: 0`), as for cursors and positions.
    pub reliable: bool,
}

impl ChannelSpec {
    /// str0m's configuration of the channel (in-band DCEP).
    pub fn config(&self) -> ChannelConfig {
        ChannelConfig {
            label: self.label.clone(),
            ordered: self.reliable,
            reliability: if self.reliable {
                Reliability::Reliable
            } else {
                Reliability::MaxRetransmits { retransmits: 0 }
            },
            ..Default::default()
        }
    }
}

impl OfferSpec {
    /// One audio and one video m-line in `direction`, without simulcast.
    pub fn one_each(direction: Direction) -> Self {
        OfferSpec {
            direction,
            audio: 1,
            video: 1,
            video_first: false,
            simulcast: Vec::new(),
            channels: Vec::new(),
        }
    }
}

/// A client's `Rtc` with its offer made, waiting for the answer.
pub struct Offered {
    /// The `Rtc`, with `local` as its host candidate.
    pub rtc: Rtc,
    /// The SDP offer to POST.
    pub sdp: String,
    /// The pending change to accept the answer with ([`accept_answer`]).
    pub pending: SdpPendingOffer,
    /// The audio m-lines, in offer order.
    pub audio_mids: Vec<Mid>,
    /// The video m-lines, in offer order.
    pub video_mids: Vec<Mid>,
    /// The data channels of [`OfferSpec::channels`], in order.
    pub channels: Vec<ChannelId>,
}

/// Build the `Rtc` for `config` with the UDP host candidate `local` and make the offer
/// for `spec`. `now` is the `Rtc`'s start. Errors: no m-line, or a candidate str0m
/// refuses.
pub fn offer(
    config: &ClientConfig,
    spec: &OfferSpec,
    local: SocketAddr,
    now: Instant,
) -> Result<Offered, String> {
    if spec.audio == 0 && spec.video == 0 && spec.channels.is_empty() {
        return Err("an offer needs at least one m-line".into());
    }
    let mut rtc = config.rtc_config().build(now);
    let cand = Candidate::host(local, "udp").map_err(|e| format!("host candidate: {e}"))?;
    rtc.add_local_candidate(cand);
    let mut simulcast = (!spec.simulcast.is_empty()).then(|| {
        let mut s = Simulcast::new();
        for rid in &spec.simulcast {
            s.add_send_layer(SimulcastLayer::new(rid));
        }
        s
    });
    let mut api = rtc.sdp_api();
    let dir = spec.direction;
    let (mut audio_mids, mut video_mids) = (Vec::new(), Vec::new());
    let kinds = [MediaKind::Audio, MediaKind::Video];
    let kinds = if spec.video_first {
        [kinds[1], kinds[0]]
    } else {
        kinds
    };
    for kind in kinds {
        let (count, mids) = match kind {
            MediaKind::Audio => (spec.audio, &mut audio_mids),
            MediaKind::Video => (spec.video, &mut video_mids),
        };
        for _ in 0..count {
            let sim = if kind == MediaKind::Video {
                simulcast.take()
            } else {
                None
            };
            mids.push(api.add_media(kind, dir, None, None, sim));
        }
    }
    let channels = spec
        .channels
        .iter()
        .map(|c| api.add_channel_with_config(c.config()))
        .collect();
    let (offer, pending) = api.apply().ok_or("str0m made no offer")?;
    let mut sdp = offer.to_sdp_string();
    if config.shape == Shape::Obs {
        sdp = strip_rtx_ssrcs(&sdp);
    }
    Ok(Offered {
        rtc,
        sdp,
        pending,
        audio_mids,
        video_mids,
        channels,
    })
}

/// Remove the RTX SSRC lines str0m always declares for video, so the offer looks like
/// one from an encoder that has no RTX at all.
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

/// Accept the server's SDP `answer` to the offer `pending` was made with. Errors: the
/// answer does not parse, or str0m refuses it.
pub fn accept_answer(rtc: &mut Rtc, pending: SdpPendingOffer, answer: &str) -> Result<(), String> {
    let answer =
        SdpAnswer::from_sdp_string(answer).map_err(|e| format!("answer does not parse: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| format!("answer not accepted: {e}"))
}

/// Every payload type the `Rtc` knows that carries a codec of the kit (RTX excluded).
pub fn payload_codecs(rtc: &Rtc) -> HashMap<Pt, PayloadCodec> {
    rtc.codec_config()
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
        .collect()
}

/// The payload type the answer kept for `want` on `mid` (the server's preference
/// first). Errors: the answer dropped the m-line, or kept no payload type of `want`.
pub fn negotiated_pt(rtc: &Rtc, mid: Mid, want: PayloadCodec) -> Result<Pt, String> {
    let codecs = payload_codecs(rtc);
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
#[path = "peer_tests.rs"]
mod tests;
