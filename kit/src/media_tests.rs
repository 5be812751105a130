use super::*;

fn body(i: usize) -> Body {
    Body {
        stream: stream_byte(2, 1),
        publisher: 3,
        frame: 7,
        counter: 100 + i as u64,
        send_us: 123_456,
    }
}

#[test]
fn vp8_frames_of_both_descriptors_round_trip_and_match_str0m() {
    let ext = Vp8Descriptor {
        picture_id: 0x1234,
        tl0_pic_idx: 9,
        tid: 1,
        layer_sync: true,
        key_idx: 3,
    };
    for vp8 in [None, Some(ext)] {
        for key in [true, false] {
            let spec = FrameSpec {
                vp8,
                size: (1280, 720),
                ..FrameSpec::new(PayloadCodec::Vp8, key)
            };
            let sizes = packet_sizes(PayloadCodec::Vp8, 5000, 1);
            let pkts = video_frame(&spec, &sizes, body);
            assert_eq!(pkts.len(), 5);
            for (i, p) in pkts.iter().enumerate() {
                let parsed = verify(PayloadCodec::Vp8, p).unwrap();
                assert_eq!(parsed.body, body(i));
                assert_eq!(parsed.frame_start, i == 0);
                assert_eq!(parsed.starts_keyframe, key && i == 0);
                assert_eq!(str0m::format::detect_vp8_keyframe(p), key && i == 0);
                assert_eq!(stream_layer(parsed.body.stream), Some(2));
            }
        }
    }
}

#[test]
fn h264_keyframe_is_stap_a_then_fu_a_idr() {
    let sizes = packet_sizes(PayloadCodec::H264, 300, 3);
    let spec = FrameSpec::new(PayloadCodec::H264, true);
    let pkts = video_frame(&spec, &sizes, body);
    assert_eq!(pkts.len(), 3);
    assert!(str0m::format::detect_h264_nalu(&pkts[0], 7));
    assert!(str0m::format::detect_h264_keyframe(&pkts[1]));
    assert_eq!(pkts[1][1] & 0xc0, 0x80, "FU-A start");
    assert_eq!(pkts[2][1] & 0xc0, 0x40, "FU-A end");
    assert_eq!(codec::h264_nal_types(&pkts[0]), vec![7, 8, 6]);
    for (i, p) in pkts.iter().enumerate() {
        let parsed = verify(PayloadCodec::H264, p).unwrap();
        assert_eq!(parsed.body, body(i));
        assert_eq!(parsed.starts_keyframe, i < 2);
        assert_eq!(parsed.frame_start, i < 2);
    }
    let delta = video_frame(&FrameSpec::new(PayloadCodec::H264, false), &sizes, body);
    let first = verify(PayloadCodec::H264, &delta[0]).unwrap();
    assert!(!first.starts_keyframe && first.frame_start);
    assert!(!verify(PayloadCodec::H264, &delta[1]).unwrap().frame_start);
    assert!(!str0m::format::detect_h264_keyframe(&delta[0]));
}

#[test]
fn opus_round_trips_and_garbage_is_an_error() {
    let b = Body {
        stream: AUDIO_STREAM,
        publisher: 0x0102_0304,
        frame: 1,
        counter: 1,
        send_us: 5,
    };
    let p = opus_packet(b, 80);
    assert_eq!(p.len(), 80);
    assert_eq!(verify(PayloadCodec::Opus, &p).unwrap().body, b);
    assert_eq!(stream_layer(b.stream), None);
    assert_eq!(
        parse(PayloadCodec::Opus, &p[..40]),
        Err(ParseError::Length {
            declared: 80,
            present: 40
        })
    );
    assert!(parse(PayloadCodec::Vp8, &[]).is_err());
    assert!(parse(PayloadCodec::H264, &[0x78, 0xff]).is_err());
    assert_eq!(
        parse(PayloadCodec::H264, &[0x1e, 0]),
        Err(ParseError::Codec)
    );
    assert_eq!(
        parse(PayloadCodec::Opus, &[0xfc; 40]),
        Err(ParseError::NoBody)
    );
}

#[test]
fn a_changed_filler_byte_fails_verify_but_not_parse() {
    let sizes = [600, 600];
    let mut p = video_frame(&FrameSpec::new(PayloadCodec::Vp8, false), &sizes, body).remove(1);
    let n = p.len();
    p[n - 10] ^= 0x01;
    assert!(parse(PayloadCodec::Vp8, &p).is_ok());
    assert!(matches!(
        verify(PayloadCodec::Vp8, &p),
        Err(ParseError::Filler { counter: 101, .. })
    ));
    p[n - 10] ^= 0x01;
    p.pop();
    assert!(matches!(
        verify(PayloadCodec::Vp8, &p),
        Err(ParseError::Length { .. })
    ));
}

#[test]
fn sizes_respect_limits() {
    assert_eq!(
        packet_sizes(PayloadCodec::Vp8, 100, 1),
        vec![min_packet_len(PayloadCodec::Vp8).max(100)]
    );
    let s = packet_sizes(PayloadCodec::Vp8, 6250, 1);
    assert!(s.iter().all(|&l| l <= MAX_PAYLOAD) && s.len() == 6);
    assert_eq!(packet_sizes(PayloadCodec::H264, 10, 2).len(), 2);
    assert_eq!(
        stream_byte(20, 3),
        0xe3,
        "a layer past 14 never reads as audio"
    );
}
