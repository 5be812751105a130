//! Tests for `av1.rs`: sequence headers decoded by hand and from real encoder output
//! (libaom through ffmpeg), with and without timing info, decoder models and several
//! operating points, reduced still picture headers, OBU headers, frame header key frame
//! bits, truncation and never-panic properties. The vectors are also the recorder's
//! (`crate::record::{depacketize, mp4}` tests).

use proptest::prelude::*;

use super::*;
use crate::codec::bits::tests::BitWriter;

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
///          then, what color_config() needs: frame_id_numbers_present 0, use_128x128 0,
///          enable_filter_intra 1, enable_intra_edge_filter 1, interintra 0, masked 0,
///          warped 0 | 06: dual_filter 0, order_hint 0, choose_screen_content_tools 0,
///          force_screen_content_tools 0, superres 0, cdef 1, restoration 1, high_bitdepth 0
///          | 01: mono_chrome 0, color_description_present 0, color_range 0,
///          chroma_sample_position 00, separate_uv_delta_q 0, film_grain_params_present 0,
///          trailing one bit.
/// ```
pub(crate) const SEQ_640X480: [u8; 10] =
    [0x00, 0x00, 0x00, 0x42, 0x62, 0x7f, 0xef, 0x98, 0x06, 0x01];

/// The first nine payload bytes of another header, 960×540:
/// `00 00 00`: profile 0, not still, no timing info, no initial display delay, one
/// operating point with idc 0; `2c` = `00101|100`: seq_level_idx 5 (≤ 7: no tier bit), then
/// frame_width_bits_minus_1 begins `100`; `cf` = `1|1001|111`: width bits 0b1001 = 9 (10
/// bits), height bits 9 (10 bits), width begins `111`; `7f` = `0111111|1`: width
/// 0b111_0111111 = 959 → 960, height begins `1`; `0d` `f0` = `00001101`, `1…`: height
/// 0b1_00001101_1 = 539 → 540.
pub(crate) const SEQ_960X540_PREFIX: [u8; 9] =
    [0x00, 0x00, 0x00, 0x2c, 0xcf, 0x7f, 0x0d, 0xf0, 0x34];

/// libaom (realtime, 4:2:0 8-bit, 64x48) sequence header OBU, with its size field.
pub(crate) const AV1_SEQUENCE_HEADER: &[u8] = &[
    0x0a, 0x0a, 0x00, 0x00, 0x00, 0x02, 0xaf, 0xf7, 0x9b, 0x5f, 0x20, 0x08,
];

/// A reduced still picture header payload: `seq_profile`, still 1, reduced 1,
/// seq_level_idx 4, then `(frame_width_bits_minus_1, max_frame_width_minus_1)` and the
/// same for the height; nothing after.
pub(crate) fn reduced_header(profile: u64, width: (u64, u64), height: (u64, u64)) -> Vec<u8> {
    let bits = |minus_1: u64| u32::try_from(minus_1 + 1).expect("small");
    let mut b = BitWriter::default();
    b.f(3, profile).f(1, 1).f(1, 1).f(5, 4);
    b.f(4, width.0).f(4, height.0);
    b.f(bits(width.0), width.1).f(bits(height.0), height.1);
    b.bytes()
}

#[test]
fn sequence_header_640x480() {
    let s = parse_sequence_header(&SEQ_640X480).expect("parses");
    assert_eq!((s.max_frame_width, s.max_frame_height), (640, 480));
    assert!(!s.reduced_still_picture_header && !s.still_picture);
    assert_eq!(
        (s.seq_profile, s.seq_level_idx_0, s.seq_tier_0),
        (0, 8, false)
    );
    let c = s.color.expect("the whole header");
    assert_eq!(
        (c.bit_depth, c.mono_chrome, c.color_range),
        (8, false, false)
    );
    assert_eq!(
        (c.subsampling_x, c.subsampling_y, c.chroma_sample_position),
        (true, true, 0)
    );
    let s = parse_sequence_header(&SEQ_960X540_PREFIX).expect("parses");
    assert_eq!((s.max_frame_width, s.max_frame_height), (960, 540));
    assert_eq!(s.seq_level_idx_0, 5);
    assert_eq!(s.color, None, "a prefix");
    // Cut before the end of max_frame_height_minus_1 (it ends in byte 7, bit 0).
    for len in 0..8 {
        assert_eq!(parse_sequence_header(&SEQ_640X480[..len]), None, "{len}");
    }
    // Cut in the fields after the size: the size is there, the colour format is not.
    for len in 8..SEQ_640X480.len() {
        let s = parse_sequence_header(&SEQ_640X480[..len]).expect("the size");
        assert_eq!((s.max_frame_width, s.color), (640, None), "{len}");
    }
}

