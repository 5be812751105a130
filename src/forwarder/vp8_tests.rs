use str0m::rtp::{Vp8Descriptor, Vp8Patch};

use super::Vp8Rewriter;

/// A VP8 payload (RFC 7741 §4.2) with a 15-bit (or, `short`, 7-bit) PictureID,
/// TL0PICIDX, TID and KEYIDX.
fn payload(pid: u16, tl0: u8, tid: u8, key_idx: u8, keyframe: bool, short: bool) -> Vec<u8> {
    let mut p = vec![0x80 | 0x10, 0x80 | 0x40 | 0x20 | 0x10];
    if short {
        p.push((pid & 0x7f) as u8);
    } else {
        p.push(0x80 | (pid >> 8) as u8);
        p.push(pid as u8);
    }
    p.push(tl0);
    p.push((tid << 6) | key_idx);
    // VP8 payload header: P bit (0 = keyframe), then some bytes.
    p.push(if keyframe { 0x00 } else { 0x01 });
    p.extend_from_slice(&[0xaa; 8]);
    p
}

fn desc(p: &[u8]) -> Vp8Descriptor {
    Vp8Descriptor::parse(p).expect("valid descriptor")
}

/// The patch that writes exactly these values into `p`'s descriptor.
fn expect(p: &[u8], pid: u16, tl0: u8, key_idx: u8) -> Vp8Patch {
    desc(p)
        .patch()
        .picture_id(pid)
        .tl0_pic_idx(tl0)
        .key_idx(key_idx)
        .build()
        .expect("fits")
}

/// One picture of a three-temporal-layer stream (pattern 0, 2, 1, 2): its TID and the
/// TL0PICIDX it carries, for picture number `n` (0-based) starting at `tl0_start`.
fn l1t3(n: u16, tl0_start: u8) -> (u8, u8) {
    let tid = [0, 2, 1, 2][(n % 4) as usize];
    (tid, tl0_start.wrapping_add((n / 4) as u8))
}

#[test]
fn a_contiguous_stream_keeps_its_values() {
    let mut r = Vp8Rewriter::new();
    for n in 0..20u16 {
        let (tid, tl0) = l1t3(n, 7);
        let p = payload(1000 + n, tl0, tid, 3, n == 0, false);
        let got = r.forward(1, &desc(&p), n == 0).unwrap();
        assert_eq!(got, Some(expect(&p, 1000 + n, tl0, 3)), "picture {n}");
    }
}

#[test]
fn dropped_temporal_pictures_leave_no_picture_id_gap() {
    let mut r = Vp8Rewriter::new();
    let mut out_pid = 500;
    for n in 0..40u16 {
        let (tid, tl0) = l1t3(n, 0);
        // Two packets per picture; forward TID ≤ 1 only (half the frame rate).
        for _ in 0..2 {
            let p = payload(500 + n, tl0, tid, 0, n == 0, false);
            if tid <= 1 {
                let got = r.forward(9, &desc(&p), n == 0).unwrap();
                assert_eq!(got, Some(expect(&p, out_pid, tl0, 0)), "picture {n}");
            } else {
                r.drop_packet(9, &desc(&p));
            }
        }
        if tid <= 1 {
            out_pid += 1;
        }
    }
    assert_eq!(out_pid, 520);
}

#[test]
fn a_switch_to_another_layer_continues_every_field() {
    let mut r = Vp8Rewriter::new();
    // Layer A: pictures 100..110, TL0PICIDX 50.., KEYIDX 4.
    let mut last = (0, 0);
    for n in 0..10u16 {
        let (tid, tl0) = l1t3(n, 50);
        let p = payload(100 + n, tl0, tid, 4, n == 0, false);
        r.forward(1, &desc(&p), n == 0).unwrap();
        last = (100 + n, tl0);
    }
    // Layer B (another SSRC, unrelated counters) from its keyframe on.
    for n in 0..8u16 {
        let (tid, tl0) = l1t3(n, 200);
        let p = payload(30_000 + n, tl0, tid, 17, n == 0, false);
        let got = r.forward(2, &desc(&p), n == 0).unwrap();
        let want_tl0 = last.1.wrapping_add(1).wrapping_add((n / 4) as u8);
        assert_eq!(got, Some(expect(&p, last.0 + 1 + n, want_tl0, 5)), "B {n}");
    }
    // Packets of A still in flight after the switch are not this rewriter's concern
    // (the selector drops them); dropping them changes nothing.
    let stale = payload(111, 53, 0, 4, false, false);
    r.drop_packet(1, &desc(&stale));
    let p = payload(30_008, 202, 0, 17, false, false);
    let got = r.forward(2, &desc(&p), false).unwrap();
    assert_eq!(got, Some(expect(&p, last.0 + 9, last.1 + 3, 5)));
}

