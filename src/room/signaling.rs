//! SDP glue: inspecting an offer before str0m sees it (so an unacceptable offer gets a
//! precise 422 that names the line), building the `Rtc` for a session (codecs, ICE-lite,
//! credentials, host candidates, RTP mode) and accepting the offer.
//!
//! Never does HTTP; never reads the clock (`now` is passed in).

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::{IceCreds, Rtc};

use super::{JoinError, SessionKind};
use crate::net::HostCandidates;

/// Media kind of an m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `m=audio`
    Audio,
    /// `m=video`
    Video,
    /// `m=application`: data channels (RFC 8841 SCTP over DTLS), relayed by topic.
    Application,
    /// Anything else: ignored.
    Other,
}

/// Direction attribute of an m-line (RFC 8866 §6.7), `sendrecv` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineDirection {
    /// `a=sendrecv`
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

/// What the server needs to know about one m-line of an offer.
#[derive(Debug, Clone)]
pub struct OfferLine {
    /// 1-based line number of the `m=` line in the offer.
    pub line: usize,
    /// Audio, video or other.
    pub kind: LineKind,
    /// `a=mid`, if present.
    pub mid: Option<String>,
    /// Direction.
    pub direction: LineDirection,
    /// Codecs from `a=rtpmap`, in the offer's preference order (the m-line's format list).
    pub codecs: Vec<Codec>,
    /// Simulcast RIDs the offer sends, in `a=simulcast:send` order (RFC 8853 §5.1); the
    /// first alternative of each group, `~` (paused) stripped.
    pub rids: Vec<String>,
    /// Port 0 without `a=bundle-only`: a rejected or stopped m-line. (Port 0 with
    /// `a=bundle-only` is a live m-line inside the BUNDLE group, RFC 8843 §6; Firefox
    /// offers this with `max-bundle`.)
    pub port_zero: bool,
}

impl OfferLine {
    /// An audio or video m-line.
    pub fn is_media(&self) -> bool {
        matches!(self.kind, LineKind::Audio | LineKind::Video)
    }
}

/// Whether the offer has a live `m=application` line (data channels).
pub fn has_data(lines: &[OfferLine]) -> bool {
    lines
        .iter()
        .any(|l| l.kind == LineKind::Application && !l.port_zero)
}

/// Read the m-lines of an SDP offer. Lenient: only what validation needs.
pub fn inspect_offer(sdp: &str) -> Vec<OfferLine> {
    let mut lines: Vec<OfferLine> = Vec::new();
    let mut pt_order: Vec<Vec<u8>> = Vec::new();
    let mut rtpmaps: Vec<Vec<(u8, Codec)>> = Vec::new();
    for (i, raw) in sdp.lines().enumerate() {
        let l = raw.trim_end();
        if let Some(rest) = l.strip_prefix("m=") {
            let mut parts = rest.split_whitespace();
            let kind = match parts.next() {
                Some("audio") => LineKind::Audio,
                Some("video") => LineKind::Video,
                Some("application") => LineKind::Application,
                _ => LineKind::Other,
            };
            let port_zero = parts.next() == Some("0");
            let _proto = parts.next();
            pt_order.push(parts.filter_map(|p| p.parse().ok()).collect());
            rtpmaps.push(Vec::new());
            lines.push(OfferLine {
                line: i + 1,
                kind,
                mid: None,
                direction: LineDirection::SendRecv,
                codecs: Vec::new(),
                rids: Vec::new(),
                port_zero,
            });
            continue;
        }
        let Some(cur) = lines.last_mut() else {
            continue;
        };
        if let Some(list) = l.strip_prefix("a=simulcast:send ") {
            cur.rids = list
                .split_whitespace()
                .next()
                .unwrap_or("")
                .split(';')
                .filter_map(|g| g.split(',').next())
                .map(|r| r.trim_start_matches('~').to_owned())
                .filter(|r| !r.is_empty())
                .collect();
        } else if l == "a=bundle-only" {
            cur.port_zero = false;
        } else if let Some(mid) = l.strip_prefix("a=mid:") {
            cur.mid = Some(mid.trim().to_owned());
        } else if let Some(map) = l.strip_prefix("a=rtpmap:") {
            let mut it = map.splitn(2, ' ');
            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
            let name = it.next().and_then(|n| n.split('/').next());
            if let (Some(pt), Some(codec)) = (pt, name.and_then(codec_by_name)) {
                if let Some(maps) = rtpmaps.last_mut() {
                    maps.push((pt, codec));
                }
            }
        } else {
            cur.direction = match l {
                "a=sendrecv" => LineDirection::SendRecv,
                "a=sendonly" => LineDirection::SendOnly,
                "a=recvonly" => LineDirection::RecvOnly,
                "a=inactive" => LineDirection::Inactive,
                _ => cur.direction,
            };
        }
    }
    for ((line, order), maps) in lines.iter_mut().zip(&pt_order).zip(&rtpmaps) {
        for pt in order {
            if let Some((_, c)) = maps.iter().find(|(p, _)| p == pt) {
                if !line.codecs.contains(c) {
                    line.codecs.push(*c);
                }
            }
        }
    }
    lines
}

