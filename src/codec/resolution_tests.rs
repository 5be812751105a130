use super::*;
use crate::codec::bits::tests::BitWriter;
use proptest::prelude::*;

fn res(width: u16, height: u16) -> Option<Resolution> {
    Some(Resolution { width, height })
}

// ---------------------------------------------------------------- VP8

/// RFC 6386 §9.1 keyframe header: frame tag (P = 0 unless `delta`, version 0, show_frame 1,
/// first_part_size 0x1234), start code, then the raw 16-bit width/height fields, then a few
/// bytes of partition data.
fn vp8_frame(raw_width: u16, raw_height: u16, delta: bool) -> Vec<u8> {
    let tag: u32 = (0x1234 << 5) | (1 << 4) | u32::from(delta);
    let mut out = tag.to_le_bytes()[..3].to_vec();
    out.extend_from_slice(&[0x9d, 0x01, 0x2a]);
    out.extend_from_slice(&raw_width.to_le_bytes());
    out.extend_from_slice(&raw_height.to_le_bytes());
    out.extend_from_slice(&[0xaa, 0x55, 0x00, 0x42]);
    out
}

/// Minimal descriptor: X = 0, N = 0, S = 1, PID = 0.
const VP8_MINIMAL: &[u8] = &[0x10];
/// X = 1, S = 1; I L T K all set; M = 1 with 15-bit PictureID 0x1abc; TL0PICIDX; TID/Y/KEYIDX.
const VP8_FULL: &[u8] = &[0x90, 0xf0, 0x80 | 0x1a, 0xbc, 0x07, 0x5f];
/// X = 1, N = 1, S = 1; I and K only, 7-bit PictureID 0x55.
const VP8_SHORT_PID: &[u8] = &[0xb0, 0x90, 0x55, 0x03];

fn vp8_packet(descriptor: &[u8], frame: &[u8]) -> Vec<u8> {
    [descriptor, frame].concat()
}

#[test]
fn vp8_keyframe_sizes_with_every_descriptor_shape() {
    for descriptor in [VP8_MINIMAL, VP8_FULL, VP8_SHORT_PID] {
        for (w, h) in [(1280, 720), (640, 360), (320, 180)] {
            let packet = vp8_packet(descriptor, &vp8_frame(w, h, false));
            assert_eq!(vp8_keyframe_resolution(&packet), res(w, h), "{packet:x?}");
        }
    }
}

#[test]
fn vp8_scaling_bits_are_masked_off() {
    for scale in [0x4000, 0x8000, 0xc000] {
        let packet = vp8_packet(VP8_FULL, &vp8_frame(1280 | scale, 720 | scale, false));
        assert_eq!(vp8_keyframe_resolution(&packet), res(1280, 720));
    }
}

#[test]
fn vp8_truncated_at_every_length_is_none() {
    for descriptor in [VP8_MINIMAL, VP8_FULL, VP8_SHORT_PID] {
        let packet = vp8_packet(descriptor, &vp8_frame(320, 180, false));
        let needed = descriptor.len() + 10;
        for len in 0..needed {
            assert_eq!(vp8_keyframe_resolution(&packet[..len]), None, "len {len}");
        }
        assert_eq!(vp8_keyframe_resolution(&packet[..needed]), res(320, 180));
    }
}

#[test]
fn vp8_not_start_of_frame_is_none() {
    let frame = vp8_frame(640, 360, false);
    // S = 0 (continuation packet), then S = 1 but a later partition (PID 1 and 7).
    for first in [0x00, 0x80, 0x11, 0x17, 0x91] {
        let mut packet = vp8_packet(VP8_FULL, &frame);
        packet[0] = first;
        assert_eq!(vp8_keyframe_resolution(&packet), None, "{first:#x}");
    }
}

#[test]
fn vp8_delta_frame_bad_start_code_or_zero_size_is_none() {
    for descriptor in [VP8_MINIMAL, VP8_FULL] {
        let packet = vp8_packet(descriptor, &vp8_frame(640, 360, true));
        assert_eq!(vp8_keyframe_resolution(&packet), None);
    }
    let mut packet = vp8_packet(VP8_MINIMAL, &vp8_frame(640, 360, false));
    packet[5] = 0x02;
    assert_eq!(vp8_keyframe_resolution(&packet), None);
    for (w, h) in [(0, 360), (640, 0), (0xc000, 360)] {
        let packet = vp8_packet(VP8_MINIMAL, &vp8_frame(w, h, false));
        assert_eq!(vp8_keyframe_resolution(&packet), None);
    }
}

