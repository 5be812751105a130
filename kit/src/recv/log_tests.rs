use std::time::{Duration, Instant};

use str0m::rtp::{RtpHeader, Ssrc};

use super::*;
use crate::media::{opus_packet, stream_byte, video_frame, FrameSpec, AUDIO_STREAM};

fn body(stream: u8, counter: u64) -> Body {
    Body {
        stream,
        publisher: 9,
        frame: 0,
        counter,
        send_us: 1_000,
    }
}

fn header(ssrc: u32, ts: u32, marker: bool) -> RtpHeader {
    RtpHeader {
        ssrc: Ssrc::from(ssrc),
        payload_type: 96.into(),
        timestamp: ts,
        marker,
        ..Default::default()
    }
}

#[test]
fn each_packet_is_read_once_into_the_log_of_its_kind() {
    let t0 = Instant::now();
    let mut log = Received::default();
    let key = video_frame(&FrameSpec::new(PayloadCodec::Vp8, true), &[300, 300], |i| {
        body(stream_byte(2, 0), 10 + i as u64)
    });
    for (i, p) in key.iter().enumerate() {
        let h = header(5, 3000, i == 1);
        let at = t0 + Duration::from_millis(i as u64);
        let got = log
            .record_parts(at, Some(PayloadCodec::Vp8), &h, 70 + i as u64, p)
            .unwrap();
        assert_eq!(got.counter, 10 + i as u64);
        assert_eq!(got.layer, 2);
        assert_eq!((got.frame_start, got.keyframe_start), (i == 0, i == 0));
        assert_eq!(
            (got.seq, got.ts, got.marker, got.len),
            (70 + i as u64, 3000, i == 1, 300)
        );
        assert!(got.filler_ok);
    }
    let audio = opus_packet(body(AUDIO_STREAM, 4), 80);
    let got = log
        .record_parts(
            t0,
            Some(PayloadCodec::Opus),
            &header(6, 960, false),
            1,
            &audio,
        )
        .unwrap();
    assert_eq!((got.layer, got.counter, got.ssrc), (0, 4, Ssrc::from(6)));
    assert_eq!(log.video.len(), 2);
    assert_eq!(log.audio.len(), 1);
    assert!(log.corrupt.is_empty());
    assert_eq!(log.unknown, 0);
    assert_eq!(log.video[1].at, t0 + Duration::from_millis(1));
}

#[test]
fn damaged_unreadable_and_unknown_packets_are_counted_apart() {
    let t0 = Instant::now();
    let mut log = Received::default();
    let mut damaged = opus_packet(body(AUDIO_STREAM, 7), 80);
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    // A damaged filler: logged (its header facts are good) and reported as corrupt.
    let got = log
        .record_parts(
            t0,
            Some(PayloadCodec::Opus),
            &header(6, 0, false),
            3,
            &damaged,
        )
        .unwrap();
    assert!(!got.filler_ok);
    assert_eq!(log.audio.len(), 1);
    assert!(matches!(
        log.corrupt[0],
        Corrupt {
            seq: 3,
            error: ParseError::Filler { counter: 7, .. },
            ..
        }
    ));
    // Not from the kit: not logged, reported.
    let err = log.record_parts(
        t0,
        Some(PayloadCodec::Vp8),
        &header(5, 0, true),
        4,
        &[0x10, 1, 2],
    );
    assert!(matches!(err, Err(Some(Corrupt { seq: 4, .. }))));
    assert!(log.video.is_empty());
    assert_eq!(log.corrupt.len(), 2);
    // A payload type of no kit codec: counted only.
    assert!(matches!(
        log.record_parts(t0, None, &header(5, 0, true), 5, &damaged),
        Err(None)
    ));
    assert_eq!(log.unknown, 1);
}
