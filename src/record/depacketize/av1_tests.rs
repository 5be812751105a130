//! AV1 depacketization (AOM RTP payload format §4.4–4.5) to low-overhead OBUs with size
//! fields, and what it makes of a sequence header (parsed by `crate::codec::av1`).

use super::super::tests::{configs, drops, only_frame, push};
use super::super::{CodecConfig, Depacketizer, DropReason, Output};
use super::*;
use crate::codec::av1::tests::{reduced_header, SEQ_640X480, SEQ_960X540_PREFIX};
use crate::codec::CodecKind;

/// OBU header bytes (`|0|type|ext|has_size|0|`).
const OBU_SEQ: u8 = 0x08; // type 1, no size field
const OBU_TD: u8 = 0x10; // type 2
const OBU_FRAME: u8 = 0x30; // type 6
const OBU_TILE_GROUP: u8 = 0x20; // type 4

/// A frame OBU payload of a shown key frame: show_existing_frame 0, frame_type 00
/// (KEY_FRAME), show_frame 1 → first byte 0b0001_xxxx; then filler.
const KEY_FRAME: [u8; 4] = [0x10, 0xaa, 0xbb, 0xcc];
/// A shown inter frame: frame_type 01 → 0b0011_xxxx.
const INTER_FRAME: [u8; 3] = [0x30, 0x12, 0x34];