#[test]
fn sequence_header_with_timing_decoder_model_and_two_operating_points() {
    let mut b = BitWriter::default();
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
    assert_eq!((s.max_frame_width, s.max_frame_height), (1920, 1080));
    assert_eq!(
        (s.seq_level_idx_0, s.seq_tier_0),
        (9, true),
        "the first point's"
    );
    // Every truncation before the sizes end is None, never a panic.
    let bytes = b.bytes();
    for len in 0..bytes.len() - 1 {
        assert_eq!(parse_sequence_header(&bytes[..len]), None);
    }
}

#[test]
fn reduced_still_picture_and_reserved_headers() {
    let s = parse_sequence_header(&reduced_header(1, (7, 199), (7, 99))).expect("parses");
    assert_eq!(
        (
            s.max_frame_width,
            s.max_frame_height,
            s.reduced_still_picture_header
        ),
        (200, 100, true)
    );
    assert!(s.still_picture);
    assert_eq!((s.seq_level_idx_0, s.seq_tier_0), (4, false));
    // A reserved profile parses up to the size; its colour syntax is not read.
    let s = parse_sequence_header(&reduced_header(3, (7, 199), (7, 99))).expect("parses");
    assert_eq!((s.seq_profile, s.color), (3, None));
    // 16-bit sizes are read as they are (a caller bounds them).
    let s = parse_sequence_header(&reduced_header(0, (15, 20000), (7, 99))).expect("parses");
    assert_eq!((s.max_frame_width, s.max_frame_height), (20001, 100));
}

#[test]
fn av1_sequence_header_fields() {
    let f = parse_sequence_header_obu(AV1_SEQUENCE_HEADER).unwrap();
    assert_eq!(
        (f.seq_profile, f.seq_level_idx_0, f.seq_tier_0),
        (0, 0, false)
    );
    assert_eq!((f.max_frame_width, f.max_frame_height), (64, 48));
    let c = f.color.expect("the colour format");
    assert_eq!(
        (c.high_bitdepth, c.twelve_bit, c.mono_chrome),
        (false, false, false)
    );
    assert_eq!(
        (c.subsampling_x, c.subsampling_y, c.chroma_sample_position),
        (true, true, 0)
    );
    // Without the size field (obu_has_size_field = 0) the payload runs to the end.
    let mut unsized_obu = vec![0x08];
    unsized_obu.extend_from_slice(&AV1_SEQUENCE_HEADER[2..]);
    assert_eq!(parse_sequence_header_obu(&unsized_obu), Some(f));
    // With an extension byte.
    let extended = [&[0x0e, 0x00], &AV1_SEQUENCE_HEADER[1..]].concat();
    assert_eq!(parse_sequence_header_obu(&extended), Some(f));
}

