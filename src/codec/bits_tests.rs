//! Tests for `bits.rs`: fields, Exp-Golomb, `uvlc()`, emulation prevention, LEB128, and
//! never-panic properties; and [`BitWriter`], the writer the header parsers' tests (here
//! and in `crate::record`) build their hand-made headers with.

use proptest::prelude::*;

use super::*;

/// Writes MSB-first bit fields, for hand-built headers.
#[derive(Clone, Debug, Default)]
pub(crate) struct BitWriter(Vec<bool>);

impl BitWriter {
    /// Appends the low `n` bits of `value`, most significant first: `f(n)` / `u(n)`.
    pub(crate) fn f(&mut self, n: u32, value: u64) -> &mut Self {
        for i in (0..n).rev() {
            self.0.push((value >> i) & 1 == 1);
        }
        self
    }

    /// Appends one bit.
    pub(crate) fn bit(&mut self, set: bool) -> &mut Self {
        self.0.push(set);
        self
    }

    /// Appends `ue(v)` (H.264 §9.1).
    pub(crate) fn ue(&mut self, value: u64) -> &mut Self {
        let coded = value + 1;
        let len = 64 - coded.leading_zeros();
        self.f(len - 1, 0).f(len, coded)
    }

    /// Appends `se(v)` (H.264 §9.1.1).
    pub(crate) fn se(&mut self, value: i64) -> &mut Self {
        self.ue(if value > 0 {
            2 * value as u64 - 1
        } else {
            2 * value.unsigned_abs()
        })
    }

    /// The bits so far, the last byte padded with zeros.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &bit)| b | (u8::from(bit) << (7 - i)))
            })
            .collect()
    }

    /// `rbsp_trailing_bits()` (H.264 §7.3.2.11): a stop bit, then zeros to the byte
    /// boundary; the bytes.
    pub(crate) fn finish_rbsp(mut self) -> Vec<u8> {
        self.bit(true);
        self.bytes()
    }
}

#[test]
fn fields_msb_first() {
    let mut r = BitReader::new(&[0b1011_0010, 0xff, 0x00, 0x01]);
    assert_eq!(r.bit(), Some(true));
    assert_eq!(r.bits(3), Some(0b011));
    assert_eq!(r.bits(0), Some(0));
    assert_eq!(r.bits_u8(6), Some(0b00_1011));
    assert_eq!(r.skip(6), Some(()));
    assert_eq!(r.bits(16), Some(0x0001));
    assert_eq!(r.bit(), None, "past the end");
    // More than 32 (or 8 for a u8) bits at once is refused, not truncated.
    let mut r = BitReader::new(&[0xff; 8]);
    assert_eq!(r.bits(33), None);
    assert_eq!(r.bits_u8(9), None);
    assert_eq!(r.bits(32), Some(u32::MAX));
}

#[test]
fn exp_golomb() {
    let mut w = BitWriter::default();
    for v in [0, 1, 2, 7, 255, (1 << 32) - 2] {
        w.ue(v);
    }
    for v in [0, 1, -1, 2, -2, 100, -(1 << 31) + 1] {
        w.se(v);
    }
    let bytes = w.bytes();
    let mut r = BitReader::new(&bytes);
    for v in [0, 1, 2, 7, 255, u32::MAX - 1] {
        assert_eq!(r.ue(), Some(v));
    }
    for v in [0, 1, -1, 2, -2, 100, -(1 << 31) + 1] {
        assert_eq!(r.se(), Some(v));
    }
    // 32 leading zeros is over the 2^32 - 2 that ue(v) is read up to.
    let bytes = BitWriter::default().f(32, 0).f(1, 1).f(32, 0).bytes();
    assert_eq!(BitReader::new(&bytes).ue(), None);
}

