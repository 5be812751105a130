//! Criterion benchmarks of the pieces around forwarding: the demux of one datagram to its
//! room (RTP by learned source address, among many sessions), the per-subscriber allocator
//! (one reallocation with several tracks), the VP8 descriptor rewriter, and the data
//! channel relay (one chat message validated, re-serialized and fanned out to N others).
//!
//! `cargo bench --bench core`. Figures go in the issue notes, never in tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use str0m::rtp::Vp8Descriptor;
use switchboard::bwe::allocator::{Allocator, AllocatorConfig, TrackDemand};
use switchboard::forwarder::vp8::Vp8Rewriter;
use switchboard::net::{Demux, RoomKey, RoomTable, Route};
use tokio::sync::mpsc;

/// A STUN binding request whose USERNAME names `server_ufrag` (RFC 8489 §14.3).
fn stun_check(server_ufrag: &str) -> Vec<u8> {
    let user = format!("{server_ufrag}:peer");
    let mut attrs = vec![0x00, 0x06, 0x00, user.len() as u8];
    attrs.extend_from_slice(user.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut msg = vec![0x00, 0x01, 0x00, attrs.len() as u8, 0x21, 0x12, 0xA4, 0x42];
    msg.extend_from_slice(&[1; 12]);
    msg.extend_from_slice(&attrs);
    msg
}

fn demux(c: &mut Criterion) {
    let mut group = c.benchmark_group("demux_rtp");
    for sessions in [10usize, 1000, 10_000] {
        let table = Arc::new(RoomTable::default());
        let mut keep = Vec::new();
        let rooms = 1 + sessions / 10;
        for r in 0..rooms {
            let (tx, rx) = mpsc::channel(1);
            table.insert(RoomKey(r as u32), tx);
            keep.push(rx);
        }
        let mut d = Demux::new(Arc::clone(&table));
        let addrs: Vec<SocketAddr> = (0..sessions)
            .map(|i| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 40000)))
            .collect();
        for (i, a) in addrs.iter().enumerate() {
            let check = stun_check(&format!(
                "{}abcd",
                RoomKey((i % rooms) as u32).ufrag_prefix()
            ));
            assert!(matches!(d.route(*a, &check), Route::Room(_)));
        }
        let mut rtp = vec![0u8; 1200];
        rtp[0] = 0x80;
        rtp[1] = 96;
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(sessions), &sessions, |b, _| {
            b.iter(|| {
                i = (i + 7919) % addrs.len();
                black_box(matches!(d.route(addrs[i], &rtp), Route::Room(_)))
            })
        });
    }
    group.finish();
}

fn allocator(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocator_update");
    for tracks in [2usize, 8, 32] {
        let demands: Vec<TrackDemand> = (0..tracks)
            .map(|i| TrackDemand {
                id: i as u32,
                audio: i % 2 == 1,
                priority: (i % 3) as u8,
                layers: if i % 2 == 1 {
                    vec![40_000]
                } else {
                    vec![40_000, 80_000, 150_000, 300_000, 500_000, 1_500_000]
                },
            })
            .collect();
        let mut a = Allocator::new(AllocatorConfig::default());
        let t0 = Instant::now();
        let mut n = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(tracks), &tracks, |b, _| {
            b.iter(|| {
                n += 1;
                let estimate = 1_000_000 + (n % 20) * 250_000;
                let now = t0 + Duration::from_millis(n * 50);
                black_box(a.update(now, estimate, &demands).len())
            })
        });
    }
    group.finish();
}

fn vp8_rewriter(c: &mut Criterion) {
    // Full descriptor: X, I (15-bit PictureID), L, T/K; then a delta frame's header.
    let payload = |pid: u16, tl0: u8, tid: u8| {
        let mut p = vec![
            0x90,
            0xe0,
            0x80 | (pid >> 8) as u8,
            pid as u8,
            tl0,
            tid << 6,
            0x01,
        ];
        p.resize(1100, 0xaa);
        p
    };
    let frames: Vec<Vec<u8>> = (0..1024u16)
        .map(|n| payload(n, (n / 4) as u8, [0, 2, 1, 2][(n % 4) as usize]))
        .collect();
    let mut r = Vp8Rewriter::new();
    let mut n = 0usize;
    c.bench_function("vp8_rewrite_parse_and_patch", |b| {
        b.iter(|| {
            n = (n + 1) % frames.len();
            let d = Vp8Descriptor::parse(&frames[n]).expect("descriptor");
            if n % 4 == 1 {
                r.drop_packet(1, &d);
                None
            } else {
                black_box(r.forward(1, &d, n == 0).ok())
            }
        })
    });
}

fn data_relay(c: &mut Criterion) {
    use switchboard::data::{ChannelKey, DataLimits, DataRelay};
    use switchboard::ids::ParticipantId;

    let mut group = c.benchmark_group("relay_message");
    let msg = br#"{"data": {"text": "a chat line of about sixty bytes, as people type them"}}"#;
    for n in [1usize, 10, 50] {
        // No rate limit: the benchmark sends far faster than a participant may.
        let limits = DataLimits {
            rate: f64::MAX,
            burst: f64::MAX,
            ..DataLimits::default()
        };
        let mut relay = DataRelay::new(limits);
        for i in 0..=n as u64 {
            let who: Arc<str> = format!("p{i}").into();
            relay.handle_open(
                ParticipantId(i),
                who.clone(),
                who,
                ChannelKey(0),
                "chat",
                true,
            );
        }
        let t0 = Instant::now();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let got =
                    relay.handle_message(t0, ParticipantId(0), ChannelKey(0), false, msg, |_| true);
                let mut outputs = 0;
                while let Some(o) = relay.poll_output() {
                    black_box(o);
                    outputs += 1;
                }
                black_box((got, outputs))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, demux, allocator, vp8_rewriter, data_relay);
criterion_main!(benches);
