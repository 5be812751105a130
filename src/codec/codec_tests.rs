//! Tests for `codec.rs`: hand-built packets from the RFC payload layouts, and never-panic
//! checks over short and arbitrary inputs.

use super::CodecKind::*;
use super::*;
use proptest::prelude::*;

/// VP8 key frame payload header start: frame tag with P=0, then the start code (RFC 6386 §9.1).
const VP8_KEY_TAG: [u8; 6] = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a];
const VP8_DELTA_TAG: [u8; 3] = [0x31, 0x02, 0x00];

/// Parses a descriptor the test built complete; a `None` here is itself a test failure.
fn parse(bytes: &[u8]) -> Vp8Descriptor {
    parse_vp8_descriptor(bytes).expect("test packet carries a complete descriptor")
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn vp8_keyframe_detection() {
    let cases: &[(&str, Vec<u8>, bool)] = &[
        ("key, no extension", cat(&[&[0x10], &VP8_KEY_TAG]), true),
        (
            "key, 7-bit picture id",
            cat(&[&[0x90, 0x80, 0x05], &VP8_KEY_TAG]),
            true,
        ),
        (
            "key, 15-bit pid + L + T/K",
            cat(&[&[0x90, 0xF0, 0x92, 0x34, 0x07, 0x7F], &VP8_KEY_TAG]),
            true,
        ),
        (
            "key, K only",
            cat(&[&[0x90, 0x10, 0x03], &VP8_KEY_TAG]),
            true,
        ),
        ("delta frame", cat(&[&[0x10], &VP8_DELTA_TAG]), false),
        (
            "delta, extensions",
            cat(&[&[0x90, 0xE0, 0x85, 0x01, 0x02, 0x40], &VP8_DELTA_TAG]),
            false,
        ),
        (
            "not start of partition",
            cat(&[&[0x00], &VP8_KEY_TAG]),
            false,
        ),
        ("start of partition 1", cat(&[&[0x11], &VP8_KEY_TAG]), false),
        ("descriptor only", vec![0x10], false),
        ("truncated 15-bit pid", vec![0x90, 0x80, 0x81], false),
        ("truncated T/K byte", vec![0x90, 0x20], false),
        ("empty", vec![], false),
    ];
    for (name, pkt, want) in cases {
        assert_eq!(is_keyframe_start(Vp8, pkt), *want, "{name}");
    }
}

#[test]
fn vp8_descriptor_fields() {
    let d = parse(&[0x90, 0xF0, 0x92, 0x34, 0x07, 0x7F, 0x50]);
    let want = Vp8Descriptor {
        picture_id: Some(0x1234),
        picture_id_15bit: true,
        tl0picidx: Some(7),
        tid: Some(1),
        layer_sync: true,
        key_idx: Some(0x1F),
        start_of_partition: true,
        partition_id: 0,
        header_len: 6,
    };
    assert_eq!(d, want);

    let d = parse(&[0x93, 0x80, 0x05, 0x50]);
    assert_eq!(
        (d.picture_id, d.picture_id_15bit, d.partition_id),
        (Some(5), false, 3)
    );
    assert_eq!((d.tid, d.key_idx, d.header_len), (None, None, 3));

    // K without T: the TID/Y bits are not reported.
    let d = parse(&[0x80, 0x10, 0xE5]);
    assert_eq!((d.tid, d.layer_sync, d.key_idx), (None, false, Some(5)));

    let d = parse(&[0x00]);
    assert_eq!(
        (d.start_of_partition, d.header_len, d.picture_id),
        (false, 1, None)
    );

    for truncated in [
        &[][..],
        &[0x80],
        &[0x80, 0x80],
        &[0x80, 0x80, 0x80],
        &[0x80, 0x40],
        &[0x80, 0x30],
    ] {
        assert_eq!(parse_vp8_descriptor(truncated), None, "{truncated:02x?}");
    }
}

#[test]
fn temporal_ids() {
    assert_eq!(temporal_id(Vp8, &[0x90, 0x20, 0x80, 0x00]), Some(2));
    assert_eq!(temporal_id(Vp8, &[0x90, 0x10, 0x80, 0x00]), None);
    assert_eq!(temporal_id(Vp8, &[0x10, 0x00]), None);
    // VP9 I|L with 15-bit picture id, layer byte TID=2 SID=0, TL0PICIDX.
    assert_eq!(temporal_id(Vp9, &[0xA8, 0x81, 0x23, 0x40, 0x07]), Some(2));
    // VP9 L with 7-bit picture id, TID=7.
    assert_eq!(temporal_id(Vp9, &[0xA0, 0x05, 0xE0]), Some(7));
    assert_eq!(temporal_id(Vp9, &[0x88, 0x05]), None, "no L bit");
    assert_eq!(temporal_id(Vp9, &[0xA0, 0x85, 0x01]), None, "truncated");
    assert_eq!(temporal_id(H264, &[0x65]), None);
    assert_eq!(temporal_id(Opus, &[0x90, 0x20, 0x80]), None);
}

#[test]
fn vp9_keyframe_detection() {
    let cases: &[(&str, &[u8], bool)] = &[
        (
            "key, pid, scalability structure",
            &[0x8A, 0x85, 0x01, 0x18, 0x01],
            true,
        ),
        ("key, no pid", &[0x08, 0x00], true),
        ("key, L with SID 0", &[0xA8, 0x81, 0x23, 0x40, 0x07], true),
        ("key, L with SID 1", &[0xA8, 0x81, 0x23, 0x42, 0x07], false),
        ("inter frame", &[0xC8, 0x85, 0x00], false),
        ("key, not beginning of frame", &[0x84, 0x85, 0x00], false),
        ("L set, layer byte truncated", &[0xA8, 0x81, 0x23], false),
        ("empty", &[], false),
    ];
    for (name, pkt, want) in cases {
        assert_eq!(is_keyframe_start(Vp9, pkt), *want, "{name}");
    }
}

#[test]
fn h264_keyframe_detection() {
    let sps: &[u8] = &[0x67, 0x42, 0xc0, 0x1f];
    let pps: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    let idr: &[u8] = &[0x65, 0x88, 0x84];
    let stap = cat(&[
        &[0x78, 0x00, 0x04],
        sps,
        &[0x00, 0x04],
        pps,
        &[0x00, 0x03],
        idr,
    ]);
    let cases: &[(&str, Vec<u8>, bool)] = &[
        ("IDR single NAL", idr.to_vec(), true),
        ("SPS single NAL", sps.to_vec(), true),
        ("PPS single NAL", pps.to_vec(), false),
        ("non-IDR slice", vec![0x41, 0x9a, 0x02], false),
        ("STAP-A SPS+PPS+IDR", stap.clone(), true),
        (
            "STAP-A IDR last",
            cat(&[&[0x78, 0x00, 0x04], pps, &[0x00, 0x03], idr]),
            true,
        ),
        (
            "STAP-A non-key only",
            vec![0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x01, 0x06],
            false,
        ),
        (
            "STAP-A key beyond overrun size",
            vec![0x78, 0x00, 0x09, 0x41, 0x65],
            false,
        ),
        (
            "STAP-A zero size",
            vec![0x78, 0x00, 0x00, 0x00, 0x01, 0x65],
            false,
        ),
        ("STAP-A header only", vec![0x78], false),
        ("FU-A start of IDR", vec![0x7C, 0x85, 0x88, 0x84], true),
        ("FU-A middle of IDR", vec![0x7C, 0x05, 0x88], false),
        ("FU-A end of IDR", vec![0x7C, 0x45, 0x88], false),
        ("FU-A start of non-IDR", vec![0x5C, 0x81, 0x9a], false),
        ("FU-A truncated", vec![0x7C], false),
        ("empty", vec![], false),
    ];
    for (name, pkt, want) in cases {
        assert_eq!(is_keyframe_start(H264, pkt), *want, "{name}");
    }
    // Truncating the STAP-A before the SPS is complete (1 + 2 + 4 bytes) hides every key NAL unit.
    for len in 0..7 {
        assert!(!is_keyframe_start(H264, &stap[..len]), "len {len}");
    }
}

#[test]
fn h265_keyframe_detection() {
    let nal = |t: u8| [t << 1, 0x01];
    let cases: &[(&str, Vec<u8>, bool)] = &[
        ("IDR_W_RADL", cat(&[&nal(19), &[0xaf]]), true),
        ("IDR_N_LP", nal(20).to_vec(), true),
        ("CRA", nal(21).to_vec(), true),
        ("BLA_W_LP", nal(16).to_vec(), true),
        ("VPS", nal(32).to_vec(), true),
        ("SPS", nal(33).to_vec(), true),
        ("PPS", nal(34).to_vec(), false),
        ("TRAIL_R", cat(&[&nal(1), &[0xaf]]), false),
        ("type 22 (reserved IRAP)", nal(22).to_vec(), false),
        (
            "AP VPS+SPS+PPS",
            cat(&[
                &nal(48),
                &[0, 2],
                &nal(32),
                &[0, 2],
                &nal(33),
                &[0, 2],
                &nal(34),
            ]),
            true,
        ),
        (
            "AP TRAIL only",
            cat(&[&nal(48), &[0, 3], &nal(1), &[0xaf]]),
            false,
        ),
        ("AP truncated size", cat(&[&nal(48), &[0]]), false),
        (
            "FU start of IDR",
            cat(&[&nal(49), &[0x80 | 19, 0xaf]]),
            true,
        ),
        ("FU middle of IDR", cat(&[&nal(49), &[19, 0xaf]]), false),
        ("FU start of TRAIL", cat(&[&nal(49), &[0x81]]), false),
        ("FU truncated", nal(49).to_vec(), false),
        ("one byte", vec![19 << 1], false),
        ("empty", vec![], false),
    ];
    for (name, pkt, want) in cases {
        assert_eq!(is_keyframe_start(H265, pkt), *want, "{name}");
    }
}

#[test]
fn av1_audio_and_other() {
    assert!(is_keyframe_start(Av1, &[0x18, 0x0a]), "N=1, W=1");
    assert!(is_keyframe_start(Av1, &[0x08]), "N=1");
    assert!(!is_keyframe_start(Av1, &[0x10, 0x0a]), "N=0");
    assert!(!is_keyframe_start(Av1, &[0xF7]), "all but N");
    assert!(!is_keyframe_start(Av1, &[]));
    for codec in [Opus, Other] {
        assert!(!is_keyframe_start(codec, &[0x10, 0x50, 0x65, 0x08]));
    }
}

const ALL: [CodecKind; 7] = [Opus, Vp8, Vp9, H264, H265, Av1, Other];

fn inspect_all(bytes: &[u8]) {
    for codec in ALL {
        let _ = is_keyframe_start(codec, bytes);
        let _ = temporal_id(codec, bytes);
    }
    if let Some(d) = parse_vp8_descriptor(bytes) {
        assert!(d.header_len <= bytes.len() && d.header_len <= 6);
    }
}

#[test]
fn short_inputs_never_panic() {
    for len in 0..=8 {
        for first in 0..=u8::MAX {
            for fill in [0x00, 0xFF, 0x80, 0x7F, 0x10, 0x01] {
                let mut buf = [fill; 8];
                buf[0] = first;
                inspect_all(&buf[..len]);
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        inspect_all(&bytes);
    }

    #[test]
    fn vp8_descriptor_round_trips(
        pid in proptest::option::of(0u16..0x8000),
        long in any::<bool>(),
        tl0 in proptest::option::of(any::<u8>()),
        tid in proptest::option::of(0u8..4),
        y in any::<bool>(),
        key_idx in proptest::option::of(0u8..32),
        s in any::<bool>(),
        part in 0u8..8,
    ) {
        let long = long || pid.is_some_and(|p| p > 0x7F);
        let mut pkt = vec![u8::from(s) << 4 | part];
        let x = u8::from(pid.is_some()) << 7 | u8::from(tl0.is_some()) << 6
            | u8::from(tid.is_some()) << 5 | u8::from(key_idx.is_some()) << 4;
        if x != 0 {
            pkt[0] |= 0x80;
            pkt.push(x);
        }
        match pid {
            Some(p) if long => pkt.extend_from_slice(&(p | 0x8000).to_be_bytes()),
            Some(p) => pkt.push(p as u8), // p <= 0x7F here
            None => {}
        }
        pkt.extend(tl0);
        if tid.is_some() || key_idx.is_some() {
            pkt.push(tid.unwrap_or(0) << 6 | u8::from(y) << 5 | key_idx.unwrap_or(0));
        }
        let header_len = pkt.len();
        pkt.extend_from_slice(&VP8_KEY_TAG);
        let d = parse(&pkt);
        prop_assert_eq!(d, Vp8Descriptor {
            picture_id: pid,
            picture_id_15bit: pid.is_some() && long,
            tl0picidx: tl0,
            tid,
            layer_sync: tid.is_some() && y,
            key_idx,
            start_of_partition: s,
            partition_id: part,
            header_len,
        });
        prop_assert_eq!(is_keyframe_start(Vp8, &pkt), s && part == 0);
        prop_assert_eq!(temporal_id(Vp8, &pkt), tid);
        // Every proper prefix of the descriptor is reported as truncated.
        for len in 0..header_len {
            prop_assert_eq!(parse_vp8_descriptor(&pkt[..len]), None);
        }
    }
}
