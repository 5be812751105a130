//! The load tool's publisher: the client kit's media source ([`switchboard_kit::source`])
//! with the load tool's plan (bit-rate sized layers, keyframes every interval since the
//! last one, random sequence numbers) and its payload bodies: the publisher id, a counter
//! per layer and temporal layer (so a viewer that receives one layer, or drops temporal
//! layers, still sees its counters without gaps) and the send time since the run's epoch.

use std::time::{Duration, Instant};

use str0m::media::Rid;

use switchboard_kit::media::{self, Body, PayloadCodec, AUDIO_STREAM};
use switchboard_kit::source::{AudioPlan, Keyframes, Sizing, Slot, Source, SourcePlan, StreamPlan};
pub use switchboard_kit::source::{Packet, SentStats};

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

/// The media generator of one publisher.
pub struct Generator {
    source: Source,
    /// Next counter per layer and temporal layer.
    counters: Vec<[u64; 3]>,
    /// Next audio counter.
    audio_counter: u64,
    epoch: Instant,
    /// Publisher id written into every payload.
    publisher: u32,
}

impl Generator {
    /// A generator for `plan`, stamping send times relative to `epoch` and every payload
    /// with the publisher id `publisher`.
    pub fn new(
        publisher: u32,
        codec: PayloadCodec,
        plan: Vec<LayerPlan>,
        fps: u32,
        keyframe_interval: Duration,
        temporal_layers: u8,
        epoch: Instant,
    ) -> Self {
        let every = (keyframe_interval.as_secs_f64() * f64::from(fps)).round() as u64;
        let keyframes = Keyframes::SinceLast {
            every: every.max(1),
        };
        let layers = plan.len();
        let video = plan
            .into_iter()
            .map(|l| StreamPlan::random(l.rid, Sizing::Bitrate(l.bitrate), keyframes))
            .collect();
        Generator {
            source: Source::new(SourcePlan {
                codec,
                fps,
                temporal_layers,
                vp8_picture_id: true,
                video,
                audio: AudioPlan::random(OPUS_PAYLOAD_LEN),
                max_catch_up: MAX_CATCH_UP,
            }),
            counters: vec![[1; 3]; layers],
            audio_counter: 1,
            epoch,
            publisher,
        }
    }

    /// What was sent.
    pub fn sent(&self) -> &SentStats {
        &self.source.sent
    }

    /// The RID of layer `i`.
    pub fn rid(&self, i: usize) -> Option<Rid> {
        self.source.rid(i)
    }

    /// Start the media clock (at the connection); later calls do nothing.
    pub fn start(&mut self, now: Instant) {
        self.source.start(now);
    }

    /// Stop producing media for good.
    pub fn stop(&mut self) {
        self.source.set_paused(true);
    }

    /// A PLI/FIR for `rid` (`None`: every layer): the next frame of those layers is a keyframe.
    pub fn request_keyframe(&mut self, rid: Option<Rid>) {
        self.source.request_keyframe(rid);
    }

    /// When the next packet is due, if the clock runs.
    pub fn next_due(&self) -> Option<Instant> {
        self.source.next_due()
    }

    /// Every packet due by `now`, in due-time order.
    pub fn poll_due(&mut self, now: Instant) -> Vec<Packet> {
        let send_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let (publisher, counters, audio_counter) =
            (self.publisher, &mut self.counters, &mut self.audio_counter);
        self.source.poll_due(now, |slot| {
            let (stream, frame, counter) = match slot {
                Slot::Video {
                    layer, tid, frame, ..
                } => {
                    let c = &mut counters[layer][usize::from(tid)];
                    *c += 1;
                    (media::stream_byte(layer as u8, tid), frame, *c - 1)
                }
                Slot::Audio { n } => {
                    *audio_counter += 1;
                    (AUDIO_STREAM, n, *audio_counter - 1)
                }
            };
            Body {
                stream,
                publisher,
                frame: frame as u32,
                counter,
                send_us,
            }
        })
    }
}
