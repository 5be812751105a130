//! Target `rtp`: RTP and RTCP through a connected room: a str0m publisher and a str0m
//! viewer joined to a sans-IO `Room` in memory ([`super::world`]). The publisher writes
//! fuzz-chosen RTP (payload size and bytes, sequence numbers, timestamps, marker) that
//! the room receives, inspects and forwards to the viewer's `Rtc` (its send path,
//! RTX resends included); the viewer sends fuzz-timed RTCP (PLI, FIR, REMB, NACKs for
//! packets its downlink is told to drop, receiver reports and TWCC as str0m sends them)
//! and raw datagrams from either peer's address reach the room unprotected.
//!
//! Input: `[setup: u8]` then operations `[op: u8][arguments]` until the input ends.
//! `setup % 3` picks the video codec (VP8, H.264, VP9); `setup & 4` makes the publisher
//! simulcast (`q`, `h`, `f`). Operations (`(op & 15) % 11`; flags in the high bits):
//! 0, 1: a video packet `[len: u16 BE][seq step: i8][ts step: u8][n: u8][n bytes]`:
//!   payload of [`payload_len`]`(len, max)` bytes, starting with the `n` bytes and padded
//!   with their last one; marker when `op & 0x10`; layer `(op >> 5) % 3` when
//!   simulcast;
//! 2: an audio packet, same arguments;
//! 3: the viewer asks for a keyframe (FIR when `op & 0x10`, else PLI);
//! 4: the viewer sends a REMB `[bps: u32 BE]`;
//! 5: time passes `[ms/4: u8]`;
//! 6: the viewer's downlink drops the next `op >> 4` datagrams;
//! 7: a raw datagram `[len: u8][len bytes]` from the publisher (`op & 0x10`) or the
//!    viewer;
//! 8: the viewer's layer preference: spatial `op >> 4` (0..15), automatic for 15;
//! 9: the viewer leaves and a new one joins;
//! 10: the viewer sends raw RTCP `[len: u8][len bytes]`: its next SRTCP packet carries
//!    these bytes after the first 8 (see [`super::inject`]).

use std::time::Duration;

use str0m::format::Codec;
use str0m::media::Rid;
use switchboard::forwarder::preferences::LayerPreference;
use switchboard::ids::SessionKind;

use super::world::{RtpFields, World, PUBLISHER_MAX_PAYLOAD};

/// Largest payload [`run`] writes: the publisher's own limit, [`PUBLISHER_MAX_PAYLOAD`]
/// (1,984 bytes). str0m 0.25 panics forwarding a payload of more than 1,972 bytes to a
/// viewer (its send buffer is 2,000 bytes; the viewer's header takes 28): found by this
/// target and kept in `tests/fuzz_regressions.rs`
/// (`rtp_oversize_payload_does_not_kill_the_room`); the room now drops any payload over
/// `MAX_FORWARD_PAYLOAD` (1,800 bytes) before a subscriber sees it, so the whole range
/// is fuzzed.
pub const MAX_PAYLOAD: usize = PUBLISHER_MAX_PAYLOAD;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

/// The payload size a length field asks for, at most `max`: with the top bit clear, the
/// value modulo `max + 1`; with it set, that many bytes (low byte) below `max`: sizes
/// at the boundary are where send buffers overflow.
pub fn payload_len(field: u16, max: usize) -> usize {
    if field & 0x8000 != 0 {
        max.saturating_sub(usize::from(field & 0xff))
    } else {
        usize::from(field) % (max + 1)
    }
}

/// Sequence number and timestamp state of one publisher stream.
#[derive(Clone, Copy)]
struct Stream {
    seq: u64,
    ts: u32,
}

/// Run one input.
pub fn run(data: &[u8]) {
    run_with_max(data, MAX_PAYLOAD);
}

/// Run one input, with payloads of up to `max` bytes (at most
/// [`PUBLISHER_MAX_PAYLOAD`]).
pub fn run_with_max(data: &[u8], max: usize) {
    let max = max.min(PUBLISHER_MAX_PAYLOAD);
    let mut r = Reader(data);
    let Some(setup) = r.u8() else {
        return;
    };
    let codec = [Codec::Vp8, Codec::H264, Codec::Vp9][usize::from(setup % 3)];
    let rids: &[&str] = if setup & 4 != 0 {
        &["q", "h", "f"]
    } else {
        &[]
    };
    let mut w = World::new();
    let Some(publisher) = w.join(SessionKind::Publisher, codec, rids) else {
        return;
    };
    let Some(mut viewer) = w.join(SessionKind::Subscriber, codec, &[]) else {
        return;
    };
    if !w.connect(Duration::from_secs(5)) {
        return;
    }
    let mut video = [Stream {
        seq: 1000,
        ts: 90_000,
    }; 3];
    let mut audio = Stream {
        seq: 500,
        ts: 48_000,
    };
    while let Some(op) = r.u8() {
        match (op & 0x0f) % 11 {
            0..=2 => {
                let Some(len) = r.u16() else { break };
                let Some(seq_step) = r.u8() else { break };
                let Some(ts_step) = r.u8() else { break };
                let Some(n) = r.u8() else { break };
                let head = r.bytes(usize::from(n));
                let len = payload_len(len, max);
                let mut payload = head[..head.len().min(len)].to_vec();
                payload.resize(len, head.last().copied().unwrap_or(0));
                let is_video = (op & 0x0f) % 11 < 2;
                let layer = usize::from(op >> 5) % 3;
                let s = if is_video {
                    &mut video[layer]
                } else {
                    &mut audio
                };
                s.seq = s.seq.wrapping_add_signed(i64::from(seq_step as i8)).max(1);
                s.ts = s.ts.wrapping_add(u32::from(ts_step) * 90);
                let fields = RtpFields {
                    seq: s.seq,
                    timestamp: s.ts,
                    marker: op & 0x10 != 0,
                    payload,
                };
                let rid = (is_video && !rids.is_empty()).then(|| Rid::from(rids[layer]));
                w.write_rtp(publisher, is_video, rid, fields);
            }
            3 => w.request_keyframe(viewer, op & 0x10 != 0),
            4 => {
                let Some(bps) = r.u32() else { break };
                w.send_remb(viewer, u64::from(bps));
            }
            5 => {
                let Some(ms) = r.u8() else { break };
                w.run_for(Duration::from_millis(u64::from(ms) * 4));
            }
            6 => w.peers[viewer].drop_next = u32::from(op >> 4),
            7 => {
                let Some(n) = r.u8() else { break };
                let bytes = r.bytes(usize::from(n)).to_vec();
                let from = if op & 0x10 != 0 { publisher } else { viewer };
                w.raw_from(from, bytes);
            }
            8 => {
                let pref = match op >> 4 {
                    15 => LayerPreference::Auto,
                    n => LayerPreference::Spatial(usize::from(n), None),
                };
                let session = w.peers[viewer].session.clone();
                let now = w.now;
                let _ = w.room.handle_set_layer(now, &session, None, &pref);
                w.pump();
            }
            10 => {
                let Some(n) = r.u8() else { break };
                let bytes = r.bytes(usize::from(n)).to_vec();
                w.inject_rtcp(viewer, bytes);
            }
            _ => {
                let session = w.peers[viewer].session.clone();
                let now = w.now;
                w.room.handle_leave(now, &session);
                w.pump();
                match w.join(SessionKind::Subscriber, codec, &[]) {
                    Some(v) => viewer = v,
                    None => return,
                }
                w.connect(Duration::from_secs(5));
            }
        }
    }
    w.run_for(Duration::from_millis(500));
}
