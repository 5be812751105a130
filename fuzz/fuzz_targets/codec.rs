//! Fuzz target `codec`: see `switchboard_fuzz::codec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::codec::run(data));