/// The codecs the server forwards, by `a=rtpmap` encoding name (case-insensitive,
/// RFC 8866 §6.6).
fn codec_by_name(name: &str) -> Option<Codec> {
    Some(match name.to_ascii_lowercase().as_str() {
        "opus" => Codec::Opus,
        "vp8" => Codec::Vp8,
        "vp9" => Codec::Vp9,
        "h264" => Codec::H264,
        "h265" => Codec::H265,
        "av1" => Codec::Av1,
        _ => return None,
    })
}

/// Video codecs the server forwards, in the order a subscriber's answer lists them.
pub const VIDEO_CODECS: [Codec; 5] = [Codec::Vp8, Codec::H264, Codec::Vp9, Codec::Av1, Codec::H265];

fn codec_list(codecs: &[Codec]) -> String {
    let names: Vec<String> = codecs.iter().map(|c| c.to_string()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Check an offer's m-lines against what a session of `kind` may offer
/// (RFC 9725 §4.2 for WHIP, draft-ietf-wish-whep §4.2 for WHEP).
///
/// Returns the `JoinError::Unacceptable` (422) that names the offending line.
pub fn validate(kind: SessionKind, lines: &[OfferLine]) -> Result<(), JoinError> {
    let media: Vec<&OfferLine> = lines
        .iter()
        .filter(|l| l.is_media() && !l.port_zero)
        .collect();
    if media.is_empty() && kind == SessionKind::Subscriber && has_data(lines) {
        // A WHEP session for data channels only.
        return Ok(());
    }
    if media.is_empty() {
        return Err(JoinError::Unacceptable(
            "the offer has no audio or video m-line".into(),
        ));
    }
    let (mut audio, mut video) = (0, 0);
    for l in &media {
        let ok_dir = match kind {
            SessionKind::Publisher => matches!(
                l.direction,
                LineDirection::SendOnly | LineDirection::SendRecv
            ),
            SessionKind::Subscriber => matches!(
                l.direction,
                LineDirection::RecvOnly | LineDirection::SendRecv
            ),
        };
        if !ok_dir {
            let want = match kind {
                SessionKind::Publisher => "a WHIP offer must send (sendonly or sendrecv)",
                SessionKind::Subscriber => "a WHEP offer must receive (recvonly or sendrecv)",
            };
            return Err(JoinError::Unacceptable(format!(
                "line {}: direction {:?}: {want}",
                l.line, l.direction
            )));
        }
        let supported: &[Codec] = match l.kind {
            LineKind::Audio => {
                audio += 1;
                &[Codec::Opus]
            }
            _ => {
                video += 1;
                &VIDEO_CODECS
            }
        };
        if !l.codecs.iter().any(|c| supported.contains(c)) {
            return Err(JoinError::Unacceptable(format!(
                "line {}: no supported codec (offered: {}; supported: {})",
                l.line,
                codec_list(&l.codecs),
                codec_list(supported)
            )));
        }
    }
    if kind == SessionKind::Publisher && (audio > 1 || video > 1) {
        let l = media
            .iter()
            .filter(|l| {
                l.kind
                    == if audio > 1 {
                        LineKind::Audio
                    } else {
                        LineKind::Video
                    }
            })
            .nth(1)
            .map(|l| l.line)
            .unwrap_or(0);
        return Err(JoinError::Unacceptable(format!(
            "line {l}: a WHIP session publishes at most one audio and one video track"
        )));
    }
    Ok(())
}

/// The video codec a publisher's `Rtc` is configured with: the first one in the offer's
/// preference order that the server forwards. One codec per publisher keeps every
/// subscriber's payload type mapping unambiguous.
pub fn publisher_video_codec(lines: &[OfferLine]) -> Option<Codec> {
    lines
        .iter()
        .filter(|l| l.kind == LineKind::Video && !l.port_zero)
        .flat_map(|l| l.codecs.iter())
        .copied()
        .find(|c| VIDEO_CODECS.contains(c))
}

/// The largest data channel message SCTP accepts, in bytes: the answer's
/// `a=max-message-size` (RFC 8841 §6).
pub const SCTP_MAX_MESSAGE: u32 = 64 * 1024;

/// Build the `Rtc` for a session.
///
/// * RTP mode (we forward packets, never frames), ICE-lite (the server only answers
///   checks; clients with no candidates, like OBS, work through peer-reflexive discovery,
///   RFC 8445 §2.5), our ICE credentials (the ufrag routes STUN to this room), and one
///   host candidate per advertised address and transport (UDP, then passive TCP).
/// * Codecs: Opus, plus `video` — for a publisher the one codec chosen from its offer;
///   for a subscriber the publisher's codec when known, else every codec we forward.
/// * `bwe`: for subscribers, enable str0m's TWCC/GCC send-side estimator starting at this
///   estimate (it drives layer allocation); `None` for publishers.
pub fn build_rtc(
    now: Instant,
    creds: IceCreds,
    candidates: &HostCandidates,
    video: &[Codec],
    bwe: Option<Bitrate>,
) -> Rtc {
    let mut cfg = Rtc::builder()
        .enable_bwe(bwe)
        // Subscribers report egress stats each second: receiver-report loss feeds the
        // fallback estimate when a viewer sends neither TWCC nor REMB.
        .set_stats_interval(bwe.map(|_| Duration::from_secs(1)))
        .set_rtp_mode(true)
        .set_ice_lite(true)
        // OpenSSL's DTLS: RSA client certificates (GStreamer) as well as ECDSA.
        .set_crypto_provider(crate::dtls::crypto_provider())
        .set_local_ice_credentials(creds)
        // a=max-message-size (RFC 8841 §6): clients do not send larger data channel
        // messages, and SCTP reassembles none larger; the relay's own limit is lower.
        .set_sctp_max_message_size(SCTP_MAX_MESSAGE)
        .clear_codecs()
        .enable_opus(true, false);
    for c in video {
        cfg = match c {
            Codec::Vp8 => cfg.enable_vp8(true),
            Codec::Vp9 => cfg.enable_vp9(true),
            Codec::H264 => cfg.enable_h264(true),
            Codec::H265 => cfg.enable_h265(true),
            Codec::Av1 => cfg.enable_av1(true),
            _ => cfg,
        };
    }
    let mut rtc = cfg.build(now);
    for c in candidates.to_str0m() {
        rtc.add_local_candidate(c);
    }
    rtc
}

/// Parse `offer` and accept it on `rtc`, returning the SDP answer text.
///
/// Errors: unparseable SDP → `JoinError::Malformed` (400); str0m refusing a parseable
/// offer (no fingerprint, inconsistent BUNDLE, …) → `JoinError::Unacceptable` (422).
pub fn accept_offer(rtc: &mut Rtc, offer: &str) -> Result<String, JoinError> {
    let offer =
        SdpOffer::from_sdp_string(offer).map_err(|e| JoinError::Malformed(e.to_string()))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| JoinError::Unacceptable(e.to_string()))?;
    Ok(candidates_on_every_line(&answer.to_sdp_string()))
}

/// The answer with the server's host candidates and `a=end-of-candidates` in **every**
/// audio/video m-section, as aiortc and Janus write theirs, instead of in the first one
/// only (str0m's answer).
///
/// Why: a client may read the bundled transport's candidates from any m-section of the
/// BUNDLE group. aiortc (1.16, `bundlePolicy` balanced or max-bundle) takes them from
/// the **last** m-section that used each of its transports; with two or more video
/// slots that one had none, so it never sent a connectivity check (ICE-lite: the server
/// never checks first). RFC 8843 §7.3.1 has the answerer's transport attributes in the
/// tagged m-section; RFC 8839 §5.1 lets every m-section carry candidates, and browsers
/// ignore those of bundled m-sections. `a=end-of-candidates` (RFC 8840 §4.1): the server
/// never trickles, its candidates are all there is.
///
/// An answer with no candidates at all (none configured) is returned unchanged; an
/// m-section that has candidates of its own keeps them.
pub fn candidates_on_every_line(answer: &str) -> String {
    let eol = if answer.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let lines: Vec<&str> = answer.lines().collect();
    // The candidate lines of the first m-section that has any.
    let mut candidates: Vec<&str> = Vec::new();
    let mut in_media = false;
    for l in &lines {
        if l.starts_with("m=") {
            if !candidates.is_empty() {
                break;
            }
            in_media = true;
        } else if in_media && l.starts_with("a=candidate:") {
            candidates.push(l);
        }
    }
    if candidates.is_empty() {
        return answer.to_owned();
    }
    // Split into the session part and m-sections; complete each audio/video section.
    let mut out = String::with_capacity(answer.len() * 2);
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let media = section
            .first()
            .is_some_and(|m| m.starts_with("m=audio") || m.starts_with("m=video"));
        let has_cands = section.iter().any(|l| l.starts_with("a=candidate:"));
        let has_end = section.contains(&"a=end-of-candidates");
        for l in section.iter() {
            out.push_str(l);
            out.push_str(eol);
        }
        if media {
            if !has_cands {
                for c in &candidates {
                    out.push_str(c);
                    out.push_str(eol);
                }
            }
            if !has_end {
                out.push_str("a=end-of-candidates");
                out.push_str(eol);
            }
        }
        section.clear();
    };
    for l in lines {
        if l.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        section.push(l);
    }
    flush(&mut section, &mut out);
    out
}

