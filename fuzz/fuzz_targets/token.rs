//! Fuzz target `token`: see `switchboard_fuzz::token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::token::run(data));
