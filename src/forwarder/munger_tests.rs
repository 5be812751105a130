//! Tests for `munger.rs`: table tests of each mapping rule, and properties over random packet
//! schedules (contiguity under drops, exact slots for late packets, monotonic timestamps).

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

const A: u32 = 0xAAAA;
const B: u32 = 0xBBBB;
const VIDEO: u32 = 90_000;
const MS: Duration = Duration::from_millis(1);

fn munger() -> (RtpMunger, Instant) {
    (RtpMunger::new(VIDEO, 1000, 5000), Instant::now())
}

fn out(seq: u64, ts: u32) -> Option<Munged> {
    Some(Munged { seq, ts })
}

#[test]
fn first_packet_uses_initial_values() {
    let (mut m, t0) = munger();
    assert_eq!((m.last_seq(), m.last_ts(), m.source()), (None, None, None));
    assert_eq!(m.forward(t0, A, 500, 90_000), out(1000, 5000));
    assert_eq!(
        (m.last_seq(), m.last_ts(), m.source()),
        (Some(1000), Some(5000), Some(A))
    );
}

#[test]
fn initial_seq_is_masked_below_2_pow_15() {
    let t0 = Instant::now();
    let mut m = RtpMunger::new(VIDEO, 0xFFFF, 7);
    assert_eq!(m.forward(t0, A, 3, 0), out(0x7FFF, 7));
    let mut m = RtpMunger::new(VIDEO, 0x8001, 7);
    assert_eq!(m.forward(t0, A, 3, 0), out(1, 7));
}

#[test]
fn contiguous_input_gives_contiguous_output_with_source_ts_deltas() {
    let (mut m, t0) = munger();
    for i in 0..10u32 {
        let got = m.forward(t0 + i * 33 * MS, A, 500 + u64::from(i), 90_000 + i * 3000);
        assert_eq!(got, out(1000 + u64::from(i), 5000 + i * 3000));
    }
}

#[test]
fn network_loss_stays_a_gap_and_late_packet_fills_it() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    assert_eq!(m.forward(t0, A, 501, 3000), out(1001, 8000));
    // 502 lost in the network.
    assert_eq!(m.forward(t0, A, 503, 9000), out(1003, 14000));
    assert_eq!(m.forward(t0, A, 504, 12000), out(1004, 17000));
    // Late / retransmitted 502 lands in exactly its slot; last_* stay on the highest packet.
    assert_eq!(m.forward(t0, A, 502, 6000), out(1002, 11000));
    assert_eq!((m.last_seq(), m.last_ts()), (Some(1004), Some(17000)));
    // A duplicate maps identically again.
    assert_eq!(m.forward(t0, A, 501, 3000), out(1001, 8000));
}

#[test]
fn dropping_newest_packets_closes_the_gap() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    m.drop_packet(A, 501);
    m.drop_packet(A, 502);
    assert_eq!(m.forward(t0, A, 503, 9000), out(1001, 14000));
    m.drop_packet(A, 504);
    assert_eq!(m.forward(t0, A, 505, 15000), out(1002, 20000));
    // Dropped packets stay dropped, even when retransmitted.
    for dropped in [501, 502, 504] {
        assert_eq!(m.forward(t0, A, dropped, 0), None, "{dropped}");
    }
}

#[test]
fn late_packets_map_with_the_offset_in_force_at_their_position() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    assert_eq!(m.forward(t0, A, 501, 0), out(1001, 5000));
    // 502 lost; 503 dropped; 504 forwarded; 505 lost; 506..=507 dropped; 508 forwarded.
    m.drop_packet(A, 503);
    assert_eq!(m.forward(t0, A, 504, 0), out(1003, 5000));
    m.drop_packet(A, 506);
    m.drop_packet(A, 507);
    assert_eq!(m.forward(t0, A, 508, 0), out(1005, 5000));
    assert_eq!(m.forward(t0, A, 502, 0), out(1002, 5000));
    assert_eq!(m.forward(t0, A, 505, 0), out(1004, 5000));
    assert_eq!(
        m.forward(t0, A, 501, 0),
        out(1001, 5000),
        "pre-drop retransmission"
    );
    assert_eq!(m.forward(t0, A, 503, 0), None);
    assert_eq!(m.forward(t0, A, 507, 0), None);
}

