//! Fuzz target `offer`: see `switchboard_fuzz::offer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::offer::run(data));