// ---------------------------------------------------------------- H.264: real encoder output

/// Hex digits (spaces ignored) to bytes.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    let nibble = |c: u8| (c as char).to_digit(16).unwrap() as u8;
    digits
        .chunks(2)
        .map(|p| nibble(p[0]) << 4 | nibble(p[1]))
        .collect()
}

/// SPS NAL units from real encoders with the size their sources state (each also decoded by
/// hand against §7.3.2.1.1): x264 High 1080p, 1088 lines cropped by 8 (bluenviron mediacommon
/// tests); a High interlaced SPS published only as "frame_mbs_only 0", size from the hand
/// decode (2 × 34 map units × 16 = 1088, crop_bottom 2 in units of 4);
/// ffmpeg High 4:2:2 (profile 122, chroma_format_idc 2) from WebRTC's sps_parser_unittest;
/// Constrained Baseline with pic_order_cnt_type 2 and crop_bottom 6 (videojs mux.js tests).
/// All contain emulation prevention bytes.
#[rustfmt::skip]
const REAL_SPS: [(&str, u16, u16); 6] = [
    ("6764 0028 acd9 4078 0227 e584 0000 0300 0400 0003 00f0 3c60 c658", 1920, 1080),
    ("6764 0028 acd9 4078 044f de02 2000 0003 0020 0000 0643 e2c5 b2c0", 1920, 1080),
    ("677a 001f bcd9 4050 05ba 1000 0003 00c0 0000 2ae0 f183 1960", 1280, 720),
    ("677a 001e bcd9 40a0 2ff8 9840 0000 0301 8000 0056 83c5 8b65 80", 640, 360),
    ("677a 000d bcd9 4343 3e5e 1000 0003 0060 0000 15a0 f142 9960", 200, 400),
    ("6742 c01e d900 b435 f9e1 0000 0300 0100 0003 003c 0f16 2e48", 720, 404),
];

#[test]
fn real_sps_vectors_and_all_their_prefixes() {
    for (text, w, h) in REAL_SPS {
        let nal = hex(text);
        assert_eq!(parse_h264_sps(&nal), res(w, h), "{text}");
        assert_eq!(h264_sps_resolution(&nal), res(w, h), "{text} as a payload");
        for len in 0..nal.len() {
            let got = parse_h264_sps(&nal[..len]);
            assert!(got.is_none() || got == res(w, h), "{text} len {len}");
        }
        assert_eq!(parse_h264_sps(&nal[..8]), None, "{text}");
    }
}

// ---------------------------------------------------------------- H.264: reference encoder

