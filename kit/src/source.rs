//! The one synthetic publisher: which video frames and audio packets are due, their
//! packets' sizes, RTP sequence numbers and timestamps, keyframes (scheduled and on
//! request, per simulcast layer as separate encoders make them) and VP8 temporal
//! layering, for one video stream per simulcast layer plus Opus. Every test client, the
//! simulations and the load tool publish through it; what differs between them (packet
//! sizes, keyframe schedule, counters) is its [`SourcePlan`].
//!
//! Produces [`Packet`]s for a driver to write; never touches an `Rtc`, never reads the
//! clock (`now`, monotonic, is passed in).

use std::time::{Duration, Instant};

use str0m::media::Rid;

use crate::clock::Ticker;
use crate::codec::Vp8Descriptor;
use crate::media::{self, Body, FrameSpec, PayloadCodec};

/// RTP clock rate of video, Hz (RFC 7741 §4.1, RFC 6184 §8.2.1).
pub const VIDEO_CLOCK: u32 = 90_000;
/// RTP clock rate of Opus, Hz (RFC 7587 §4.1).
pub const OPUS_CLOCK: u32 = 48_000;
/// Encoders make keyframes this many times larger than an average delta frame
/// ([`Sizing::Bitrate`]).
const KEYFRAME_SIZE_FACTOR: f64 = 4.0;
/// VP8 temporal pattern of three layers (RFC 7741 §4.3 example: L1T3).
const PATTERN_T3: [u8; 4] = [0, 2, 1, 2];
/// Two layers.
const PATTERN_T2: [u8; 2] = [0, 1];

/// Packets of a frame and payload bytes of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Packets in the frame.
    pub packets: usize,
    /// Payload bytes of every packet (at least [`media::min_packet_len`]).
    pub len: usize,
}

/// How large the frames of one video stream are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sizing {
    /// Keyframes are `key`; delta frame `n` is `delta[n % 2]`.
    Fixed {
        /// A keyframe.
        key: Shape,
        /// Delta frames, even then odd frame numbers.
        delta: [Shape; 2],
    },
    /// Frames sized so that the stream averages this many payload bits per second,
    /// keyframes four times a delta frame, packetized as an encoder packetizes.
    Bitrate(u64),
}

/// When a video stream sends a keyframe, besides on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyframes {
    /// Frame 0 and every frame `n` with `(n + offset) % every == 0` (a fixed group of
    /// pictures; an offset staggers simulcast layers, which separate encoders do not
    /// keyframe together).
    Grid {
        /// Frames between scheduled keyframes (above zero).
        every: u64,
        /// Frames the schedule is shifted by.
        offset: u64,
    },
    /// The first frame, then `every` frames after the last keyframe: a requested
    /// keyframe restarts the count, as libvpx and x264 do.
    SinceLast {
        /// Frames between keyframes (above zero).
        every: u64,
    },
}

/// One outgoing video stream: the whole track, or one simulcast layer.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamPlan {
    /// RID (RFC 8851), `None` without simulcast.
    pub rid: Option<Rid>,
    /// Frame sizes.
    pub sizing: Sizing,
    /// Keyframe schedule.
    pub keyframes: Keyframes,
    /// Picture `(width, height)` written into VP8 keyframe headers, pixels.
    pub size: (u16, u16),
    /// RTP sequence number of the first packet (below 2^16: str0m starts the SRTP
    /// rollover counter at 0).
    pub first_seq: u64,
    /// RTP timestamp of frame 0.
    pub ts_base: u32,
}

/// The Opus stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioPlan {
    /// Packet duration, milliseconds.
    pub ptime_ms: u32,
    /// Payload bytes of every packet.
    pub len: usize,
    /// RTP sequence number of the first packet.
    pub first_seq: u64,
    /// RTP timestamp of packet 0.
    pub ts_base: u32,
}