#[test]
fn av1_reduced_still_picture_header() {
    // seq_profile 1, still_picture 1, reduced 1, seq_level_idx 9 (5 bits), then
    // frame_width_bits_minus_1 = 15, frame_height_bits_minus_1 = 15, 16 + 16 bits of sizes,
    // three tool flags, three more, high_bitdepth 1: profile 1 → 4:4:4, no mono bit.
    let mut w = BitWriter::default();
    w.f(3, 1).f(1, 1).f(1, 1).f(5, 9);
    w.f(4, 15).f(4, 15).f(16, 1919).f(16, 1079);
    w.f(3, 0).f(3, 0);
    w.f(1, 1); // high_bitdepth
    w.f(1, 0); // color_description_present_flag
    w.f(1, 0); // color_range
    let bytes = w.bytes();
    let mut obu = vec![0x0a, bytes.len() as u8];
    obu.extend_from_slice(&bytes);
    let f = parse_sequence_header_obu(&obu).unwrap();
    assert_eq!(
        (f.seq_profile, f.seq_level_idx_0, f.seq_tier_0),
        (1, 9, false)
    );
    let c = f.color.expect("the colour format");
    assert!(c.high_bitdepth && !c.twelve_bit && !c.mono_chrome);
    assert!(!c.subsampling_x && !c.subsampling_y);
    assert_eq!(c.bit_depth, 10);
}

#[test]
fn av1_rejects_other_obus_and_truncation() {
    assert_eq!(parse_sequence_header_obu(&[]), None);
    assert_eq!(
        parse_sequence_header_obu(&[0x12, 0x00]),
        None,
        "temporal delimiter"
    );
    assert_eq!(parse_sequence_header_obu(&AV1_SEQUENCE_HEADER[..8]), None);
    assert_eq!(
        parse_sequence_header_obu(&[0x0a, 0xff]),
        None,
        "unterminated leb128"
    );
    let mut forbidden = AV1_SEQUENCE_HEADER.to_vec();
    forbidden[0] |= 0x80;
    assert_eq!(parse_sequence_header_obu(&forbidden), None, "forbidden bit");
}

#[test]
fn obu_headers() {
    assert_eq!(
        ObuHeader::parse(&[0x32]),
        Some(ObuHeader {
            obu_type: OBU_FRAME,
            has_extension: false,
            has_size_field: true
        })
    );
    let extended = ObuHeader::parse(&[0x34, 0x28]).expect("with its extension byte");
    assert_eq!((extended.obu_type, extended.header_len()), (OBU_FRAME, 2));
    assert_eq!(ObuHeader::parse(&[0x34]), None, "extension byte missing");
    assert_eq!(ObuHeader::parse(&[0xb0]), None, "forbidden bit");
    assert_eq!(ObuHeader::parse(&[]), None);
    assert_eq!(obu_type(0x12), OBU_TEMPORAL_DELIMITER);
}

#[test]
fn frame_header_key_frame_bits() {
    // show_existing_frame 0, frame_type 00 (KEY_FRAME), show_frame 1.
    assert_eq!(is_shown_key_frame(&[0x10, 0xaa], false), Some(true));
    assert_eq!(
        is_shown_key_frame(&[0x30], false),
        Some(false),
        "INTER_FRAME"
    );
    assert_eq!(is_shown_key_frame(&[0x00], false), Some(false), "not shown");
    assert_eq!(is_shown_key_frame(&[0x80], false), Some(false), "existing");
    assert_eq!(is_shown_key_frame(&[], false), None);
    assert_eq!(is_shown_key_frame(&[], true), Some(true), "reduced");
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_sequence_header_obu(&bytes);
        let _ = is_shown_key_frame(&bytes, false);
        let _ = ObuHeader::parse(&bytes);
        if let Some(s) = parse_sequence_header(&bytes) {
            prop_assert!(s.seq_level_idx_0 <= 31);
            prop_assert!((1..=65536).contains(&s.max_frame_width));
            prop_assert!((1..=65536).contains(&s.max_frame_height));
            if let Some(c) = s.color {
                prop_assert!([8, 10, 12].contains(&c.bit_depth));
                prop_assert!(c.chroma_sample_position <= 3);
            }
        }
        let mut obu = vec![0x08];
        obu.extend_from_slice(&bytes);
        let _ = parse_sequence_header_obu(&obu);
    }

    #[test]
    fn truncated_real_headers_never_panic(cut in 0usize..24) {
        let _ = parse_sequence_header_obu(&AV1_SEQUENCE_HEADER[..cut.min(12)]);
        let _ = parse_sequence_header(&SEQ_640X480[..cut.min(10)]);
    }
}
