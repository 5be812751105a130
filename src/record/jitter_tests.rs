//! Tests for `jitter.rs`: reordering, repair within the wait, abandoned holes, refusals,
//! the bound under a flood, a huge sequence jump, and a never-panic property.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const WAIT: Duration = Duration::from_millis(100);

fn packet(seq: u64) -> Packet {
    Packet {
        seq,
        timestamp: (seq as u32).wrapping_mul(3000),
        marker: true,
        payload: Arc::from(seq.to_be_bytes().as_slice()),
    }
}

/// Pops everything `pop(now)` releases now.
fn drain(buffer: &mut JitterBuffer, now: Instant) -> Vec<Out> {
    std::iter::from_fn(|| buffer.pop(now)).collect()
}

/// The released items as numbers (packets) and `-lost` (gaps), for compact assertions.
fn shape(out: &[Out]) -> Vec<i64> {
    out.iter()
        .map(|o| match o {
            Out::Packet(p) => p.seq as i64,
            Out::Gap { lost } => -(*lost as i64),
        })
        .collect()
}

#[test]
fn in_order_passes_through_immediately() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    for seq in 1000..1010 {
        jb.push(t0, packet(seq)).unwrap();
        assert_eq!(jb.poll_timeout(), Some(t0), "ready at once");
        assert_eq!(drain(&mut jb, t0), vec![Out::Packet(packet(seq))]);
        assert!(jb.is_empty());
        assert_eq!(jb.poll_timeout(), None);
    }
    assert_eq!(jb.next_seq(), Some(1010));
}

#[test]
fn reorders_three_packets() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    jb.push(t0, packet(10)).unwrap();
    assert_eq!(shape(&drain(&mut jb, t0)), [10]);
    jb.push(t0, packet(13)).unwrap();
    jb.push(t0, packet(12)).unwrap();
    assert!(drain(&mut jb, t0).is_empty(), "11 is still awaited");
    jb.push(t0 + Duration::from_millis(5), packet(11)).unwrap();
    assert_eq!(
        shape(&drain(&mut jb, t0 + Duration::from_millis(5))),
        [11, 12, 13]
    );
}

#[test]
fn loss_repaired_within_max_wait_has_no_gap() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    jb.push(t0, packet(1)).unwrap();
    let mut out = drain(&mut jb, t0);
    for seq in 3..6 {
        jb.push(t0, packet(seq)).unwrap();
    }
    assert_eq!(jb.poll_timeout(), Some(t0 + WAIT));
    let almost = t0 + WAIT - Duration::from_millis(1);
    assert!(drain(&mut jb, almost).is_empty());
    jb.push(almost, packet(2)).unwrap(); // the retransmission
    out.extend(drain(&mut jb, almost));
    assert_eq!(shape(&out), [1, 2, 3, 4, 5]);
}

#[test]
fn unrepaired_loss_is_one_gap_after_max_wait() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    jb.push(t0, packet(1)).unwrap();
    let mut out = drain(&mut jb, t0);
    // 2..=4 lost; 5 arrives at t0 + 10 ms, 6 later.
    let t5 = t0 + Duration::from_millis(10);
    jb.push(t5, packet(5)).unwrap();
    jb.push(t5 + Duration::from_millis(20), packet(6)).unwrap();
    assert_eq!(
        jb.poll_timeout(),
        Some(t5 + WAIT),
        "measured from the first later packet"
    );
    assert!(drain(&mut jb, t5 + WAIT - Duration::from_nanos(1)).is_empty());
    out.extend(drain(&mut jb, t5 + WAIT));
    assert_eq!(shape(&out), [1, -3, 5, 6]);
    assert!(jb.is_empty());
}

#[test]
fn second_hole_waits_from_its_own_later_packet() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    jb.push(t0, packet(1)).unwrap();
    drain(&mut jb, t0);
    jb.push(t0, packet(3)).unwrap();
    let t4 = t0 + Duration::from_millis(50);
    jb.push(t4, packet(5)).unwrap();
    assert_eq!(shape(&drain(&mut jb, t0 + WAIT)), [-1, 3]);
    assert_eq!(jb.poll_timeout(), Some(t4 + WAIT));
    assert!(drain(&mut jb, t0 + WAIT).is_empty());
    assert_eq!(shape(&drain(&mut jb, t4 + WAIT)), [-1, 5]);
}

