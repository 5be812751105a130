//! What recording one track costs: a 30 fps VP8 track at 2.5 Mbit/s (1,100-byte packets,
//! a key frame every 2 s) and an Opus track (50 packets per second) through the whole
//! per-track recorder (jitter buffer, depacketizer, fragmented MP4 writer), per second of
//! media. `cargo bench --bench record`; the CPU share of one recorded track is the time
//! per media second divided by 1 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchboard::codec::CodecKind;
use switchboard::record::track::{TrackOptions, TrackRecorder};
use switchboard::record::Packet;
use switchboard_kit::codec::{write_vp8_descriptor, write_vp8_frame_header};

const FPS: u32 = 30;
const VIDEO_BPS: usize = 2_500_000;
const PACKET: usize = 1_100;

/// One second of VP8 packets from frame `first` on: (arrival, packet).
fn vp8_second(first: u32, seq: &mut u64) -> Vec<(Duration, Packet)> {
    let frame_bytes = VIDEO_BPS / 8 / FPS as usize;
    let mut out = Vec::new();
    for f in first..first + FPS {
        let key = f % (2 * FPS) == 0;
        let n = frame_bytes.div_ceil(PACKET);
        for i in 0..n {
            let mut p = Vec::with_capacity(PACKET + 16);
            write_vp8_descriptor(&mut p, i == 0, None);
            if i == 0 {
                write_vp8_frame_header(&mut p, key, 100, (1280, 720));
            }
            p.resize(PACKET, 0x5a);
            out.push((
                Duration::from_micros(u64::from(f) * 33_333 + i as u64 * 100),
                Packet {
                    seq: *seq,
                    timestamp: f.wrapping_mul(3000),
                    marker: i + 1 == n,
                    payload: Arc::from(p),
                },
            ));
            *seq += 1;
        }
    }
    out
}

/// One second of Opus packets (20 ms, 80 bytes) from packet `first` on.
fn opus_second(first: u32, seq: &mut u64) -> Vec<(Duration, Packet)> {
    let mut out = Vec::new();
    for i in first..first + 50 {
        let mut p = vec![0xfc];
        p.resize(80, 0x11);
        out.push((
            Duration::from_millis(u64::from(i) * 20),
            Packet {
                seq: *seq,
                timestamp: i.wrapping_mul(960),
                marker: false,
                payload: Arc::from(p),
            },
        ));
        *seq += 1;
    }
    out
}

/// Feeds `seconds` of media, polling every output as a room does; returns the bytes out.
fn record(rec: &mut TrackRecorder, t0: Instant, media: &[(Duration, Packet)]) -> usize {
    let mut bytes = 0;
    for (at, packet) in media {
        let now = t0 + *at;
        rec.handle_packet(now, packet.clone());
        if rec.poll_timeout().is_some_and(|t| t <= now) {
            rec.handle_timeout(now);
        }
        while let Some(o) = rec.poll_output() {
            bytes += match o {
                switchboard::record::track::TrackOutput::Bytes { bytes, .. } => bytes.len(),
                _ => 0,
            };
        }
    }
    bytes
}

fn tracks(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut seq = 0;
    // Ten seconds, so that each run writes whole fragments and a key frame or five.
    let video: Vec<_> = (0..10)
        .flat_map(|s| vp8_second(s * FPS, &mut seq))
        .collect();
    let mut seq = 0;
    let audio: Vec<_> = (0..10)
        .flat_map(|s| opus_second(s * 50, &mut seq))
        .collect();
    // Everything comes out: the frames' bytes, in fragments.
    let mut rec = TrackRecorder::new(CodecKind::Vp8, 1, TrackOptions::default()).unwrap();
    let out = record(&mut rec, t0, &video);
    let sent: usize = video.iter().map(|(_, p)| p.payload.len()).sum();
    assert!(out > sent * 9 / 10, "{out} bytes out of {sent} in");
    let mut g = c.benchmark_group("record_10s");
    g.sample_size(20);
    g.bench_function("vp8_2.5mbps", |b| {
        b.iter(|| {
            let mut rec = TrackRecorder::new(CodecKind::Vp8, 1, TrackOptions::default()).unwrap();
            black_box(record(&mut rec, t0, &video))
        })
    });
    g.bench_function("opus", |b| {
        b.iter(|| {
            let mut rec = TrackRecorder::new(CodecKind::Opus, 2, TrackOptions::default()).unwrap();
            black_box(record(&mut rec, t0, &audio))
        })
    });
    g.finish();
}

criterion_group!(benches, tracks);
criterion_main!(benches);
