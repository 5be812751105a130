//! # switchboard-kit
//!
//! The client side of Switchboard's tests, simulations and load tool, kept in one
//! place so that a payload format, a codec or a fix is written once. Not part of the
//! server: only the test suite and the load tool depend on it.
//!
//! - [`codec`]: synthetic media packetized as real encoders packetize it (VP8, H.264,
//!   Opus), and the receiver's reading of it.
//! - [`media`]: the one synthetic media format (codec header, a body with counter and
//!   send time, a verifiable filler) every client sends and checks.
//! - [`clock`]: a publisher's media clock (frames due on a fixed grid, catch-up bounded).
//! - [`client`]: the one sans-IO client peer: an `Rtc` and its source kept to str0m's
//!   contract, driven by a tokio task or a virtual-time loop.
//! - [`peer`]: the one sans-IO client peer setup: a str0m `Rtc` shaped as a browser or
//!   OBS, its WHIP/WHEP offer, the answer, the negotiated payload types.
//! - [`source`]: the one synthetic publisher: frames and audio packets due on the
//!   media clock, simulcast streams, keyframes on schedule and on request.
//! - [`recv`]: the receiver's checks: per-stream loss by counter, frames, freezes,
//!   layer and source switches, first keyframe, one-way latency histograms.
//! - [`whip`]: the one WHIP/WHEP HTTP client (offer POST, Location, ETag, Link, DELETE).
//! - [`mp4`]: the recorder's fragmented MP4 files read back, for checks.
//! - [`link`]: a sans-IO network path (bottleneck, queue, loss, delay) for simulations.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod clock;
pub mod codec;
pub mod link;
pub mod media;
pub mod mp4;
pub mod peer;
pub mod recv;
pub mod source;
pub mod whip;
