//! The publisher's media clock: which video frames and audio packets are due, their
//! sizes, RTP sequence numbers and timestamps, keyframes (periodic and on request) and
//! VP8 temporal layering, for one video stream per simulcast layer plus Opus.
//!
//! Produces [`Packet`]s for the peer task to write; never touches an `Rtc`, never reads
//! the clock (`now` and the media start are passed in).

use std::time::{Duration, Instant};

use str0m::media::Rid;

use switchboard_kit::clock::Ticker;
use switchboard_kit::codec::Vp8Descriptor;
use switchboard_kit::media::{self, Body, FrameSpec, PayloadCodec, AUDIO_STREAM};

/// Opus packet duration in milliseconds.
pub const OPUS_PTIME_MS: u32 = 20;
/// Opus payload length in bytes: 32 kbit/s at 20 ms.
const OPUS_PAYLOAD_LEN: usize = 80;
/// Encoders make keyframes this many times larger than an average delta frame.
const KEYFRAME_SIZE_FACTOR: usize = 4;
/// When the task falls further behind than this many periods, skip ahead rather than burst.
const MAX_CATCH_UP: u64 = 3;
/// VP8 temporal pattern of three layers (RFC 7741 §4.3 example: L1T3).
const PATTERN_T3: [u8; 4] = [0, 2, 1, 2];
/// Two layers.
const PATTERN_T2: [u8; 2] = [0, 1];

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

/// One RTP packet to write.
pub struct Packet {
    /// Video layer index (into the plan); `None` for audio.
    pub layer: Option<usize>,
    /// Extended RTP sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// Capture time of the media.
    pub wallclock: Instant,
    /// RTP marker bit (last packet of a video frame).
    pub marker: bool,
    /// The payload.
    pub payload: Vec<u8>,
}

struct VideoStream {
    plan: LayerPlan,
    seq: u64,
    ts_base: u32,
    picture_id: u16,
    tl0_pic_idx: u8,
    key_idx: u8,
    /// Position in the temporal pattern; 0 at every keyframe.
    pattern_pos: usize,
    /// Per temporal id packet counters (next value).
    counters: [u64; 3],
    frames_since_key: u64,
    force_keyframe: bool,
}

/// Figures of what a publisher sent.
#[derive(Clone, Debug, Default)]
pub struct SentStats {
    /// RTP packets written (video and audio).
    pub packets: u64,
    /// Payload bytes written.
    pub bytes: u64,
    /// Video frames per layer.
    pub frames: Vec<u64>,
    /// Keyframes per layer.
    pub keyframes: Vec<u64>,
    /// Keyframe requests (PLI/FIR) received, all layers.
    pub keyframe_requests: u64,
}

