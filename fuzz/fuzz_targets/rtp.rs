//! Fuzz target `rtp`: see `switchboard_fuzz::rtp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::rtp::run(data));
