//! The machine's own limit for forwarding, without any SFU logic: what one core pays per
//! forwarded packet at the least — SRTP-protect a 1,200-byte RTP packet once per
//! subscriber, then send it on UDP — measured with the same crypto library str0m uses
//! (aws-lc-rs) and the same UDP crate our receive path uses (quinn-udp).
//!
//! * `srtp_protect/aead_aes_128_gcm`: seal 1,200 bytes in place with a 12-byte RTP header
//!   as associated data and a 16-byte tag (RFC 7714 §8, the profile str0m prefers).
//! * `srtp_protect/aead_aes_256_gcm`: the same with AES-256 (str0m's first choice).
//! * `udp_send/sendto`: one `send_to` of 1,200 bytes to a loopback socket.
//! * `udp_send/gso_burst_10`: ten 1,200-byte datagrams to one destination in one
//!   `sendmsg` with UDP GSO (`UDP_SEGMENT`), as quinn-udp sends them (falls back to ten
//!   sends where the kernel lacks GSO); the figure is per burst, divide by ten.
//!
//! The per-packet limit is about `protect + send` (the receive and decrypt of the
//! publisher's packet is shared by every subscriber). `docs/performance.md` compares it
//! with the whole server's CPU per forwarded packet.
//!
//! `cargo bench --bench machine`. Figures go in the docs, never in tests.

use std::net::{SocketAddr, UdpSocket};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use quinn_udp::{Transmit, UdpSocketState};

/// RTP payload size of a full video packet.
const PACKET: usize = 1200;
/// RTP fixed header (RFC 3550 §5.1): the AEAD's associated data.
const HEADER: usize = 12;
/// Datagrams per GSO burst.
const BURST: usize = 10;

fn srtp_protect(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_protect");
    group.throughput(Throughput::Elements(1));
    for (name, alg, key_len) in [
        ("aead_aes_128_gcm", &AES_128_GCM, 16),
        ("aead_aes_256_gcm", &AES_256_GCM, 32),
    ] {
        let key = LessSafeKey::new(UnboundKey::new(alg, &vec![7u8; key_len]).expect("key"));
        let header = [0x80u8; HEADER];
        let mut buf = vec![0x5au8; PACKET];
        let mut seq: u64 = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                // RFC 7714 §8.1: the IV is salt XOR (SSRC, ROC, SEQ); a counter stands in.
                seq += 1;
                let mut iv = [0u8; 12];
                iv[4..].copy_from_slice(&seq.to_be_bytes());
                buf.truncate(PACKET);
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(&header),
                    &mut buf,
                )
                .expect("seal");
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

/// A receiving socket on loopback (never read: the kernel drops what overflows its
/// buffer, which does not change the sender's cost) and a sending one.
fn sockets() -> (UdpSocket, SocketAddr) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    let dst = rx.local_addr().expect("addr");
    // Keep the receiver alive for the process: dropping it would turn sends into
    // ICMP port-unreachable errors.
    std::mem::forget(rx);
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    (tx, dst)
}

fn udp_send(c: &mut Criterion) {
    let mut group = c.benchmark_group("udp_send");
    let packet = vec![0x5au8; PACKET + HEADER + 16];

    let (tx, dst) = sockets();
    group.throughput(Throughput::Elements(1));
    group.bench_function("sendto", |b| {
        b.iter(|| black_box(tx.send_to(&packet, dst).is_ok()))
    });

    let (tx, dst) = sockets();
    tx.set_nonblocking(true).expect("nonblocking");
    let state = UdpSocketState::new((&tx).into()).expect("socket state");
    let burst: Vec<u8> = packet
        .iter()
        .copied()
        .cycle()
        .take(packet.len() * BURST)
        .collect();
    let segments = state.max_gso_segments().min(BURST);
    println!("udp_send/gso_burst_{BURST}: the kernel takes {segments} segments per send");
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function(format!("gso_burst_{BURST}"), |b| {
        b.iter(|| {
            for chunk in burst.chunks(packet.len() * segments) {
                let t = Transmit {
                    destination: dst,
                    ecn: None,
                    contents: chunk,
                    segment_size: (segments > 1).then_some(packet.len()),
                    src_ip: None,
                };
                // WouldBlock when the send buffer is full: count it as sent (the cost
                // of the attempt is what is measured).
                black_box(state.try_send((&tx).into(), &t).is_ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, srtp_protect, udp_send);
criterion_main!(benches);