#[test]
fn uvlc() {
    let bytes = BitWriter::default()
        .f(1, 1) // 0
        .f(4, 0)
        .f(1, 1)
        .f(4, 0b1110) // 29
        .f(40, 0)
        .f(1, 1) // 40 zeros: 2^32 - 1, no value bits
        .f(3, 0b101)
        .bytes();
    let mut r = BitReader::new(&bytes);
    assert_eq!(r.uvlc(), Some(0));
    assert_eq!(r.uvlc(), Some(29));
    assert_eq!(r.uvlc(), Some(u32::MAX));
    assert_eq!(r.bits(3), Some(0b101), "the value bits were not read");
    assert_eq!(BitReader::new(&[0, 0]).uvlc(), None, "no terminating one");
}

#[test]
fn emulation_prevention_bytes_are_dropped() {
    // 00 00 03 → 00 00; a 03 after only one zero stays; a final 03 ends the data.
    let mut r = BitReader::rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]);
    let bytes: Vec<u8> = std::iter::from_fn(|| r.bits_u8(8)).collect();
    assert_eq!(bytes, [0, 0, 1, 0, 0, 0, 0]);
    let mut r = BitReader::rbsp(&[0, 3, 0, 0, 3, 3, 0xaa]);
    let bytes: Vec<u8> = std::iter::from_fn(|| r.bits_u8(8)).collect();
    assert_eq!(bytes, [0, 3, 0, 0, 3, 0xaa]);
    // Without rbsp() nothing is dropped.
    let mut r = BitReader::new(&[0, 0, 3]);
    assert_eq!(r.bits(24), Some(3));
}

#[test]
fn leb128() {
    assert_eq!(read_leb128(&[0x80, 0x01]), Some((128, 2)));
    assert_eq!(read_leb128(&[0x05, 0xff]), Some((5, 1)));
    // A non-minimal encoding is valid.
    assert_eq!(read_leb128(&[0x85, 0x80, 0x00]), Some((5, 3)));
    assert_eq!(read_leb128(&[]), None);
    assert_eq!(read_leb128(&[0xff]), None, "truncated");
    assert_eq!(read_leb128(&[0x80; 9]), None, "over 8 bytes");
    assert_eq!(
        read_leb128(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
        Some((u32::MAX as usize, 5))
    );
    assert_eq!(read_leb128(&[0x80, 0x80, 0x80, 0x80, 0x10]), None, "2^32");
    let (bytes, n) = write_leb128(200).unwrap();
    assert_eq!(&bytes[..n], [0xc8, 0x01]);
    assert_eq!(write_leb128(0).map(|(_, n)| n), Some(1));
    assert_eq!(write_leb128((1 << 56) - 1).map(|(_, n)| n), Some(8));
    assert_eq!(write_leb128(1 << 56), None);
}

proptest! {
    #[test]
    fn readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48), n in 0u32..40) {
        for mut r in [BitReader::new(&bytes), BitReader::rbsp(&bytes)] {
            let _ = r.bits(n);
            while r.ue().is_some() {}
        }
        for mut r in [BitReader::new(&bytes), BitReader::rbsp(&bytes)] {
            while r.se().is_some() {}
        }
        let mut r = BitReader::new(&bytes);
        while r.uvlc().is_some() {}
        if let Some((value, n)) = read_leb128(&bytes) {
            prop_assert!(n <= bytes.len().min(LEB128_MAX_BYTES));
            prop_assert!(value <= u32::MAX as usize);
        }
    }

    #[test]
    fn leb128_round_trips(value in 0usize..=u32::MAX as usize) {
        let (bytes, n) = write_leb128(value).unwrap();
        prop_assert_eq!(read_leb128(&bytes[..n]), Some((value, n)));
    }

    #[test]
    fn written_fields_read_back(fields in proptest::collection::vec((1u32..=32, any::<u32>()), 0..16)) {
        let mut w = BitWriter::default();
        for &(n, v) in &fields {
            w.f(n, u64::from(v));
        }
        let bytes = w.bytes();
        let mut r = BitReader::new(&bytes);
        for &(n, v) in &fields {
            let mask = if n == 32 { u32::MAX } else { (1 << n) - 1 };
            prop_assert_eq!(r.bits(n), Some(v & mask));
        }
    }
}
