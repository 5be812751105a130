//! Synthetic but well-formed RTP payloads for the test peers, and the
//! receiver-side parsing that checks them.
//!
//! Every payload is the client kit's one format (`switchboard_kit::media`):
//! codec header, a body with the counter and the send time (microseconds
//! since [`epoch`]), and a filler derived from the counter, with a fixed total
//! length per media kind. A receiver can therefore tell, byte for byte,
//! whether a forwarded payload is the one the publisher wrote, and how long it
//! took. VP8 uses the one-byte payload descriptor; H264 a STAP-A keyframe then
//! FU-A fragments, as OBS sends it.
//!
//! Simulcast: the OBS-shaped simulcast publisher sends three layers
//! ([`SIMULCAST_LAYERS`]) that differ in payload length and packets per
//! frame, so their bitrates differ as an encoder's would. The layer is part
//! of every counter it writes ([`layer_counter`], [`counter_layer`]) as well
//! as of the body's stream byte, so a subscriber can tell which layer each
//! forwarded packet came from.

use std::sync::OnceLock;
use std::time::Instant;

/// Total RTP payload length of every video packet the test publishers send.
pub const VIDEO_PAYLOAD_LEN: usize = 1000;
/// Total RTP payload length of every audio packet the test publishers send.
pub const AUDIO_PAYLOAD_LEN: usize = 120;

/// Video frame rate of the test publishers.
pub const VIDEO_FPS: u32 = 30;
/// RTP clock of video.
pub const VIDEO_CLOCK: u32 = 90_000;
/// Audio packet duration in milliseconds.
pub const AUDIO_PTIME_MS: u32 = 20;
/// RTP clock of Opus.
pub const AUDIO_CLOCK: u32 = 48_000;
/// A keyframe is sent at least this often (in frames): every 2 s.
pub const KEYFRAME_INTERVAL_FRAMES: u64 = 2 * VIDEO_FPS as u64;

/// An OBS-style simulcast layer keyframes at least this often (in frames):
/// every 3 s.
pub const SIMULCAST_KEYFRAME_INTERVAL_FRAMES: u64 = 3 * VIDEO_FPS as u64;

/// Size and rate of one simulcast layer of the test publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// The layer's RID.
    pub rid: &'static str,
    /// RTP payload length of every packet of the layer.
    pub payload_len: usize,
    /// Packets of a keyframe (a STAP-A, then FU-A fragments of the IDR).
    pub key_packets: usize,
    /// Packets of a delta frame: the first on even frames, the second on odd
    /// ones. At least 2 (an FU-A may not carry a whole NAL unit).
    pub delta_packets: (usize, usize),
}

impl LayerShape {
    /// Payload bit rate of the layer's delta frames at [`VIDEO_FPS`].
    pub fn nominal_bps(&self) -> u64 {
        let per_frame2 = (self.delta_packets.0 + self.delta_packets.1) * self.payload_len;
        (per_frame2 as u64 * 8 * VIDEO_FPS as u64) / 2
    }
}

/// The layers of the OBS-style simulcast publisher, in the offer's RID order:
/// like OBS, RID `"0"` is the highest. About 1.06 Mbit/s, 480 kbit/s and
/// 150 kbit/s of payload: the highest stays well inside the 2 Mbit/s a
/// viewer's estimate starts at, so a loaded machine's delay jitter cannot
/// keep it off the top layer.
pub const SIMULCAST_LAYERS: [LayerShape; 3] = [
    LayerShape {
        rid: "0",
        payload_len: 1100,
        key_packets: 10,
        delta_packets: (4, 4),
    },
    LayerShape {
        rid: "1",
        payload_len: 1000,
        key_packets: 4,
        delta_packets: (2, 2),
    },
    LayerShape {
        rid: "2",
        payload_len: 320,
        key_packets: 3,
        delta_packets: (2, 2),
    },
];

/// Counters of simulcast layer `i` carry `i + 1` in their top byte; plain
/// (non-simulcast) counters never get that large.
const LAYER_TAG_SHIFT: u32 = 56;

/// The `n`-th counter of simulcast layer `layer` (`n` below 2^56).
pub fn layer_counter(layer: u8, n: u64) -> u64 {
    ((u64::from(layer) + 1) << LAYER_TAG_SHIFT) | (n & ((1 << LAYER_TAG_SHIFT) - 1))
}

/// The simulcast layer (index into [`SIMULCAST_LAYERS`]) a counter belongs
/// to, `None` for a plain counter.
pub fn counter_layer(counter: u64) -> Option<u8> {
    match (counter >> LAYER_TAG_SHIFT) as u8 {
        0 => None,
        tag => Some(tag - 1),
    }
}

/// The payload length every video packet with `counter` has.
pub fn video_payload_len(counter: u64) -> usize {
    counter_layer(counter)
        .and_then(|l| SIMULCAST_LAYERS.get(l as usize))
        .map_or(VIDEO_PAYLOAD_LEN, |shape| shape.payload_len)
}

pub use switchboard_kit::codec::h264_nal_types;
use switchboard_kit::media as kit;
/// Codecs a subscriber can tell apart in what it receives.
pub use switchboard_kit::media::PayloadCodec as RecvCodec;
use switchboard_kit::recv::Got;

/// The process-wide time origin shared by publishers (send stamps) and
/// subscribers (receive stamps).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`] at `t`.
pub fn micros_since_epoch(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_micros() as u64
}

/// Video codecs the publishers can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    /// The kit's name for it.
    pub fn payload_codec(self) -> RecvCodec {
        match self {
            VideoCodec::Vp8 => RecvCodec::Vp8,
            VideoCodec::H264 => RecvCodec::H264,
        }
    }
}

/// Packets of a keyframe of the single-stream publisher.
pub const KEYFRAME_PACKETS: usize = 5;
/// Packets of its delta frames: even, then odd frame numbers.
pub const DELTA_PACKETS: [usize; 2] = [3, 4];

/// What a receiver learns from one payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedPayload {
    pub counter: u64,
    pub send_us: u64,
    /// Length and filler as the publisher wrote them.
    pub intact: bool,
    /// The packet starts a keyframe (by the contract's rules).
    pub starts_keyframe: bool,
}

/// Whether a payload the kit's receiver log read is exactly as the publisher wrote it:
/// every filler byte, and the length this test media gives its counter.
pub fn intact(got: &Got) -> bool {
    got.filler_ok && got.len == expected_len(got.codec, got.counter)
}

/// Payload bytes the test publishers write for the packet numbered `counter`.
fn expected_len(codec: RecvCodec, counter: u64) -> usize {
    match codec {
        RecvCodec::Opus => AUDIO_PAYLOAD_LEN,
        _ => video_payload_len(counter),
    }
}

/// Parse a payload the way the receiver log does (the publishers' self-checks). `Err`
/// describes a payload that does not even have the expected structure.
pub fn parse_payload(codec: RecvCodec, payload: &[u8]) -> Result<ParsedPayload, String> {
    let (parsed, filler) = kit::read(codec, payload).map_err(|e| format!("{codec:?}: {e}"))?;
    let counter = parsed.body.counter;
    Ok(ParsedPayload {
        counter,
        send_us: parsed.body.send_us,
        intact: filler.is_none() && payload.len() == expected_len(codec, counter),
        starts_keyframe: parsed.starts_keyframe,
    })
}
