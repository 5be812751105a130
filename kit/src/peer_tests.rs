use super::*;

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

fn local() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

#[test]
fn a_viewer_offer_has_one_recvonly_mline_per_slot_audio_first() {
    let spec = OfferSpec {
        direction: Direction::RecvOnly,
        audio: 3,
        video: 4,
        video_first: false,
        simulcast: Vec::new(),
        channels: Vec::new(),
    };
    let cfg = ClientConfig::browser(VideoCodecs::Both);
    let made = offer(&cfg, &spec, local(), Instant::now()).unwrap();
    let m = mlines(&made.sdp);
    let kinds: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["audio", "audio", "audio", "video", "video", "video", "video"]
    );
    assert!(m.iter().all(|(_, d)| d == "recvonly"), "{m:?}");
    assert_eq!((made.audio_mids.len(), made.video_mids.len()), (3, 4));
    assert!(made.sdp.contains("VP8/90000") && made.sdp.contains("H264/90000"));
}

#[test]
fn a_simulcast_publisher_offers_its_rids_on_the_video_mline() {
    let spec = OfferSpec {
        simulcast: vec!["q".into(), "h".into(), "f".into()],
        ..OfferSpec::one_each(Direction::SendOnly)
    };
    let cfg = ClientConfig::browser(VideoCodecs::Vp8);
    let made = offer(&cfg, &spec, local(), Instant::now()).unwrap();
    assert_eq!(mlines(&made.sdp).len(), 2);
    assert!(made.sdp.contains("a=simulcast:send q;h;f"), "{}", made.sdp);
    assert!(made.sdp.contains("transport-cc"));
    assert!(!made.sdp.contains("H264"));
}

#[test]
fn an_obs_offer_has_h264_at_96_no_rtx_and_only_mid_and_rid() {
    let made = offer(
        &ClientConfig::obs(),
        &OfferSpec::one_each(Direction::SendOnly),
        local(),
        Instant::now(),
    )
    .unwrap();
    let sdp = &made.sdp;
    assert!(sdp.contains("a=rtpmap:96 H264/90000"), "{sdp}");
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2"), "{sdp}");
    assert!(
        !sdp.contains("rtx/90000") && !sdp.contains("ssrc-group:FID"),
        "{sdp}"
    );
    assert!(
        !sdp.contains("transport-cc") && !sdp.contains("VP8"),
        "{sdp}"
    );
    let exts: Vec<&str> = sdp.lines().filter(|l| l.starts_with("a=extmap:")).collect();
    assert!(
        exts.iter()
            .all(|l| l.contains("sdes:mid") || l.contains("rtp-stream-id")),
        "{exts:?}"
    );
}

#[test]
fn feedback_reports_only_drops_transport_cc_and_remb() {
    for (feedback, twcc, remb) in [
        (Feedback::Default, true, true),
        (Feedback::ReportsOnly, false, false),
        (Feedback::Remb, false, true),
    ] {
        let cfg = ClientConfig {
            feedback,
            ..ClientConfig::browser(VideoCodecs::Vp8)
        };
        let made = offer(
            &cfg,
            &OfferSpec::one_each(Direction::SendOnly),
            local(),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(made.sdp.contains("transport-cc"), twcc, "{feedback:?}");
        assert_eq!(made.sdp.contains("goog-remb"), remb, "{feedback:?}");
        assert_eq!(made.sdp.contains("transport-wide-cc"), twcc, "{feedback:?}");
    }
}

#[test]
fn no_mline_is_an_error_and_payload_codecs_name_every_codec() {
    let spec = OfferSpec {
        audio: 0,
        video: 0,
        ..OfferSpec::one_each(Direction::RecvOnly)
    };
    let cfg = ClientConfig::browser(VideoCodecs::Both);
    assert!(offer(&cfg, &spec, local(), Instant::now()).is_err());
    let made = offer(
        &cfg,
        &OfferSpec::one_each(Direction::RecvOnly),
        local(),
        Instant::now(),
    )
    .unwrap();
    let codecs: std::collections::HashSet<PayloadCodec> =
        payload_codecs(&made.rtc).into_values().collect();
    assert_eq!(codecs.len(), 3);
}

#[test]
fn video_first_puts_the_video_mlines_first() {
    let spec = OfferSpec {
        audio: 1,
        video: 2,
        video_first: true,
        ..OfferSpec::one_each(Direction::RecvOnly)
    };
    let cfg = ClientConfig::browser(VideoCodecs::Vp8);
    let made = offer(&cfg, &spec, local(), Instant::now()).unwrap();
    let kinds: Vec<String> = mlines(&made.sdp).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["video", "video", "audio"]);
}

#[test]
fn data_channels_make_an_application_mline_even_without_media() {
    let spec = OfferSpec {
        audio: 0,
        video: 0,
        channels: vec![
            ChannelSpec {
                label: "chat".into(),
                reliable: true,
            },
            ChannelSpec {
                label: "pos".into(),
                reliable: false,
            },
        ],
        ..OfferSpec::one_each(Direction::RecvOnly)
    };
    let cfg = ClientConfig::browser(VideoCodecs::Vp8);
    let made = offer(&cfg, &spec, local(), Instant::now()).unwrap();
    let kinds: Vec<String> = mlines(&made.sdp).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["application"]);
    assert!(made.sdp.contains("webrtc-datachannel"), "{}", made.sdp);
    assert_eq!(made.channels.len(), 2);
    let pos = spec.channels[1].config();
    assert!(!pos.ordered);
    assert_eq!(
        pos.reliability,
        Reliability::MaxRetransmits { retransmits: 0 }
    );
}
