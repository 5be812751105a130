//! # Switchboard
//!
//! A WebRTC selective forwarding unit (SFU): browsers, OBS and GStreamer publish with
//! WHIP (RFC 9725), browsers and players watch with WHEP, and the server forwards RTP
//! between them without decoding it.
//!
//! ## Shape
//!
//! ```text
//!  HTTP (api) ──commands──► room actor (one tokio task per room)
//!                              owns Room (sans-IO)
//!  UDP (net) ──datagrams──►      ├─ Participant × N  (one str0m `Rtc` each, RTP mode)
//!      ▲                         ├─ Forwarder        (track graph, munger, keyframes)
//!      │                         └─ routed RTP ──► shard actors (a big room's further
//!      │                                           viewers' `Rtc`s, one task each)
//!      └──── transmits ◄─────────┴──────────────────┘
//! ```
//!
//! * Everything below the actors is sans-IO: it never reads the clock and never
//!   touches a socket. Inputs are `handle_*(now, ..)`, outputs are `poll_*()`. Only
//!   [`room::actor`] and [`room::shard_actor`] read `Instant::now()` and await I/O.
//! * One owner per piece of state: a room actor owns its participants, so a hop from a
//!   publisher to a subscriber is a function call, not a channel or a lock. A room
//!   past `--shard-after` viewers hands further ones to subscriber shards
//!   ([`room::shard`]); the room still routes every packet and the shard does the
//!   per-viewer WebRTC work, one batch hand-over per wake-up.
//! * RTP is forwarded, not frames: payloads are shared `Arc<[u8]>`, never copied per
//!   subscriber. str0m does SRTP, NACK/RTX, TWCC feedback and pacing.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Bottom to top: a module uses only the modules listed before it (see
// `docs/architecture.md`).
pub mod api;
pub mod auth;
pub mod bwe;
pub mod cluster;
pub mod codec;
pub mod conference;
pub mod config;
pub mod config_file;
pub mod dtls;
pub mod forwarder;
pub mod http_serve;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod room;
pub mod runtime;
pub mod server;
pub mod session;
pub mod shard;
