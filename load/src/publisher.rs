//! The load tool's publisher: a media source ([`switchboard_kit::source`]) for the
//! client kit's client, with the load tool's plan (bit-rate sized layers, keyframes every interval since the
//! last one, random sequence numbers) and its payload bodies: the publisher id, a counter
//! per layer and temporal layer (so a viewer that receives one layer, or drops temporal
//! layers, still sees its counters without gaps) and the send time since the run's epoch.

use std::time::{Duration, Instant};

use str0m::media::{Mid, Pt, Rid};

use switchboard_kit::client::Publishing;
use switchboard_kit::media::{self, Body, PayloadCodec, AUDIO_STREAM};
pub use switchboard_kit::source::SentStats;
use switchboard_kit::source::{AudioPlan, Keyframes, Sizing, Slot, Source, SourcePlan, StreamPlan};

/// Opus payload length in bytes: 32 kbit/s at 20 ms.
const OPUS_PAYLOAD_LEN: usize = 80;
/// When the task falls further behind than this many periods, skip ahead rather than burst.
const MAX_CATCH_UP: u64 = 3;

/// One simulcast layer the publisher sends.
#[derive(Clone, Debug)]
pub struct LayerPlan {
    /// RID (`None` without simulcast).
    pub rid: Option<Rid>,
    /// Target bit rate of the layer's payloads, in bit/s.
    pub bitrate: u64,
}

/// The layers to send: q/h/f at a tenth, a third and all of `top` bit/s, or one layer.
pub fn layer_plan(simulcast: bool, top: u64) -> Vec<LayerPlan> {
    if !simulcast {
        return vec![LayerPlan {
            rid: None,
            bitrate: top,
        }];
    }
    [("q", top / 10), ("h", top / 3), ("f", top)]
        .into_iter()
        .map(|(rid, bitrate)| LayerPlan {
            rid: Some(Rid::from(rid)),
            bitrate,
        })
        .collect()
}

/// The publishing side of a load peer: `plan`'s layers at `fps`, a keyframe every
/// `keyframe_interval` since the last, VP8 with `temporal_layers`, stamping send times
/// relative to `epoch` and every payload with the publisher id `publisher`; audio on
/// `audio` and video on `video` (m-line and negotiated payload type).
#[allow(clippy::too_many_arguments)]
pub fn publishing(
    publisher: u32,
    codec: PayloadCodec,
    plan: Vec<LayerPlan>,
    fps: u32,
    keyframe_interval: Duration,
    temporal_layers: u8,
    epoch: Instant,
    (audio, video): ((Mid, Pt), (Mid, Pt)),
) -> Publishing {
    let every = (keyframe_interval.as_secs_f64() * f64::from(fps)).round() as u64;
    let keyframes = Keyframes::SinceLast {
        every: every.max(1),
    };
    let layers = plan.len();
    let video_plan = plan
        .into_iter()
        .map(|l| StreamPlan::random(l.rid, Sizing::Bitrate(l.bitrate), keyframes))
        .collect();
    let source = Source::new(SourcePlan {
        codec,
        fps,
        temporal_layers,
        vp8_picture_id: true,
        video: video_plan,
        audio: AudioPlan::random(OPUS_PAYLOAD_LEN),
        max_catch_up: MAX_CATCH_UP,
    });
    // Per layer and temporal layer, then audio: the next counter.
    let mut counters = vec![[1u64; 3]; layers];
    let mut audio_counter = 1u64;
    let bodies = Box::new(move |slot, now: Instant| {
        let (stream, frame, counter) = match slot {
            Slot::Video {
                layer, tid, frame, ..
            } => {
                let c = &mut counters[layer][usize::from(tid)];
                *c += 1;
                (media::stream_byte(layer as u8, tid), frame, *c - 1)
            }
            Slot::Audio { n } => {
                audio_counter += 1;
                (AUDIO_STREAM, n, audio_counter - 1)
            }
        };
        Body {
            stream,
            publisher,
            frame: frame as u32,
            counter,
            send_us: now.saturating_duration_since(epoch).as_micros() as u64,
        }
    });
    Publishing::new(source, bodies, audio, video)
}
