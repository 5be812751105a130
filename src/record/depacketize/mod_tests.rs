//! Tests of the depacketizer driver (frame boundaries, loss, key frame discipline,
//! timestamps, bounds) and the never-panic properties of every codec. The codec files'
//! tests use the helpers here.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;

/// A packet; the sequence number does not matter to a depacketizer.
pub(super) fn packet(timestamp: u32, marker: bool, payload: &[u8]) -> Packet {
    Packet {
        seq: 0,
        timestamp,
        marker,
        payload: Arc::from(payload),
    }
}

/// Pushes one packet and collects its outputs.
pub(super) fn push(
    d: &mut Depacketizer,
    timestamp: u32,
    marker: bool,
    payload: &[u8],
) -> Vec<Output> {
    d.push(&packet(timestamp, marker, payload)).collect()
}

/// The one frame in `outputs` (after an optional config), else a test failure.
pub(super) fn only_frame(outputs: &[Output]) -> &Frame {
    let frames: Vec<&Frame> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 1, "{outputs:?}");
    frames[0]
}

/// The drop reasons in `outputs`.
pub(super) fn drops(outputs: &[Output]) -> Vec<DropReason> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Dropped(r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// The configs in `outputs`.
pub(super) fn configs(outputs: &[Output]) -> Vec<CodecConfig> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Config(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- VP8 packets for the driver

/// A VP8 frame's first payload: descriptor `|X=0|S=1|PID=0|`, then a key frame (640×480,
/// RFC 6386 §9.1: frame tag with P=0, start code, sizes) or a delta frame tag, then `extra`.
fn vp8_first(key: bool, extra: &[u8]) -> Vec<u8> {
    let mut p = vec![0x10];
    if key {
        p.extend_from_slice(&[0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    } else {
        p.extend_from_slice(&[0x31, 0x02, 0x00]);
    }
    p.extend_from_slice(extra);
    p
}

/// A later VP8 payload of a frame: descriptor with S=0, then `data`.
fn vp8_next(data: &[u8]) -> Vec<u8> {
    [&[0x00][..], data].concat()
}

fn vp8() -> Depacketizer {
    Depacketizer::new(CodecKind::Vp8, 0).expect("VP8 is supported")
}

const VP8_640X480: CodecConfig = CodecConfig::Vp8 {
    width: 640,
    height: 480,
};

// ---------------------------------------------------------------- construction, labels

#[test]
fn construction_by_codec_kind() {
    for kind in [
        CodecKind::Vp8,
        CodecKind::Vp9,
        CodecKind::H264,
        CodecKind::Av1,
    ] {
        let d = Depacketizer::new(kind, 0).expect("video codec");
        assert_eq!(d.kind(), kind);
        assert_eq!(d.max_frame_size(), MAX_VIDEO_FRAME);
        assert!(d.needs_keyframe());
        assert_eq!(d.config(), None);
    }
    for kind in [CodecKind::H265, CodecKind::Other] {
        assert_eq!(
            Depacketizer::new(kind, 2).err(),
            Some(NewError::UnsupportedCodec(kind))
        );
    }
    for channels in [0, 3, 255] {
        assert_eq!(
            Depacketizer::new(CodecKind::Opus, channels).err(),
            Some(NewError::UnsupportedChannels(channels))
        );
    }
    let opus = Depacketizer::new(CodecKind::Opus, 1).expect("mono Opus");
    assert_eq!(opus.max_frame_size(), MAX_AUDIO_FRAME);
    assert!(!opus.needs_keyframe());
}

#[test]
fn drop_reason_labels_are_distinct_snake_case() {
    let all = [
        DropReason::Malformed,
        DropReason::Unsupported,
        DropReason::TooLarge,
        DropReason::Loss,
        DropReason::WaitingForKeyframe,
        DropReason::MissingConfig,
        DropReason::AfterFrameEnd,
        DropReason::Incomplete,
        DropReason::Empty,
    ];
    let mut labels: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
    for label in &labels {
        assert!(
            label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{label}"
        );
    }
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), all.len());
}

// ---------------------------------------------------------------- timestamps

#[test]
fn timestamp_extension_across_wrap_and_backwards() {
    let mut x = Extender::default();
    assert_eq!(x.extend(0xffff_ff00), 0xffff_ff00);
    assert_eq!(x.extend(0xffff_ffff), 0xffff_ffff);
    assert_eq!(x.extend(0x0000_0100), 0x1_0000_0100); // wrapped forward
    assert_eq!(x.extend(0xffff_fff0), 0xffff_fff0); // a little backwards, before the wrap
    assert_eq!(x.extend(0x0000_0200), 0x1_0000_0200);
    assert_eq!(x.extend(0x8000_0100), 0x1_8000_0100); // +2^31 - 256: still forward
    assert_eq!(x.extend(0xffff_0000), 0x1_ffff_0000);
    assert_eq!(x.extend(0x0000_0300), 0x2_0000_0300);
    assert_eq!(x.extend(0x8000_0400), 0x1_8000_0400); // 2^31 - 0x100 back: backwards
    let mut y = Extender::default();
    assert_eq!(y.extend(10), 10);
    assert_eq!(y.extend(0xffff_fff0), 0); // would be −26: clamped at 0
    assert_eq!(y.extend(20), 20);
}

#[test]
fn frame_timestamps_are_extended() {
    let mut d = Depacketizer::new(CodecKind::Opus, 2).expect("Opus");
    let mut timestamps = Vec::new();
    for ts in [0xffff_f880u32, 0xffff_fc40, 0x0000_0000, 0x0000_03c0] {
        for out in d.push(&packet(ts, false, &[0xfc, 0x01])) {
            if let Output::Frame(f) = out {
                timestamps.push(f.timestamp);
            }
        }
    }
    assert_eq!(
        timestamps,
        [0xffff_f880, 0xffff_fc40, 0x1_0000_0000, 0x1_0000_03c0]
    );
}

// ---------------------------------------------------------------- Opus

#[test]
fn opus_every_packet_is_a_key_frame() {
    let mut d = Depacketizer::new(CodecKind::Opus, 2).expect("Opus");
    let out = push(&mut d, 960, false, &[0xfc, 0xff, 0xfe]);
    assert_eq!(
        out,
        [
            Output::Config(CodecConfig::Opus { channels: 2 }),
            Output::Frame(Frame {
                timestamp: 960,
                keyframe: true,
                data: vec![0xfc, 0xff, 0xfe]
            })
        ]
    );
    let out = push(&mut d, 1920, true, &[0x78]);
    assert_eq!(only_frame(&out).data, [0x78]);
    assert!(configs(&out).is_empty(), "config announced once");
    // An empty payload is not an Opus packet; the next packet is recorded again.
    assert_eq!(
        drops(&push(&mut d, 2880, false, &[])),
        [DropReason::Malformed]
    );
    assert!(!d.needs_keyframe());
    // The same timestamp twice: the second is a stray.
    assert_eq!(only_frame(&push(&mut d, 3840, false, &[1])).timestamp, 3840);
    assert_eq!(
        drops(&push(&mut d, 3840, false, &[2])),
        [DropReason::AfterFrameEnd]
    );
    d.lost();
    assert!(!d.needs_keyframe());
    assert_eq!(only_frame(&push(&mut d, 4800, false, &[3])).data, [3]);
    // Over 64 KiB.
    let big = vec![0u8; MAX_AUDIO_FRAME + 1];
    assert_eq!(
        drops(&push(&mut d, 5760, false, &big)),
        [DropReason::TooLarge]
    );
    assert!(d.buffered() <= MAX_AUDIO_FRAME);
}

// ---------------------------------------------------------------- frame boundaries (VP8)

#[test]
fn first_frame_is_a_key_frame_with_its_config() {
    let mut d = vp8();
    assert_eq!(
        drops(&push(&mut d, 1000, true, &vp8_first(false, &[1, 2]))),
        [DropReason::WaitingForKeyframe]
    );
    let out = push(&mut d, 4000, true, &vp8_first(true, &[7]));
    assert_eq!(out.first(), Some(&Output::Config(VP8_640X480)));
    let frame = only_frame(&out);
    assert!(frame.keyframe);
    assert_eq!(frame.timestamp, 4000);
    assert!(!d.needs_keyframe());
    assert_eq!(d.config(), Some(&VP8_640X480));
    let out = push(&mut d, 7000, true, &vp8_first(false, &[8]));
    assert!(!only_frame(&out).keyframe);
    assert!(configs(&out).is_empty());
}

#[test]
fn a_new_timestamp_ends_a_frame_without_marker() {
    let mut d = vp8();
    assert!(push(&mut d, 100, false, &vp8_first(true, &[1])).is_empty());
    assert!(push(&mut d, 100, false, &vp8_next(&[2])).is_empty());
    // The marker never came; the next frame's first packet ends the key frame, and this
    // one-packet frame with its marker ends too: two frames from one push.
    let out = push(&mut d, 200, true, &vp8_first(false, &[3]));
    let frames: Vec<&Frame> = out
        .iter()
        .filter_map(|o| match o {
            Output::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 2, "{out:?}");
    assert_eq!((frames[0].timestamp, frames[0].keyframe), (100, true));
    assert_eq!(frames[0].data.last(), Some(&2));
    assert_eq!((frames[1].timestamp, frames[1].keyframe), (200, false));
    assert_eq!(out.first(), Some(&Output::Config(VP8_640X480)));
    // flush ends a frame whose marker never came.
    assert!(push(&mut d, 300, false, &vp8_first(false, &[4])).is_empty());
    let out: Vec<Output> = d.flush().collect();
    assert_eq!(only_frame(&out).timestamp, 300);
    assert_eq!(d.flush().count(), 0);
}

#[test]
fn loss_mid_frame_drops_until_the_next_key_frame() {
    let mut d = vp8();
    push(&mut d, 100, true, &vp8_first(true, &[]));
    assert!(push(&mut d, 200, false, &vp8_first(false, &[1])).is_empty());
    d.lost();
    assert!(d.needs_keyframe());
    // The rest of the broken frame, then whole delta frames: all dropped, one reason each.
    assert_eq!(
        drops(&push(&mut d, 200, true, &vp8_next(&[2]))),
        [DropReason::Loss]
    );
    assert_eq!(
        drops(&push(&mut d, 300, true, &vp8_first(false, &[3]))),
        [DropReason::WaitingForKeyframe]
    );
    assert!(d.needs_keyframe());
    let out = push(&mut d, 400, true, &vp8_first(true, &[4]));
    assert!(only_frame(&out).keyframe);
    assert!(configs(&out).is_empty(), "same size: no new config");
    assert!(!d.needs_keyframe());
}

#[test]
fn loss_between_frames_and_a_key_frame_missing_its_start() {
    let mut d = vp8();
    push(&mut d, 100, true, &vp8_first(true, &[]));
    d.lost();
    // The key frame's first packet was lost: its second packet does not start a frame.
    assert_eq!(
        drops(&push(&mut d, 200, true, &vp8_next(&[1]))),
        [DropReason::WaitingForKeyframe]
    );
    // A key frame, then packets with its timestamp after its marker: strays, whose data
    // the recorded frame lacks.
    assert!(only_frame(&push(&mut d, 300, true, &vp8_first(true, &[]))).keyframe);
    assert_eq!(
        drops(&push(&mut d, 300, false, &vp8_next(&[2]))),
        Vec::<DropReason>::new(),
        "a stray's reason comes when its frame ends"
    );
    assert_eq!(
        drops(&push(&mut d, 300, true, &vp8_next(&[3]))),
        [DropReason::AfterFrameEnd]
    );
    assert!(
        d.needs_keyframe(),
        "the recorded frame lacked the stray's data"
    );
}

#[test]
fn malformed_packet_drops_its_frame_once() {
    let mut d = vp8();
    push(&mut d, 100, true, &vp8_first(true, &[]));
    assert!(push(&mut d, 200, false, &vp8_first(false, &[])).is_empty());
    assert!(push(&mut d, 200, false, &[0x80]).is_empty()); // X=1, extension byte missing
    assert!(push(&mut d, 200, false, &vp8_next(&[1])).is_empty());
    assert_eq!(
        drops(&push(&mut d, 200, true, &vp8_next(&[2]))),
        [DropReason::Malformed]
    );
    assert!(d.needs_keyframe());
}

#[test]
fn frames_over_the_bound_are_dropped_and_memory_stays_bounded() {
    let mut d = vp8();
    let chunk = vec![0x55u8; 1200];
    assert!(push(&mut d, 100, false, &vp8_first(true, &chunk)).is_empty());
    // 3600 × 1200 bytes is over 4 MiB; the reason comes at the frame's end.
    for _ in 0..3600 {
        assert!(push(&mut d, 100, false, &vp8_next(&chunk)).is_empty());
        assert!(d.buffered() <= MAX_VIDEO_FRAME);
    }
    assert_eq!(d.buffered(), 0, "the broken frame's bytes are released");
    assert_eq!(
        drops(&push(&mut d, 100, true, &vp8_next(&chunk))),
        [DropReason::TooLarge]
    );
    // Exactly at the bound is fine.
    let first = vp8_first(true, &[]);
    let fill = vec![0u8; MAX_VIDEO_FRAME - (first.len() - 1)];
    push(&mut d, 200, false, &first);
    let out = push(&mut d, 200, true, &vp8_next(&fill));
    assert_eq!(only_frame(&out).data.len(), MAX_VIDEO_FRAME);
}

#[test]
fn a_new_key_frame_size_announces_a_new_config() {
    let mut d = vp8();
    push(&mut d, 100, true, &vp8_first(true, &[]));
    // 1280×720 key frame.
    let key720 = [
        0x10, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02,
    ];
    let out = push(&mut d, 200, true, &key720);
    let new = CodecConfig::Vp8 {
        width: 1280,
        height: 720,
    };
    assert_eq!(out.first(), Some(&Output::Config(new.clone())));
    assert!(only_frame(&out).keyframe);
    assert_eq!(d.config(), Some(&new));
}

// ---------------------------------------------------------------- every codec, hostile input

const KINDS: [CodecKind; 5] = [
    CodecKind::Vp8,
    CodecKind::Vp9,
    CodecKind::H264,
    CodecKind::Av1,
    CodecKind::Opus,
];

/// Checks what a depacketizer output: the first frame is a key frame with a config
/// announced before it, every frame is within the bound, H.264 samples are AVCC and AV1
/// samples are sized OBUs without temporal delimiters.
#[derive(Default)]
pub(super) struct Checker {
    config: Option<CodecConfig>,
    frames: usize,
}

impl Checker {
    pub(super) fn check(&mut self, d: &Depacketizer, output: &Output) {
        assert!(d.buffered() <= d.max_frame_size());
        match output {
            Output::Config(c) => self.config = Some(c.clone()),
            Output::Frame(f) => {
                assert!(self.config.is_some(), "a frame before any config");
                if self.frames == 0 {
                    assert!(f.keyframe, "the first frame is a key frame");
                }
                self.frames += 1;
                assert!(!f.data.is_empty());
                assert!(f.data.len() <= d.max_frame_size());
                match d.kind() {
                    CodecKind::H264 => check_avcc(&f.data),
                    CodecKind::Av1 => check_obus(&f.data),
                    _ => {}
                }
            }
            Output::Dropped(_) => {}
        }
    }
}

/// 4-byte big-endian length, NAL unit; no empty unit, no AUD, filler or packetization type.
pub(super) fn check_avcc(mut data: &[u8]) {
    while !data.is_empty() {
        let len = u32::from_be_bytes(data[..4].try_into().expect("length prefix")) as usize;
        let nal = &data[4..4 + len];
        assert!(!nal.is_empty());
        assert_eq!(nal[0] & 0x80, 0, "forbidden bit");
        assert!(
            matches!(nal[0] & 0x1f, 1..=8 | 10 | 11 | 13..=23),
            "{:x}",
            nal[0]
        );
        data = &data[4 + len..];
    }
}

/// OBUs with `obu_has_size_field` = 1 and a LEB128 size that spans exactly the OBU; no
/// temporal delimiter, tile list or padding.
pub(super) fn check_obus(mut data: &[u8]) {
    while !data.is_empty() {
        let header = data[0];
        assert_eq!(header & 0x80, 0, "forbidden bit");
        assert_ne!(header & 0x02, 0, "has_size_field");
        assert!(!matches!((header >> 3) & 0x0f, 2 | 8 | 15), "{header:x}");
        let header_len = if header & 0x04 != 0 { 2 } else { 1 };
        let (size, n) = crate::codec::bits::read_leb128(&data[header_len..]).expect("size field");
        data = &data[header_len + n + size..];
    }
}

/// A packet step for the property test: `(flags, payload)`; flags bit 0 = marker, bit 1 =
/// report a loss first, bits 2–3 = timestamp step (0, 1, 3000 or backwards 1).
fn steps() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..48)),
        0..64,
    )
}

