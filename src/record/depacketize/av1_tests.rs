//! AV1 depacketization (AOM RTP payload format §4.4–4.5) to low-overhead OBUs with size
//! fields, and the sequence header parser (AV1 spec §5.5.1).

use super::super::tests::{configs, drops, only_frame, push, Bits};
use super::super::{CodecConfig, Depacketizer, DropReason, Output};
use super::*;
use crate::codec::CodecKind;

/// The payload of a sequence header OBU for 640×480, profile 0, decoded by hand:
///
/// ```text
/// 00       000 seq_profile 0 | 0 still_picture | 0 reduced_still_picture_header
///          | 0 timing_info_present_flag | 0 initial_display_delay_present_flag
///          | 0 (first bit of operating_points_cnt_minus_1)
/// 00       0000 (rest of operating_points_cnt_minus_1 = 0: one operating point)
///          | 0000 (operating_point_idc[0], 12 bits, begins)
/// 00       00000000 (operating_point_idc[0] = 0)
/// 42       01000 seq_level_idx[0] = 8 (> 7, so:) | 0 seq_tier[0]
///          | 10 (frame_width_bits_minus_1 begins)
/// 62       01 (frame_width_bits_minus_1 = 0b1001 = 9: 10 bits)
///          | 1000 frame_height_bits_minus_1 = 8: 9 bits
///          | 10 (max_frame_width_minus_1 begins)
/// 7f       01111111 (max_frame_width_minus_1 = 0b10_0111_1111 = 639: width 640)
/// ef 98    11101111 1 (max_frame_height_minus_1 = 0b1_1101_1111 = 479: height 480)
///          then, not read by the parser: frame_id_numbers_present 0, use_128x128 0,
///          enable_filter_intra 1, enable_intra_edge_filter 1, interintra 0, masked 0,
///          warped 0 | 06: dual_filter 0, order_hint 0, choose_screen_content_tools 0,
///          force_screen_content_tools 0, superres 0, cdef 1, restoration 1, high_bitdepth 0
///          | 01: mono_chrome 0, color_description_present 0, color_range 0,
///          chroma_sample_position 00, separate_uv_delta_q 0, film_grain_params_present 0,
///          trailing one bit.
/// ```
const SEQ_640X480: [u8; 10] = [0x00, 0x00, 0x00, 0x42, 0x62, 0x7f, 0xef, 0x98, 0x06, 0x01];

/// The first nine payload bytes of another header, 960×540:
/// `00 00 00`: profile 0, not still, no timing info, no initial display delay, one
/// operating point with idc 0; `2c` = `00101|100`: seq_level_idx 5 (≤ 7: no tier bit), then
/// frame_width_bits_minus_1 begins `100`; `cf` = `1|1001|111`: width bits 0b1001 = 9 (10
/// bits), height bits 9 (10 bits), width begins `111`; `7f` = `0111111|1`: width
/// 0b111_0111111 = 959 → 960, height begins `1`; `0d` `f0` = `00001101`, `1…`: height
/// 0b1_00001101_1 = 539 → 540.
const SEQ_960X540_PREFIX: [u8; 9] = [0x00, 0x00, 0x00, 0x2c, 0xcf, 0x7f, 0x0d, 0xf0, 0x34];

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

#[test]
fn sequence_header_640x480() {
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
}

#[test]
fn sequence_header_with_timing_decoder_model_and_two_operating_points() {
    let mut b = Bits::default();
    b.f(3, 0).f(1, 0).f(1, 0); // profile 0, not still, not reduced
    b.f(1, 1); // timing_info_present_flag
    b.f(32, 1001).f(32, 30000); // num_units_in_display_tick, time_scale
    b.f(1, 1).f(4, 0).f(1, 1).f(4, 0b1110); // equal_picture_interval, uvlc() = 29
    b.f(1, 1); // decoder_model_info_present_flag
    b.f(5, 9).f(32, 1).f(5, 4).f(5, 4); // buffer_delay_length_minus_1 = 9 (10 bits), …
    b.f(1, 1); // initial_display_delay_present_flag
    b.f(5, 1); // operating_points_cnt_minus_1: two points
    b.f(12, 0x103).f(5, 9).f(1, 1); // idc, seq_level_idx 9 > 7, seq_tier
    b.f(1, 1).f(10, 500).f(10, 600).f(1, 0); // decoder model for this op: delays, low delay
    b.f(1, 1).f(4, 3); // initial display delay for this op
    b.f(12, 0x001).f(5, 4); // second point: level 4, no tier
    b.f(1, 0).f(1, 0); // no decoder model, no initial display delay
    b.f(4, 10).f(4, 10).f(11, 1919).f(11, 1079); // 11-bit sizes: 1920×1080
    b.f(8, 0x55); // what follows (not read)
    let s = parse_sequence_header(&b.bytes()).expect("parses");
    assert_eq!((s.width, s.height), (1920, 1080));
    // Every truncation before the sizes end is malformed, never a panic.
    let bytes = b.bytes();
    for len in 0..bytes.len() - 1 {
        assert_eq!(
            parse_sequence_header(&bytes[..len]),
            Err(DropReason::Malformed)
        );
    }
}

#[test]
fn reduced_still_picture_and_unsupported_headers() {
    let mut b = Bits::default();
    b.f(3, 1).f(1, 1).f(1, 1).f(5, 4); // profile 1, still, reduced, seq_level_idx
    b.f(4, 7).f(4, 7).f(8, 199).f(8, 99); // 8-bit sizes: 200×100
    let s = parse_sequence_header(&b.bytes()).expect("parses");
    assert_eq!(
        (s.width, s.height, s.reduced_still_picture_header),
        (200, 100, true)
    );

    let mut b = Bits::default();
    b.f(3, 3)
        .f(1, 1)
        .f(1, 1)
        .f(5, 4)
        .f(4, 7)
        .f(4, 7)
        .f(8, 199)
        .f(8, 99);
    assert_eq!(
        parse_sequence_header(&b.bytes()),
        Err(DropReason::Unsupported)
    );

    let mut b = Bits::default();
    b.f(3, 0)
        .f(1, 1)
        .f(1, 1)
        .f(5, 4)
        .f(4, 15)
        .f(4, 7)
        .f(16, 20000)
        .f(8, 99);
    assert_eq!(
        parse_sequence_header(&b.bytes()),
        Err(DropReason::Unsupported)
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
