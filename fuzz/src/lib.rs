//! The bodies of Switchboard's fuzz targets, one module per target (`fuzz_targets/`
//! holds the libFuzzer entry points, one line each). Each module's `run(&[u8])` takes
//! one input and panics only on a defect; `tests/fuzz_regressions.rs` replays recorded
//! inputs through the same functions in a normal `cargo test`.

pub mod codec;
pub mod datagram;
pub mod depacketize;
pub mod inject;
pub mod json;
pub mod offer;
pub mod rtp;
pub mod token;
pub mod world;