fn av1() -> Depacketizer {
    Depacketizer::new(CodecKind::Av1, 0).expect("AV1")
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An OBU element: header then payload, no size field.
fn obu(header: u8, payload: &[u8]) -> Vec<u8> {
    cat(&[&[header], payload])
}

/// The OBU as the sample holds it: has_size set and a LEB128 size after the header.
fn sized(header: u8, payload: &[u8]) -> Vec<u8> {
    let (size, n) = write_leb128(payload.len()).expect("fits");
    cat(&[&[header | 0x02], &size[..n], payload])
}

/// An element with its LEB128 length in front (W = 0, or not the last one).
fn with_len(element: &[u8]) -> Vec<u8> {
    let (size, n) = write_leb128(element.len()).expect("fits");
    cat(&[&size[..n], element])
}

fn config_640x480() -> CodecConfig {
    CodecConfig::Av1 {
        width: 640,
        height: 480,
        sequence_header: sized(OBU_SEQ, &SEQ_640X480),
    }
}

/// The sample of a key temporal unit: sequence header and key frame.
fn key_sample() -> Vec<u8> {
    cat(&[&sized(OBU_SEQ, &SEQ_640X480), &sized(OBU_FRAME, &KEY_FRAME)])
}

// ---------------------------------------------------------------- sequence header

/// The fields are `crate::codec::av1`'s (tested there); here, what the depacketizer makes
/// of them.
#[test]
fn sequence_header_sizes_and_refusals() {
    let s = parse_sequence_header(&SEQ_640X480).expect("parses");
    assert_eq!((s.width, s.height), (640, 480));
    assert!(!s.reduced_still_picture_header);
    let s = parse_sequence_header(&SEQ_960X540_PREFIX).expect("parses");
    assert_eq!((s.width, s.height), (960, 540));
    // Cut before the end of max_frame_height_minus_1 (it ends in byte 7, bit 0).
    for len in 0..8 {
        assert_eq!(
            parse_sequence_header(&SEQ_640X480[..len]),
            Err(DropReason::Malformed),
            "{len}"
        );
    }
    let s = parse_sequence_header(&reduced_header(1, (7, 199), (7, 99))).expect("parses");
    assert_eq!(
        (s.width, s.height, s.reduced_still_picture_header),
        (200, 100, true)
    );
    assert_eq!(
        parse_sequence_header(&reduced_header(3, (7, 199), (7, 99))),
        Err(DropReason::Unsupported),
        "reserved profile"
    );
    assert_eq!(
        parse_sequence_header(&reduced_header(0, (15, 20000), (7, 99))),
        Err(DropReason::Unsupported),
        "over 16384 pixels"
    );
}

// ---------------------------------------------------------------- aggregation

#[test]
fn w2_key_temporal_unit() {
    let mut d = av1();
    // Z=0 Y=0 W=2 N=1: 0b0010_1000. The first element has a length, the last runs to the end.
    let p = cat(&[
        &[0x28],
        &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
        &obu(OBU_FRAME, &KEY_FRAME),
    ]);
    let out = push(&mut d, 3000, true, &p);
    assert_eq!(out[0], Output::Config(config_640x480()));
    let frame = only_frame(&out);
    assert!(frame.keyframe);
    // Exactly: 0a 0a <10 header bytes> 32 04 10 aa bb cc
    let mut want = vec![0x0a, 0x0a];
    want.extend_from_slice(&SEQ_640X480);
    want.extend_from_slice(&[0x32, 0x04, 0x10, 0xaa, 0xbb, 0xcc]);
    assert_eq!(frame.data, want);
    assert_eq!(frame.data, key_sample());
}

#[test]
fn w1_one_element_per_packet() {
    let mut d = av1();
    // W=1 N=1: 0x18; then W=1: 0x10.
    assert!(push(
        &mut d,
        3000,
        false,
        &cat(&[&[0x18], &obu(OBU_SEQ, &SEQ_640X480)])
    )
    .is_empty());
    let out = push(
        &mut d,
        3000,
        true,
        &cat(&[&[0x10], &obu(OBU_FRAME, &KEY_FRAME)]),
    );
    assert_eq!(only_frame(&out).data, key_sample());
    assert!(only_frame(&out).keyframe);
}

#[test]
fn w0_and_w3_with_temporal_delimiters_removed() {
    let elements = [
        obu(OBU_TD, &[]),
        obu(OBU_SEQ, &SEQ_640X480),
        obu(OBU_FRAME, &KEY_FRAME),
    ];
    // W=0 (0x08 with N): every element has its length.
    let w0 = cat(&[
        &[0x08],
        &with_len(&elements[0]),
        &with_len(&elements[1]),
        &with_len(&elements[2]),
    ]);
    // W=3 (0x38 with N): the last has none.
    let w3 = cat(&[
        &[0x38],
        &with_len(&elements[0]),
        &with_len(&elements[1]),
        &elements[2],
    ]);
    for p in [w0, w3] {
        let mut d = av1();
        let out = push(&mut d, 3000, true, &p);
        assert_eq!(only_frame(&out).data, key_sample());
    }
    // A temporal unit of only a temporal delimiter is empty.
    let mut d = av1();
    push(
        &mut d,
        3000,
        true,
        &cat(&[
            &[0x28],
            &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
            &obu(OBU_FRAME, &KEY_FRAME),
        ]),
    );
    assert_eq!(
        drops(&push(&mut d, 6000, true, &[0x10, OBU_TD])),
        [DropReason::Empty]
    );
    assert!(!d.needs_keyframe());
}

#[test]
fn obu_fragmented_across_two_packets() {
    let mut d = av1();
    let payload: Vec<u8> = [0x10]
        .into_iter()
        .chain((0..199).map(|i| i as u8))
        .collect();
    let frame = obu(OBU_FRAME, &payload);
    // Packet 1: W=2 N=1 Y=1 (0x68): the sequence header, then the frame OBU's first part.
    let p1 = cat(&[
        &[0x68],
        &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
        &frame[..120],
    ]);
    // Packet 2: Z=1 W=1 (0x90): the rest.
    let p2 = cat(&[&[0x90], &frame[120..]]);
    assert!(push(&mut d, 3000, false, &p1).is_empty());
    let out = push(&mut d, 3000, true, &p2);
    // 200 payload bytes: size c8 01.
    let want = cat(&[&sized(OBU_SEQ, &SEQ_640X480), &[0x32, 0xc8, 0x01], &payload]);
    assert_eq!(only_frame(&out).data, want);
    assert!(only_frame(&out).keyframe);
}

#[test]
fn fragment_boundary_inside_the_obu_header() {
    let mut d = av1();
    push(
        &mut d,
        3000,
        true,
        &cat(&[
            &[0x28],
            &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
            &obu(OBU_FRAME, &KEY_FRAME),
        ]),
    );
    // A frame OBU with an extension header (0x34: type 6, ext), split after its first byte.
    assert!(push(&mut d, 6000, false, &[0x50, 0x34]).is_empty()); // Y=1 W=1
    let out = push(&mut d, 6000, true, &cat(&[&[0x90, 0x28], &INTER_FRAME]));
    assert_eq!(
        only_frame(&out).data,
        cat(&[&[0x36, 0x28, 0x03], &INTER_FRAME])
    );
    assert!(!only_frame(&out).keyframe);
}

#[test]
fn obus_that_already_have_a_size_field() {
    let mut d = av1();
    let p = cat(&[
        &[0x28],
        &with_len(&sized(OBU_SEQ, &SEQ_640X480)),
        &sized(OBU_FRAME, &KEY_FRAME),
    ]);
    let out = push(&mut d, 3000, true, &p);
    assert_eq!(only_frame(&out).data, key_sample());
    // A size field that disagrees with the element.
    let bad = cat(&[&[0x10, 0x32, 0x05], &INTER_FRAME]);
    assert_eq!(
        drops(&push(&mut d, 6000, true, &bad)),
        [DropReason::Malformed]
    );
}

#[test]
fn n_bit_and_frame_starts_after_a_loss() {
    let mut d = av1();
    let key = cat(&[
        &[0x28],
        &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
        &obu(OBU_FRAME, &KEY_FRAME),
    ]);
    push(&mut d, 3000, true, &key);
    d.lost();
    // A temporal unit whose first packets were lost begins with a tile group: not taken.
    let tail = cat(&[&[0x10], &obu(OBU_TILE_GROUP, &[1, 2, 3])]);
    assert_eq!(
        drops(&push(&mut d, 6000, true, &tail)),
        [DropReason::WaitingForKeyframe]
    );
    // A continuation (Z=1) is not a start either.
    assert_eq!(
        drops(&push(&mut d, 9000, true, &[0x90, 1, 2])),
        [DropReason::WaitingForKeyframe]
    );
    // A shown key frame without a sequence header in its temporal unit is no sync sample.
    let bare = cat(&[&[0x10], &obu(OBU_FRAME, &KEY_FRAME)]);
    assert_eq!(
        drops(&push(&mut d, 12000, true, &bare)),
        [DropReason::WaitingForKeyframe]
    );
    // N=1 with the sequence header: taken, no new config.
    let out = push(&mut d, 15000, true, &key);
    assert!(only_frame(&out).keyframe);
    assert!(configs(&out).is_empty());
    // An inter frame afterwards.
    let out = push(
        &mut d,
        18000,
        true,
        &cat(&[&[0x10], &obu(OBU_FRAME, &INTER_FRAME)]),
    );
    assert!(!only_frame(&out).keyframe);
    assert_eq!(only_frame(&out).data, sized(OBU_FRAME, &INTER_FRAME));
}

#[test]
fn new_sequence_header_announces_a_new_config() {
    let mut d = av1();
    push(
        &mut d,
        3000,
        true,
        &cat(&[
            &[0x28],
            &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
            &obu(OBU_FRAME, &KEY_FRAME),
        ]),
    );
    let out = push(
        &mut d,
        6000,
        true,
        &cat(&[
            &[0x28],
            &with_len(&obu(OBU_SEQ, &SEQ_960X540_PREFIX)),
            &obu(OBU_FRAME, &KEY_FRAME),
        ]),
    );
    assert_eq!(
        configs(&out),
        [CodecConfig::Av1 {
            width: 960,
            height: 540,
            sequence_header: sized(OBU_SEQ, &SEQ_960X540_PREFIX),
        }]
    );
}

#[test]
fn refused_payloads() {
    let frame = obu(OBU_FRAME, &INTER_FRAME);
    let cases: [(&str, Vec<u8>, DropReason); 8] = [
        ("aggregation header only", vec![0x00], DropReason::Malformed),
        (
            "length overruns",
            cat(&[&[0x00, 0x09], &frame]),
            DropReason::Malformed,
        ),
        (
            "LEB128 over 8 bytes",
            vec![0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            DropReason::Malformed,
        ),
        (
            "zero length element",
            vec![0x00, 0x00],
            DropReason::Malformed,
        ),
        (
            "W=3, two elements",
            cat(&[&[0x30], &with_len(&frame), &frame]),
            DropReason::Malformed,
        ),
        (
            "forbidden bit",
            vec![0x10, 0xb0, 0x30],
            DropReason::Malformed,
        ),
        (
            "Z=1 continues nothing",
            cat(&[&[0x90], &frame]),
            DropReason::Malformed,
        ),
        (
            "sequence header too short",
            cat(&[&[0x10, OBU_SEQ], &SEQ_640X480[..4]]),
            DropReason::Malformed,
        ),
    ];
    for (name, payload, reason) in cases {
        let mut d = av1();
        push(
            &mut d,
            3000,
            true,
            &cat(&[
                &[0x28],
                &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
                &obu(OBU_FRAME, &KEY_FRAME),
            ]),
        );
        assert!(
            push(&mut d, 6000, false, &cat(&[&[0x10], &frame])).is_empty(),
            "{name}"
        );
        assert_eq!(
            drops(&push(&mut d, 6000, true, &payload)),
            [reason],
            "{name}"
        );
        assert!(d.needs_keyframe(), "{name}");
    }
}

#[test]
fn unfinished_fragments_are_incomplete() {
    let key = cat(&[
        &[0x28],
        &with_len(&obu(OBU_SEQ, &SEQ_640X480)),
        &obu(OBU_FRAME, &KEY_FRAME),
    ]);
    let open = cat(&[&[0x50], &obu(OBU_FRAME, &INTER_FRAME)]); // Y=1 W=1
                                                               // The next packet does not continue it (Z=0).
    let mut d = av1();
    push(&mut d, 3000, true, &key);
    assert!(push(&mut d, 6000, false, &open).is_empty());
    assert_eq!(
        drops(&push(
            &mut d,
            6000,
            true,
            &cat(&[&[0x10], &obu(OBU_FRAME, &INTER_FRAME)])
        )),
        [DropReason::Incomplete]
    );
    // The temporal unit ends with it open.
    let mut d = av1();
    push(&mut d, 3000, true, &key);
    assert!(push(&mut d, 6000, false, &open).is_empty());
    assert_eq!(
        drops(&d.flush().collect::<Vec<_>>()),
        [DropReason::Incomplete]
    );
}
