//! Tests for `vp9.rs`: uncompressed headers decoded by hand (key frames of profiles 0–2,
//! RGB, non-key frames), invalid and truncated ones, and never-panic properties. The
//! vectors are also the recorder's (`crate::record::depacketize` tests).

use proptest::prelude::*;

use super::*;
use crate::codec::bits::tests::BitWriter;

/// Start of a key frame's uncompressed header (VP9 spec §6.2), 640×360, profile 0, by hand:
///
/// ```text
/// 82        10 frame_marker | 0 profile_low_bit | 0 profile_high_bit | 0 show_existing_frame
///           | 0 frame_type (KEY_FRAME) | 1 show_frame | 0 error_resilient_mode
/// 49 83 42  frame_sync_code
/// 20        001 color_space (BT.601) | 0 color_range | 0000 (frame_width_minus_1 begins)
/// 27 f0     0010 0111 1111 | 0000 → frame_width_minus_1 = 0x027f = 639
/// 16 70     0001 0110 0111 → frame_height_minus_1 = 0x0167 = 359 | 0 render_and_frame_size_different …
/// ```
pub(crate) const KEY_640X360: [u8; 10] =
    [0x82, 0x49, 0x83, 0x42, 0x20, 0x27, 0xf0, 0x16, 0x70, 0xee];

#[test]
fn uncompressed_header_fields() {
    assert_eq!(
        parse_key_header(&KEY_640X360),
        Some(Some(KeyHeader {
            profile: 0,
            bit_depth: 8,
            width: 640,
            height: 360
        }))
    );
    // Profile 2 (low 0, high 1), ten_or_twelve_bit 1: 12 bits; 1920×1080.
    let mut b = BitWriter::default();
    b.f(2, 2).f(1, 0).f(1, 1).f(1, 0).f(1, 0).f(1, 1).f(1, 0);
    b.f(24, 0x49_83_42)
        .f(1, 1)
        .f(3, 2)
        .f(1, 1)
        .f(16, 1919)
        .f(16, 1079);
    let header = parse_key_header(&b.bytes()).expect("valid").expect("key");
    assert_eq!(
        (
            header.profile,
            header.bit_depth,
            header.width,
            header.height
        ),
        (2, 12, 1920, 1080)
    );
    // Profile 1 RGB (color_space 7): reserved bit only, then the size.
    let mut b = BitWriter::default();
    b.f(2, 2).f(1, 1).f(1, 0).f(1, 0).f(1, 0).f(1, 1).f(1, 0);
    b.f(24, 0x49_83_42).f(3, 7).f(1, 0).f(16, 99).f(16, 49);
    let header = parse_key_header(&b.bytes()).expect("valid").expect("key");
    assert_eq!((header.profile, header.width, header.height), (1, 100, 50));
    // Profile 0 RGB is invalid; show_existing_frame is no key frame.
    let mut b = BitWriter::default();
    b.f(2, 2)
        .f(2, 0)
        .f(1, 0)
        .f(1, 0)
        .f(1, 1)
        .f(1, 0)
        .f(24, 0x49_83_42)
        .f(3, 7)
        .f(32, 0);
    assert_eq!(parse_key_header(&b.bytes()), None);
    assert_eq!(parse_key_header(&[0x88, 0x00]), Some(None));
    // Every truncation before the height ends is None.
    for len in 0..9 {
        assert_eq!(parse_key_header(&KEY_640X360[..len]), None, "{len}");
    }
}

#[test]
fn non_key_and_invalid_headers() {
    // frame_type 1 (NON_KEY_FRAME): 10 0 0 0 1 1 0.
    assert_eq!(parse_key_header(&[0x86, 0x11, 0x22]), Some(None));
    // frame_marker 3, and a wrong sync code.
    assert_eq!(parse_key_header(&[0xc2, 0x49, 0x83, 0x42]), None);
    let mut bad = KEY_640X360;
    bad[2] ^= 0x01;
    assert_eq!(parse_key_header(&bad), None);
    // Profile 3 with its reserved_zero bit set.
    assert_eq!(parse_key_header(&[0xb8, 0x00]), None);
}

proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
        if let Some(Some(h)) = parse_key_header(&bytes) {
            prop_assert!(h.profile <= 3 && [8, 10, 12].contains(&h.bit_depth));
            prop_assert!((1..=65536).contains(&h.width) && (1..=65536).contains(&h.height));
        }
    }
}
