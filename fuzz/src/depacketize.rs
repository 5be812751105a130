//! Target `depacketize`: the recorder's depacketizers (`record::depacketize`) on hostile
//! packet streams: VP8, VP9, H.264 and AV1 payload formats and headers, frame boundaries,
//! loss and key frame waits, timestamp extension.
//!
//! Input: `[codec: u8]`, then packets `[flags: u8][len: u8][len bytes]` (a short last one
//! takes the rest). `codec % 5` picks VP8, VP9, H.264, AV1 or Opus (Opus with 1 channel
//! when `codec & 8`, else 2). Per packet, `flags`: bit 0 the marker bit; bit 1 a loss is
//! reported first (`lost`); bit 2 the stream is flushed first; bits 3–5 the timestamp step:
//! 0, +1, +3000, −1, +960, −3000, +2³¹ − 1, +2³¹ + 1.
//!
//! Checked: no panic; the frame in progress never holds more than the bound; a frame is
//! never empty nor over the bound; the first frame is a key frame, announced by a config;
//! H.264 samples are AVCC (4-byte lengths that tile the sample, no delimiter or filler
//! units); AV1 samples are OBUs with size fields that tile the sample, without temporal
//! delimiters, tile lists or padding; the last config announced is `config()`.

use switchboard::codec::CodecKind;
use switchboard::record::depacketize::{Depacketizer, Output};
use switchboard::record::{CodecConfig, Packet};

const KINDS: [CodecKind; 5] = [
    CodecKind::Vp8,
    CodecKind::Vp9,
    CodecKind::H264,
    CodecKind::Av1,
    CodecKind::Opus,
];

const STEPS: [u32; 8] = [
    0,
    1,
    3000,
    u32::MAX, // −1
    960,
    u32::MAX - 2999, // −3000
    0x7fff_ffff,
    0x8000_0001,
];

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&codec, mut rest)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(codec % 5)];
    let channels = if codec & 8 != 0 { 1 } else { 2 };
    let Ok(mut d) = Depacketizer::new(kind, channels) else {
        panic!("{kind:?} with {channels} channels is supported");
    };
    let mut check = Check::default();
    let mut timestamp = 0u32;
    let mut seq = 0u64;
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        if flags & 2 != 0 {
            d.lost();
        }
        if flags & 4 != 0 {
            for output in d.flush() {
                check.output(&d, output);
            }
        }
        timestamp = timestamp.wrapping_add(STEPS[usize::from((flags >> 3) & 7)]);
        seq += 1;
        let packet = Packet {
            seq,
            timestamp,
            marker: flags & 1 != 0,
            payload: payload.into(),
        };
        for output in d.push(&packet) {
            check.output(&d, output);
        }
        assert!(d.buffered() <= d.max_frame_size(), "over the bound");
    }
    for output in d.flush() {
        check.output(&d, output);
    }
    assert_eq!(
        d.config(),
        check.config.as_ref(),
        "config() is the last announced"
    );
}

#[derive(Default)]
struct Check {
    config: Option<CodecConfig>,
    frames: u64,
}

impl Check {
    fn output(&mut self, d: &Depacketizer, output: Output) {
        assert!(d.buffered() <= d.max_frame_size(), "over the bound");
        let frame = match output {
            Output::Config(config) => {
                self.config = Some(config);
                return;
            }
            Output::Dropped(reason) => {
                assert!(!reason.as_str().is_empty());
                return;
            }
            Output::Frame(frame) => frame,
        };
        assert!(self.config.is_some(), "a frame before its config");
        assert!(
            self.frames > 0 || frame.keyframe,
            "the first frame is a key frame"
        );
        self.frames += 1;
        assert!(!frame.data.is_empty(), "an empty frame");
        assert!(
            frame.data.len() <= d.max_frame_size(),
            "a frame over the bound"
        );
        match d.kind() {
            CodecKind::H264 => check_avcc(&frame.data),
            CodecKind::Av1 => check_obus(&frame.data),
            _ => {}
        }
    }
}

/// 4-byte big-endian length, NAL unit, to the end; no empty unit, forbidden bit, access
/// unit delimiter (9), filler (12) or packetization type (0, 24–31).
fn check_avcc(mut data: &[u8]) {
    while !data.is_empty() {
        let Some((len, rest)) = data.split_first_chunk::<4>() else {
            panic!("a truncated length prefix");
        };
        let len = u32::from_be_bytes(*len) as usize;
        let Some(nal) = rest.get(..len) else {
            panic!("a length past the sample");
        };
        let Some(&header) = nal.first() else {
            panic!("an empty NAL unit");
        };
        assert_eq!(header & 0x80, 0, "forbidden bit");
        assert!(
            matches!(header & 0x1f, 1..=8 | 10 | 11 | 13..=23),
            "NAL unit type {}",
            header & 0x1f
        );
        data = &rest[len..];
    }
}

/// OBU header with `obu_has_size_field` = 1, LEB128 size (AV1 spec §4.10.5), payload, to
/// the end; no temporal delimiter (2), tile list (8) or padding (15).
fn check_obus(mut data: &[u8]) {
    while let Some(&header) = data.first() {
        assert_eq!(header & 0x80, 0, "forbidden bit");
        assert_ne!(header & 0x02, 0, "no size field");
        let obu_type = (header >> 3) & 0x0f;
        assert!(!matches!(obu_type, 2 | 8 | 15), "OBU type {obu_type}");
        let header_len = if header & 0x04 != 0 { 2 } else { 1 };
        let mut at = header_len;
        let mut size = 0usize;
        for i in 0..8 {
            let Some(&byte) = data.get(at) else {
                panic!("a truncated OBU size");
            };
            at += 1;
            size |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                break;
            }
            assert!(i < 7, "an OBU size over 8 bytes");
        }
        let Some(rest) = data.get(at + size..) else {
            panic!("an OBU size past the sample");
        };
        data = rest;
    }
}
