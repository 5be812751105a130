//! Tests of offer inspection and validation.

use std::net::SocketAddr;

use super::*;

const OBS: &str = include_str!("../../tests/fixtures/obs-offer.sdp");
/// aiortc 1.16's WHEP offer with 3 video and 2 audio recvonly m-lines (balanced bundle
/// policy: its video m-lines share one transport, its audio ones another).
const AIORTC_3V2A: &str = include_str!("../../tests/fixtures/aiortc-whep-3v2a-offer.sdp");

fn offer(lines: &[&str]) -> String {
    let mut s = String::from("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

#[test]
fn reads_obs_offer() {
    let lines = inspect_offer(OBS);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].kind, LineKind::Audio);
    assert_eq!(lines[0].codecs, vec![Codec::Opus]);
    assert_eq!(lines[0].direction, LineDirection::SendOnly);
    assert_eq!(lines[1].kind, LineKind::Video);
    assert_eq!(lines[1].codecs, vec![Codec::H264]);
    assert_eq!(lines[1].mid.as_deref(), Some("1"));
    assert!(validate(SessionKind::Publisher, &lines).is_ok());
    assert_eq!(publisher_video_codec(&lines), Some(Codec::H264));
    // The same offer is not a valid WHEP offer: it sends.
    assert!(matches!(
        validate(SessionKind::Subscriber, &lines),
        Err(JoinError::Unacceptable(_))
    ));
}

#[test]
fn codec_order_follows_the_format_list() {
    let o = offer(&[
        "m=video 9 UDP/TLS/RTP/SAVPF 102 96",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:102 H264/90000",
        "a=rtpmap:103 rtx/90000",
        "a=sendonly",
    ]);
    let lines = inspect_offer(&o);
    assert_eq!(lines[0].codecs, vec![Codec::H264, Codec::Vp8]);
    assert_eq!(publisher_video_codec(&lines), Some(Codec::H264));
}

#[test]
fn refuses_wrong_direction_with_line_number() {
    let o = offer(&[
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "a=inactive",
    ]);
    let err = validate(SessionKind::Publisher, &inspect_offer(&o)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("line 5"), "{msg}");
    assert!(msg.contains("Inactive"), "{msg}");
}

#[test]
fn refuses_unsupported_codecs() {
    let o = offer(&[
        "m=audio 9 UDP/TLS/RTP/SAVPF 0",
        "a=rtpmap:0 PCMU/8000",
        "a=sendonly",
    ]);
    let msg = validate(SessionKind::Publisher, &inspect_offer(&o))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no supported codec"), "{msg}");
}

#[test]
fn refuses_two_video_tracks_for_whip_only() {
    let o = offer(&[
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=rtpmap:96 VP8/90000",
        "a=sendonly",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=rtpmap:96 VP8/90000",
        "a=sendonly",
    ]);
    let msg = validate(SessionKind::Publisher, &inspect_offer(&o))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("line 8"), "{msg}");
    let recv = o.replace("a=sendonly", "a=recvonly");
    assert!(validate(SessionKind::Subscriber, &inspect_offer(&recv)).is_ok());
}

#[test]
fn refuses_empty_offers() {
    assert!(validate(SessionKind::Publisher, &inspect_offer("v=0\r\n")).is_err());
    assert!(validate(SessionKind::Publisher, &inspect_offer("")).is_err());
    let rejected = offer(&["m=video 0 UDP/TLS/RTP/SAVPF 96", "a=rtpmap:96 VP8/90000"]);
    assert!(validate(SessionKind::Publisher, &inspect_offer(&rejected)).is_err());
}

#[test]
fn garbage_never_panics() {
    for s in [
        "m=",
        "m=audio",
        "a=rtpmap:",
        "a=rtpmap:x y",
        "m=video 9 X 1\na=rtpmap:1",
        "\u{0}\u{1}",
    ] {
        let _ = validate(SessionKind::Publisher, &inspect_offer(s));
    }
}

#[test]
fn accept_offer_maps_errors() {
    let now = Instant::now();
    let mut rtc = build_rtc(
        now,
        ice_creds("00000001"),
        &HostCandidates::default(),
        &[Codec::H264],
        None,
    );
    assert!(matches!(
        accept_offer(&mut rtc, "not sdp"),
        Err(JoinError::Malformed(_))
    ));
    let mut rtc = build_rtc(
        now,
        ice_creds("00000001"),
        &HostCandidates::default(),
        &[Codec::H264],
        None,
    );
    let no_fingerprint: String = OBS
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert!(accept_offer(&mut rtc, &no_fingerprint).is_err());
    let addr: SocketAddr = "127.0.0.1:7880".parse().unwrap();
    let mut rtc = build_rtc(
        now,
        ice_creds("00000001"),
        &vec![addr].into(),
        &[Codec::H264],
        None,
    );
    let answer = accept_offer(&mut rtc, OBS).expect("obs offer accepted");
    assert!(answer.contains("a=candidate:"));
    assert!(answer.contains("127.0.0.1 7880 typ host"));
    assert!(answer.contains("a=ice-lite"));
    assert!(answer.contains("a=ice-ufrag:00000001"));
    assert!(answer.contains("H264/90000"));
    assert!(!answer.contains("VP8"));
}