#[test]
fn late_packet_above_last_output_moves_last_forward() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    m.drop_packet(A, 502); // 501 lost, 502 dropped: highest input is 502, highest output 1000.
    assert_eq!(m.forward(t0, A, 501, 3000), out(1001, 8000));
    assert_eq!((m.last_seq(), m.last_ts()), (Some(1001), Some(8000)));
    m.switch_source(B);
    assert_eq!(m.forward(t0 + 10 * MS, B, 7, 0), out(1002, 8900));
}

#[test]
fn a_long_run_of_drops_uses_one_history_entry() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    // 501 lost, then 100 consecutive drops (e.g. waiting for a keyframe): one offset change.
    for seq in 502..602 {
        m.drop_packet(A, seq);
    }
    assert_eq!(m.forward(t0, A, 602, 0), out(1002, 5000));
    // 62 more separate runs ("forward, drop") fill the history exactly: 1 + 1 + 62 = 64 entries.
    let mut seq = 603;
    for _ in 0..HISTORY_LEN - 2 {
        assert!(m.forward(t0, A, seq, 0).is_some());
        m.drop_packet(A, seq + 1);
        seq += 2;
    }
    assert_eq!(
        m.forward(t0, A, 501, 0),
        out(1001, 5000),
        "still remembered"
    );
}

#[test]
fn ignored_drops() {
    let (mut m, t0) = munger();
    m.drop_packet(A, 499); // before any epoch
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    m.drop_packet(B, 501); // another source
    m.drop_packet(A, 500); // already forwarded
    assert_eq!(m.forward(t0, A, 502, 0), out(1002, 5000));
    m.drop_packet(A, 501); // older than the newest: stays a gap
    assert_eq!(m.forward(t0, A, 503, 0), out(1003, 5000));
    assert_eq!(m.forward(t0, A, 501, 0), out(1001, 5000));
    m.drop_packet(A, u64::MAX); // no successor: ignored rather than wrapping
    assert_eq!(m.forward(t0, A, 504, 0), out(1004, 5000));
}

#[test]
fn u16_input_wraparound_via_extended_seq() {
    let (mut m, t0) = munger();
    for (i, seq) in (65_534u64..65_540).enumerate() {
        assert_eq!(
            m.forward(t0, A, seq, 0).map(|o| o.seq),
            Some(1000 + i as u64)
        );
    }
    // Output rolls past 2^16 as an extended number (ROC 1), never back to 0.
    let t0 = Instant::now();
    let mut m = RtpMunger::new(VIDEO, 0x7FFF, 0);
    for seq in 0..40_000u64 {
        m.forward(t0, A, seq, 0);
    }
    assert_eq!(m.last_seq(), Some(0x7FFF + 39_999));
}

#[test]
fn timestamp_wraps_at_u32_max() {
    let t0 = Instant::now();
    let mut m = RtpMunger::new(VIDEO, 0, u32::MAX - 1000);
    assert_eq!(m.forward(t0, A, 1, 10), out(0, u32::MAX - 1000));
    assert_eq!(m.forward(t0, A, 2, 3010), out(1, 1999));
    // Source timestamps wrapping too.
    let mut m = RtpMunger::new(VIDEO, 0, 100);
    assert_eq!(m.forward(t0, A, 1, u32::MAX - 999), out(0, 100));
    assert_eq!(m.forward(t0, A, 2, 2000), out(1, 3100));
}

#[test]
fn source_switch_continues_seq_and_ts() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    assert_eq!(m.forward(t0 + 33 * MS, A, 501, 3000), out(1001, 8000));
    m.switch_source(B);
    assert_eq!(m.source(), Some(B));
    // 100 ms after A's last packet: 9000 ticks at 90 kHz.
    assert_eq!(m.forward(t0 + 133 * MS, B, 9000, 777), out(1002, 17_000));
    // B's packets from before its first forwarded one are refused (A's history is gone).
    assert_eq!(m.forward(t0 + 140 * MS, B, 8999, 0), None);
    // Later B packets keep B's own deltas.
    assert_eq!(m.forward(t0 + 166 * MS, B, 9001, 3777), out(1003, 20_000));
    m.drop_packet(B, 9002);
    assert_eq!(m.forward(t0 + 200 * MS, B, 9003, 6777), out(1004, 23_000));
}

