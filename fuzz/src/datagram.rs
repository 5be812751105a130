//! Target `datagram`: what the receive loop does with any datagram from any address —
//! classification (`net::classify`), the STUN USERNAME read, the demux
//! (`net::Demux::route`: room table, learned addresses) — and then the room it routes
//! to (`Room::handle_datagram`: address lookup, str0m's STUN, DTLS and SRTP input) with
//! a publisher and a viewer connected in memory ([`super::world`]).
//!
//! Input: a sequence of datagrams `[flags: u8][len: u16 BE][len bytes]` (a short last one
//! takes the rest). `flags & 3` picks the source address (the publisher's, the viewer's,
//! a stranger's IPv4 or IPv6); with `flags & 4` the 16 bytes `UUUUUUUUUUUUUUUU` are
//! replaced with the publisher's server ufrag (a fuzzer cannot guess a random one); with
//! `flags & 8` a STUN message's MESSAGE-INTEGRITY and FINGERPRINT are recomputed with
//! the publisher's server password (RFC 8489 §14.5, §14.7), so that checks str0m accepts
//! are fuzzed too; `flags & 16` advances time by 50 ms first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use str0m::format::Codec;
use switchboard::ids::SessionKind;
use switchboard::net::classify::{self, PacketClass};
use switchboard::net::{Datagram, Demux, RoomKey, RoomTable, Route};

use super::world::World;

/// Placeholder for the publisher's server ufrag.
const UFRAG_MARK: &[u8; 16] = b"UUUUUUUUUUUUUUUU";

/// Run one input.
pub fn run(data: &[u8]) {
    let mut w = World::new();
    w.join(SessionKind::Publisher, Codec::Vp8, &[]);
    w.join(SessionKind::Subscriber, Codec::Vp8, &[]);
    w.connect(Duration::from_secs(5));
    let ufrag = sdp_attr(&w.peers[0].answer, "a=ice-ufrag:").unwrap_or_default();
    let pwd = sdp_attr(&w.peers[0].answer, "a=ice-pwd:").unwrap_or_default();

    let table = Arc::new(RoomTable::default());
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    table.insert(RoomKey(0x2a), tx.clone());
    let (tx_other, _rx_other) = tokio::sync::mpsc::channel(1);
    table.insert(RoomKey(0x2b), tx_other);
    let mut demux = Demux::new(table);

    let sources: [SocketAddr; 4] = [
        w.peers[0].addr,
        w.peers[1].addr,
        "192.0.2.7:40000".parse().expect("address"),
        "[2001:db8::7]:40000".parse().expect("address"),
    ];
    let mut rest = data;
    while let [flags, hi, lo, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        let mut bytes = bytes.to_vec();
        if flags & 4 != 0 && ufrag.len() == UFRAG_MARK.len() {
            replace_all(&mut bytes, UFRAG_MARK, ufrag.as_bytes());
        }
        if flags & 8 != 0 {
            sign_stun(&mut bytes, pwd.as_bytes());
        }
        if flags & 16 != 0 {
            w.run_for(Duration::from_millis(50));
        }
        let source = sources[usize::from(flags & 3)];
        check_classify(&bytes);
        // Only room 0x2a is live here; what goes to it reaches the room.
        if let Route::Room(to) = demux.route(source, &bytes) {
            if to.same_channel(&tx) {
                let d = Datagram::udp(source, w.server, w.now, bytes);
                w.room.handle_datagram(w.now, d);
                w.pump();
            }
        }
    }
    let _ = demux.learned();
}

fn check_classify(bytes: &[u8]) {
    let class = classify::classify(bytes);
    if let Some(user) = classify::stun_username(bytes) {
        assert_eq!(
            class,
            PacketClass::Stun,
            "a USERNAME read from a non-STUN datagram"
        );
        assert!(user.len() <= bytes.len());
        if let Some(ours) = classify::server_ufrag(user) {
            let _ = RoomKey::from_ufrag(ours);
        }
    }
}

/// The value of the first SDP line starting with `prefix`.
fn sdp_attr(sdp: &str, prefix: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix(prefix).map(str::to_owned))
}

fn replace_all(buf: &mut [u8], from: &[u8], to: &[u8]) {
    let mut i = 0;
    while i + from.len() <= buf.len() {
        if &buf[i..i + from.len()] == from {
            buf[i..i + to.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
}

/// Recompute MESSAGE-INTEGRITY (HMAC-SHA1 with the short-term password, RFC 8489 §14.5)
/// and FINGERPRINT (CRC-32 xor 0x5354554e, §14.7) of a STUN message in place, when it
/// has those attributes where they can be.
fn sign_stun(msg: &mut [u8], pwd: &[u8]) {
    const HEADER: usize = 20;
    if msg.len() < HEADER {
        return;
    }
    let mut at = HEADER;
    while at + 4 <= msg.len() {
        let typ = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[at + 2], msg[at + 3]]));
        let end = at + 4 + len;
        match typ {
            0x0008 if len == 20 && end <= msg.len() => {
                set_len(msg, end - HEADER);
                let key =
                    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, pwd);
                let tag = aws_lc_rs::hmac::sign(&key, &msg[..at]);
                msg[at + 4..end].copy_from_slice(tag.as_ref());
            }
            0x8028 if len == 4 && end <= msg.len() => {
                set_len(msg, end - HEADER);
                let crc = crc32(&msg[..at]) ^ 0x5354_554e;
                msg[at + 4..end].copy_from_slice(&crc.to_be_bytes());
            }
            _ => {}
        }
        at = end + (4 - len % 4) % 4;
    }
}

fn set_len(msg: &mut [u8], len: usize) {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    msg[2] = len[0];
    msg[3] = len[1];
}

/// CRC-32 (ISO-HDLC, the one STUN's FINGERPRINT uses).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
