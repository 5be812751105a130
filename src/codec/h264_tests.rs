//! Tests for `h264.rs`: SPS fields from real encoder output (libx264 through ffmpeg),
//! rejections, truncation and never-panic properties. The frame size computation (cropping,
//! scaling lists, POC types, emulation prevention) is tested through
//! `resolution::parse_h264_sps` in `resolution_tests.rs`. The vectors here are also the
//! recorder's (`crate::record::mp4` tests).

use proptest::prelude::*;

use super::*;
use crate::codec::bits::tests::BitWriter;

/// libx264 constrained baseline 64x48 SPS (with an emulation prevention byte).
pub(crate) const SPS_BASELINE: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
    0x03, 0x03, 0xc0, 0xf1, 0x22, 0x64, 0x80,
];
/// The PPS that goes with [`SPS_BASELINE`].
pub(crate) const PPS_BASELINE: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
/// libx264 high profile 4:2:0 8-bit 64x48 SPS.
const SPS_HIGH: &[u8] = &[
    0x67, 0x64, 0x00, 0x0a, 0xac, 0xd9, 0x44, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0xc0, 0xf1, 0x22, 0x59, 0x60,
];
/// libx264 high 4:4:4 predictive profile, 10-bit 4:4:4 64x48 SPS.
const SPS_HIGH444_10BIT: &[u8] = &[
    0x67, 0xf4, 0x00, 0x0a, 0x90, 0xd9, 0xb2, 0x88, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20,
    0x00, 0x00, 0x07, 0x81, 0xe2, 0x44, 0xb2, 0xc0,
];

const SIZE_64X48: Resolution = Resolution {
    width: 64,
    height: 48,
};

#[test]
fn sps_fields_per_profile() {
    let baseline = parse_sps(SPS_BASELINE).unwrap();
    assert_eq!(
        (
            baseline.profile_idc,
            baseline.constraint_flags,
            baseline.level_idc
        ),
        (66, 0xc0, 10)
    );
    assert_eq!(baseline.chroma_format_idc, 1, "not coded: 4:2:0");
    assert_eq!(baseline.resolution, SIZE_64X48);
    let high = parse_sps(SPS_HIGH).unwrap();
    assert_eq!((high.profile_idc, high.level_idc), (100, 10));
    assert_eq!(
        (
            high.chroma_format_idc,
            high.bit_depth_luma_minus8,
            high.bit_depth_chroma_minus8
        ),
        (1, 0, 0)
    );
    assert_eq!(high.resolution, SIZE_64X48);
    let high444 = parse_sps(SPS_HIGH444_10BIT).unwrap();
    assert_eq!(high444.profile_idc, 244);
    assert_eq!(
        (
            high444.chroma_format_idc,
            high444.bit_depth_luma_minus8,
            high444.bit_depth_chroma_minus8
        ),
        (3, 2, 2)
    );
    assert!(!high444.separate_colour_plane);
    assert_eq!(high444.resolution, SIZE_64X48);
    // The data after the NAL header parses alone (as an FU-A start fragment carries it).
    assert_eq!(
        parse_seq_parameter_set_data(&SPS_HIGH[1..]),
        Some(high),
        "without the NAL header"
    );
}

#[test]
fn sps_rejects_other_nal_units_and_truncation() {
    assert_eq!(parse_sps(&[]), None);
    assert_eq!(parse_sps(&[0x68, 0xce, 0x38, 0x80]), None, "a PPS");
    assert_eq!(
        parse_sps(&[0xe7, 0x42, 0xc0, 0x0a, 0xd9]),
        None,
        "forbidden bit"
    );
    assert_eq!(
        parse_sps(&SPS_HIGH[..4]),
        None,
        "cut before the high profile fields"
    );
    // Every cut before the cropping fields end is None, never a panic.
    for sps in [SPS_BASELINE, SPS_HIGH, SPS_HIGH444_10BIT] {
        let whole = parse_sps(sps);
        for len in 0..sps.len() {
            let got = parse_sps(&sps[..len]);
            assert!(got.is_none() || got == whole, "len {len}");
        }
    }
}

#[test]
fn sps_out_of_range_fields() {
    // A high profile SPS with the given chroma_format_idc and bit depths, 320×192.
    let sps = |chroma: u64, luma: u64, chroma_depth: u64, sps_id: u64| {
        let mut w = BitWriter::default();
        w.f(8, 100).f(8, 0).f(8, 31).ue(sps_id);
        w.ue(chroma);
        if chroma == 3 {
            w.bit(false);
        }
        w.ue(luma).ue(chroma_depth).bit(false).bit(false);
        w.ue(0).ue(2).ue(0); // log2_max_frame_num, poc type 2, max_num_ref_frames
        w.bit(false).ue(19).ue(11).bit(true).bit(true).bit(false);
        [&[0x67][..], &w.finish_rbsp()].concat()
    };
    let ok = parse_sps(&sps(1, 6, 6, 31)).expect("in range");
    assert_eq!(
        (
            ok.bit_depth_luma_minus8,
            ok.bit_depth_chroma_minus8,
            ok.seq_parameter_set_id
        ),
        (6, 6, 31)
    );
    assert_eq!(
        ok.resolution,
        Resolution {
            width: 320,
            height: 192
        }
    );
    assert_eq!(parse_sps(&sps(1, 7, 0, 0)), None, "luma bit depth 15");
    assert_eq!(parse_sps(&sps(1, 0, 7, 0)), None, "chroma bit depth 15");
    assert_eq!(parse_sps(&sps(4, 0, 0, 0)), None, "chroma_format_idc 4");
    assert_eq!(
        parse_sps(&sps(1, 0, 0, 32)),
        None,
        "seq_parameter_set_id 32"
    );
    assert_eq!(
        parse_sps(&sps(0, 0, 0, 0)).map(|s| s.chroma_format_idc),
        Some(0)
    );
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_sps(&bytes);
        let _ = parse_seq_parameter_set_data(&bytes);
        let mut sps = vec![0x67];
        sps.extend_from_slice(&bytes);
        if let Some(s) = parse_sps(&sps) {
            prop_assert!(s.chroma_format_idc <= 3 && s.seq_parameter_set_id <= 31);
            prop_assert!(s.bit_depth_luma_minus8 <= 6 && s.bit_depth_chroma_minus8 <= 6);
            prop_assert!((1..=16384).contains(&s.resolution.width));
            prop_assert!((1..=16384).contains(&s.resolution.height));
        }
    }

    #[test]
    fn truncated_real_headers_never_panic(cut in 0usize..24) {
        let _ = parse_sps(&SPS_HIGH444_10BIT[..cut.min(SPS_HIGH444_10BIT.len())]);
    }
}
