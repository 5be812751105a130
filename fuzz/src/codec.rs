//! Target `codec`: codec payload inspection on hostile payloads
//! (`codec`: keyframe starts for VP8, VP9, H.264, H.265, AV1, temporal ids,
//! the VP8 descriptor; `codec::resolution`: VP8 keyframe size and the H.264 SPS;
//! the header parsers `codec::{h264, av1, vp9}` and the readers of `codec::bits`;
//! `forwarder::vp8::Vp8Rewriter` over a stream of packets).
//!
//! Input: a sequence of packets, each `[flags: u8][len: u8][len bytes]`; every packet
//! goes through every inspector and header parser, and through the VP8 rewriter as the
//! stream `flags & 3` (forwarded, or dropped when `flags & 4`, a keyframe when `flags & 8`).
//! A trailing short packet takes the rest.

use str0m::rtp::Vp8Descriptor as Str0mVp8;
use switchboard::codec::bits::{self, BitReader};
use switchboard::codec::{self, av1, h264, resolution, vp9, CodecKind};
use switchboard::forwarder::vp8::Vp8Rewriter;

const KINDS: [CodecKind; 7] = [
    CodecKind::Opus,
    CodecKind::Vp8,
    CodecKind::Vp9,
    CodecKind::H264,
    CodecKind::H265,
    CodecKind::Av1,
    CodecKind::Other,
];

/// Run one input.
pub fn run(data: &[u8]) {
    let mut rewriter = Vp8Rewriter::new();
    let mut rest = data;
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        inspect(payload);
        rewrite(&mut rewriter, *flags, payload);
    }
    inspect(data);
}

fn inspect(payload: &[u8]) {
    for kind in KINDS {
        let _ = codec::is_keyframe_start(kind, payload);
        if let Some(tid) = codec::temporal_id(kind, payload) {
            assert!(tid <= 7, "a temporal id has 3 bits: {tid}");
        }
    }
    if let Some(d) = codec::parse_vp8_descriptor(payload) {
        assert!(
            d.header_len <= payload.len(),
            "descriptor longer than the payload"
        );
        assert!(d.partition_id <= 7);
        assert!(d.tid.is_none_or(|t| t <= 3));
        assert!(d.key_idx.is_none_or(|k| k <= 31));
        assert!(d.picture_id.is_none_or(|p| p <= 0x7fff));
    }
    for r in [
        resolution::vp8_keyframe_resolution(payload),
        resolution::h264_sps_resolution(payload),
        resolution::parse_h264_sps(payload),
    ]
    .into_iter()
    .flatten()
    {
        assert!((1..=16384).contains(&r.width) && (1..=16384).contains(&r.height));
    }
    headers(payload);
}

/// The header parsers: field ranges, and agreement between the entry points.
fn headers(payload: &[u8]) {
    if let Some(sps) = h264::parse_sps(payload) {
        assert!(sps.chroma_format_idc <= 3 && sps.seq_parameter_set_id <= 31);
        assert!(sps.bit_depth_luma_minus8 <= 6 && sps.bit_depth_chroma_minus8 <= 6);
        assert_eq!(resolution::parse_h264_sps(payload), Some(sps.resolution));
    }
    let _ = h264::parse_seq_parameter_set_data(payload);
    for header in [
        av1::parse_sequence_header(payload),
        av1::parse_sequence_header_obu(payload),
    ]
    .into_iter()
    .flatten()
    {
        assert!(header.seq_level_idx_0 <= 31);
        assert!((1..=65536).contains(&header.max_frame_width));
        assert!((1..=65536).contains(&header.max_frame_height));
        if let Some(c) = header.color {
            assert!(header.seq_profile <= 2, "colour of a reserved profile");
            assert!([8, 10, 12].contains(&c.bit_depth) && c.chroma_sample_position <= 3);
        }
    }
    if let Some(h) = av1::ObuHeader::parse(payload) {
        assert!(h.obu_type <= 15 && h.header_len() <= payload.len());
    }
    let _ = av1::is_shown_key_frame(payload, false);
    if let Some(Some(key)) = vp9::parse_key_header(payload) {
        assert!(key.profile <= 3 && [8, 10, 12].contains(&key.bit_depth));
        assert!((1..=65536).contains(&key.width) && (1..=65536).contains(&key.height));
    }
    if let Some((value, n)) = bits::read_leb128(payload) {
        assert!(n <= payload.len() && n <= bits::LEB128_MAX_BYTES);
        let (again, len) = bits::write_leb128(value).expect("a u32 fits 8 bytes");
        assert!(len <= n, "the shortest form");
        assert_eq!(bits::read_leb128(&again[..len]), Some((value, len)));
    }
    // Every reader to the end: each read takes at least one bit, so this ends.
    for escaped in [false, true] {
        let reader = || {
            if escaped {
                BitReader::rbsp(payload)
            } else {
                BitReader::new(payload)
            }
        };
        let mut r = reader();
        while r.ue().is_some() {}
        let mut r = reader();
        while let Some(v) = r.se() {
            assert!(v.unsigned_abs() < 1 << 31, "se(v) {v}");
        }
        let mut r = reader();
        while r.uvlc().is_some() {}
    }
}

fn rewrite(rewriter: &mut Vp8Rewriter, flags: u8, payload: &[u8]) {
    let Ok(d) = Str0mVp8::parse(payload) else {
        return;
    };
    let ssrc = u32::from(flags & 3);
    if flags & 4 != 0 {
        rewriter.drop_packet(ssrc, &d);
    } else {
        let _ = rewriter.forward(ssrc, &d, flags & 8 != 0);
    }
}
