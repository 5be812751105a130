//! A simulated publisher's media source: Opus every 20 ms and VP8 frames at 30 fps on
//! one stream or several simulcast layers (each with its RID, SSRC, sequence numbers and
//! packet sizes), a keyframe every 3 s and on the frame after a request for its RID.
//! A child of `peer`, so it writes through the peer's `Rtc` directly.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Mid, Pt, Rid};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Input, Rtc};
use switchboard_kit::clock::Ticker;

use super::super::media::{self, LayerSpec};
use super::Peer;

/// Video frame interval: 1/30 s.
pub const FRAME_INTERVAL: Duration = Duration::from_nanos(33_333_333);
/// Audio packet interval.
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
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

/// One video stream of a publisher.
pub(super) struct LayerState {
    spec: LayerSpec,
    pub(super) rid: Option<Rid>,
    /// Packets written so far (the RTP sequence number is 1000 on from this).
    packets: u64,
    pub(super) force_keyframe: bool,
}

pub(in crate::sim) struct Source {
    audio_pt: Pt,
    video_pt: Pt,
    /// Video frames, one per [`FRAME_INTERVAL`] from the connection.
    frames: Ticker,
    /// Audio packets, one per [`AUDIO_INTERVAL`]; the item number is the packet counter.
    audio: Ticker,
    pub(super) layers: Vec<LayerState>,
}

impl Peer {
    /// Publisher: write every media packet due by `now`.
    pub fn write_media(&mut self, now: Instant) {
        loop {
            let Some(s) = self.source.as_ref() else {
                return;
            };
            let (v, a) = (video_at(s), audio_at(s));
            if v.min(a) > now {
                return;
            }
            if v <= a {
                self.write_frame(now);
            } else {
                self.write_audio(now);
            }
        }
    }

    fn write_frame(&mut self, now: Instant) {
        let s = self.source.as_mut().expect("source");
        let frame = s.frames.advance();
        let periodic = frame.is_multiple_of(KEYFRAME_EVERY);
        let pt = s.video_pt;
        let ts = 90_000u32.wrapping_add((frame * 3000) as u32);
        let mut any_keyframe = false;
        for layer in 0..s.layers.len() {
            let s = self.source.as_mut().expect("source");
            let l = &mut s.layers[layer];
            let keyframe = periodic || l.force_keyframe;
            l.force_keyframe = false;
            let (spec, rid, first) = (l.spec, l.rid, l.packets);
            let count = spec.packets(keyframe);
            l.packets += count;
            if keyframe {
                any_keyframe = true;
                self.sent.layer_keyframes.push((now, layer as u8));
            }
            let (tag, base) = (self.tag, self.sent.video_at.len() as u64);
            let payloads =
                media::vp8_frame(&spec, layer as u8, keyframe, |i| tag.counter(base + i));
            for (i, payload) in (0..count).zip(payloads) {
                self.sent.video_at.push(now);
                self.sent.video_layer.push(layer as u8);
                let write = RtpWrite::new(pt, (1000 + first + i).into(), ts, now, payload)
                    .marker(i + 1 == count)
                    .nackable(true);
                self.write(now, self.video_mid, rid, write);
            }
        }
        if any_keyframe {
            self.sent.keyframes_at.push(now);
        }
    }

    /// Publisher: write one RTP packet with `len` bytes of payload on the lowest video
    /// layer, next in that layer's sequence, as a broken or hostile sender would (a
    /// payload no generator made: a subscriber that receives it counts it corrupt).
    pub fn write_raw_video(&mut self, now: Instant, len: usize) {
        let s = self.source.as_mut().expect("a publisher");
        let (pt, ts) = (
            s.video_pt,
            90_000u32.wrapping_add((s.frames.next() * 3000) as u32),
        );
        let l = &mut s.layers[0];
        let (seq, rid) = (1000 + l.packets, l.rid);
        l.packets += 1;
        let write = RtpWrite::new(pt, seq.into(), ts, now, vec![0x5a; len]);
        self.write(now, self.video_mid, rid, write);
    }

    fn write_audio(&mut self, now: Instant) {
        let s = self.source.as_mut().expect("source");
        let counter = s.audio.advance();
        let pt = s.audio_pt;
        self.sent.audio_at.push(now);
        let ts = 48_000u32.wrapping_add((counter * 960) as u32);
        let payload = media::opus_payload(self.tag.counter(counter));
        let write = RtpWrite::new(pt, (500 + counter).into(), ts, now, payload)
            .ext_vals(self.tag.ext_vals());
        self.write(now, self.audio_mid, None, write);
    }

    fn write(&mut self, now: Instant, mid: Mid, rid: Option<Rid>, write: RtpWrite) {
        let mut api = self.rtc.direct_api();
        let stream = api
            .stream_tx_by_mid(mid, rid)
            .unwrap_or_else(|| panic!("{}: no send stream for {mid} {rid:?}", self.name));
        stream.write_rtp(write);
        self.rtc
            .handle_input(Input::Timeout(now))
            .unwrap_or_else(|e| panic!("{}: timeout after write: {e}", self.name));
        self.drain(now, true);
    }

    pub(super) fn start_source(&mut self, now: Instant) {
        let pt_of = |rtc: &Rtc, codec: Codec| {
            rtc.codec_config()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .unwrap_or_else(|| panic!("no {codec} payload type"))
        };
        let audio_pt = pt_of(&self.rtc, Codec::Opus);
        let video_pt = pt_of(&self.rtc, Codec::Vp8);
        let layers: Vec<LayerState> = self
            .layers
            .iter()
            .map(|spec| LayerState {
                spec: *spec,
                rid: spec.rid.map(Rid::from),
                packets: 0,
                force_keyframe: false,
            })
            .collect();
        let streams = std::iter::once((self.audio_mid, None))
            .chain(layers.iter().map(|l| (self.video_mid, l.rid)));
        let mut api = self.rtc.direct_api();
        for (mid, rid) in streams {
            let ssrc = api
                .stream_tx_by_mid(mid, rid)
                .unwrap_or_else(|| panic!("{}: no send stream for {mid} {rid:?}", self.name))
                .ssrc();
            self.sent.ssrcs.push(ssrc);
        }
        self.source = Some(Source {
            audio_pt,
            video_pt,
            frames: started(FRAME_INTERVAL, now),
            audio: started(AUDIO_INTERVAL, now),
            layers,
        });
    }
}

fn started(period: Duration, now: Instant) -> Ticker {
    let mut t = Ticker::new(period);
    t.start(now);
    t
}

pub(super) fn video_at(s: &Source) -> Instant {
    s.frames.next_due().expect("started")
}

pub(super) fn audio_at(s: &Source) -> Instant {
    s.audio.next_due().expect("started")
}
