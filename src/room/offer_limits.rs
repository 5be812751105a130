//! Count limits on an SDP offer (RFC 8866), checked in one linear pass over its text
//! before anything parses it for real: the API calls [`check`] before the offer reaches
//! a room's task, so a crafted offer costs a bounded, small amount of CPU and never a
//! room's time. (The body's byte size is limited before this, by the HTTP layer.)
//!
//! Each limit is far above what real clients send — Chromium's 12-slot conference offer
//! has about 900 lines, about 40 payload types per video m-line and its candidates on
//! the first m-line; OBS sends 2 m-lines with up to 4 RIDs — and far below what makes
//! str0m's parser or our inspection slow (tried: 400k payload types, 40k `a=rtpmap`,
//! 30k candidates, 5,000 m-lines, 20k RIDs all took seconds or were accepted).
//!
//! The same pass refuses an offer that gives one payload type two codec configurations
//! on different m-lines (RFC 8843 §9.1 forbids it within a BUNDLE group, and every
//! offer to this server is bundled): str0m 0.25 locks a payload type to the first and
//! then panics ("Pt locked multiple times") on the second, inside the room's task —
//! also when the first was an `a=rtpmap` for a type its m-line does not even list.
//! Found by the `offer` fuzz target (both cases).
//! Pure; never panics.

/// Most lines in an offer: 64 KiB of body at 16 bytes a line.
pub const MAX_LINES: usize = 4_096;
/// Longest line, bytes. The longest real lines (`a=fingerprint`, `a=fmtp` of H.264 or
/// AV1, `a=candidate` with extensions, `a=extmap`) stay under 300 bytes.
pub const MAX_LINE_LEN: usize = 2_048;
/// Most m-lines (RFC 8866 §5.14): a 49-tile grid of video slots plus audio, with room.
pub const MAX_M_LINES: usize = 64;
/// Most simulcast RIDs per m-line (RFC 8851): browsers send 3, OBS at most 4.
pub const MAX_RIDS: usize = 4;
/// Most payload types on one m-line: the 7-bit RTP payload type space (RFC 3550 §5.1)
/// holds 128, and dynamic types are 96..=127 plus a few static ones.
pub const MAX_PAYLOAD_TYPES: usize = 128;
/// Most attribute lines (`a=`) of one m-line: Chromium writes about 150 for a video
/// m-line with every codec and its RTX, RED and FEC.
pub const MAX_ATTRIBUTES: usize = 512;
/// Most ICE candidates per m-line (RFC 8839 §5.1): a host with many interfaces, UDP and
/// TCP, host and server-reflexive and relay, stays well under this.
pub const MAX_CANDIDATES: usize = 32;

/// The limit an offer broke, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferLimit {
    /// More than [`MAX_LINES`] lines.
    #[error("the offer has more than {MAX_LINES} lines")]
    Lines,
    /// A line longer than [`MAX_LINE_LEN`] bytes.
    #[error("line {0}: longer than {MAX_LINE_LEN} bytes")]
    LineLength(usize),
    /// More than [`MAX_M_LINES`] m-lines.
    #[error("line {0}: more than {MAX_M_LINES} m-lines")]
    MLines(usize),
    /// An m-line with more than [`MAX_PAYLOAD_TYPES`] payload types.
    #[error("line {0}: more than {MAX_PAYLOAD_TYPES} payload types on one m-line")]
    PayloadTypes(usize),
    /// An m-line with more than [`MAX_RIDS`] `a=rid` lines.
    #[error("line {0}: more than {MAX_RIDS} RIDs (a=rid) on one m-line")]
    Rids(usize),
    /// An m-line with more than [`MAX_CANDIDATES`] candidates.
    #[error("line {0}: more than {MAX_CANDIDATES} candidates on one m-line")]
    Candidates(usize),
    /// An m-line (or the session part) with more than [`MAX_ATTRIBUTES`] attributes.
    #[error("line {0}: more than {MAX_ATTRIBUTES} attribute lines in one section")]
    Attributes(usize),
    /// A payload type whose `a=rtpmap`/`a=fmtp` differ from an earlier m-line's (RFC 8843
    /// §9.1): the m-line ending at `line`, and the payload type.
    #[error(
        "line {line}: payload type {pt} has another codec configuration (a=rtpmap, a=fmtp) \
         than on an earlier m-line (RFC 8843 §9.1)"
    )]
    PayloadTypeConflict {
        /// The line where the conflicting m-line ends.
        line: usize,
        /// The payload type.
        pt: u8,
    },
}

/// A payload type's codec configuration on one m-line: its `a=rtpmap` and `a=fmtp`
/// values (trimmed), when present.
type PtConfig<'a> = (Option<&'a str>, Option<&'a str>);

