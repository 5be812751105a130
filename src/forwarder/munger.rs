//! RTP sequence-number and timestamp rewriting ("munging") for ONE subscribed track.
//!
//! Owns: the mapping from the packets of a source stream (one publisher SSRC at a time) onto the
//! subscriber track's own numbering: extended output sequence numbers (`u64`, as str0m's `SeqNo`,
//! whose upper bits are the SRTP rollover counter, RFC 3711 §3.3.1) and 32-bit RTP timestamps
//! (RFC 3550 §5.1). It keeps the output contiguous across packets the forwarder intentionally
//! drops, keeps network loss visible as a gap (so the subscriber NACKs and RTX can repair it, with
//! late packets mapping to exactly the slot they would have had), and continues both numbering
//! spaces across source switches (simulcast layer change, publisher restart).
//!
//! Never: decides which packets to forward, inspects payloads, reads a clock (time comes in as
//! `now`), allocates (the offset history is a fixed ring), or panics on any input.
//!
//! # Model
//!
//! An *epoch* is the run of packets from one source between switches. It opens with the first
//! packet forwarded from that source and maps input `seq` to output `seq + delta` (wrapping `u64`)
//! and input `ts` to `ts + ts_offset` (wrapping `u32`). Each intentional drop of the newest packet
//! lowers `delta` by one for all later packets; the last [`HISTORY_LEN`] such changes are kept so a
//! late or retransmitted packet maps with the `delta` that was in force at its position.
//!
//! A packet of a source other than the current one switches sources (a new epoch), unless it is a
//! late packet of a recently left source: the last [`RETIRED_LEN`] sources are remembered with the
//! highest sequence number seen from each, and their packets at or below it are refused. So a
//! stray retransmission of the previous simulcast layer cannot flip the track back, while a
//! publisher restart (new SSRC), a rebind to another track, or a deliberate return to a previous
//! layer (A→B→A, with fresh packets) need no extra call. The caller stops routing a source's
//! packets once it has switched away from it.

use std::time::Instant;

/// Number of offset changes remembered per epoch for mapping late packets: 64 runs of
/// consecutively dropped packets. A late packet older than the oldest remembered change is
/// refused (`forward` returns `None`).
pub const HISTORY_LEN: usize = 64;

/// Number of previously forwarded sources whose late packets are refused.
pub const RETIRED_LEN: usize = 4;

/// Mask applied to `initial_seq`: the first output sequence number is below 2^15, so the
/// extended output number starts with rollover counter 0 and cannot roll over immediately.
const INITIAL_SEQ_MASK: u16 = 0x7FFF;

/// Largest timestamp step inserted at a source switch: 2^31 − 1 ticks, the largest forward
/// distance serial-number arithmetic can express (RFC 1982 §3.1, RFC 3550 §A.1).
const MAX_SWITCH_TS_STEP: u128 = (1 << 31) - 1;

/// The rewritten header fields of one forwarded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Munged {
    /// Extended output sequence number (low 16 bits: RTP sequence number; upper bits: SRTP ROC).
    pub seq: u64,
    /// Output RTP timestamp, in the track's clock-rate units (RFC 3550 §5.1).
    pub ts: u32,
}

/// One offset change: input sequence numbers `>= start` (up to the next change) map with `delta`.
/// The `dropped` input numbers just below `start` were intentionally dropped.
#[derive(Clone, Copy, Debug, Default)]
struct Shift {
    start: u64,
    delta: u64,
    dropped: u64,
}

#[derive(Clone, Copy, Debug)]
struct Epoch {
    /// Highest input sequence number seen in this epoch, forwarded or dropped.
    highest_in: u64,
    ts_offset: u32,
}

/// A source switched away from, and the highest input sequence number seen from it.
#[derive(Clone, Copy, Debug)]
struct Retired {
    source: u32,
    highest_in: u64,
}

/// The output packet with the highest sequence number so far, and when it was forwarded.
#[derive(Clone, Copy, Debug)]
struct Last {
    seq: u64,
    ts: u32,
    at: Instant,
}

