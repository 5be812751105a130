//! A simulated publisher's media: the client kit's source ([`switchboard_kit::source`])
//! with the simulation's plan: Opus every 20 ms and VP8 frames at 30 fps on one stream or
//! several simulcast layers (each with its RID, SSRC, sequence numbers from 1000 and the
//! packet sizes of its [`LayerSpec`]), a keyframe every 3 s and on the frame after a
//! request for its RID, nothing skipped (virtual time never runs late). Counters: the
//! peer's running video packet number, and the audio packet number, under its [`Tag`](super::super::conference::Tag).
//! A child of `peer`; the peer's client (`switchboard_kit::client`) writes the packets.

use std::time::Instant;

use str0m::format::Codec;
use str0m::media::Rid;
use str0m::rtp::Ssrc;
use str0m::Input;
use switchboard_kit::client::{Publishing, Written};
use switchboard_kit::media::{self as kit, PayloadCodec};
use switchboard_kit::source::{
    AudioPlan, Keyframes, Shape, Sizing, Slot, Source, SourcePlan, StreamPlan,
};

use super::super::media::{self, LayerSpec};
use super::Peer;

/// Frames between periodic keyframes: 3 s at 30 fps.
pub const KEYFRAME_EVERY: u64 = 90;

/// What a publisher sent and was asked.
#[derive(Debug, Default)]
pub struct Sent {
    /// Send time of every video packet (all layers), indexed by its counter.
    pub video_at: Vec<Instant>,
    /// Layer index of every video packet, indexed by its counter.
    pub video_layer: Vec<u8>,
    /// Send time of every audio packet, indexed by its counter.
    pub audio_at: Vec<Instant>,
    /// When each frame with a keyframe on any layer was started.
    pub keyframes_at: Vec<Instant>,
    /// Every keyframe: when, and on which layer.
    pub layer_keyframes: Vec<(Instant, u8)>,
    /// When each keyframe request (PLI/FIR) arrived.
    pub keyframe_requests_at: Vec<Instant>,
    /// Every keyframe request: when, and for which layer (`None`: no RID, every layer).
    pub layer_keyframe_requests: Vec<(Instant, Option<u8>)>,
    /// The publisher's own SSRCs (audio, then video, one per layer).
    pub ssrcs: Vec<Ssrc>,
}

impl Peer {
    /// Publisher: write every media packet due by `now` (its audio packets carry the
    /// [`Tag`](super::super::conference::Tag)'s level as it is now).
    pub fn write_media(&mut self, now: Instant) {
        let ext = self.tag.ext_vals();
        let Some(p) = self.client.publishing() else {
            return;
        };
        p.audio_ext = ext;
        self.client
            .write_due(now)
            .unwrap_or_else(|e| panic!("{}: write: {e}", self.name));
        self.drain_now(now);
    }

    /// What a written packet adds to [`Sent`].
    pub(super) fn on_written(&mut self, now: Instant, w: Written) {
        let Some(layer) = w.layer else {
            self.sent.audio_at.push(now);
            return;
        };
        let first_of_frame = self.last_frame.get(layer).copied().flatten() != Some(w.frame);
        if w.keyframe && first_of_frame {
            if self.last_keyframe != Some(w.frame) {
                self.last_keyframe = Some(w.frame);
                self.sent.keyframes_at.push(now);
            }
            self.sent.layer_keyframes.push((now, layer as u8));
        }
        if let Some(f) = self.last_frame.get_mut(layer) {
            *f = Some(w.frame);
        }
        self.sent.video_at.push(now);
        self.sent.video_layer.push(layer as u8);
    }

    /// Publisher: write one RTP packet with `len` bytes of payload on the lowest video
    /// layer, next in that layer's sequence, as a broken or hostile sender would (a
    /// payload no generator made: a subscriber that receives it counts it corrupt).
    pub fn write_raw_video(&mut self, now: Instant, len: usize) {
        assert!(
            self.client.write_raw_video(now, 0, len, 0x5a),
            "{}: no video send stream",
            self.name
        );
        self.client
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after write: {e}", self.name));
        self.drain_now(now);
    }

    /// At `Event::Connected`: publish [`plan`] from `now`.
    pub(super) fn start_source(&mut self, now: Instant) {
        let rtc = self.client.rtc_ref();
        let pt_of = |codec: Codec| {
            rtc.codec_config()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .unwrap_or_else(|| panic!("no {codec} payload type"))
        };
        let (audio_pt, video_pt) = (pt_of(Codec::Opus), pt_of(Codec::Vp8));
        let mut source = Source::new(plan(&self.layers));
        source.start(now);
        let (tag, mut video_n) = (self.tag, 0u64);
        let bodies = Box::new(move |slot, _now| match slot {
            Slot::Video { layer, .. } => {
                video_n += 1;
                media::body(kit::stream_byte(layer as u8, 0), tag.counter(video_n - 1))
            }
            Slot::Audio { n } => media::body(kit::AUDIO_STREAM, tag.counter(n)),
        });
        let streams = std::iter::once((self.audio_mid, None)).chain(
            self.layers
                .iter()
                .map(|l| (self.video_mid, l.rid.map(Rid::from))),
        );
        let mut api = self.client.rtc().direct_api();
        for (mid, rid) in streams {
            let ssrc = api
                .stream_tx_by_mid(mid, rid)
                .unwrap_or_else(|| panic!("{}: no send stream for {mid} {rid:?}", self.name))
                .ssrc();
            self.sent.ssrcs.push(ssrc);
        }
        self.last_frame = vec![None; self.layers.len()];
        self.client.publish(Publishing::new(
            source,
            bodies,
            (self.audio_mid, audio_pt),
            (self.video_mid, video_pt),
        ));
    }
}

/// The media of a simulated publisher of `layers`: sequence numbers from 1000 (video) and
/// 500 (audio), timestamps from 90 000 and 48 000, a keyframe every [`KEYFRAME_EVERY`]
/// frames, Opus of [`media::AUDIO_LEN`] bytes.
pub(in crate::sim) fn plan(layers: &[LayerSpec]) -> SourcePlan {
    let shape = |packets: u64, len| Shape {
        packets: packets as usize,
        len,
    };
    let video = layers
        .iter()
        .map(|spec| {
            let delta = shape(spec.delta_packets, spec.delta_len);
            StreamPlan {
                rid: spec.rid.map(Rid::from),
                sizing: Sizing::Fixed {
                    key: shape(spec.key_packets, spec.key_len),
                    delta: [delta, delta],
                },
                keyframes: Keyframes::Grid {
                    every: KEYFRAME_EVERY,
                    offset: 0,
                },
                size: spec.size,
                first_seq: 1000,
                ts_base: 90_000,
            }
        })
        .collect();
    SourcePlan {
        codec: PayloadCodec::Vp8,
        fps: 30,
        temporal_layers: 1,
        vp8_picture_id: false,
        video,
        audio: AudioPlan {
            ptime_ms: 20,
            len: media::AUDIO_LEN,
            first_seq: 500,
            ts_base: 48_000,
        },
        max_catch_up: u64::MAX,
    }
}