/// The payload types of the m-line being read and their configurations, checked against
/// those of earlier m-lines when it ends.
struct PayloadTypes<'a> {
    /// Payload types (0..=127) listed on the current m-line.
    listed: u128,
    current: [PtConfig<'a>; 128],
    /// The configuration each payload type had on the first m-line that listed it.
    first: [Option<PtConfig<'a>>; 128],
}

impl<'a> PayloadTypes<'a> {
    fn new() -> Self {
        PayloadTypes {
            listed: 0,
            current: [(None, None); 128],
            first: [None; 128],
        }
    }

    /// A new m-line whose format tokens are `formats`.
    fn start<'f>(&mut self, formats: impl Iterator<Item = &'f str>) {
        self.listed = 0;
        self.current = [(None, None); 128];
        for pt in formats.filter_map(pt_of) {
            self.listed |= 1 << pt;
        }
    }

    /// An attribute line of the current m-line.
    fn attribute(&mut self, line: &'a str) {
        let (value, is_rtpmap) = if let Some(v) = line.strip_prefix("a=rtpmap:") {
            (v, true)
        } else if let Some(v) = line.strip_prefix("a=fmtp:") {
            (v, false)
        } else {
            return;
        };
        let (pt, rest) = value.split_once(' ').unwrap_or((value, ""));
        let Some(pt) = pt_of(pt) else {
            return;
        };
        let slot = &mut self.current[pt as usize];
        if is_rtpmap {
            slot.0 = Some(rest.trim());
        } else {
            slot.1 = Some(rest.trim());
        }
    }

    /// The current m-line ended at `line`: each payload type it lists or configures must
    /// have the configuration it had on the first m-line that listed or configured it.
    fn end(&mut self, line: usize) -> Result<(), OfferLimit> {
        let same = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        for pt in 0..128u8 {
            let now = self.current[pt as usize];
            // A payload type counts when the m-line lists it or configures it: str0m
            // also locks an `a=rtpmap` whose type the m-line does not list.
            if self.listed & (1 << pt) == 0 && now == (None, None) {
                continue;
            }
            match self.first[pt as usize] {
                None => self.first[pt as usize] = Some(now),
                Some(was) if same(was.0, now.0) && same(was.1, now.1) => {}
                Some(_) => return Err(OfferLimit::PayloadTypeConflict { line, pt }),
            }
        }
        self.listed = 0;
        Ok(())
    }
}

/// A payload type token (RFC 3550 §5.1: 7 bits), `None` when it is not one.
fn pt_of(token: &str) -> Option<u8> {
    token.parse::<u8>().ok().filter(|&pt| pt < 128)
}