/// Rewrites RTP sequence numbers and timestamps of one subscribed track. See the module docs.
#[derive(Clone, Debug)]
pub struct RtpMunger {
    clock_rate: u32,
    initial_seq: u64,
    initial_ts: u32,
    /// The current source; `None` until the first packet or switch.
    source: Option<u32>,
    /// `None` until the next packet of `source` opens an epoch.
    epoch: Option<Epoch>,
    last: Option<Last>,
    /// Ring of offset changes of the current epoch; `history[head]` is the newest.
    history: [Shift; HISTORY_LEN],
    head: usize,
    len: usize,
    /// Ring of sources switched away from; `retired_next` is the slot overwritten next.
    retired: [Option<Retired>; RETIRED_LEN],
    retired_next: usize,
}

impl RtpMunger {
    /// A munger for a track with RTP clock rate `clock_rate` (Hz: 90000 for video, RFC 3551 §5;
    /// 48000 for Opus, RFC 7587 §4.1). The first forwarded packet gets sequence number
    /// `initial_seq & 0x7FFF` (kept below 2^15 so the SRTP rollover counter starts at 0) and
    /// timestamp `initial_ts`; the caller picks both at random (RFC 3550 §5.1).
    pub fn new(clock_rate: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            clock_rate,
            initial_seq: u64::from(initial_seq & INITIAL_SEQ_MASK),
            initial_ts,
            source: None,
            epoch: None,
            last: None,
            history: [Shift::default(); HISTORY_LEN],
            head: 0,
            len: 0,
            retired: [None; RETIRED_LEN],
            retired_next: 0,
        }
    }

    /// Maps one packet of `source` (SSRC) with extended input sequence number `seq` and RTP
    /// timestamp `ts`, arriving at `now`, to its output numbers.
    ///
    /// The first packet ever, the first packet after [`switch_source`](Self::switch_source), and
    /// a packet of a source other than the current one (see the module docs) open an epoch.
    /// Returns `None` when the packet must not be sent: it is a late packet of a retired source,
    /// precedes the current epoch, was dropped via [`drop_packet`](Self::drop_packet), or is too
    /// old for the offset history. A repeated `seq` (retransmission) maps to the same output again.
    pub fn forward(&mut self, now: Instant, source: u32, seq: u64, ts: u32) -> Option<Munged> {
        if self.source != Some(source) {
            let stale = self
                .retired
                .iter()
                .flatten()
                .any(|r| r.source == source && seq <= r.highest_in);
            if stale {
                return None;
            }
            self.switch_source(source);
        }
        let out = match self.epoch {
            None => self.open_epoch(now, source, seq, ts),
            Some(mut epoch) => {
                let delta = if seq > epoch.highest_in {
                    epoch.highest_in = seq;
                    self.epoch = Some(epoch);
                    self.history[self.head].delta
                } else {
                    self.delta_at(seq)?
                };
                Munged {
                    seq: seq.wrapping_add(delta),
                    ts: ts.wrapping_add(epoch.ts_offset),
                }
            }
        };
        if self.last.is_none_or(|last| out.seq > last.seq) {
            self.last = Some(Last {
                seq: out.seq,
                ts: out.ts,
                at: now,
            });
        }
        Some(out)
    }

    /// The caller intentionally did not forward packet `seq` of `source` (waiting for a keyframe,
    /// temporal layer filtered out, ...). If it is newer than every packet seen in the current
    /// epoch, later packets shift down by one so the subscriber sees no gap. Drops of older
    /// packets, of other sources, or before the epoch opened are ignored (an older drop simply
    /// remains a gap).
    pub fn drop_packet(&mut self, source: u32, seq: u64) {
        if self.source != Some(source) {
            return;
        }
        let (Some(epoch), Some(next)) = (self.epoch.as_mut(), seq.checked_add(1)) else {
            return;
        };
        if seq <= epoch.highest_in {
            return;
        }
        epoch.highest_in = seq;
        let newest = &mut self.history[self.head];
        if newest.start == seq {
            // Extends a run of consecutive drops (no packet was seen in between).
            newest.start = next;
            newest.delta = newest.delta.wrapping_sub(1);
            newest.dropped = newest.dropped.saturating_add(1);
        } else {
            let delta = newest.delta.wrapping_sub(1);
            self.push(Shift {
                start: next,
                delta,
                dropped: 1,
            });
        }
    }

    /// Ends the current epoch and makes `source` current: its next packet, whatever its sequence
    /// number, opens a new epoch that continues the output right after the last forwarded packet
    /// (sequence number + 1; timestamp + the wall-clock time elapsed in clock-rate ticks, at
    /// least 1). The previous source is retired: its late packets are refused.
    ///
    /// `forward` switches by itself on a new source; call this to return to a retired source
    /// regardless of its sequence numbers, or with the current source to rebase it (publisher
    /// restarted its numbering under the same SSRC).
    pub fn switch_source(&mut self, source: u32) {
        if let (Some(current), Some(epoch)) = (self.source, self.epoch) {
            self.retire(current, epoch.highest_in);
        }
        self.source = Some(source);
        self.epoch = None;
    }

    /// Extended sequence number of the highest output packet so far.
    pub fn last_seq(&self) -> Option<u64> {
        self.last.map(|last| last.seq)
    }

    /// Output RTP timestamp (clock-rate units) of the highest output packet so far.
    pub fn last_ts(&self) -> Option<u32> {
        self.last.map(|last| last.ts)
    }

    /// The current source (SSRC): the current epoch's, or the one named by the last
    /// `switch_source`. `None` before the first packet.
    pub fn source(&self) -> Option<u32> {
        self.source
    }

    /// Opens an epoch at this packet. Output continues from the last forwarded packet: sequence
    /// number + 1, timestamp + max(1, elapsed wall-clock time in clock-rate ticks, rounded).
    fn open_epoch(&mut self, now: Instant, source: u32, seq: u64, ts: u32) -> Munged {
        let out = match self.last {
            None => Munged {
                seq: self.initial_seq,
                ts: self.initial_ts,
            },
            Some(last) => Munged {
                seq: last.seq.wrapping_add(1),
                ts: last.ts.wrapping_add(self.ticks_between(last.at, now)),
            },
        };
        self.source = Some(source);
        self.epoch = Some(Epoch {
            highest_in: seq,
            ts_offset: out.ts.wrapping_sub(ts),
        });
        self.len = 0;
        self.push(Shift {
            start: seq,
            delta: out.seq.wrapping_sub(seq),
            dropped: 0,
        });
        out
    }

    /// Elapsed time from `from` to `to` in clock-rate ticks, rounded to nearest, clamped to
    /// `1..=2^31-1` so the output timestamp strictly advances in serial-number order.
    fn ticks_between(&self, from: Instant, to: Instant) -> u32 {
        let nanos = to.saturating_duration_since(from).as_nanos();
        // < 2^94 ns (Duration::MAX) times < 2^32 Hz: cannot overflow u128.
        let ticks = (nanos * u128::from(self.clock_rate) + 500_000_000) / 1_000_000_000;
        u32::try_from(ticks.clamp(1, MAX_SWITCH_TS_STEP)).unwrap_or(1)
    }

    /// The `delta` in force at an input sequence number at or below the highest seen, or `None`
    /// if it was dropped or precedes the remembered history (and so the epoch).
    fn delta_at(&self, seq: u64) -> Option<u64> {
        (0..self.len)
            // Newest first; `% HISTORY_LEN` keeps every index in bounds.
            .map(|age| self.history[(self.head + HISTORY_LEN - age) % HISTORY_LEN])
            .find(|shift| seq >= shift.start.saturating_sub(shift.dropped))
            .filter(|shift| seq >= shift.start)
            .map(|shift| shift.delta)
    }

    /// Remembers the highest input of a source switched away from, in its own slot if it has one.
    fn retire(&mut self, source: u32, highest_in: u64) {
        let slot = self
            .retired
            .iter()
            .position(|r| r.is_some_and(|r| r.source == source))
            .unwrap_or_else(|| {
                let next = self.retired_next;
                self.retired_next = (next + 1) % RETIRED_LEN;
                next
            });
        // `slot` < RETIRED_LEN: a position in the array or a ring index taken modulo its length.
        self.retired[slot] = Some(Retired { source, highest_in });
    }

    fn push(&mut self, shift: Shift) {
        self.head = (self.head + 1) % HISTORY_LEN;
        self.history[self.head] = shift;
        self.len = (self.len + 1).min(HISTORY_LEN);
    }
}

#[cfg(test)]
#[path = "munger_tests.rs"]
mod tests;