/// §7.4.1: an encoder inserts 0x03 wherever 0x00 0x00 would be followed by 0x00..=0x03.
fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut zeros = 0;
    for &byte in rbsp {
        if zeros >= 2 && byte <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// One scaling_list(): the values in order, a 0 ends the list early (0 first: use default).
fn write_scaling_list(w: &mut BitWriter, values: &[i64]) {
    let mut last = 8;
    for &v in values {
        w.se((v - last + 128).rem_euclid(256) - 128);
        if v == 0 {
            return;
        }
        last = v;
    }
}

/// Parameters of a generated SPS; fields follow §7.3.2.1.1 names.
struct Sps {
    profile_idc: u8,
    chroma_format_idc: u64,
    separate_colour_plane: bool,
    scaling_lists: Vec<Option<Vec<i64>>>, // empty: no seq_scaling_matrix
    poc_type: u64,
    offset_for_non_ref_pic: i64,
    poc_cycle: Vec<i64>,
    max_num_ref_frames: u64,
    frame_mbs_only: bool,
    width_mbs: u64,
    height_map_units: u64,
    crop: Option<[u64; 4]>, // left, right, top, bottom
}

impl Sps {
    fn new(profile_idc: u8, width_mbs: u64, height_map_units: u64) -> Self {
        Self {
            profile_idc,
            chroma_format_idc: 1,
            separate_colour_plane: false,
            scaling_lists: Vec::new(),
            poc_type: 0,
            offset_for_non_ref_pic: -3,
            poc_cycle: vec![1, -2, 300],
            max_num_ref_frames: 3,
            frame_mbs_only: true,
            width_mbs,
            height_map_units,
            crop: None,
        }
    }

    /// (RBSP, escaped NAL unit with header 0x67).
    fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let mut w = BitWriter::default();
        w.f(8, self.profile_idc.into());
        w.f(8, 0b0000_0000);
        w.f(8, 31); // level 3.1
        w.ue(0);
        if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]
            .contains(&self.profile_idc)
        {
            w.ue(self.chroma_format_idc);
            if self.chroma_format_idc == 3 {
                w.bit(self.separate_colour_plane);
            }
            w.ue(0);
            w.ue(0);
            w.bit(false);
            w.bit(!self.scaling_lists.is_empty());
            for list in &self.scaling_lists {
                w.bit(list.is_some());
                list.iter().for_each(|l| write_scaling_list(&mut w, l));
            }
        }
        w.ue(2); // log2_max_frame_num_minus4
        w.ue(self.poc_type);
        match self.poc_type {
            0 => {
                w.ue(4);
            }
            1 => {
                w.bit(false);
                w.se(self.offset_for_non_ref_pic);
                w.se(5);
                w.ue(self.poc_cycle.len() as u64);
                self.poc_cycle.iter().for_each(|&o| {
                    w.se(o);
                });
            }
            _ => {}
        }
        w.ue(self.max_num_ref_frames);
        w.bit(false);
        w.ue(self.width_mbs - 1);
        w.ue(self.height_map_units - 1);
        w.bit(self.frame_mbs_only);
        if !self.frame_mbs_only {
            w.bit(true);
        }
        w.bit(true);
        w.bit(self.crop.is_some());
        self.crop.iter().flatten().for_each(|&c| {
            w.ue(c);
        });
        w.bit(false); // vui_parameters_present_flag
        let rbsp = w.finish_rbsp();
        let nal = [&[0x67][..], &escape(&rbsp)].concat();
        (rbsp, nal)
    }
}

/// 4:2:0 SPS for a display size: coded in whole macroblocks (pairs of them vertically for
/// fields), the excess cropped at the right and bottom in 2-sample (4 for fields) units.
fn sps_420(profile_idc: u8, width: u64, height: u64, frame_mbs_only: bool) -> Sps {
    let rows = if frame_mbs_only { 16 } else { 32 };
    let (coded_w, coded_h) = (width.div_ceil(16) * 16, height.div_ceil(rows) * rows);
    let mut sps = Sps::new(profile_idc, coded_w / 16, coded_h / rows);
    sps.frame_mbs_only = frame_mbs_only;
    let unit_y = if frame_mbs_only { 2 } else { 4 };
    if (coded_w, coded_h) != (width, height) {
        sps.crop = Some([0, (coded_w - width) / 2, 0, (coded_h - height) / unit_y]);
    }
    sps
}

/// Explicit 4×4 lists, defaulted lists, lists ended early, and 8×8 lists whose steps need
/// the modulo-256 wrap.
fn sample_scaling_lists(count: usize) -> Vec<Option<Vec<i64>>> {
    let wrapping = || (0..64).map(|j| [200, 4, 255, 1][j % 4]).collect();
    (0..count)
        .map(|i| match i % 3 {
            0 if i < 6 => Some((6..22).collect()),
            0 => Some(wrapping()),
            1 => Some(vec![0]),
            _ => Some(vec![9, 12, 0]),
        })
        .collect()
}

#[test]
fn encoder_matrix_round_trips() {
    for (w, h) in [(1920, 1080), (1280, 720), (640, 360), (320, 180)] {
        for (profile, scaling) in [(66, false), (100, false), (100, true)] {
            for (poc_type, frame_mbs_only) in (0..3).flat_map(|p| [(p, true), (p, false)]) {
                let mut sps = sps_420(profile, w, h, frame_mbs_only);
                sps.poc_type = poc_type;
                if scaling {
                    sps.scaling_lists = sample_scaling_lists(8);
                }
                let (want, got) = (res(w as u16, h as u16), parse_h264_sps(&sps.encode().1));
                assert_eq!(
                    got, want,
                    "p{profile} {scaling} poc{poc_type} {frame_mbs_only}"
                );
            }
        }
    }
}