#[test]
fn duplicates_are_refused() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    jb.push(t0, packet(1)).unwrap();
    jb.push(t0, packet(3)).unwrap();
    assert_eq!(jb.push(t0, packet(3)), Err(PushError::Duplicate));
    assert_eq!(shape(&drain(&mut jb, t0)), [1]);
    // A duplicate of a released packet is before the next number.
    assert_eq!(jb.push(t0, packet(1)), Err(PushError::TooOld));
    assert_eq!(PushError::Duplicate.as_str(), "duplicate");
    assert_eq!(PushError::TooOld.as_str(), "too_old");
    assert_eq!(PushError::Full.as_str(), "full");
}

#[test]
fn packet_after_its_gap_is_too_old() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    jb.push(t0, packet(1)).unwrap();
    jb.push(t0, packet(3)).unwrap();
    assert_eq!(shape(&drain(&mut jb, t0 + WAIT)), [1, -1, 3]);
    assert_eq!(jb.push(t0 + WAIT, packet(2)), Err(PushError::TooOld));
    // The first packet defines the start: earlier numbers are too old as well.
    let mut fresh = JitterBuffer::new(WAIT, 64);
    fresh.push(t0, packet(100)).unwrap();
    assert_eq!(fresh.push(t0, packet(99)), Err(PushError::TooOld));
}

#[test]
fn full_buffer_refuses_until_popped() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Duration::from_secs(3600), 4);
    for seq in 1..=4 {
        jb.push(t0, packet(seq)).unwrap(); // a caller that does not pop
    }
    assert_eq!(jb.len(), 4);
    assert_eq!(jb.push(t0, packet(5)), Err(PushError::Full));
    assert_eq!(jb.poll_timeout(), Some(t0), "ready now");
    assert_eq!(shape(&drain(&mut jb, t0)), [1, 2, 3, 4]);
    jb.push(t0, packet(5)).unwrap();
    assert_eq!(shape(&drain(&mut jb, t0)), [5]);
}

#[test]
fn packet_past_the_window_gives_up_without_waiting() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Duration::from_secs(3600), 4);
    jb.push(t0, packet(1)).unwrap();
    drain(&mut jb, t0);
    for seq in [3, 4] {
        jb.push(t0, packet(seq)).unwrap();
        assert!(drain(&mut jb, t0).is_empty(), "2 is waited for");
    }
    // 6 = next (2) + max_packets: 2..=5 cannot all be held with it.
    jb.push(t0, packet(6)).unwrap();
    assert_eq!(shape(&drain(&mut jb, t0)), [-1, 3, 4, -1, 6]);
    // The window now starts after 6 again: a small hole is waited for.
    jb.push(t0, packet(8)).unwrap();
    assert!(drain(&mut jb, t0).is_empty());
}

#[test]
fn flood_never_exceeds_the_bound() {
    let t0 = Instant::now();
    let max = 32;
    let mut jb = JitterBuffer::new(Duration::from_secs(3600), max);
    let mut last = None;
    // Every other number, 10 000 of them: holes everywhere, no timer ever fires.
    for i in 0..10_000u64 {
        let _ = jb.push(t0, packet(i * 2));
        assert!(jb.len() <= max);
        for out in drain(&mut jb, t0) {
            if let Out::Packet(p) = out {
                assert!(last.is_none_or(|l| p.seq > l));
                last = Some(p.seq);
            }
        }
        assert!(jb.len() < max, "a drained buffer is below its bound");
    }
}