#[test]
fn ice_creds_carry_the_prefix() {
    let c = ice_creds("0000002a");
    assert!(c.ufrag.starts_with("0000002a"));
    assert_eq!(c.ufrag.len(), 16);
    assert!(c.pass.len() >= 22);
    assert_ne!(c.pass, ice_creds("0000002a").pass);
}

#[test]
fn bundle_only_lines_are_live() {
    let o = offer(&[
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "a=sendonly",
        "m=video 0 UDP/TLS/RTP/SAVPF 120",
        "a=bundle-only",
        "a=rtpmap:120 VP8/90000",
        "a=sendonly",
    ]);
    let lines = inspect_offer(&o);
    assert!(!lines[1].port_zero);
    assert_eq!(publisher_video_codec(&lines), Some(Codec::Vp8));
}

#[test]
fn reads_simulcast_rids_in_offer_order() {
    let o = offer(&[
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=rtpmap:96 VP8/90000",
        "a=sendonly",
        "a=rid:0 send",
        "a=rid:1 send",
        "a=rid:2 send",
        "a=simulcast:send 0;1,x;~2",
    ]);
    assert_eq!(inspect_offer(&o)[0].rids, vec!["0", "1", "2"]);
}

/// Every audio/video m-section of an answer (its lines), in order.
fn sections(answer: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    for l in answer.lines() {
        if l.starts_with("m=") {
            out.push(Vec::new());
        }
        if let Some(s) = out.last_mut() {
            s.push(l);
        }
    }
    out
}

/// aiortc reads a bundled transport's candidates from the last m-section that used it:
/// every m-section of the answer must carry the server's candidates and say there are
/// no more, or an aiortc viewer with 2+ video slots never sends a check (issue: it sat
/// in ICE "checking" with the server receiving nothing).
#[test]
fn every_answer_m_section_carries_the_candidates_and_their_end() {
    let now = Instant::now();
    let addrs: Vec<SocketAddr> = vec![
        "127.0.0.1:7880".parse().unwrap(),
        "192.0.2.10:7880".parse().unwrap(),
    ];
    let mut rtc = build_rtc(
        now,
        ice_creds("00000001"),
        &addrs.clone().into(),
        &VIDEO_CODECS,
        None,
    );
    let answer = accept_offer(&mut rtc, AIORTC_3V2A).expect("aiortc offer accepted");
    let secs = sections(&answer);
    assert_eq!(secs.len(), 5, "{answer}");
    let first: Vec<&str> = secs[0]
        .iter()
        .copied()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert_eq!(first.len(), 2, "{answer}");
    for (i, s) in secs.iter().enumerate() {
        let cands: Vec<&str> = s
            .iter()
            .copied()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert_eq!(cands, first, "m-section {i} candidates:\n{answer}");
        assert_eq!(
            s.iter().filter(|l| **l == "a=end-of-candidates").count(),
            1,
            "m-section {i} end-of-candidates:\n{answer}"
        );
    }
    // Still one BUNDLE group with every mid, ICE-lite, one ufrag.
    assert!(answer.contains("a=group:BUNDLE 0 1 2 3 4"));
    assert!(answer.contains("a=ice-lite"));
    assert!(answer.ends_with("\r\n"));
}

#[test]
fn an_answer_without_candidates_is_left_alone() {
    let a = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n";
    assert_eq!(candidates_on_every_line(a), a);
}

/// RFC 6544 §4.5: the answer carries a passive TCP host candidate per address after the
/// UDP ones, with a lower priority, in every m-section.
#[test]
fn answers_carry_passive_tcp_candidates_after_the_udp_ones() {
    let now = Instant::now();
    let candidates = HostCandidates {
        udp: vec!["127.0.0.1:7880".parse().unwrap()],
        tcp: vec!["127.0.0.1:7881".parse().unwrap()],
    };
    let mut rtc = build_rtc(now, ice_creds("00000001"), &candidates, &VIDEO_CODECS, None);
    let answer = accept_offer(&mut rtc, AIORTC_3V2A).expect("aiortc offer accepted");
    for section in &sections(&answer) {
        let cands: Vec<&str> = section
            .iter()
            .copied()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert_eq!(cands.len(), 2, "{answer}");
        assert!(cands[0].contains(" udp ") && cands[0].contains("127.0.0.1 7880 typ host"));
        assert!(
            cands[1].contains(" tcp ")
                && cands[1].contains("127.0.0.1 7881 typ host tcptype passive"),
            "{}",
            cands[1]
        );
        let prio = |c: &str| c.split(' ').nth(3).unwrap().parse::<u32>().unwrap();
        assert!(prio(cands[0]) > prio(cands[1]));
    }
}
