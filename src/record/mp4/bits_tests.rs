//! Tests for `bits.rs`: Opus TOC durations and a never-panic property. (The SPS and AV1
//! sequence header tests are `crate::codec`'s.)

use proptest::prelude::*;

use super::*;

#[test]
fn opus_toc_durations() {
    assert_eq!(
        opus_packet_samples(&[0xf8, 0xff, 0xfe]),
        Some(960),
        "CELT FB 20 ms"
    );
    assert_eq!(opus_packet_samples(&[0x08]), Some(960), "SILK NB 20 ms");
    assert_eq!(
        opus_packet_samples(&[0x18 | 1]),
        Some(5760),
        "two SILK 60 ms frames"
    );
    assert_eq!(
        opus_packet_samples(&[0x80 | 3, 3]),
        Some(360),
        "three 2.5 ms frames"
    );
    assert_eq!(
        opus_packet_samples(&[0xf8 | 3, 7]),
        None,
        "140 ms is over the limit"
    );
    assert_eq!(
        opus_packet_samples(&[0xfb]),
        None,
        "code 3 without its count"
    );
    assert_eq!(opus_packet_samples(&[0xfb, 0]), None, "no frame");
    assert_eq!(opus_packet_samples(&[]), None);
}

proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some(samples) = opus_packet_samples(&bytes) {
            prop_assert!((1..=5760).contains(&samples));
        }
    }
}
