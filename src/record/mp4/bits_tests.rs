//! Tests for `bits.rs`: SPS and AV1 sequence header fields from real encoder output
//! (libx264, libaom through ffmpeg), Opus TOC durations, and never-panic properties.

use proptest::prelude::*;

use super::*;

/// libx264 constrained baseline 64x48 SPS (with an emulation prevention byte).
pub(in crate::record::mp4) const SPS_BASELINE: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
    0x03, 0x03, 0xc0, 0xf1, 0x22, 0x64, 0x80,
];
/// The PPS that goes with [`SPS_BASELINE`].
pub(in crate::record::mp4) const PPS_BASELINE: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
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
/// libaom (realtime, 4:2:0 8-bit, 64x48) sequence header OBU, with its size field.
pub(in crate::record::mp4) const AV1_SEQUENCE_HEADER: &[u8] = &[
    0x0a, 0x0a, 0x00, 0x00, 0x00, 0x02, 0xaf, 0xf7, 0x9b, 0x5f, 0x20, 0x08,
];

#[test]
fn sps_fields_per_profile() {
    let baseline = parse_avc_sps(SPS_BASELINE).unwrap();
    assert_eq!(
        (
            baseline.profile_idc,
            baseline.constraint_flags,
            baseline.level_idc
        ),
        (66, 0xc0, 10)
    );
    assert_eq!(baseline.chroma_format_idc, 1, "not coded: 4:2:0");
    let high = parse_avc_sps(SPS_HIGH).unwrap();
    assert_eq!((high.profile_idc, high.level_idc), (100, 10));
    assert_eq!(
        (
            high.chroma_format_idc,
            high.bit_depth_luma_minus8,
            high.bit_depth_chroma_minus8
        ),
        (1, 0, 0)
    );
    let high444 = parse_avc_sps(SPS_HIGH444_10BIT).unwrap();
    assert_eq!(high444.profile_idc, 244);
    assert_eq!(
        (
            high444.chroma_format_idc,
            high444.bit_depth_luma_minus8,
            high444.bit_depth_chroma_minus8
        ),
        (3, 2, 2)
    );
}

#[test]
fn sps_rejects_other_nal_units_and_truncation() {
    assert_eq!(parse_avc_sps(&[]), None);
    assert_eq!(parse_avc_sps(&[0x68, 0xce, 0x38, 0x80]), None, "a PPS");
    assert_eq!(
        parse_avc_sps(&[0xe7, 0x42, 0xc0, 0x0a, 0xd9]),
        None,
        "forbidden bit"
    );
    assert_eq!(
        parse_avc_sps(&SPS_HIGH[..4]),
        None,
        "cut before the high profile fields"
    );
    assert_eq!(
        unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
        [0, 0, 1, 0, 0, 0, 0]
    );
}

#[test]
fn av1_sequence_header_fields() {
    let f = parse_av1_sequence_header(AV1_SEQUENCE_HEADER).unwrap();
    assert_eq!(
        f,
        Av1SequenceFields {
            seq_profile: 0,
            seq_level_idx_0: 0,
            seq_tier_0: false,
            high_bitdepth: false,
            twelve_bit: false,
            monochrome: false,
            chroma_subsampling_x: true,
            chroma_subsampling_y: true,
            chroma_sample_position: 0,
        }
    );
    // Without the size field (obu_has_size_field = 0) the payload runs to the end.
    let mut unsized_obu = vec![0x08];
    unsized_obu.extend_from_slice(&AV1_SEQUENCE_HEADER[2..]);
    assert_eq!(parse_av1_sequence_header(&unsized_obu), Some(f));
}

#[test]
fn av1_reduced_still_picture_header() {
    // seq_profile 1, still_picture 1, reduced 1, seq_level_idx 9 (5 bits), then
    // frame_width_bits_minus_1 = 15, frame_height_bits_minus_1 = 15, 16 + 16 bits of sizes,
    // three tool flags, three more, high_bitdepth 1: profile 1 → 4:4:4, no mono bit.
    let mut w = BitWriter::default();
    w.put(1, 3);
    w.put(1, 1);
    w.put(1, 1);
    w.put(9, 5);
    w.put(15, 4);
    w.put(15, 4);
    w.put(1919, 16);
    w.put(1079, 16);
    w.put(0, 3);
    w.put(0, 3);
    w.put(1, 1); // high_bitdepth
    w.put(0, 1); // color_description_present_flag
    w.put(0, 1); // color_range
    let mut obu = vec![0x0a, w.bytes.len() as u8];
    obu.extend_from_slice(&w.bytes);
    let f = parse_av1_sequence_header(&obu).unwrap();
    assert_eq!(
        (f.seq_profile, f.seq_level_idx_0, f.seq_tier_0),
        (1, 9, false)
    );
    assert!(f.high_bitdepth && !f.twelve_bit && !f.monochrome);
    assert!(!f.chroma_subsampling_x && !f.chroma_subsampling_y);
}

#[test]
fn av1_rejects_other_obus_and_truncation() {
    assert_eq!(parse_av1_sequence_header(&[]), None);
    assert_eq!(
        parse_av1_sequence_header(&[0x12, 0x00]),
        None,
        "temporal delimiter"
    );
    assert_eq!(parse_av1_sequence_header(&AV1_SEQUENCE_HEADER[..8]), None);
    assert_eq!(
        parse_av1_sequence_header(&[0x0a, 0xff]),
        None,
        "unterminated leb128"
    );
    assert_eq!(read_leb128(&[0x80, 0x01]), Some((128, 2)));
}

#[test]
fn opus_toc_durations() {
    assert_eq!(
        opus_packet_samples(&[0xf8, 0xff, 0xfe]),
        Some(960),
        "CELT FB 20 ms"
    );
    assert_eq!(opus_packet_samples(&[0x08]), Some(960), "SILK NB 20 ms");
    assert_eq!(
        opus_packet_samples(&[0x18 | 1]),
        Some(5760),
        "two SILK 60 ms frames"
    );
    assert_eq!(
        opus_packet_samples(&[0x80 | 3, 3]),
        Some(360),
        "three 2.5 ms frames"
    );
    assert_eq!(
        opus_packet_samples(&[0xf8 | 3, 7]),
        None,
        "140 ms is over the limit"
    );
    assert_eq!(
        opus_packet_samples(&[0xfb]),
        None,
        "code 3 without its count"
    );
    assert_eq!(opus_packet_samples(&[0xfb, 0]), None, "no frame");
    assert_eq!(opus_packet_samples(&[]), None);
}

/// Writes bit fields for hand-built headers.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn put(&mut self, value: u32, n: u32) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            *self.bytes.last_mut().unwrap() |= bit << (7 - self.bits % 8);
            self.bits += 1;
        }
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_avc_sps(&bytes);
        let _ = parse_av1_sequence_header(&bytes);
        let _ = opus_packet_samples(&bytes);
        let mut sps = vec![0x67];
        sps.extend_from_slice(&bytes);
        let _ = parse_avc_sps(&sps);
        let mut obu = vec![0x08];
        obu.extend_from_slice(&bytes);
        let _ = parse_av1_sequence_header(&obu);
    }

    #[test]
    fn truncated_real_headers_never_panic(cut in 0usize..24) {
        let _ = parse_avc_sps(&SPS_HIGH444_10BIT[..cut.min(SPS_HIGH444_10BIT.len())]);
        let _ = parse_av1_sequence_header(&AV1_SEQUENCE_HEADER[..cut.min(12)]);
    }
}