#[test]
fn crop_fields_for_common_sizes() {
    // (display, expected coded height in map units × 16, expected crop_bottom) for frames.
    for (w, h, coded_h, bottom) in [
        (1920, 1080, 1088, 4),
        (640, 360, 368, 4),
        (320, 180, 192, 6),
    ] {
        let sps = sps_420(100, w, h, true);
        assert_eq!(sps.height_map_units * 16, coded_h);
        assert_eq!(sps.crop, Some([0, 0, 0, bottom]));
        assert_eq!(parse_h264_sps(&sps.encode().1), res(w as u16, h as u16));
    }
    let sps = sps_420(66, 1280, 720, true);
    assert_eq!(
        (sps.width_mbs, sps.height_map_units, sps.crop),
        (80, 45, None)
    );
    assert_eq!(parse_h264_sps(&sps.encode().1), res(1280, 720));
}

#[test]
fn crop_units_follow_chroma_array_type() {
    // Coded 1296×1104 (81×69 MBs), crop 1 unit left, 3 right, 2 top, 5 bottom.
    // (profile, chroma_format_idc, separate planes, frame_mbs_only, CropUnitX, CropUnitY)
    let cases = [
        (100, 0, false, true, 1, 1),
        (100, 0, false, false, 1, 2),
        (100, 1, false, false, 2, 4),
        (122, 2, false, true, 2, 1),
        (122, 2, false, false, 2, 2),
        (244, 3, false, true, 1, 1),
        (244, 3, true, false, 1, 2),
    ];
    for (profile, chroma, separate, frame_mbs_only, unit_x, unit_y) in cases {
        let map_units = if frame_mbs_only { 69 } else { 35 };
        let mut sps = Sps::new(profile, 81, map_units);
        sps.chroma_format_idc = chroma;
        sps.separate_colour_plane = separate;
        sps.frame_mbs_only = frame_mbs_only;
        sps.crop = Some([1, 3, 2, 5]);
        let coded_h = if frame_mbs_only { 1104 } else { 1120 };
        let want = res(1296 - 4 * unit_x, coded_h - 7 * unit_y);
        assert_eq!(parse_h264_sps(&sps.encode().1), want, "chroma {chroma}");
    }
}

#[test]
fn scaling_matrix_with_twelve_lists_for_444() {
    let mut sps = Sps::new(244, 40, 23);
    sps.chroma_format_idc = 3;
    sps.scaling_lists = sample_scaling_lists(12);
    sps.crop = Some([0, 0, 0, 4]);
    assert_eq!(parse_h264_sps(&sps.encode().1), res(640, 364));
    // With one list flag missing the reader desynchronises: proof all twelve are read.
    sps.scaling_lists.pop();
    assert_ne!(parse_h264_sps(&sps.encode().1), res(640, 364));
}

#[test]
fn emulation_prevention_bytes_are_removed() {
    // A long ue(v) for offset_for_non_ref_pic puts runs of zero bits at every bit alignment,
    // so the RBSP holds 00 00 xx for each xx in 0..=3 somewhere in the sweep.
    let mut seen = [false; 4];
    for zeros in 20..=31u32 {
        for tail in [0, 1u64 << (zeros - 1)] {
            let code = (1u64 << zeros) - 1 + tail;
            let mut sps = sps_420(100, 640, 360, true);
            sps.poc_type = 1;
            sps.offset_for_non_ref_pic = (code as i64 + 1) / 2; // code is odd: positive se(v)
            let (rbsp, nal) = sps.encode();
            let mut needs_escape = false;
            for window in rbsp.windows(3).filter(|w| w[..2] == [0, 0] && w[2] <= 3) {
                seen[usize::from(window[2])] = true;
                needs_escape = true;
            }
            assert_eq!(nal.len() > rbsp.len() + 1, needs_escape, "code {code}");
            assert_eq!(parse_h264_sps(&nal), res(640, 360), "code {code}");
        }
    }
    assert_eq!(seen, [true; 4]);
}

// ---------------------------------------------------------------- H.264: RTP packetisation

const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff];

fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x78]; // NRI 3, type 24
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

#[test]
fn stap_a_with_sps_and_pps() {
    let sps = &hex(REAL_SPS[0].0)[..];
    assert_eq!(h264_sps_resolution(&stap_a(&[sps, PPS])), res(1920, 1080));
    let with_idr = stap_a(&[PPS, sps, IDR]);
    assert_eq!(h264_sps_resolution(&with_idr), res(1920, 1080));
    assert_eq!(h264_sps_resolution(&stap_a(&[PPS, IDR])), None);
    // Truncated aggregate: the SPS's size field overruns the packet.
    let packet = stap_a(&[PPS, sps]);
    assert_eq!(h264_sps_resolution(&packet[..packet.len() - 1]), None);
}