#[test]
fn huge_jump_is_one_gap_and_a_resync() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(WAIT, 64);
    jb.push(t0, packet(5)).unwrap();
    jb.push(t0, packet(7)).unwrap(); // 6 missing, still waited for
    let jump = 7 + 1_000_000_000;
    jb.push(t0, packet(jump)).unwrap();
    jb.push(t0, packet(jump + 1)).unwrap();
    // No waiting: the hole before the jump is given up on at once.
    assert_eq!(
        shape(&drain(&mut jb, t0)),
        [5, -1, 7, -1_000_000_000 + 1, jump as i64, jump as i64 + 1]
    );
    assert_eq!(jb.next_seq(), Some(jump + 2));
    jb.push(t0, packet(jump + 2)).unwrap();
    assert_eq!(shape(&drain(&mut jb, t0)), [jump as i64 + 2]);
}

#[test]
fn flush_gives_up_on_every_hole() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Duration::from_secs(3600), 64);
    for seq in [1, 3, 4, 9] {
        jb.push(t0, packet(seq)).unwrap();
    }
    let out: Vec<Out> = std::iter::from_fn(|| jb.flush()).collect();
    assert_eq!(shape(&out), [1, -1, 3, 4, -4, 9]);
    assert!(jb.is_empty());
    assert_eq!(jb.flush(), None);
}

#[test]
fn extreme_numbers_and_durations_do_not_panic() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Duration::MAX, 0);
    jb.push(t0, packet(u64::MAX)).unwrap();
    assert_eq!(jb.push(t0, packet(u64::MAX)), Err(PushError::Duplicate));
    assert_eq!(shape(&drain(&mut jb, t0)), [u64::MAX as i64]);
    assert_eq!(jb.push(t0, packet(u64::MAX)), Err(PushError::TooOld));
    assert_eq!(jb.next_seq(), None, "past the last u64");
    let mut jb = JitterBuffer::new(Duration::MAX, 8);
    jb.push(t0, packet(0)).unwrap();
    jb.push(t0, packet(2)).unwrap();
    drain(&mut jb, t0);
    assert_eq!(
        jb.poll_timeout(),
        None,
        "a deadline past Instant's range never fires"
    );
    assert!(drain(&mut jb, t0 + Duration::from_secs(1_000_000)).is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Push { seq: u64, dt_ms: u64 },
    Pop { dt_ms: u64 },
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..200, 0u64..30).prop_map(|(seq, dt_ms)| Op::Push { seq, dt_ms }),
        1 => any::<u64>().prop_map(|seq| Op::Push { seq, dt_ms: 0 }),
        3 => (0u64..150).prop_map(|dt_ms| Op::Pop { dt_ms }),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #[test]
    fn never_panics_orders_and_bounds(
        max_packets in 0usize..40,
        wait_ms in 0u64..200,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut now = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(wait_ms), max_packets);
        // The next number a release may carry: strictly increasing, gaps included.
        let mut floor: u128 = 0;
        let check = |out: Out, floor: &mut u128| match out {
            Out::Packet(p) => {
                prop_assert!(u128::from(p.seq) >= *floor);
                *floor = u128::from(p.seq) + 1;
                Ok(())
            }
            Out::Gap { lost } => {
                prop_assert!(lost >= 1);
                *floor += u128::from(lost);
                Ok(())
            }
        };
        for op in ops {
            match op {
                Op::Push { seq, dt_ms } => {
                    now += Duration::from_millis(dt_ms);
                    let first = jb.next_seq().is_none() && floor == 0;
                    if jb.push(now, packet(seq)).is_ok() && first {
                        floor = u128::from(seq);
                    }
                }
                Op::Pop { dt_ms } => {
                    now += Duration::from_millis(dt_ms);
                    if let Some(at) = jb.poll_timeout() {
                        prop_assert!(at <= now || jb.pop(now).is_none());
                    }
                    while let Some(out) = jb.pop(now) {
                        check(out, &mut floor)?;
                    }
                }
                Op::Flush => {
                    while let Some(out) = jb.flush() {
                        check(out, &mut floor)?;
                    }
                    prop_assert!(jb.is_empty());
                }
            }
            prop_assert!(jb.len() <= max_packets.max(1));
        }
    }
}