fn run_steps(kind: CodecKind, first_byte: Option<u8>, steps: &[(u8, Vec<u8>)]) {
    let mut d = Depacketizer::new(kind, 2).expect("supported");
    let mut check = Checker::default();
    let mut ts = 0u32;
    for (flags, payload) in steps {
        if flags & 2 != 0 {
            d.lost();
        }
        ts = match (flags >> 2) & 3 {
            0 => ts,
            1 => ts.wrapping_add(1),
            2 => ts.wrapping_add(3000),
            _ => ts.wrapping_sub(1),
        };
        let mut payload = payload.clone();
        if let (Some(b), Some(p)) = (first_byte, payload.first_mut()) {
            *p = b;
        }
        for out in d.push(&packet(ts, flags & 1 != 0, &payload)) {
            check.check(&d, &out);
        }
    }
    for out in d.flush() {
        check.check(&d, &out);
    }
    assert_eq!(d.config(), check.config.as_ref());
}

proptest! {
    #[test]
    fn random_packets_never_panic(kind in 0..KINDS.len(), steps in steps()) {
        run_steps(KINDS[kind], None, &steps);
    }

    /// Random bytes behind plausible first bytes: VP8 S=1 descriptors, VP9 B=1 ones,
    /// H.264 STAP-A / FU-A / slices, AV1 aggregation headers.
    #[test]
    fn random_packets_with_likely_headers_never_panic(
        kind in 0..4usize,
        header in prop::sample::select(vec![
            0x10u8, 0x90, 0x00, 0x08, 0x88, 0x8c, 0xda, 0x18, 0x78, 0x7c, 0x65, 0x67, 0x41,
            0x10, 0x20, 0x30, 0x58, 0x98, 0xd0, 0x50,
        ]),
        steps in steps(),
    ) {
        run_steps(KINDS[kind], Some(header), &steps);
    }
}