#[test]
fn single_nal_sps_idr_and_pps() {
    let (_, nal) = sps_420(66, 320, 180, true).encode();
    assert_eq!(h264_sps_resolution(&nal), res(320, 180));
    assert_eq!(h264_sps_resolution(IDR), None);
    assert_eq!(h264_sps_resolution(PPS), None);
    assert_eq!(h264_sps_resolution(&[]), None);
}

#[test]
fn fu_a_first_fragment_of_sps() {
    let sps = hex(REAL_SPS[2].0);
    let fu = |fu_header: u8| [&[0x7c, fu_header][..], &sps[1..]].concat();
    assert_eq!(h264_sps_resolution(&fu(0x87)), res(1280, 720)); // S, type 7
    assert_eq!(h264_sps_resolution(&fu(0x07)), None); // not the start
    assert_eq!(h264_sps_resolution(&fu(0x85)), None); // IDR start
}

#[test]
fn malformed_sps_is_none() {
    let mut forbidden = hex(REAL_SPS[0].0);
    forbidden[0] |= 0x80;
    assert_eq!(parse_h264_sps(&forbidden), None);
    // ue(v) is read with at most 31 leading zeros (values up to 2^32 - 2).
    let mut sps = Sps::new(66, 40, 23);
    sps.max_num_ref_frames = (1 << 32) - 2;
    assert_eq!(parse_h264_sps(&sps.encode().1), res(640, 368));
    sps.max_num_ref_frames += 1;
    assert_eq!(parse_h264_sps(&sps.encode().1), None);
    // Too wide (1025 MBs = 16400 px), and cropping away the whole frame.
    assert_eq!(parse_h264_sps(&Sps::new(66, 1025, 10).encode().1), None);
    let mut sps = Sps::new(66, 10, 10);
    sps.crop = Some([40, 40, 0, 0]);
    assert_eq!(parse_h264_sps(&sps.encode().1), None);
    sps.crop = Some([0, 0, 0, 80]);
    assert_eq!(parse_h264_sps(&sps.encode().1), None);
    // Wide but legal: 1024 MBs = 16384 px.
    let widest = Sps::new(66, 1024, 10).encode().1;
    assert_eq!(parse_h264_sps(&widest), res(16384, 160));
}

#[test]
fn poc_cycle_longer_than_255_is_none() {
    let mut sps = sps_420(66, 640, 360, true);
    sps.poc_type = 1;
    sps.poc_cycle = vec![-1; 255];
    assert_eq!(parse_h264_sps(&sps.encode().1), res(640, 360));
    sps.poc_cycle.push(-1);
    assert_eq!(parse_h264_sps(&sps.encode().1), None);
}

proptest! {
    #[test]
    fn vp8_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = vp8_keyframe_resolution(&bytes);
        let _ = vp8_keyframe_resolution(&[&[0x10][..], &bytes].concat());
    }

    #[test]
    fn h264_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let _ = h264_sps_resolution(&bytes);
        let _ = parse_h264_sps(&bytes);
        let prefixes: [&[u8]; 4] = [&[0x67, 0x64], &[0x67, 0x42], &[0x78, 0, 32, 0x67], &[0x7c, 0x87]];
        for prefix in prefixes {
            let _ = h264_sps_resolution(&[prefix, &bytes].concat());
        }
    }

    #[test]
    fn any_vp8_keyframe_size_round_trips(w in 1u16..0x4000, h in 1u16..0x4000, scale in 0u16..4) {
        let packet = vp8_packet(VP8_FULL, &vp8_frame(w | scale << 14, h | scale << 14, false));
        prop_assert_eq!(vp8_keyframe_resolution(&packet), res(w, h));
    }

    #[test]
    fn any_h264_420_size_round_trips(w in 1u64..=4096, h in 1u64..=2304, fmo in any::<bool>(), poc in 0u64..3) {
        // Crop offsets are in 2-sample (4 for fields) units, so only sizes they can express.
        let h = if fmo { h + h % 2 } else { h.div_ceil(4) * 4 };
        let w = w + w % 2;
        let mut sps = sps_420(100, w, h, fmo);
        sps.poc_type = poc;
        prop_assert_eq!(parse_h264_sps(&sps.encode().1), res(w as u16, h as u16));
    }
}