#[test]
fn picture_ids_wrap_at_fifteen_bits() {
    let mut r = Vp8Rewriter::new();
    let first = payload(0x7ffe, 0, 0, 0, true, false);
    r.forward(1, &desc(&first), true).unwrap();
    // A dropped picture across the wrap, then forwarded ones.
    r.drop_packet(1, &desc(&payload(0x7fff, 0, 2, 0, false, false)));
    for (n, pid) in [0u16, 1, 2].into_iter().enumerate() {
        let p = payload(pid, 1, 1, 0, false, false);
        let got = r.forward(1, &desc(&p), false).unwrap();
        let want = (0x7fff + n as u16) & 0x7fff;
        assert_eq!(got, Some(expect(&p, want, 1, 0)), "pid {pid}");
    }
}

#[test]
fn seven_bit_picture_ids_stay_seven_bit() {
    let mut r = Vp8Rewriter::new();
    let mut expected = 126u16;
    for n in 0..6u16 {
        let pid = (126 + n) & 0x7f;
        let p = payload(pid, n as u8, 0, 0, n == 0, true);
        if n == 2 {
            r.drop_packet(1, &desc(&p));
            continue;
        }
        let got = r.forward(1, &desc(&p), n == 0).unwrap();
        assert_eq!(got, Some(expect(&p, expected & 0x7f, n as u8, 0)), "n {n}");
        expected += 1;
    }
}

#[test]
fn late_packets_find_their_picture_or_are_refused() {
    let mut r = Vp8Rewriter::new();
    let p0 = payload(10, 0, 0, 0, true, false);
    r.forward(1, &desc(&p0), true).unwrap();
    r.drop_packet(1, &desc(&payload(11, 0, 2, 0, false, false)));
    let p12 = payload(12, 0, 1, 0, false, false);
    assert_eq!(
        r.forward(1, &desc(&p12), false).unwrap(),
        Some(expect(&p12, 11, 0, 0))
    );
    // A retransmitted or reordered packet of picture 10 keeps picture 10's output.
    assert_eq!(
        r.forward(1, &desc(&p0), false).unwrap(),
        Some(expect(&p0, 10, 0, 0))
    );
    // A picture older than anything forwarded cannot be placed.
    let old = payload(3, 0, 0, 0, false, false);
    assert!(r.forward(1, &desc(&old), false).is_err());
}

#[test]
fn a_keyframe_after_a_pause_continues_from_the_last_forwarded() {
    let mut r = Vp8Rewriter::new();
    for n in 0..4u16 {
        let p = payload(n, n as u8, 0, 1, n == 0, false);
        r.forward(1, &desc(&p), n == 0).unwrap();
    }
    // Paused: 30 pictures dropped, TL0 ones among them.
    for n in 4..34u16 {
        r.drop_packet(1, &desc(&payload(n, n as u8, 0, 1, false, false)));
    }
    let key = payload(34, 34, 0, 2, true, false);
    assert_eq!(
        r.forward(1, &desc(&key), true).unwrap(),
        Some(expect(&key, 4, 4, 2))
    );
}

#[test]
fn a_descriptor_without_picture_id_is_left_alone() {
    let mut r = Vp8Rewriter::new();
    // X=0: only the required octet.
    let p = [0x10u8, 0x00, 0xaa, 0xbb];
    assert_eq!(r.forward(1, &desc(&p), true).unwrap(), None);
    r.drop_packet(1, &desc(&p));
}
