//! H.264 depacketization (RFC 6184 §5.6–5.8) to AVCC samples: STAP-A, FU-A, single NAL
//! units (packetization mode 0), parameter sets, refusals.

use super::super::tests::{configs, drops, only_frame, push};
use super::super::{CodecConfig, Depacketizer, DropReason, Output};
use crate::codec::CodecKind;

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// A real baseline SPS (type 7, profile 66, level 3.0) coding 720×404 (as in
/// `codec/resolution_tests.rs`).
fn sps_720x404() -> Vec<u8> {
    hex("6742 c01e d900 b435 f9e1 0000 0300 0100 0003 003c 0f16 2e48")
}

/// A real high profile SPS coding 640×360.
fn sps_640x360() -> Vec<u8> {
    hex("677a 001e bcd9 40a0 2ff8 9840 0000 0301 8000 0056 83c5 8b65 80")
}

/// PPS (type 8, NRI 3).
const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];
/// IDR slice (type 5, NRI 3), `first_mb_in_slice` = 0 (first bit of 0x88 is 1).
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff];
/// A second IDR slice of the same picture, `first_mb_in_slice` = 1 (0x40: ue bits `010`).
const IDR_SLICE2: &[u8] = &[0x65, 0x40, 0x11, 0x22];
/// Non-IDR slice (type 1, NRI 2), `first_mb_in_slice` = 0.
const P_SLICE: &[u8] = &[0x41, 0x9a, 0x02, 0x03];

fn h264() -> Depacketizer {
    Depacketizer::new(CodecKind::H264, 0).expect("H.264")
}

fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x78]; // F=0, NRI 3, type 24
    for nal in nals {
        out.extend_from_slice(&u16::try_from(nal.len()).expect("small").to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// `nals` as an AVCC sample: each with its 4-byte big-endian length.
fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&u32::try_from(nal.len()).expect("small").to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

fn config_720x404() -> CodecConfig {
    CodecConfig::H264 {
        width: 720,
        height: 404,
        sps: sps_720x404(),
        pps: PPS.to_vec(),
    }
}

#[test]
fn stap_a_with_sps_pps_and_idr() {
    let mut d = h264();
    let sps = sps_720x404();
    let out = push(&mut d, 3000, true, &stap_a(&[&sps, PPS, IDR]));
    assert_eq!(out[0], Output::Config(config_720x404()));
    let frame = only_frame(&out);
    assert!(frame.keyframe);
    // Exactly: 00 00 00 18 <SPS, 24 bytes> 00 00 00 04 68 ee 3c 80 00 00 00 06 65 88 84 00 33 ff
    let mut want = vec![0, 0, 0, 24];
    want.extend_from_slice(&sps);
    want.extend_from_slice(&[0, 0, 0, 4, 0x68, 0xee, 0x3c, 0x80]);
    want.extend_from_slice(&[0, 0, 0, 6, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff]);
    assert_eq!(frame.data, want);
    assert_eq!(d.config(), Some(&config_720x404()));
}

#[test]
fn fu_a_start_middle_end() {
    let mut d = h264();
    push(&mut d, 3000, false, &sps_720x404());
    push(&mut d, 3000, false, PPS);
    // IDR 65 88 84 00 33 ff 10 20 in three fragments. FU indicator 0x7c: F=0, NRI 3 (the
    // NAL unit's), type 28; FU headers: S+type 5 (0x85), type 5 (0x05), E+type 5 (0x45).
    assert!(push(&mut d, 3000, false, &[0x7c, 0x85, 0x88, 0x84]).is_empty());
    assert!(push(&mut d, 3000, false, &[0x7c, 0x05, 0x00, 0x33]).is_empty());
    let out = push(&mut d, 3000, true, &[0x7c, 0x45, 0xff, 0x10, 0x20]);
    let frame = only_frame(&out);
    assert!(frame.keyframe);
    let idr = [0x65, 0x88, 0x84, 0x00, 0x33, 0xff, 0x10, 0x20];
    assert_eq!(frame.data, avcc(&[&sps_720x404(), PPS, &idr]));
    // A non-IDR NAL unit with NRI 2 in two fragments: header rebuilt as 0x41.
    push(&mut d, 6000, false, &[0x5c, 0x81, 0x9a]);
    let out = push(&mut d, 6000, true, &[0x5c, 0x41, 0x01]);
    let frame = only_frame(&out);
    assert!(!frame.keyframe);
    assert_eq!(frame.data, [0, 0, 0, 3, 0x41, 0x9a, 0x01]);
}

#[test]
fn fu_a_missing_its_start() {
    // Mid-stream without a reported loss: malformed.
    let mut d = h264();
    push(&mut d, 3000, true, &stap_a(&[&sps_720x404(), PPS, IDR]));
    assert!(push(&mut d, 6000, false, &[0x7c, 0x05, 0x00, 0x33]).is_empty());
    assert_eq!(
        drops(&push(&mut d, 6000, true, &[0x7c, 0x45, 0xff])),
        [DropReason::Malformed]
    );
    // After a loss: the stream waits for a key frame anyway.
    let mut d = h264();
    push(&mut d, 3000, true, &stap_a(&[&sps_720x404(), PPS, IDR]));
    d.lost();
    assert!(push(&mut d, 6000, false, &[0x7c, 0x05, 0x00, 0x33]).is_empty());
    assert_eq!(
        drops(&push(&mut d, 6000, true, &[0x7c, 0x45, 0xff])),
        [DropReason::WaitingForKeyframe]
    );
}

#[test]
fn idr_without_parameter_sets_waits() {
    let mut d = h264();
    assert_eq!(
        drops(&push(&mut d, 3000, true, IDR)),
        [DropReason::MissingConfig]
    );
    assert!(d.needs_keyframe());
    assert_eq!(
        drops(&push(&mut d, 6000, true, P_SLICE)),
        [DropReason::WaitingForKeyframe]
    );
    // An SPS alone is not enough either.
    assert_eq!(
        drops(&push(&mut d, 9000, true, &stap_a(&[&sps_720x404(), IDR]))),
        [DropReason::MissingConfig]
    );
    // The PPS arrives in its own access unit (kept, though the unit has no IDR).
    assert_eq!(
        drops(&push(&mut d, 12000, true, PPS)),
        [DropReason::WaitingForKeyframe]
    );
    let out = push(&mut d, 15000, true, IDR);
    assert_eq!(out[0], Output::Config(config_720x404()));
    assert!(only_frame(&out).keyframe);
    assert_eq!(only_frame(&out).data, avcc(&[IDR]));
}

#[test]
fn packetization_mode_0_single_nal_units() {
    let mut d = h264();
    let sps = sps_720x404();
    for nal in [&sps[..], PPS, IDR] {
        assert!(push(&mut d, 3000, false, nal).is_empty());
    }
    let out = push(&mut d, 3000, true, IDR_SLICE2);
    assert_eq!(only_frame(&out).data, avcc(&[&sps, PPS, IDR, IDR_SLICE2]));
    let out = push(&mut d, 6000, true, P_SLICE);
    assert_eq!(only_frame(&out).data, avcc(&[P_SLICE]));
}

#[test]
fn access_unit_delimiters_and_filler_are_dropped() {
    let mut d = h264();
    let aud = [0x09, 0xf0];
    let filler = [0x0c, 0xff, 0xff, 0x80];
    push(&mut d, 3000, false, &aud);
    push(&mut d, 3000, false, &stap_a(&[&sps_720x404(), PPS]));
    push(&mut d, 3000, false, IDR);
    // Filler data fragmented (FU-A, type 12): skipped whole.
    push(&mut d, 3000, false, &[0x1c, 0x8c, 0xff]);
    push(&mut d, 3000, false, &[0x1c, 0x4c, 0xff]);
    let out = push(&mut d, 3000, true, &filler);
    assert_eq!(only_frame(&out).data, avcc(&[&sps_720x404(), PPS, IDR]));
    // An access unit of only a delimiter is empty, and does not need a key frame.
    assert_eq!(drops(&push(&mut d, 6000, true, &aud)), [DropReason::Empty]);
    assert!(!d.needs_keyframe());
}

#[test]
fn refused_payloads() {
    let cases: [(&str, Vec<u8>, DropReason); 10] = [
        (
            "STAP-B",
            vec![0x19, 0, 0, 0, 2, 0x65, 0x88],
            DropReason::Unsupported,
        ),
        ("MTAP16", vec![0x1a, 0, 0], DropReason::Unsupported),
        (
            "FU-B",
            vec![0x1d, 0x85, 0, 0, 0x88],
            DropReason::Unsupported,
        ),
        ("forbidden bit", vec![0xe5, 0x88], DropReason::Malformed),
        ("type 0", vec![0x00, 0x88], DropReason::Malformed),
        ("type 30", vec![0x1e, 0x88], DropReason::Malformed),
        (
            "STAP-A overrun",
            vec![0x78, 0x00, 0x05, 0x65, 0x88],
            DropReason::Malformed,
        ),
        (
            "STAP-A zero size",
            vec![0x78, 0x00, 0x00, 0x00, 0x01, 0x65],
            DropReason::Malformed,
        ),
        (
            "STAP-A nesting",
            vec![0x78, 0x00, 0x02, 0x78, 0x00],
            DropReason::Malformed,
        ),
        (
            "FU-A start and end",
            vec![0x7c, 0xc5, 0x88],
            DropReason::Malformed,
        ),
    ];
    for (name, payload, reason) in cases {
        let mut d = h264();
        push(&mut d, 3000, true, &stap_a(&[&sps_720x404(), PPS, IDR]));
        assert!(push(&mut d, 6000, false, P_SLICE).is_empty());
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
    let start = [0x7c, 0x85, 0x88];
    let setup = |d: &mut Depacketizer| {
        push(d, 3000, true, &stap_a(&[&sps_720x404(), PPS, IDR]));
        assert!(push(d, 6000, false, &start).is_empty());
    };
    // The frame ends (a new timestamp) inside the fragmented unit.
    let mut d = h264();
    setup(&mut d);
    assert_eq!(
        drops(&push(&mut d, 9000, false, P_SLICE)),
        [DropReason::Incomplete]
    );
    // A single NAL unit, or another start, before the end fragment.
    for next in [P_SLICE, &start[..]] {
        let mut d = h264();
        setup(&mut d);
        assert_eq!(
            drops(&push(&mut d, 6000, true, next)),
            [DropReason::Incomplete]
        );
    }
}

#[test]
fn parameter_sets_that_cannot_be_used() {
    let mut d = h264();
    // An SPS that does not parse (truncated): malformed.
    let sps = sps_720x404();
    assert_eq!(
        drops(&push(&mut d, 3000, true, &stap_a(&[&sps[..6], PPS, IDR]))),
        [DropReason::Malformed]
    );
    // A PPS over 4 KiB (sent as FU-A): unsupported.
    let big = vec![0x11; super::MAX_PARAMETER_SET];
    push(&mut d, 6000, false, &[0x7c, 0x88, 0xee]);
    push(
        &mut d,
        6000,
        false,
        &[[0x7c, 0x48].as_slice(), &big].concat(),
    );
    assert_eq!(
        drops(&d.flush().collect::<Vec<_>>()),
        [DropReason::Unsupported]
    );
}

#[test]
fn after_a_loss_only_a_whole_key_frame_is_taken() {
    let mut d = h264();
    push(&mut d, 3000, true, &stap_a(&[&sps_720x404(), PPS, IDR]));
    d.lost();
    // The first slice of this IDR picture was lost: its second slice does not begin it.
    assert_eq!(
        drops(&push(&mut d, 6000, true, IDR_SLICE2)),
        [DropReason::WaitingForKeyframe]
    );
    // An IDR that begins with its first slice is whole (parameter sets known from before).
    let out = push(&mut d, 9000, true, IDR);
    assert!(only_frame(&out).keyframe);
    assert!(configs(&out).is_empty());
}

#[test]
fn new_parameter_sets_announce_a_new_config() {
    let mut d = h264();
    push(&mut d, 3000, true, &stap_a(&[&sps_720x404(), PPS, IDR]));
    // New SPS in a non-IDR unit: remembered, announced with the next IDR.
    let out = push(&mut d, 6000, true, &stap_a(&[&sps_640x360(), P_SLICE]));
    assert!(configs(&out).is_empty());
    let out = push(&mut d, 9000, true, IDR);
    assert_eq!(
        configs(&out),
        [CodecConfig::H264 {
            width: 640,
            height: 360,
            sps: sps_640x360(),
            pps: PPS.to_vec(),
        }]
    );
}