#[test]
fn switch_timestamp_step_is_rounded_and_at_least_one() {
    let t0 = Instant::now();
    let mut m = RtpMunger::new(48_000, 0, 0);
    m.forward(t0, A, 1, 0);
    m.switch_source(B);
    assert_eq!(
        m.forward(t0, B, 1, 0),
        out(1, 1),
        "zero elapsed still advances"
    );
    m.switch_source(A);
    // 10.4 µs * 48 kHz = 0.4992 ticks -> 0, clamped to 1; 31.3 µs -> 1.5024 -> 2.
    assert_eq!(
        m.forward(t0 + Duration::from_nanos(10_400), A, 2, 0),
        out(2, 2)
    );
    m.switch_source(B);
    assert_eq!(
        m.forward(t0 + Duration::from_nanos(41_700), B, 2, 0),
        out(3, 4)
    );
    // A huge pause is clamped to the largest serial-arithmetic step.
    m.switch_source(A);
    let later = t0 + Duration::from_secs(1_000_000);
    assert_eq!(m.forward(later, A, 3, 0), out(4, 4 + (1 << 31) - 1));
    // `now` going backwards does not panic and still advances by one tick.
    m.switch_source(B);
    assert_eq!(m.forward(t0, B, 3, 0), out(5, 4 + (1 << 31)));
}

#[test]
fn new_source_switches_implicitly_and_old_late_packets_are_refused() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    assert_eq!(m.forward(t0, A, 502, 0), out(1002, 5000));
    m.drop_packet(A, 503);
    assert_eq!(m.forward(t0, B, 7, 0), out(1003, 5001), "implicit switch");
    assert_eq!(m.source(), Some(B));
    for (seq, why) in [(500, "retransmission"), (501, "late"), (503, "dropped")] {
        assert_eq!(m.forward(t0, A, seq, 0), None, "{why}");
    }
    m.drop_packet(A, 504); // ignored: not the current source
    assert_eq!(m.forward(t0, B, 8, 0), out(1004, 5001));
}

#[test]
fn explicit_switch_retires_the_old_source_before_the_new_one_arrives() {
    let (mut m, t0) = munger();
    m.forward(t0, A, 500, 0);
    m.switch_source(B);
    assert_eq!(m.source(), Some(B));
    assert_eq!(
        m.forward(t0, A, 500, 0),
        None,
        "late A before B's first packet"
    );
    assert_eq!(m.forward(t0, B, 7, 0), out(1001, 5001));
    assert_eq!(m.forward(t0, B, 6, 0), None, "precedes B's epoch");
}

#[test]
fn packets_before_the_epoch_are_refused() {
    let (mut m, t0) = munger();
    assert_eq!(m.forward(t0, A, 500, 0), out(1000, 5000));
    assert_eq!(m.forward(t0, A, 499, 0), None);
    m.switch_source(A); // publisher restart under the same SSRC
    assert_eq!(m.forward(t0, A, 10, 0), out(1001, 5001));
    assert_eq!(m.forward(t0, A, 9, 0), None);
    assert_eq!(m.forward(t0, A, 11, 0), out(1002, 5001));
}

#[test]
fn switching_back_to_a_previous_source_works() {
    let (mut m, t0) = munger();
    m.forward(t0, A, 500, 0);
    m.forward(t0, B, 50, 0);
    // Fresh A packets: back to A without any call; stale B packets are then refused.
    assert_eq!(m.forward(t0, A, 600, 0), out(1002, 5002));
    assert_eq!(m.forward(t0, B, 50, 0), None);
    // Explicitly, even to old sequence numbers of a retired source.
    m.switch_source(B);
    assert_eq!(m.forward(t0, B, 40, 0), out(1003, 5003));
    assert_eq!(m.forward(t0, A, 600, 0), None);
}

