//! Bounds-checked readers shared by the VP9 and AV1 header parsers: an MSB-first bit
//! reader (VP9 bitstream spec §4.9 `f(n)`, AV1 spec §4.10.2 `f(n)`, §4.10.3 `uvlc()`) and
//! AV1's LEB128 (AV1 spec §4.10.5). No emulation prevention (neither codec has any).
//! Every read past the end answers `None`; nothing panics.

/// MSB-first reader over a byte slice.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    /// Index of the byte being read.
    byte: usize,
    /// Bits of that byte already read, 0..=7.
    bit: u32,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            byte: 0,
            bit: 0,
        }
    }

    /// One bit, `f(1)`.
    pub(super) fn bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.byte)?;
        let value = byte.wrapping_shl(self.bit) & 0x80 != 0;
        if self.bit >= 7 {
            self.bit = 0;
            self.byte += 1; // < data.len(), so no overflow
        } else {
            self.bit += 1;
        }
        Some(value)
    }

    /// `n` bits as an unsigned number, `f(n)`, `n` ≤ 32 (else `None`).
    pub(super) fn bits(&mut self, n: u32) -> Option<u32> {
        if n > 32 {
            return None;
        }
        (0..n).try_fold(0u32, |acc, _| {
            Some(acc.wrapping_shl(1) | u32::from(self.bit()?))
        })
    }

    /// Skips `n` bits.
    pub(super) fn skip(&mut self, n: u32) -> Option<()> {
        for _ in 0..n {
            self.bit()?;
        }
        Some(())
    }

    /// AV1 `uvlc()` (AV1 spec §4.10.3): a run of zero bits, a one, then as many value bits;
    /// 32 or more leading zeros stand for 2³² − 1 with no value bits.
    pub(super) fn uvlc(&mut self) -> Option<u32> {
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
const LEB128_MAX_BYTES: usize = 8;

/// Reads an AV1 `leb128()` (AV1 spec §4.10.5) at the start of `bytes`: little-endian groups
/// of 7 bits, the top bit of each byte set when another follows, at most 8 bytes.
///
/// Returns `(value, bytes read)`. `None` when truncated, longer than 8 bytes, or above
/// 2³² − 1 (a conformance requirement of the spec).
pub(super) fn read_leb128(bytes: &[u8]) -> Option<(usize, usize)> {
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
/// how many of its bytes are used. Values above 2⁵⁶ − 1 do not fit 8 bytes: `None`.
pub(super) fn write_leb128(mut value: usize) -> Option<([u8; LEB128_MAX_BYTES], usize)> {
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