/// The media generator of one publisher.
pub struct Generator {
    codec: PayloadCodec,
    fps: u32,
    keyframe_every: u64,
    temporal_layers: u8,
    video: Vec<VideoStream>,
    audio_seq: u64,
    audio_ts_base: u32,
    audio_counter: u64,
    /// Video frames: one per frame period.
    frames: Ticker,
    /// Audio packets: one per Opus packet time.
    audio: Ticker,
    stopped: bool,
    epoch: Instant,
    /// Publisher id written into every payload.
    publisher: u32,
    /// What was sent.
    pub sent: SentStats,
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
        let keyframe_every = (keyframe_interval.as_secs_f64() * f64::from(fps)).round() as u64;
        let layers = plan.len();
        let video = plan
            .into_iter()
            .map(|plan| VideoStream {
                plan,
                // Below 2^16: str0m starts the SRTP rollover counter at 0.
                seq: rand::random_range(1_000..30_000),
                ts_base: rand::random(),
                picture_id: rand::random_range(0..0x7fff),
                tl0_pic_idx: rand::random(),
                key_idx: 0,
                pattern_pos: 0,
                counters: [1; 3],
                frames_since_key: 0,
                force_keyframe: true,
            })
            .collect();
        Generator {
            codec,
            fps,
            keyframe_every: keyframe_every.max(1),
            temporal_layers: if codec == PayloadCodec::Vp8 {
                temporal_layers
            } else {
                1
            },
            video,
            audio_seq: rand::random_range(1_000..30_000),
            audio_ts_base: rand::random(),
            audio_counter: 1,
            frames: Ticker::new(Duration::from_secs(1) / fps.max(1)),
            audio: Ticker::new(Duration::from_millis(u64::from(OPUS_PTIME_MS))),
            stopped: false,
            epoch,
            publisher,
            sent: SentStats {
                frames: vec![0; layers],
                keyframes: vec![0; layers],
                ..Default::default()
            },
        }
    }

    /// The RID of layer `i`.
    pub fn rid(&self, i: usize) -> Option<Rid> {
        self.video.get(i).and_then(|v| v.plan.rid)
    }

    /// Start the media clock (at the connection); later calls do nothing.
    pub fn start(&mut self, now: Instant) {
        self.frames.start(now);
        self.audio.start(now);
    }

    /// Stop producing media for good.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// A PLI/FIR for `rid` (`None`: every layer): the next frame of those layers is a keyframe.
    pub fn request_keyframe(&mut self, rid: Option<Rid>) {
        self.sent.keyframe_requests += 1;
        for v in &mut self.video {
            if rid.is_none() || v.plan.rid == rid {
                v.force_keyframe = true;
            }
        }
    }

    /// When the next packet is due, if the clock runs.
    pub fn next_due(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        Some(self.frames.next_due()?.min(self.audio.next_due()?))
    }

    /// Every packet due by `now`, video frames first.
    pub fn poll_due(&mut self, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        for n in self.frames.due(now, MAX_CATCH_UP) {
            let wallclock = self.frames.at(n).unwrap_or(now);
            for layer in 0..self.video.len() {
                self.frame(layer, n, wallclock, now, &mut out);
            }
        }
        for n in self.audio.due(now, MAX_CATCH_UP) {
            let counter = self.audio_counter;
            self.audio_counter += 1;
            let seq = self.audio_seq;
            self.audio_seq += 1;
            let samples = 48_000 / 1000 * OPUS_PTIME_MS;
            let payload = media::opus_packet(
                Body {
                    stream: AUDIO_STREAM,
                    publisher: self.publisher,
                    frame: n as u32,
                    counter,
                    send_us: self.micros(now),
                },
                OPUS_PAYLOAD_LEN,
            );
            out.push(Packet {
                layer: None,
                seq,
                ts: self
                    .audio_ts_base
                    .wrapping_add((n as u32).wrapping_mul(samples)),
                wallclock: self.audio.at(n).unwrap_or(now),
                marker: n == 0,
                payload,
            });
        }
        for p in &out {
            self.sent.packets += 1;
            self.sent.bytes += p.payload.len() as u64;
        }
        out
    }

    fn micros(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Append frame `n` of layer `i`.
    fn frame(&mut self, i: usize, n: u64, wallclock: Instant, now: Instant, out: &mut Vec<Packet>) {
        let send_us = self.micros(now);
        let publisher = self.publisher;
        let (codec, fps, every, t_layers) = (
            self.codec,
            self.fps,
            self.keyframe_every,
            self.temporal_layers,
        );
        let v = &mut self.video[i];
        let keyframe = v.force_keyframe || v.frames_since_key >= every;
        if keyframe {
            v.force_keyframe = false;
            v.frames_since_key = 0;
            v.pattern_pos = 0;
            v.key_idx = (v.key_idx + 1) & 0x1f;
        }
        v.frames_since_key += 1;
        let tid = match t_layers {
            3 => PATTERN_T3[v.pattern_pos % 4],
            2 => PATTERN_T2[v.pattern_pos % 2],
            _ => 0,
        };
        // Frames right after a TID 0 frame depend on it only: layer sync.
        let layer_sync = tid > 0 && v.pattern_pos % 4 != 3;
        v.pattern_pos += 1;
        if tid == 0 {
            v.tl0_pic_idx = v.tl0_pic_idx.wrapping_add(1);
        }
        v.picture_id = (v.picture_id + 1) & 0x7fff;
        // Bytes per frame so that the layer averages its bit rate with one keyframe
        // KEYFRAME_SIZE_FACTOR times a delta frame per keyframe interval.
        let per_interval = v.plan.bitrate as f64 / 8.0 * every as f64 / f64::from(fps);
        let delta = per_interval / (every as f64 - 1.0 + KEYFRAME_SIZE_FACTOR as f64);
        let bytes = if keyframe {
            delta * KEYFRAME_SIZE_FACTOR as f64
        } else {
            delta
        } as usize;
        let min_packets = match (codec, keyframe) {
            (PayloadCodec::H264, true) => 3,
            (PayloadCodec::H264, false) => 2,
            _ => 1,
        };
        let sizes = media::packet_sizes(codec, bytes, min_packets);
        let vp8 = Vp8Descriptor {
            picture_id: v.picture_id,
            tl0_pic_idx: v.tl0_pic_idx,
            tid,
            layer_sync,
            key_idx: v.key_idx,
        };
        let stream = media::stream_byte(i as u8, tid);
        let counters = &mut v.counters[usize::from(tid)];
        let spec = FrameSpec {
            vp8: Some(vp8),
            ..FrameSpec::new(codec, keyframe)
        };
        let payloads = media::video_frame(&spec, &sizes, |_| {
            let counter = *counters;
            *counters += 1;
            Body {
                stream,
                publisher,
                frame: n as u32,
                counter,
                send_us,
            }
        });
        let ts = v
            .ts_base
            .wrapping_add((n as u32).wrapping_mul(90_000 / fps));
        let last = payloads.len().saturating_sub(1);
        for (k, payload) in payloads.into_iter().enumerate() {
            out.push(Packet {
                layer: Some(i),
                seq: v.seq,
                ts,
                wallclock,
                marker: k == last,
                payload,
            });
            v.seq += 1;
        }
        self.sent.frames[i] += 1;
        if keyframe {
            self.sent.keyframes[i] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts_keyframe(p: &Packet) -> bool {
        media::parse(PayloadCodec::Vp8, &p.payload).is_ok_and(|x| x.starts_keyframe)
    }

    #[test]
    fn layers_average_their_bitrate_and_keyframe_on_schedule() {
        let t0 = Instant::now();
        let mut g = Generator::new(
            0,
            PayloadCodec::Vp8,
            layer_plan(true, 1_500_000),
            30,
            Duration::from_secs(2),
            3,
            t0,
        );
        g.start(t0);
        let mut bytes = [0u64; 3];
        let mut audio = 0;
        let mut keys = [0u64; 3];
        for ms in (0..10_000).step_by(10) {
            for p in g.poll_due(t0 + Duration::from_millis(ms)) {
                match p.layer {
                    Some(l) => {
                        bytes[l] += p.payload.len() as u64;
                        keys[l] += u64::from(starts_keyframe(&p));
                    }
                    None => audio += 1,
                }
            }
        }
        for (l, want) in [150_000.0, 500_000.0, 1_500_000.0].iter().enumerate() {
            let got = bytes[l] as f64 * 8.0 / 10.0;
            assert!((got / want - 1.0).abs() < 0.1, "layer {l}: {got} vs {want}");
            assert_eq!(keys[l], 5, "layer {l}");
        }
        assert_eq!(audio, 500);
        // Frame 300 is a scheduled keyframe of every layer; 302 only of the requested one.
        g.poll_due(t0 + Duration::from_millis(10_040));
        g.request_keyframe(Some(Rid::from("h")));
        let pkts = g.poll_due(t0 + Duration::from_millis(10_080));
        let keyed: Vec<_> = pkts
            .iter()
            .filter(|p| starts_keyframe(p))
            .map(|p| p.layer)
            .collect();
        assert_eq!(keyed, vec![Some(1)]);
    }
}
