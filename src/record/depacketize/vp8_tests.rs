//! VP8 depacketization (RFC 7741 §4): descriptors of every shape, partitions split over
//! packets, key frame headers, loss.

use super::super::tests::{drops, only_frame, push};
use super::super::{CodecConfig, Depacketizer, DropReason, Output};
use crate::codec::CodecKind;

/// RFC 6386 §9.1 key frame start: the 3-byte little-endian frame tag 0x002a50 (bit 0 P=0,
/// bits 1–3 version 0, bit 4 show_frame 1, bits 5–23 first partition size 0x152), start
/// code 9d 01 2a, width 640 (0x0280 LE), height 480 (0x01e0 LE), scale bits 0.
const KEY_640X480: [u8; 10] = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
/// A delta frame tag: the same with P=1.
const DELTA: [u8; 3] = [0x51, 0x2a, 0x00];

/// X=1 S=1 PID=0; I L T K set; M=1, PictureID 0x1abc; TL0PICIDX 7; TID 1, Y=1, KEYIDX 0x1f.
const FULL_START: [u8; 6] = [0x90, 0xf0, 0x9a, 0xbc, 0x07, 0x7f];
/// The same without S (a later packet of partition 0).
const FULL_CONT: [u8; 6] = [0x80, 0xf0, 0x9a, 0xbc, 0x07, 0x7f];
/// S=1 PID=1: partition 1 starts here.
const FULL_PART1: [u8; 6] = [0x91, 0xf0, 0x9a, 0xbc, 0x07, 0x7f];

fn vp8() -> Depacketizer {
    Depacketizer::new(CodecKind::Vp8, 0).expect("VP8")
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn key_frame_partitions_over_three_packets() {
    let mut d = vp8();
    let p1 = cat(&[&FULL_START, &KEY_640X480, &[0xa1, 0xa2]]);
    let p2 = cat(&[&FULL_CONT, &[0xb1, 0xb2, 0xb3]]);
    let p3 = cat(&[&FULL_PART1, &[0xc1]]);
    assert!(push(&mut d, 90_000, false, &p1).is_empty());
    assert!(push(&mut d, 90_000, false, &p2).is_empty());
    let out = push(&mut d, 90_000, true, &p3);
    assert_eq!(
        out[0],
        Output::Config(CodecConfig::Vp8 {
            width: 640,
            height: 480
        })
    );
    let frame = only_frame(&out);
    assert!(frame.keyframe);
    assert_eq!(frame.timestamp, 90_000);
    assert_eq!(
        frame.data,
        cat(&[&KEY_640X480, &[0xa1, 0xa2, 0xb1, 0xb2, 0xb3, 0xc1]])
    );
}

#[test]
fn every_descriptor_shape_is_skipped() {
    let shapes: [&[u8]; 6] = [
        &[0x10],                   // no extension
        &[0x90, 0x80, 0x05],       // 7-bit PictureID
        &[0x90, 0x80, 0x81, 0x02], // 15-bit PictureID
        &[0x90, 0x40, 0x09],       // TL0PICIDX only
        &[0x90, 0x10, 0x03],       // KEYIDX only
        &[0xb0, 0x20, 0x40],       // N=1, TID only
    ];
    for shape in shapes {
        let mut d = vp8();
        let out = push(&mut d, 1, true, &cat(&[shape, &KEY_640X480, &[0xee]]));
        assert_eq!(
            only_frame(&out).data,
            cat(&[&KEY_640X480, &[0xee]]),
            "{shape:x?}"
        );
        let out = push(&mut d, 2, true, &cat(&[shape, &DELTA]));
        let frame = only_frame(&out);
        assert!(!frame.keyframe);
        assert_eq!(frame.data, DELTA);
    }
}

#[test]
fn key_frame_without_its_size_is_malformed() {
    let mut d = vp8();
    // P=0 but the start code and sizes are not in the first packet.
    let out = push(&mut d, 1, true, &cat(&[&[0x10], &KEY_640X480[..5]]));
    assert_eq!(drops(&out), [DropReason::Malformed]);
    // A zero width.
    let mut zero = KEY_640X480;
    zero[6] = 0;
    zero[7] = 0;
    assert_eq!(
        drops(&push(&mut d, 2, true, &cat(&[&[0x10], &zero]))),
        [DropReason::Malformed]
    );
    assert!(d.needs_keyframe());
}

#[test]
fn truncated_descriptor_is_malformed() {
    for bad in [&[][..], &[0x90], &[0x90, 0x80], &[0x90, 0x80, 0x81]] {
        let mut d = vp8();
        push(&mut d, 1, true, &cat(&[&[0x10], &KEY_640X480]));
        assert!(push(&mut d, 2, false, &cat(&[&[0x10], &DELTA])).is_empty());
        assert_eq!(
            drops(&push(&mut d, 2, true, bad)),
            [DropReason::Malformed],
            "{bad:x?}"
        );
    }
}

#[test]
fn loss_in_mid_frame_drops_until_the_next_key_frame() {
    let mut d = vp8();
    push(&mut d, 1, true, &cat(&[&FULL_START, &KEY_640X480]));
    assert!(push(&mut d, 2, false, &cat(&[&FULL_START, &DELTA, &[1]])).is_empty());
    d.lost();
    assert!(d.needs_keyframe());
    assert_eq!(
        drops(&push(&mut d, 2, true, &cat(&[&FULL_PART1, &[2]]))),
        [DropReason::Loss]
    );
    assert_eq!(
        drops(&push(&mut d, 3, true, &cat(&[&FULL_START, &DELTA]))),
        [DropReason::WaitingForKeyframe]
    );
    // A key frame whose first packet was lost: its later packets do not start it.
    assert!(push(&mut d, 4, false, &cat(&[&FULL_CONT, &[3]])).is_empty());
    assert_eq!(
        drops(&push(&mut d, 4, true, &cat(&[&FULL_PART1, &[4]]))),
        [DropReason::WaitingForKeyframe]
    );
    let out = push(&mut d, 5, true, &cat(&[&FULL_START, &KEY_640X480]));
    assert!(only_frame(&out).keyframe);
    assert!(!d.needs_keyframe());
}
