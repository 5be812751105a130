//! # Switchboard
//!
//! A WebRTC selective forwarding unit (SFU): browsers, OBS and GStreamer publish with
//! WHIP (RFC 9725), browsers and players watch with WHEP, and the server forwards RTP
//! between them without decoding it.
//!
//! ## Shape
//!
//! ```text
//!  HTTP (api) ──commands──► runtime: room task (one tokio task per room)
//!                              owns Room (sans-IO)
//!  UDP (net) ──datagrams──►      ├─ SessionSet: Participant × N (one str0m `Rtc` each)
//!      ▲                         ├─ Conference  (identities, slots, active speaker)
//!      │                         ├─ Forwarder   (track graph, munger, keyframes, bwe)
//!      │                         └─ routed RTP ──► shard tasks (a big room's further
//!      │                                           viewers' `Rtc`s, one task each)
//!      └──── transmits ◄─────────┴──────────────────┘
//! ```
//!
//! * Everything below [`runtime`] is sans-IO: it never reads the clock and never
//!   touches a socket. Inputs are `handle_*(now, ..)`; the one output of a
//!   [`room::Room`] or [`shard::Shard`] is `poll_output()`, drained by
//!   [`room::drive`] / [`shard::drive`] in production and in the simulations alike.
//!   Only [`runtime::room_task`] and [`runtime::shard_task`] read `Instant::now()` and
//!   await I/O.
//! * One owner per piece of state: a room task owns its participants, so a hop from a
//!   publisher to a subscriber is a function call, not a channel or a lock. A room
//!   past `--shard-after` viewers hands further ones to subscriber shards
//!   ([`shard`]); the room still routes every packet and the shard does the
//!   per-viewer WebRTC work, one batch hand-over per wake-up.
//! * RTP is forwarded, not frames: payloads are shared `Arc<[u8]>`, never copied per
//!   subscriber. str0m does SRTP, NACK/RTX, TWCC feedback and pacing.
//! * Modules are layered (`docs/architecture.md`): a module uses only the modules
//!   below its own layer, never one above.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

// The layers, bottom first: a module uses only modules of the groups above it in this
// list (checked by tests/layers.rs).
pub mod ids;
pub mod limits;

pub mod bwe;
pub mod codec;

pub mod metrics;

pub(crate) mod dtls;
pub mod net;

pub mod data;
pub mod forwarder;
pub mod record;

pub mod session;

pub mod conference;
pub mod shard;

pub mod room;
pub mod webhook;

pub mod archive;

pub(crate) mod runtime;

pub mod auth;
pub mod cluster;

pub mod config;

pub mod config_file;

pub mod api;

pub(crate) mod tls;

pub(crate) mod http_serve;

pub mod server;