/// Everything a publisher sends.
#[derive(Clone, Debug, PartialEq)]
pub struct SourcePlan {
    /// Video codec (VP8 or H.264).
    pub codec: PayloadCodec,
    /// Video frames per second.
    pub fps: u32,
    /// VP8 temporal layers (1 to 3); above 1, or with `vp8_picture_id`, VP8 packets
    /// carry the extended descriptor (RFC 7741 §4.2) as Chrome's do.
    pub temporal_layers: u8,
    /// VP8: write the extended descriptor (PictureID, TL0PICIDX, TID) even with one
    /// temporal layer.
    pub vp8_picture_id: bool,
    /// The video streams, lowest simulcast layer first.
    pub video: Vec<StreamPlan>,
    /// Opus.
    pub audio: AudioPlan,
    /// A driver that fell further behind than this many periods skips ahead rather than
    /// bursting (an encoder drops frames); `u64::MAX` never skips.
    pub max_catch_up: u64,
}

impl StreamPlan {
    /// A stream starting at a random sequence number and timestamp, as a real sender's.
    pub fn random(rid: Option<Rid>, sizing: Sizing, keyframes: Keyframes) -> Self {
        StreamPlan {
            rid,
            sizing,
            keyframes,
            size: (crate::codec::VP8_WIDTH, crate::codec::VP8_HEIGHT),
            first_seq: rand::random_range(1_000..30_000),
            ts_base: rand::random(),
        }
    }
}

impl AudioPlan {
    /// 20 ms packets of `len` bytes at a random sequence number and timestamp.
    pub fn random(len: usize) -> Self {
        AudioPlan {
            ptime_ms: 20,
            len,
            first_seq: rand::random_range(1_000..30_000),
            ts_base: rand::random(),
        }
    }
}

/// What the body of one packet is for; the driver's `body` callback numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Packet `index` of frame `frame` of video stream `layer`, temporal layer `tid`.
    Video {
        /// Stream (index into the plan's video).
        layer: usize,
        /// VP8 temporal layer id (0 without temporal layering).
        tid: u8,
        /// Frame number.
        frame: u64,
        /// Packet of the frame.
        index: usize,
    },
    /// Audio packet `n`.
    Audio {
        /// Packet number.
        n: u64,
    },
}

/// One RTP packet to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Video stream (index into the plan); `None` for audio.
    pub layer: Option<usize>,
    /// Frame (video) or packet (audio) number.
    pub frame: u64,
    /// Part of a keyframe.
    pub keyframe: bool,
    /// Extended RTP sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub ts: u32,
    /// When the media was due (capture time).
    pub wallclock: Instant,
    /// RTP marker bit: the last packet of a video frame, the first of the audio.
    pub marker: bool,
    /// The body's counter.
    pub counter: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Figures of what a publisher sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentStats {
    /// RTP packets (video and audio).
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Video frames per stream.
    pub frames: Vec<u64>,
    /// Keyframes per stream.
    pub keyframes: Vec<u64>,
    /// Keyframe requests (PLI/FIR) received, all streams.
    pub keyframe_requests: u64,
}

struct VideoStream {
    plan: StreamPlan,
    seq: u64,
    picture_id: u16,
    tl0_pic_idx: u8,
    key_idx: u8,
    /// Position in the temporal pattern; 0 at every keyframe.
    pattern_pos: usize,
    frames_since_key: u64,
    force_keyframe: bool,
    /// Sends nothing (a simulcast layer the encoder dropped); resumes with a keyframe.
    paused: bool,
}

/// The media source of one publisher.
pub struct Source {
    codec: PayloadCodec,
    fps: u32,
    temporal_layers: u8,
    vp8_ext: bool,
    max_catch_up: u64,
    video: Vec<VideoStream>,
    audio_plan: AudioPlan,
    audio_seq: u64,
    frames: Ticker,
    audio: Ticker,
    paused: bool,
    /// What was sent.
    pub sent: SentStats,
}

impl Source {
    /// A source for `plan`, not started.
    pub fn new(plan: SourcePlan) -> Self {
        let layers = plan.video.len();
        let video = plan
            .video
            .into_iter()
            .map(|plan| VideoStream {
                seq: plan.first_seq,
                plan,
                picture_id: rand::random_range(0..0x7fff),
                tl0_pic_idx: rand::random(),
                key_idx: 0,
                pattern_pos: 0,
                frames_since_key: 0,
                force_keyframe: false,
                paused: false,
            })
            .collect();
        let vp8 = plan.codec == PayloadCodec::Vp8;
        let temporal_layers = if vp8 {
            plan.temporal_layers.clamp(1, 3)
        } else {
            1
        };
        Source {
            codec: plan.codec,
            fps: plan.fps.max(1),
            temporal_layers,
            vp8_ext: vp8 && (plan.vp8_picture_id || temporal_layers > 1),
            max_catch_up: plan.max_catch_up,
            video,
            audio_seq: plan.audio.first_seq,
            frames: Ticker::new(Duration::from_secs(1) / plan.fps.max(1)),
            audio: Ticker::new(Duration::from_millis(u64::from(plan.audio.ptime_ms.max(1)))),
            audio_plan: plan.audio,
            paused: false,
            sent: SentStats {
                frames: vec![0; layers],
                keyframes: vec![0; layers],
                ..Default::default()
            },
        }
    }

