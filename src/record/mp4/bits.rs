//! What the writer reads from the bitstream that [`crate::codec`] does not parse: an Opus
//! packet's duration from its TOC byte (RFC 6716 §3.1), for the last sample. (The `avcC` and
//! `av1C` fields come from [`crate::codec::h264::parse_sps`] and
//! [`crate::codec::av1::parse_sequence_header_obu`], in `entry`.)
//!
//! Bounds-checked: truncated or garbage input yields `None`, never a panic; no allocation.

/// The duration of an Opus packet in 48 kHz samples, from its TOC byte and, for code 3,
/// its frame count byte (RFC 6716 §3.1, §3.2.5). `None` when truncated, when it holds no
/// frame, or when it would exceed the 120 ms a packet may hold.
pub(super) fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes in 48 kHz samples: SILK 10/20/40/60 ms, hybrid 10/20 ms,
    // CELT 2.5/5/10/20 ms (RFC 6716 §3.1, Table 2).
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1)? & 0x3f),
    };
    let total = frame * frames;
    (total > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
#[path = "bits_tests.rs"]
mod tests;
