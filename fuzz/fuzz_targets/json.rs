//! Fuzz target `json`: see `switchboard_fuzz::json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::json::run(data));