#[test]
fn the_last_retired_len_sources_are_remembered() {
    let (mut m, t0) = munger();
    let sources = 1..=RETIRED_LEN as u32 + 2;
    for s in sources.clone() {
        m.forward(t0, s, 100, 0);
    }
    let current = *sources.end();
    let remembered = current - RETIRED_LEN as u32..current;
    for s in remembered.clone() {
        assert_eq!(m.forward(t0, s, 100, 0), None, "source {s}");
    }
    // Forgotten: its late packet counts as a new source again.
    assert!(m.forward(t0, remembered.start - 1, 100, 0).is_some());
}

#[test]
fn flipping_between_two_sources_does_not_evict_others() {
    let (mut m, t0) = munger();
    m.forward(t0, 1, 100, 0);
    m.forward(t0, 2, 100, 0);
    for seq in (100..1000).step_by(100) {
        m.forward(t0, 3, seq, 0);
        m.forward(t0, 4, seq, 0);
    }
    assert_eq!(m.forward(t0, 3, 900, 0), None);
    assert_eq!(m.forward(t0, 2, 100, 0), None);
    assert_eq!(m.forward(t0, 1, 100, 0), None);
}

#[test]
fn packets_older_than_history_are_refused() {
    let (mut m, t0) = munger();
    m.forward(t0, A, 0, 0);
    // 1 lost, then HISTORY_LEN runs of "forward, drop": each run pushes one offset change.
    let mut seq = 2;
    for _ in 0..HISTORY_LEN {
        m.forward(t0, A, seq, 0);
        m.drop_packet(A, seq + 1);
        seq += 2;
    }
    assert_eq!(m.forward(t0, A, 1, 0), None, "too old to map");
    assert_eq!(m.forward(t0, A, 0, 0), None);
    // Recent history still maps: seq - 2 was forwarded as the newest output.
    let newest = m.last_seq();
    assert_eq!(m.forward(t0, A, seq - 2, 0).map(|o| o.seq), newest);
}

// ---------------------------------------------------------------------------------------------
// Properties

/// The fate of one input packet in an in-order stream.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Forward,
    Drop,
    Lost,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![6 => Just(Fate::Forward), 3 => Just(Fate::Drop), 1 => Just(Fate::Lost)]
}