    /// The RID of stream `i`.
    pub fn rid(&self, i: usize) -> Option<Rid> {
        self.video.get(i).and_then(|v| v.plan.rid)
    }

    /// Video streams.
    pub fn layers(&self) -> usize {
        self.video.len()
    }

    /// Start the media clocks at `now` (frame 0 and audio packet 0 are due then); later
    /// calls do nothing.
    pub fn start(&mut self, now: Instant) {
        self.frames.start(now);
        self.audio.start(now);
    }

    /// Whether [`Source::start`] was called.
    pub fn started(&self) -> bool {
        self.frames.started().is_some()
    }

    /// Pause (nothing is due; on resuming, at most `max_catch_up` periods are sent) or
    /// resume.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Stop or resume video stream `layer` alone, as an encoder drops and restores a
    /// simulcast layer (for CPU or bandwidth): while stopped it sends nothing, and its
    /// first frame after resuming is a keyframe. Its frame numbers and timestamps keep
    /// following the media clock. Returns `false` for no such stream.
    pub fn set_stream_paused(&mut self, layer: usize, paused: bool) -> bool {
        let Some(v) = self.video.get_mut(layer) else {
            return false;
        };
        if v.paused && !paused {
            v.force_keyframe = true;
        }
        v.paused = paused;
        true
    }

    /// Whether paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// A PLI/FIR for `rid` (`None`: every stream): the next frame of those streams is a
    /// keyframe. Returns the streams it names.
    pub fn request_keyframe(&mut self, rid: Option<Rid>) -> Vec<usize> {
        self.sent.keyframe_requests += 1;
        let mut hit = Vec::new();
        for (i, v) in self.video.iter_mut().enumerate() {
            if rid.is_none() || v.plan.rid == rid {
                v.force_keyframe = true;
                hit.push(i);
            }
        }
        hit
    }

    /// When the next packet is due, once started and unless paused.
    pub fn next_due(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        Some(self.frames.next_due()?.min(self.audio.next_due()?))
    }

    /// The next sequence number of stream `layer`, taken from the stream (for a packet
    /// written outside the source), and the RTP timestamp of its next frame.
    pub fn take_seq(&mut self, layer: usize) -> Option<(u64, u32)> {
        let ts = self.frame_ts(layer, self.frames.next())?;
        let v = self.video.get_mut(layer)?;
        v.seq += 1;
        Some((v.seq - 1, ts))
    }

    fn frame_ts(&self, layer: usize, n: u64) -> Option<u32> {
        let v = self.video.get(layer)?;
        Some(
            v.plan
                .ts_base
                .wrapping_add((n as u32).wrapping_mul(VIDEO_CLOCK / self.fps)),
        )
    }

    /// Every packet due by `now`, in the order of their due times (video first when a
    /// frame and an audio packet fall due together); packet bodies from `body`.
    pub fn poll_due(&mut self, now: Instant, mut body: impl FnMut(Slot) -> Body) -> Vec<Packet> {
        let mut out = Vec::new();
        if self.paused || !self.started() {
            return out;
        }
        let mut frames = self.frames.due(now, self.max_catch_up);
        let mut audio = self.audio.due(now, self.max_catch_up);
        loop {
            let v = frames.clone().next().and_then(|n| self.frames.at(n));
            let a = audio.clone().next().and_then(|n| self.audio.at(n));
            let video_first = match (v, a) {
                (None, None) => break,
                (Some(v), Some(a)) => v <= a,
                (v, _) => v.is_some(),
            };
            if video_first {
                let (n, at) = (frames.next().expect("due"), v.expect("due"));
                for layer in 0..self.video.len() {
                    if !self.video[layer].paused {
                        self.frame(layer, n, at, &mut body, &mut out);
                    }
                }
            } else {
                let (n, at) = (audio.next().expect("due"), a.expect("due"));
                self.audio_packet(n, at, &mut body, &mut out);
            }
        }
        for p in &out {
            self.sent.packets += 1;
            self.sent.bytes += p.payload.len() as u64;
        }
        out
    }

