//! Fuzz target `depacketize`: see `switchboard_fuzz::depacketize`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::depacketize::run(data));