/// RFC 1982 serial comparison for 32-bit timestamps: `b` is not before `a`.
fn ts_not_before(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

proptest! {
    /// (a) In-order input with drops: every forwarded packet is exactly the previous + 1.
    #[test]
    fn in_order_with_drops_is_contiguous(
        start in 0u64..1 << 40,
        init in any::<u16>(),
        drops in proptest::collection::vec(any::<bool>(), 1..400),
    ) {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(VIDEO, init, 0);
        let mut prev: Option<u64> = None;
        for (i, drop) in drops.into_iter().enumerate() {
            let seq = start + i as u64;
            if drop {
                m.drop_packet(A, seq);
                continue;
            }
            let got = m.forward(t0, A, seq, 0).map(|o| o.seq);
            prop_assert_eq!(got, Some(prev.map_or(u64::from(init & 0x7FFF), |p| p + 1)));
            prev = got;
        }
    }

    /// (b) + exact slots: with loss, drops, and late deliveries / retransmissions of any packet,
    /// each input maps to `first + position - drops before it`, dropped inputs never map, and
    /// distinct inputs never share an output.
    #[test]
    fn late_packets_map_to_their_exact_slot(
        start in 0u64..1 << 40,
        fates in proptest::collection::vec((fate(), proptest::option::of(1usize..30)), 1..300),
    ) {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(VIDEO, 1234, 0);
        let ts_of = |seq: u64| (seq as u32).wrapping_mul(3000);
        // Deliveries: (position, order, input index, is_late); first packet always forwarded.
        let mut plan = Vec::new();
        for (i, (f, late)) in fates.iter().enumerate() {
            let f = if i == 0 { Fate::Forward } else { *f };
            plan.push((i, 0, i, f, false));
            if let Some(delay) = late {
                if i > 0 {
                    plan.push((i + delay, 1, i, f, true));
                }
            }
        }
        plan.sort_by_key(|p| (p.0, p.1));
        let dropped: Vec<u64> = plan.iter()
            .filter(|p| matches!(p.3, Fate::Drop) && !p.4).map(|p| start + p.2 as u64).collect();
        let runs = fates.iter().enumerate().skip(1)
            .filter(|(i, f)| matches!(f.0, Fate::Drop) && (*i == 1 || !matches!(fates[i - 1].0, Fate::Drop)))
            .count();
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for (_, _, i, f, late) in plan {
            let seq = start + i as u64;
            if matches!(f, Fate::Drop) && !late {
                m.drop_packet(A, seq);
                continue;
            }
            if matches!(f, Fate::Lost) && !late {
                continue;
            }
            let got = m.forward(t0, A, seq, ts_of(seq));
            let is_dropped = dropped.contains(&seq);
            let want = 1234 + (seq - start) - dropped.iter().filter(|&&d| d < seq).count() as u64;
            if is_dropped {
                prop_assert_eq!(got, None);
            } else if runs < HISTORY_LEN || !late {
                prop_assert_eq!(got, Some(Munged { seq: want, ts: ts_of(seq).wrapping_sub(ts_of(start)) }));
            } else {
                prop_assert!(got.is_none_or(|o| o.seq == want));
            }
            if let Some(o) = got {
                prop_assert!(*seen.entry(o.seq).or_insert(seq) == seq, "output {} reused", o.seq);
            }
        }
    }

    /// (c) Timestamps never go backwards and sequence numbers only move forward (by exactly one
    /// across a switch), over in-order packets with loss, drops, explicit and implicit source
    /// switches, and moving `now`.
    #[test]
    fn timestamps_never_go_backwards(
        init_ts in any::<u32>(),
        ops in proptest::collection::vec(prop_oneof![
            8 => (1u64..=3, 0u32..=6000, 0u64..=50, any::<bool>()).prop_map(|(g, t, dt, d)| (None, g, t, dt, d)),
            1 => (0u64..1 << 40, any::<u32>(), 0u64..=5000).prop_map(|(s, t, dt)| (Some((s, t)), 1, 0, dt, false)),
        ], 1..300),
    ) {
        let mut now = Instant::now();
        let mut m = RtpMunger::new(VIDEO, 0, init_ts);
        let (mut source, mut seq, mut ts) = (1u32, 0u64, 0u32);
        let mut prev: Option<Munged> = None;
        let mut switched = false;
        for (switch, gap, ts_step, dt_ms, drop) in ops {
            now += Duration::from_millis(dt_ms);
            if let Some((seq_base, ts_base)) = switch {
                source += 1;
                (seq, ts, switched) = (seq_base, ts_base, true);
                if seq_base % 2 == 0 {
                    m.switch_source(source); // otherwise `forward` switches by itself
                }
                continue;
            }
            seq += gap;
            ts = ts.wrapping_add(ts_step);
            if drop {
                m.drop_packet(source, seq);
                continue;
            }
            let got = m
                .forward(now, source, seq, ts)
                .ok_or_else(|| TestCaseError::fail("in-order packet refused"))?;
            if let Some(p) = prev {
                prop_assert!(ts_not_before(p.ts, got.ts), "ts {} after {}", got.ts, p.ts);
                prop_assert!(got.seq > p.seq);
                if switched {
                    prop_assert_eq!(got.seq, p.seq + 1);
                    prop_assert!(got.ts != p.ts, "a switch strictly advances the timestamp");
                }
            }
            (prev, switched) = (Some(got), false);
        }
    }

    /// Arbitrary calls with arbitrary numbers (including the extremes) never panic, and a
    /// repeated packet of the current epoch always maps to the same output.
    #[test]
    fn arbitrary_calls_never_panic(
        clock_rate in prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        ops in proptest::collection::vec(
            (0u8..4, 0u32..3, prop_oneof![any::<u64>(), u64::MAX - 4..=u64::MAX, 0u64..8], any::<u32>(), any::<u64>()),
            1..200,
        ),
    ) {
        let t0 = Instant::now();
        let mut m = RtpMunger::new(clock_rate, 0, 0);
        for (op, source, seq, ts, dt) in ops {
            let now = t0 + Duration::from_nanos(dt >> 20);
            match op {
                0 | 1 => {
                    let first = m.forward(now, source, seq, ts);
                    if first.is_some() {
                        prop_assert_eq!(m.forward(now, source, seq, ts), first);
                    }
                }
                2 => m.drop_packet(source, seq),
                _ => m.switch_source(source),
            }
        }
    }
}