    fn audio_packet(
        &mut self,
        n: u64,
        wallclock: Instant,
        body: &mut impl FnMut(Slot) -> Body,
        out: &mut Vec<Packet>,
    ) {
        let b = body(Slot::Audio { n });
        let plan = self.audio_plan;
        let samples = OPUS_CLOCK / 1000 * plan.ptime_ms;
        let seq = self.audio_seq;
        self.audio_seq += 1;
        out.push(Packet {
            layer: None,
            frame: n,
            keyframe: false,
            seq,
            ts: plan.ts_base.wrapping_add((n as u32).wrapping_mul(samples)),
            wallclock,
            marker: n == 0,
            counter: b.counter,
            payload: media::opus_packet(b, plan.len),
        });
    }

    /// Append frame `n` of stream `i`.
    fn frame(
        &mut self,
        i: usize,
        n: u64,
        wallclock: Instant,
        body: &mut impl FnMut(Slot) -> Body,
        out: &mut Vec<Packet>,
    ) {
        let (codec, fps, t_layers) = (self.codec, self.fps, self.temporal_layers);
        let ts = self.frame_ts(i, n).expect("stream");
        let v = &mut self.video[i];
        let keyframe = v.force_keyframe
            || match v.plan.keyframes {
                Keyframes::Grid { every, offset } => {
                    n == 0 || (n + offset).is_multiple_of(every.max(1))
                }
                Keyframes::SinceLast { every } => n == 0 || v.frames_since_key >= every,
            };
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
        let sizes = match v.plan.sizing {
            Sizing::Fixed { key, delta } => {
                let s = if keyframe {
                    key
                } else {
                    delta[(n % 2) as usize]
                };
                vec![s.len; s.packets]
            }
            Sizing::Bitrate(bps) => bitrate_sizes(codec, bps, fps, &v.plan.keyframes, keyframe),
        };
        let spec = FrameSpec {
            vp8: self.vp8_ext.then_some(Vp8Descriptor {
                picture_id: v.picture_id,
                tl0_pic_idx: v.tl0_pic_idx,
                tid,
                layer_sync,
                key_idx: v.key_idx,
            }),
            size: v.plan.size,
            ..FrameSpec::new(codec, keyframe)
        };
        let mut counters = Vec::with_capacity(sizes.len());
        let payloads = media::video_frame(&spec, &sizes, |index| {
            let b = body(Slot::Video {
                layer: i,
                tid,
                frame: n,
                index,
            });
            counters.push(b.counter);
            b
        });
        let last = payloads.len().saturating_sub(1);
        for (k, (payload, counter)) in payloads.into_iter().zip(counters).enumerate() {
            out.push(Packet {
                layer: Some(i),
                frame: n,
                keyframe,
                seq: v.seq,
                ts,
                wallclock,
                marker: k == last,
                counter,
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

/// Packet sizes of a frame of a stream averaging `bps` payload bits per second with one
/// keyframe of [`KEYFRAME_SIZE_FACTOR`] delta frames per keyframe interval.
fn bitrate_sizes(
    codec: PayloadCodec,
    bps: u64,
    fps: u32,
    schedule: &Keyframes,
    keyframe: bool,
) -> Vec<usize> {
    let every = match *schedule {
        Keyframes::Grid { every, .. } | Keyframes::SinceLast { every } => every.max(1) as f64,
    };
    let per_interval = bps as f64 / 8.0 * every / f64::from(fps);
    let delta = per_interval / (every - 1.0 + KEYFRAME_SIZE_FACTOR);
    let bytes = if keyframe {
        delta * KEYFRAME_SIZE_FACTOR
    } else {
        delta
    } as usize;
    let min_packets = match (codec, keyframe) {
        (PayloadCodec::H264, true) => 3,
        (PayloadCodec::H264, false) => 2,
        _ => 1,
    };
    media::packet_sizes(codec, bytes, min_packets)
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
