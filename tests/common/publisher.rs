//! A test publisher's media clock: one outgoing video RTP stream per simulcast
//! layer (or the whole track), each with its own sequence numbers, timestamp
//! base, keyframe schedule and keyframe requests (matched by RID), like separate
//! encoders fed the same frames, plus Opus. The driver ([`super::driver`])
//! writes what is due.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Mid, Pt, Rid};
use str0m::Rtc;
use switchboard_kit::clock::Ticker;

use super::media::{self, VideoCodec};
use super::peer::PublisherKind;
use super::report::LayerSent;

/// One outgoing video RTP stream: the whole track, or one simulcast layer.
pub(super) struct VideoStream {
    /// Simulcast layer (index into [`media::SIMULCAST_LAYERS`]) and its RID;
    /// `None` for a track without simulcast.
    pub(super) layer: Option<(u8, Rid)>,
    pub(super) seq: u64,
    pub(super) ts_base: u32,
    pub(super) force_keyframe: bool,
    /// Next per-layer counter number (simulcast only).
    pub(super) next_n: u64,
}

impl VideoStream {
    pub(super) fn new(layer: Option<(u8, Rid)>) -> Self {
        VideoStream {
            layer,
            seq: rand::random_range(1_000..30_000),
            ts_base: rand::random(),
            force_keyframe: false,
            next_n: 1,
        }
    }

    /// Whether frame `n` is a scheduled keyframe. Simulcast layers keyframe
    /// every [`media::SIMULCAST_KEYFRAME_INTERVAL_FRAMES`], staggered by a
    /// second per layer (separate encoders do not keyframe together), and
    /// all on their first frame.
    pub(super) fn scheduled_keyframe(&self, n: u64) -> bool {
        match self.layer {
            None => n.is_multiple_of(media::KEYFRAME_INTERVAL_FRAMES),
            Some((layer, _)) => {
                let stagger = u64::from(layer) * u64::from(media::VIDEO_FPS);
                n == 0 || (n + stagger).is_multiple_of(media::SIMULCAST_KEYFRAME_INTERVAL_FRAMES)
            }
        }
    }
}

/// Publisher media clock and counters.
pub(super) struct MediaGen {
    pub(super) codec: VideoCodec,
    pub(super) audio_mid: Mid,
    pub(super) video_mid: Mid,
    pub(super) audio_pt: Pt,
    pub(super) video_pt: Pt,
    pub(super) next_counter: u64,
    pub(super) video: Vec<VideoStream>,
    pub(super) audio_seq: u64,
    pub(super) audio_ts_base: u32,
    /// Video frames; started at `Event::Connected`.
    pub(super) frames: Ticker,
    /// Audio packets; started with the frames.
    pub(super) audio: Ticker,
    pub(super) paused: bool,
}

pub(super) const VIDEO_PERIOD: Duration =
    Duration::from_nanos(1_000_000_000 / media::VIDEO_FPS as u64);
pub(super) const AUDIO_PERIOD: Duration = Duration::from_millis(media::AUDIO_PTIME_MS as u64);
/// When the task falls further behind than this many periods, skip ahead.
pub(super) const MAX_CATCH_UP: u64 = 3;

impl MediaGen {
    pub(super) fn new(rtc: &Rtc, kind: PublisherKind, audio_mid: Mid, video_mid: Mid) -> Self {
        let codec = match kind {
            PublisherKind::BrowserVp8 => VideoCodec::Vp8,
            PublisherKind::ObsH264 | PublisherKind::ObsSimulcastH264 => VideoCodec::H264,
        };
        let video = if kind == PublisherKind::ObsSimulcastH264 {
            media::SIMULCAST_LAYERS
                .iter()
                .enumerate()
                .map(|(i, l)| VideoStream::new(Some((i as u8, Rid::from(l.rid)))))
                .collect()
        } else {
            vec![VideoStream::new(None)]
        };
        let want = match codec {
            VideoCodec::Vp8 => Codec::Vp8,
            VideoCodec::H264 => Codec::H264,
        };
        let pt_of = |c: Codec| {
            rtc.codec_config()
                .find(|p| p.spec().codec == c)
                .map(|p| p.pt())
                .expect("codec configured")
        };
        Self {
            codec,
            audio_mid,
            video_mid,
            audio_pt: pt_of(Codec::Opus),
            video_pt: pt_of(want),
            next_counter: 1,
            video,
            audio_seq: rand::random_range(1_000..30_000),
            audio_ts_base: rand::random(),
            frames: Ticker::new(VIDEO_PERIOD),
            audio: Ticker::new(AUDIO_PERIOD),
            paused: false,
        }
    }

    /// Empty per-layer figures for a simulcast publisher (none otherwise).
    pub(super) fn layers_sent(&self) -> Vec<LayerSent> {
        self.video
            .iter()
            .filter_map(|v| v.layer.as_ref())
            .map(|(_, rid)| LayerSent {
                rid: rid.to_string(),
                ..Default::default()
            })
            .collect()
    }

    /// A keyframe request for `rid` (`None`: the whole track): the streams
    /// it names send a keyframe next; returns their layers.
    pub(super) fn request_keyframe(&mut self, rid: Option<Rid>) -> Vec<u8> {
        let mut layers = Vec::new();
        for v in &mut self.video {
            let hit = match (&v.layer, rid) {
                (_, None) => true,
                (Some((_, mine)), Some(r)) => *mine == r,
                (None, Some(_)) => false,
            };
            if hit {
                v.force_keyframe = true;
                if let Some((layer, _)) = v.layer {
                    layers.push(layer);
                }
            }
        }
        layers
    }

    /// Start the media clocks at `now` (once).
    pub(super) fn start(&mut self, now: Instant) {
        self.frames.start(now);
        self.audio.start(now);
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        Some(self.frames.next_due()?.min(self.audio.next_due()?))
    }
}
