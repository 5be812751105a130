//! VP9 depacketization (RFC 9628 §4): flexible and non-flexible descriptors, the
//! scalability structure, spatial layers as a superframe, key frames by their uncompressed
//! header (parsed and tested in `crate::codec::vp9`).

use super::super::tests::{configs, drops, only_frame, push};
use super::super::{CodecConfig, Depacketizer, DropReason, Output};
use super::*;
use crate::codec::bits::tests::BitWriter;
use crate::codec::vp9::tests::KEY_640X360;
use crate::codec::CodecKind;

// KEY_640X360: the start of a 640×360 profile 0 key frame (decoded in `codec::vp9`'s tests).

/// A non-key frame: frame_type 1 → 0x86.
const DELTA: [u8; 3] = [0x86, 0x11, 0x22];

/// `|I|P|L|F|B|E|V|Z|`
const I: u8 = 0x80;
const P: u8 = 0x40;
const L: u8 = 0x20;
const F: u8 = 0x10;
const B: u8 = 0x08;
const E: u8 = 0x04;
const V: u8 = 0x02;

fn vp9() -> Depacketizer {
    Depacketizer::new(CodecKind::Vp9, 0).expect("VP9")
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn config(width: u16, height: u16) -> CodecConfig {
    CodecConfig::Vp9 {
        width,
        height,
        profile: 0,
        bit_depth: 8,
    }
}

#[test]
fn non_flexible_key_frame_with_scalability_structure() {
    let mut d = vp9();
    // I: 15-bit picture id 0x1234; L: TID 0, SID 0, TL0PICIDX 5; V: N_S=0, Y=1, G=1, one
    // 640×360 layer, N_G=1 picture (TID 0, R=1, P_DIFF 1).
    let descriptor = [
        I | L | B | V,
        0x92,
        0x34,
        0x00,
        0x05,
        0x18,
        0x02,
        0x80,
        0x01,
        0x68,
        0x01,
        0x04,
        0x01,
    ];
    let parsed = parse_descriptor(&descriptor).expect("complete");
    assert_eq!(parsed.len, descriptor.len());
    assert_eq!(parsed.sid, Some(0));
    let p1 = cat(&[&descriptor, &KEY_640X360[..6]]);
    // Second packet: I and L again, no V, E=1.
    let p2 = cat(&[&[I | L | E, 0x92, 0x34, 0x00, 0x05], &KEY_640X360[6..]]);
    assert!(push(&mut d, 3000, false, &p1).is_empty());
    let out = push(&mut d, 3000, true, &p2);
    assert_eq!(out[0], Output::Config(config(640, 360)));
    let frame = only_frame(&out);
    assert!(frame.keyframe);
    assert_eq!(frame.data, KEY_640X360);
    // A delta frame (P=1): not a key frame, data as is.
    let out = push(
        &mut d,
        6000,
        true,
        &cat(&[&[I | P | L | B | E, 0x92, 0x35, 0x00, 0x05], &DELTA]),
    );
    assert!(!only_frame(&out).keyframe);
    assert_eq!(only_frame(&out).data, DELTA);
}

#[test]
fn flexible_mode_reference_indices() {
    let mut d = vp9();
    // Key frame, flexible, 7-bit picture id, no layer indices, no SS: the size is the header's.
    let out = push(
        &mut d,
        3000,
        true,
        &cat(&[&[I | F | B | E, 0x05], &KEY_640X360]),
    );
    assert_eq!(configs(&out), [config(640, 360)]);
    // Delta with L (no TL0PICIDX in flexible mode) and two P_DIFFs (N=1, then N=0).
    let descriptor = [I | P | L | F | B | E, 0x06, 0x00, 0x03, 0x04];
    assert_eq!(parse_descriptor(&descriptor).map(|d| d.len), Some(5));
    let out = push(&mut d, 6000, true, &cat(&[&descriptor, &DELTA]));
    assert_eq!(only_frame(&out).data, DELTA);
    // Three P_DIFFs is the most.
    assert_eq!(
        parse_descriptor(&[P | F, 0x03, 0x03, 0x02]).map(|d| d.len),
        Some(4)
    );
    assert_eq!(parse_descriptor(&[P | F, 0x03, 0x03, 0x03, 0x02]), None);
    let bad = cat(&[
        &[I | P | L | F | B | E, 0x07, 0x00, 0x03, 0x03, 0x03, 0x02],
        &DELTA,
    ]);
    assert_eq!(
        drops(&push(&mut d, 9000, true, &bad)),
        [DropReason::Malformed]
    );
}

#[test]
fn truncated_descriptors_are_none() {
    let full = [
        I | L | B | V,
        0x92,
        0x34,
        0x00,
        0x05,
        0x38, // N_S=1, Y=1, G=1
        0x01,
        0x40,
        0x00,
        0xb4,
        0x02,
        0x80,
        0x01,
        0x68,
        0x01,
        0x08, // R=2
        0x01,
        0x02,
    ];
    assert_eq!(parse_descriptor(&full).map(|d| d.len), Some(full.len()));
    for len in 0..full.len() {
        assert_eq!(parse_descriptor(&full[..len]), None, "{len}");
    }
}

#[test]
fn spatial_layers_become_a_superframe() {
    let mut d = vp9();
    // SID 0: the key frame (320×180 in its header), with SS N_S=1, Y=1: 320×180, 640×360.
    let mut b = BitWriter::default();
    b.f(2, 2).f(1, 0).f(1, 0).f(1, 0).f(1, 0).f(1, 1).f(1, 0);
    b.f(24, 0x49_83_42)
        .f(3, 1)
        .f(1, 0)
        .f(16, 319)
        .f(16, 179)
        .f(8, 0);
    let layer0 = b.bytes();
    let ss = [0x30, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68];
    let p1 = cat(&[&[I | L | B | E | V, 0x01, 0x00, 0x07], &ss, &layer0]);
    // SID 1 (layer indices 0x03: SID 1, D=1), P=0 (inter-layer prediction only).
    let layer1 = [0x86, 0x55, 0x66, 0x77];
    let p2 = cat(&[&[I | L | B | E, 0x01, 0x03, 0x07], &layer1]);
    assert!(push(&mut d, 3000, false, &p1).is_empty());
    let out = push(&mut d, 3000, true, &p2);
    // The size is the highest layer's present.
    assert_eq!(configs(&out), [config(640, 360)]);
    let frame = only_frame(&out);
    assert!(frame.keyframe);
    // Superframe index: marker 0b110_00_001 = 0xc1 (1-byte sizes, 2 frames), sizes, marker.
    let index = [0xc1, u8::try_from(layer0.len()).expect("small"), 4, 0xc1];
    assert_eq!(frame.data, cat(&[&layer0, &layer1, &index]));
}

#[test]
fn superframe_sizes_of_two_bytes() {
    let mut d = vp9();
    push(
        &mut d,
        3000,
        true,
        &cat(&[&[I | F | B | E, 0x05], &KEY_640X360]),
    );
    let big = vec![0x42u8; 300];
    push(
        &mut d,
        6000,
        false,
        &cat(&[&[P | L | F | B | E, 0x00, 0x02], &big]),
    );
    let out = push(
        &mut d,
        6000,
        true,
        &cat(&[&[P | L | F | B | E, 0x02, 0x02], &DELTA]),
    );
    // 0b110_01_001: 2-byte sizes, 2 frames; 300 = 2c 01, 3 = 03 00.
    let index = [0xc9, 0x2c, 0x01, 0x03, 0x00, 0xc9];
    assert_eq!(only_frame(&out).data, cat(&[&big, &DELTA, &index]));
}

#[test]
fn more_than_eight_frames_is_unsupported() {
    let mut d = vp9();
    push(
        &mut d,
        3000,
        true,
        &cat(&[&[I | F | B | E, 0x05], &KEY_640X360]),
    );
    for _ in 0..8 {
        assert!(push(&mut d, 6000, false, &cat(&[&[P | F | B | E, 0x02], &DELTA])).is_empty());
    }
    let out = push(&mut d, 6000, true, &cat(&[&[P | F | B | E, 0x02], &DELTA]));
    assert_eq!(drops(&out), [DropReason::Unsupported]);
}

#[test]
fn key_frame_rules() {
    // P=0 and B=1 but an intra-only header (frame_type 1): not a key frame.
    let mut d = vp9();
    assert_eq!(
        drops(&push(&mut d, 3000, true, &cat(&[&[F | B | E], &DELTA]))),
        [DropReason::WaitingForKeyframe]
    );
    // Key header but SID 1 first: not a start.
    assert_eq!(
        drops(&push(
            &mut d,
            6000,
            true,
            &cat(&[&[L | F | B | E, 0x02], &KEY_640X360])
        )),
        [DropReason::WaitingForKeyframe]
    );
    // Key by its descriptor, but a bad sync code: malformed.
    let mut bad = KEY_640X360;
    bad[2] = 0x00;
    assert_eq!(
        drops(&push(&mut d, 9000, true, &cat(&[&[F | B | E], &bad]))),
        [DropReason::Malformed]
    );
    assert!(d.needs_keyframe());
    // Mid-stream, a picture whose first packet has no B: malformed.
    let mut d = vp9();
    push(&mut d, 3000, true, &cat(&[&[F | B | E], &KEY_640X360]));
    assert_eq!(
        drops(&push(
            &mut d,
            6000,
            true,
            &cat(&[&[P | F | E, 0x02], &DELTA])
        )),
        [DropReason::Malformed]
    );
}
