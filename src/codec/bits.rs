//! Bit-level reading shared by the header parsers of this module ([`super::h264`],
//! [`super::av1`], [`super::vp9`]) and the recorder:
//!
//! - [`BitReader`]: MSB-first fields, `u(n)` (ITU-T H.264 §7.2), `f(n)` (VP9 bitstream spec
//!   §4.9, AV1 spec §4.10.2); Exp-Golomb `ue(v)` / `se(v)` (H.264 §9.1, §9.1.1); AV1
//!   `uvlc()` (AV1 spec §4.10.3). [`BitReader::rbsp`] drops H.264 emulation prevention
//!   bytes (§7.4.1) on the fly; VP9 and AV1 have none ([`BitReader::new`]).
//! - [`read_leb128`] / [`write_leb128`]: AV1 `leb128()` (AV1 spec §4.10.5), byte-aligned.
//!
//! Never panics, never allocates: every read past the end of the data answers `None`.

/// MSB-first bit reader over a byte slice, optionally dropping emulation prevention bytes.
#[derive(Clone, Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Index in `data` of the next byte to load.
    pos: usize,
    /// The byte being read; its low `bits_left` bits are still unread.
    current: u8,
    /// Unread bits of `current`, 0..=8.
    bits_left: u32,
    /// Whether `00 00 03` drops its `03` (H.264 RBSP, §7.4.1).
    escaped: bool,
    /// Consecutive `00` bytes just loaded, 0..=2 (only counted when `escaped`).
    zeros: u8,
}

impl<'a> BitReader<'a> {
    /// Reads `data` as is (VP9, AV1).
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            current: 0,
            bits_left: 0,
            escaped: false,
            zeros: 0,
        }
    }

    /// Reads an escaped H.264 RBSP (the bytes after the NAL unit header): each emulation
    /// prevention byte, a `03` after two `00` bytes (H.264 §7.4.1), is skipped. A `03`
    /// that ends the data after two `00` bytes ends it: the next read is `None`.
    #[must_use]
    pub fn rbsp(escaped: &'a [u8]) -> Self {
        Self {
            escaped: true,
            ..Self::new(escaped)
        }
    }

    /// The next byte of the (unescaped) data, `None` at the end.
    fn next_byte(&mut self) -> Option<u8> {
        let mut byte = *self.data.get(self.pos)?;
        self.pos += 1; // < data.len(), so no overflow
        if self.escaped {
            if self.zeros >= 2 && byte == 0x03 {
                byte = *self.data.get(self.pos)?;
                self.pos += 1;
                self.zeros = 0;
            }
            self.zeros = if byte == 0 {
                (self.zeros + 1).min(2)
            } else {
                0
            };
        }
        Some(byte)
    }

    /// One bit, `u(1)` / `f(1)`.
    pub fn bit(&mut self) -> Option<bool> {
        if self.bits_left == 0 {
            self.current = self.next_byte()?;
            self.bits_left = 8;
        }
        self.bits_left -= 1;
        Some((self.current >> self.bits_left) & 1 == 1)
    }

    /// `n` bits as an unsigned number, most significant first: `u(n)` / `f(n)`.
    /// `None` past the end or for `n` > 32; `n` = 0 reads nothing and is `Some(0)`.
    pub fn bits(&mut self, n: u32) -> Option<u32> {
        if n > 32 {
            return None;
        }
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | u32::from(self.bit()?)))
    }

    /// `n` ≤ 8 bits as a `u8` (a profile, a level, a colour code); `None` past the end or
    /// for `n` > 8.
    pub fn bits_u8(&mut self, n: u32) -> Option<u8> {
        if n > 8 {
            return None;
        }
        u8::try_from(self.bits(n)?).ok()
    }

    /// Skips `n` bits; `None` when fewer are left.
    pub fn skip(&mut self, n: u32) -> Option<()> {
        for _ in 0..n {
            self.bit()?;
        }
        Some(())
    }

    /// Unsigned Exp-Golomb `ue(v)` (H.264 §9.1): leading zero bits, a one, as many value
    /// bits. 0..=2³² − 2; more than 31 leading zeros is malformed (`None`).
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let value = (1u64 << zeros) - 1 + u64::from(self.bits(zeros)?);
        u32::try_from(value).ok()
    }

    /// Signed Exp-Golomb `se(v)` (H.264 §9.1.1): `ue(v)` k mapped to (−1)^(k+1) ⌈k / 2⌉,
    /// −(2³¹ − 1)..=2³¹ − 1.
    pub fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// AV1 `uvlc()` (AV1 spec §4.10.3): a run of zero bits, a one, then as many value bits;
    /// 32 or more leading zeros stand for 2³² − 1 with no value bits.
    pub fn uvlc(&mut self) -> Option<u32> {
        let mut leading_zeros = 0u32;
        while !self.bit()? {
            leading_zeros = leading_zeros.saturating_add(1);
        }
        if leading_zeros >= 32 {
            return Some(u32::MAX);
        }
        let value = u64::from(self.bits(leading_zeros)?);
        u32::try_from(value + (1u64 << leading_zeros) - 1).ok()
    }
}

/// Most bytes of a LEB128 number (AV1 spec §4.10.5: `i < 8`).
pub const LEB128_MAX_BYTES: usize = 8;

/// Reads an AV1 `leb128()` (AV1 spec §4.10.5) at the start of `bytes`: little-endian groups
/// of 7 bits, the top bit of each byte set when another follows, at most 8 bytes.
///
/// Returns `(value, bytes read)`. `None` when truncated, longer than 8 bytes, or above
/// 2³² − 1 (a conformance requirement of the spec).
#[must_use]
pub fn read_leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(LEB128_MAX_BYTES).enumerate() {
        // i < 8, so the shift is at most 49.
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return None;
            }
            return Some((usize::try_from(value).ok()?, i + 1));
        }
    }
    None
}

/// Writes `value` as the shortest AV1 `leb128()` (AV1 spec §4.10.5); returns the buffer and
/// how many of its bytes are used (1..=8). Values above 2⁵⁶ − 1 do not fit 8 bytes: `None`.
#[must_use]
pub fn write_leb128(mut value: usize) -> Option<([u8; LEB128_MAX_BYTES], usize)> {
    let mut out = [0u8; LEB128_MAX_BYTES];
    for (i, slot) in out.iter_mut().enumerate() {
        let low = u8::try_from(value & 0x7f).ok()?;
        value >>= 7;
        if value == 0 {
            *slot = low;
            return Some((out, i + 1));
        }
        *slot = low | 0x80;
    }
    None
}

#[cfg(test)]
#[path = "bits_tests.rs"]
pub(crate) mod tests;