/// The offer's first m-line with its port set to 9, and that section's `a=mid` value
/// (RFC 8840 §9: where a trickle fragment puts candidates). `None` without either.
pub fn first_media(offer: &str) -> Option<(String, String)> {
    let mut lines = offer.lines().map(str::trim);
    let m = lines.find(|l| l.starts_with("m="))?;
    let mid = lines
        .take_while(|l| !l.starts_with("m="))
        .find_map(|l| l.strip_prefix("a=mid:"))?;
    let mut fields: Vec<&str> = m.split(' ').collect();
    if fields.len() < 3 {
        return None;
    }
    fields[1] = "9";
    Some((fields.join(" "), mid.to_owned()))
}

/// Fresh server ICE credentials whose ufrag starts with the room's key prefix
/// (see [`crate::net::RoomKey`]). ufrag: prefix + 8 random chars; pwd: 24 random chars
/// (RFC 8839 §5.4: at least 4 and 22 ice-chars).
pub fn ice_creds(prefix: &str) -> IceCreds {
    use rand::distr::{Alphanumeric, SampleString};
    let mut rng = rand::rng();
    IceCreds {
        ufrag: format!("{prefix}{}", Alphanumeric.sample_string(&mut rng, 8)),
        pass: Alphanumeric.sample_string(&mut rng, 24),
    }
}

#[cfg(test)]
#[path = "signaling_tests.rs"]
mod tests;
