//! Fuzz target `datagram`: see `switchboard_fuzz::datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::datagram::run(data));
