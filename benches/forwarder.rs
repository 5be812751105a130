//! Criterion benchmarks of the forwarding core: routing one RTP packet to N subscribed
//! tracks (selection + munging + command emission, no `Rtc`), and the munger alone.
//!
//! `cargo bench --bench forwarder`. Figures go in the issue notes, never in tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use str0m::media::{MediaKind, Mid};
use str0m::rtp::ExtensionValues;
use str0m::Rtc;
use switchboard::forwarder::munger::RtpMunger;
use switchboard::forwarder::{Forwarder, InboundRtp};
use switchboard::ids::{ParticipantId, TrackRef};
use switchboard::metrics::Meters;

fn vp8_packet(seq: u64, keyframe: bool, pt: str0m::media::Pt, t: Instant) -> InboundRtp {
    let mut payload = vec![0u8; 1100];
    payload[0] = 0x10; // S=1, PID=0 (RFC 7741 §4.2)
    payload[1] = if keyframe { 0x00 } else { 0x01 }; // P bit (RFC 6386 §9.1)
    InboundRtp {
        ssrc: 1234,
        seq,
        ts: (seq as u32).wrapping_mul(3000),
        pt,
        marker: true,
        arrival: t,
        payload: Arc::from(payload),
        ext: ExtensionValues::default(),
    }
}

fn route(c: &mut Criterion) {
    let t0 = Instant::now();
    let rtc = Rtc::builder().clear_codecs().enable_vp8(true).build(t0);
    let params = rtc.codec_config().params().to_vec();
    let pt = params[0].pt();
    let mut group = c.benchmark_group("route_rtp");
    for n in [1usize, 10, 100, 500] {
        let mut fwd = Forwarder::new(Meters::new());
        let source = TrackRef {
            participant: ParticipantId(0),
            mid: Mid::from("1"),
        };
        fwd.add_published(source, MediaKind::Video, params.clone(), &[]);
        let mut out = Vec::new();
        for i in 0..n {
            let sub = TrackRef {
                participant: ParticipantId(i as u64 + 1),
                mid: Mid::from("1"),
            };
            let key = fwd.add_subscribed(sub, MediaKind::Video, 1, 1);
            fwd.bind(t0, key, source, vec![(pt, pt)], &mut out);
            fwd.handle_connected(t0, sub.participant, &mut out);
        }
        let mut seq = 1u64;
        let mut t = t0;
        fwd.route_rtp(
            t,
            ParticipantId(0),
            source.mid,
            None,
            &vp8_packet(seq, true, pt, t),
            &mut out,
        );
        out.clear();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                seq += 1;
                t += Duration::from_micros(100);
                let p = vp8_packet(seq, false, pt, t);
                fwd.route_rtp(
                    t,
                    ParticipantId(0),
                    source.mid,
                    None,
                    black_box(&p),
                    &mut out,
                );
                black_box(out.len());
                out.clear();
            })
        });
    }
    group.finish();
}

fn munger(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut m = RtpMunger::new(90_000, 1, 1);
    let mut seq = 0u64;
    c.bench_function("munger_forward", |b| {
        b.iter(|| {
            seq += 1;
            black_box(m.forward(t0, 42, seq, (seq as u32).wrapping_mul(3000)))
        })
    });
}

criterion_group!(benches, route, munger);
criterion_main!(benches);