/// Check an offer against every count limit in one pass. `Err` names the limit and the
/// (1-based) line where it was passed; the API answers it with 422.
pub fn check(sdp: &str) -> Result<(), OfferLimit> {
    let mut m_lines = 0;
    let (mut attributes, mut rids, mut candidates) = (0, 0, 0);
    let mut pts = PayloadTypes::new();
    let mut last = 0;
    for (i, line) in sdp.lines().enumerate() {
        let n = i + 1;
        last = n;
        if n > MAX_LINES {
            return Err(OfferLimit::Lines);
        }
        if line.len() > MAX_LINE_LEN {
            return Err(OfferLimit::LineLength(n));
        }
        if let Some(rest) = line.strip_prefix("m=") {
            m_lines += 1;
            if m_lines > MAX_M_LINES {
                return Err(OfferLimit::MLines(n));
            }
            // `m=<media> <port> <proto> <fmt> ...`: formats from the fourth token on.
            if rest
                .split_ascii_whitespace()
                .skip(3)
                .nth(MAX_PAYLOAD_TYPES)
                .is_some()
            {
                return Err(OfferLimit::PayloadTypes(n));
            }
            pts.end(n - 1)?;
            pts.start(rest.split_ascii_whitespace().skip(3));
            (attributes, rids, candidates) = (0, 0, 0);
            continue;
        }
        if !line.starts_with("a=") {
            continue;
        }
        attributes += 1;
        if attributes > MAX_ATTRIBUTES {
            return Err(OfferLimit::Attributes(n));
        }
        pts.attribute(line);
        if line.starts_with("a=rid:") {
            rids += 1;
            if rids > MAX_RIDS {
                return Err(OfferLimit::Rids(n));
            }
        } else if line.starts_with("a=candidate:") {
            candidates += 1;
            if candidates > MAX_CANDIDATES {
                return Err(OfferLimit::Candidates(n));
            }
        }
    }
    pts.end(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBS: &str = include_str!("../../tests/fixtures/obs-offer.sdp");

    fn offer_with(section: &str) -> String {
        format!("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n{section}")
    }

    #[test]
    fn real_offers_pass() {
        assert_eq!(check(OBS), Ok(()));
        // A conference grid: 9 video and 3 audio slots of a browser's size.
        let mut s = String::new();
        for m in 0..12 {
            s += "m=video 9 UDP/TLS/RTP/SAVPF";
            for pt in 96..136 {
                s += &format!(" {pt}");
            }
            s += &format!("\r\na=mid:{m}\r\na=recvonly\r\n");
            for pt in 96..136 {
                s += &format!("a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} nack\r\n");
            }
            for c in 0..8 {
                s += &format!("a=candidate:{c} 1 udp 2122260223 10.0.0.{c} 5000 typ host\r\n");
            }
        }
        assert_eq!(check(&offer_with(&s)), Ok(()));
    }

    #[test]
    fn each_limit_is_named_with_its_line() {
        let many_m = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(MAX_M_LINES + 1);
        assert_eq!(check(&offer_with(&many_m)), Err(OfferLimit::MLines(69)));

        let pts: String = (0..=MAX_PAYLOAD_TYPES).map(|p| format!(" {p}")).collect();
        let m = format!("m=video 9 UDP/TLS/RTP/SAVPF{pts}\r\n");
        assert_eq!(check(&offer_with(&m)), Err(OfferLimit::PayloadTypes(5)));

        let rids = "a=rid:x send\r\n".repeat(MAX_RIDS + 1);
        let m = format!("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n{rids}");
        assert_eq!(check(&offer_with(&m)), Err(OfferLimit::Rids(10)));

        let cands = "a=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\n".repeat(MAX_CANDIDATES + 1);
        let m = format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n{cands}");
        assert_eq!(check(&offer_with(&m)), Err(OfferLimit::Candidates(38)));

        let attrs = "a=rtpmap:96 VP8/90000\r\n".repeat(MAX_ATTRIBUTES + 1);
        let m = format!("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n{attrs}");
        assert_eq!(
            check(&offer_with(&m)),
            Err(OfferLimit::Attributes(6 + MAX_ATTRIBUTES))
        );

        let long = format!("a=fmtp:96 {}\r\n", "x".repeat(MAX_LINE_LEN));
        assert_eq!(check(&offer_with(&long)), Err(OfferLimit::LineLength(5)));

        let lines = "b=AS:1\r\n".repeat(MAX_LINES);
        assert_eq!(check(&offer_with(&lines)), Err(OfferLimit::Lines));
    }

    #[test]
    fn a_payload_type_keeps_one_configuration_across_m_lines() {
        let h264 = |fmtp: &str| {
            format!(
                "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:96 VP8/90000\r\n\
                 a=rtpmap:102 H264/90000\r\na=fmtp:102 {fmtp}\r\n"
            )
        };
        let same = h264("packetization-mode=1;profile-level-id=42e01f");
        assert_eq!(check(&offer_with(&same.repeat(3))), Ok(()));
        // The fuzzer's input: one byte of the second m-line's fmtp changed.
        let other = h264("packetization-mode=1?profile-level-id=42e01f");
        assert_eq!(
            check(&offer_with(&format!("{same}{other}"))),
            Err(OfferLimit::PayloadTypeConflict { line: 12, pt: 102 })
        );
        // An fmtp on one m-line and none on the other, and another codec, also conflict.
        let bare = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert_eq!(
            check(&offer_with(&format!("{same}{bare}"))),
            Err(OfferLimit::PayloadTypeConflict { line: 10, pt: 102 })
        );
        let vp9 = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP9/90000\r\n";
        assert_eq!(
            check(&offer_with(&format!("{same}{vp9}"))),
            Err(OfferLimit::PayloadTypeConflict { line: 10, pt: 96 })
        );
        // Letter case of the encoding name does not matter.
        let lower = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 vp8/90000\r\n";
        assert_eq!(check(&offer_with(&format!("{same}{lower}"))), Ok(()));
        // A type configured but not listed counts too (str0m locks its rtpmap): an audio
        // m-line's stray H.264 102 without fmtp conflicts with the video m-line's.
        let stray = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:102 H264/90000\r\n";
        assert_eq!(
            check(&offer_with(&format!("{stray}{same}"))),
            Err(OfferLimit::PayloadTypeConflict { line: 10, pt: 102 })
        );
    }

    #[test]
    fn limits_reset_per_m_line() {
        // 4 RIDs and 32 candidates on each of two m-lines is fine.
        let section = format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n{}{}",
            "a=rid:x send\r\n".repeat(MAX_RIDS),
            "a=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\n".repeat(MAX_CANDIDATES)
        );
        assert_eq!(check(&offer_with(&section.repeat(2))), Ok(()));
    }

    #[test]
    fn never_panics_on_odd_text() {
        for s in [
            "",
            "m=",
            "m=video",
            "a=",
            "\u{0}\u{ffff}m=x",
            "m=\r\na=rid:\r\n",
        ] {
            let _ = check(s);
        }
    }
}
