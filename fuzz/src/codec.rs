//! Target `codec`: codec payload inspection on hostile payloads
//! (`codec`: keyframe starts for VP8, VP9, H.264, H.265, AV1, temporal ids,
//! the VP8 descriptor; `codec::resolution`: VP8 keyframe size and the H.264 SPS;
//! `forwarder::vp8::Vp8Rewriter` over a stream of packets).
//!
//! Input: a sequence of packets, each `[flags: u8][len: u8][len bytes]`; every packet
//! goes through every inspector, and through the VP8 rewriter as the stream `flags & 3`
//! (forwarded, or dropped when `flags & 4`, a keyframe when `flags & 8`). A trailing
//! short packet takes the rest.

use str0m::rtp::Vp8Descriptor as Str0mVp8;
use switchboard::codec::resolution;
use switchboard::codec::{self, CodecKind};
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
