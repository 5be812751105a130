//! # switchboard-kit
//!
//! The client side of Switchboard's tests, simulations and load tool, kept in one
//! place so that a payload format, a codec or a fix is written once. Not part of the
//! server: only the test suite and the load tool depend on it.
//!
//! - [`codec`]: synthetic media packetized as real encoders packetize it (VP8, H.264,
//!   Opus), and the receiver's reading of it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod codec;
