//! A test publisher's media: the client kit's source ([`switchboard_kit::source`]) with
//! the test publishers' plan: 1000-byte packets (five per keyframe, three or four per
//! delta frame) and a keyframe every 2 s for a single stream; the OBS-shaped layers of
//! [`media::SIMULCAST_LAYERS`] keyframing every 3 s, staggered by a second per layer,
//! for simulcast; Opus of [`media::AUDIO_PAYLOAD_LEN`] bytes. Counters: one sequence
//! shared by the single stream and audio, one per simulcast layer
//! ([`media::layer_counter`]). The client kit's client ([`switchboard_kit::client`])
//! writes what is due.

use str0m::format::Codec;
use str0m::media::{Mid, Rid};
use str0m::Rtc;
use switchboard_kit::client::Publishing;
use switchboard_kit::media::{self as kit, Body, PayloadCodec};
use switchboard_kit::source::{
    AudioPlan, Keyframes, Shape, Sizing, Slot, Source, SourcePlan, StreamPlan,
};

use super::media::{self, VideoCodec};
use super::peer::PublisherKind;
use super::report::LayerSent;

/// When the task falls further behind than this many periods, skip ahead.
const MAX_CATCH_UP: u64 = 3;

/// The media of a publisher of `kind`.
pub(super) fn plan(kind: PublisherKind) -> SourcePlan {
    let codec = match kind {
        PublisherKind::BrowserVp8 => VideoCodec::Vp8,
        PublisherKind::ObsH264 | PublisherKind::ObsSimulcastH264 => VideoCodec::H264,
    };
    let shape = |packets, len| Shape { packets, len };
    let video: Vec<StreamPlan> = if kind == PublisherKind::ObsSimulcastH264 {
        media::SIMULCAST_LAYERS
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let sizing = Sizing::Fixed {
                    key: shape(l.key_packets, l.payload_len),
                    delta: [
                        shape(l.delta_packets.0, l.payload_len),
                        shape(l.delta_packets.1, l.payload_len),
                    ],
                };
                let keyframes = Keyframes::Grid {
                    every: media::SIMULCAST_KEYFRAME_INTERVAL_FRAMES,
                    offset: i as u64 * u64::from(media::VIDEO_FPS),
                };
                StreamPlan::random(Some(Rid::from(l.rid)), sizing, keyframes)
            })
            .collect()
    } else {
        let sizing = Sizing::Fixed {
            key: shape(media::KEYFRAME_PACKETS, media::VIDEO_PAYLOAD_LEN),
            delta: media::DELTA_PACKETS.map(|n| shape(n, media::VIDEO_PAYLOAD_LEN)),
        };
        let keyframes = Keyframes::Grid {
            every: media::KEYFRAME_INTERVAL_FRAMES,
            offset: 0,
        };
        vec![StreamPlan::random(None, sizing, keyframes)]
    };
    SourcePlan {
        codec: codec.payload_codec(),
        fps: media::VIDEO_FPS,
        temporal_layers: 1,
        vp8_picture_id: false,
        video,
        audio: AudioPlan::random(media::AUDIO_PAYLOAD_LEN),
        max_catch_up: MAX_CATCH_UP,
    }
}

/// The payload bodies' counters: one sequence for the single stream and audio, one per
/// simulcast layer ([`media::layer_counter`]).
pub(super) struct Counters {
    simulcast: bool,
    /// Next counter of the single stream and audio.
    next: u64,
    /// Next per-layer counter number (simulcast).
    next_n: Vec<u64>,
}

impl Counters {
    pub(super) fn new(plan: &SourcePlan) -> Self {
        Counters {
            simulcast: plan.video.iter().any(|v| v.rid.is_some()),
            next: 1,
            next_n: vec![1; plan.video.len()],
        }
    }

    /// The body of the packet in `slot`, sent at `send_us` (see [`media::micros_since_epoch`]).
    pub(super) fn body(&mut self, slot: Slot, send_us: u64) -> Body {
        let (stream, counter) = match slot {
            Slot::Video { layer, .. } if self.simulcast => {
                let n = &mut self.next_n[layer];
                *n += 1;
                let c = media::layer_counter(layer as u8, *n - 1);
                (kit::stream_byte(layer as u8, 0), c)
            }
            Slot::Video { .. } => {
                self.next += 1;
                (kit::stream_byte(0, 0), self.next - 1)
            }
            Slot::Audio { .. } => {
                self.next += 1;
                (kit::AUDIO_STREAM, self.next - 1)
            }
        };
        Body {
            stream,
            counter,
            send_us,
            ..Body::default()
        }
    }
}

/// The publishing side of a test peer of `kind` whose offer has `audio_mid` and
/// `video_mid` (payload types from its own codec config, as the answer keeps them), and
/// the empty per-layer figures of a simulcast publisher (none otherwise).
pub(super) fn publishing(
    rtc: &Rtc,
    kind: PublisherKind,
    audio_mid: Mid,
    video_mid: Mid,
) -> (Publishing, Vec<LayerSent>) {
    let plan = plan(kind);
    let want = match plan.codec {
        PayloadCodec::H264 => Codec::H264,
        _ => Codec::Vp8,
    };
    let pt_of = |c: Codec| {
        rtc.codec_config()
            .find(|p| p.spec().codec == c)
            .map(|p| p.pt())
            .expect("codec configured")
    };
    let layers = plan
        .video
        .iter()
        .filter_map(|v| v.rid)
        .map(|rid| LayerSent {
            rid: rid.to_string(),
            ..Default::default()
        })
        .collect();
    let mut counters = Counters::new(&plan);
    let bodies = Box::new(move |slot, now| counters.body(slot, media::micros_since_epoch(now)));
    let p = Publishing::new(
        Source::new(plan),
        bodies,
        (audio_mid, pt_of(Codec::Opus)),
        (video_mid, pt_of(want)),
    );
    (p, layers)
}

#[cfg(test)]
mod self_check {
    use std::time::{Duration, Instant};

    use switchboard_kit::source::Packet;

    use super::super::media::*;
    use super::*;

    /// 200 ms of a publisher of `kind`'s packets with send stamp 1234 µs after the epoch.
    fn packets(kind: PublisherKind) -> Vec<Packet> {
        let plan = plan(kind);
        let mut counters = Counters::new(&plan);
        let mut source = Source::new(plan);
        let t0 = Instant::now();
        source.start(t0);
        (0..=200)
            .step_by(10)
            .flat_map(|ms| {
                source.poll_due(t0 + Duration::from_millis(ms), |slot| {
                    counters.body(slot, 1234)
                })
            })
            .collect()
    }

    #[test]
    fn generated_payloads_round_trip() {
        for (kind, codec) in [
            (PublisherKind::BrowserVp8, VideoCodec::Vp8),
            (PublisherKind::ObsH264, VideoCodec::H264),
        ] {
            let recv = codec.payload_codec();
            let pkts = packets(kind);
            for frame in 0..3 {
                let key = frame == 0;
                let frame_pkts: Vec<_> = pkts
                    .iter()
                    .filter(|p| p.layer.is_some() && p.frame == frame)
                    .collect();
                let want = if key {
                    KEYFRAME_PACKETS
                } else {
                    DELTA_PACKETS[frame as usize % 2]
                };
                assert_eq!(frame_pkts.len(), want, "{codec:?} frame {frame}");
                for (i, pkt) in frame_pkts.iter().enumerate() {
                    assert_eq!(pkt.payload.len(), VIDEO_PAYLOAD_LEN);
                    let parsed = parse_payload(recv, &pkt.payload).unwrap();
                    assert_eq!(parsed.counter, pkt.counter);
                    assert_eq!(parsed.send_us, 1234);
                    assert!(parsed.intact, "{codec:?} frame {frame} packet {i}");
                    // H264 keyframes start twice by the contract's rules:
                    // the STAP-A with the SPS and the FU-A start of the IDR.
                    let expect_key = key && (i == 0 || (codec == VideoCodec::H264 && i == 1));
                    assert_eq!(parsed.starts_keyframe, expect_key, "{codec:?} {i}");
                }
            }
            let a = pkts.iter().find(|p| p.layer.is_none()).expect("audio");
            assert_eq!(a.payload.len(), AUDIO_PAYLOAD_LEN);
            let parsed = parse_payload(RecvCodec::Opus, &a.payload).unwrap();
            assert_eq!(
                (parsed.counter, parsed.send_us, parsed.intact),
                (a.counter, 1234, true)
            );
            // The single stream and audio share one counter sequence.
            let mut counters: Vec<u64> = pkts.iter().map(|p| p.counter).collect();
            counters.sort_unstable();
            assert_eq!(counters, (1..=pkts.len() as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn simulcast_layers_round_trip_with_their_layer() {
        let pkts = packets(PublisherKind::ObsSimulcastH264);
        for (i, shape) in SIMULCAST_LAYERS.iter().enumerate() {
            let layer = i as u8;
            for (frame, key) in [(0, true), (2, false)] {
                let frame_pkts: Vec<_> = pkts
                    .iter()
                    .filter(|p| p.layer == Some(i) && p.frame == frame)
                    .collect();
                let count = if key {
                    shape.key_packets
                } else {
                    shape.delta_packets.0
                };
                assert_eq!(frame_pkts.len(), count);
                assert!(frame_pkts.last().unwrap().marker);
                for (j, pkt) in frame_pkts.iter().enumerate() {
                    assert_eq!(pkt.payload.len(), shape.payload_len);
                    assert_eq!(counter_layer(pkt.counter), Some(layer));
                    let parsed = parse_payload(RecvCodec::H264, &pkt.payload).unwrap();
                    assert_eq!(parsed.counter, pkt.counter);
                    assert!(parsed.intact, "layer {i} key {key} packet {j}");
                    assert_eq!(parsed.starts_keyframe, key && j < 2);
                    let nals = h264_nal_types(&pkt.payload);
                    if key && j == 0 {
                        assert_eq!(nals, vec![7, 8, 6]);
                    } else {
                        assert_eq!(nals, vec![if key { 5 } else { 1 }]);
                    }
                }
            }
            assert!(shape.delta_packets.0 >= 2 && shape.delta_packets.1 >= 2);
            assert!(shape.key_packets >= 3);
        }
        // RID "0" is the highest, as OBS sends it.
        let rates: Vec<u64> = SIMULCAST_LAYERS.iter().map(|l| l.nominal_bps()).collect();
        assert!(rates.windows(2).all(|w| w[0] > 2 * w[1]), "{rates:?}");
        assert_eq!(counter_layer(12345), None);
        assert_eq!(video_payload_len(12345), VIDEO_PAYLOAD_LEN);
    }

    #[test]
    fn corruption_is_detected() {
        let pkts = packets(PublisherKind::BrowserVp8);
        let mut p = pkts
            .iter()
            .find(|p| p.layer.is_some() && p.frame == 1)
            .unwrap()
            .payload
            .clone();
        let n = p.len();
        p[n - 10] ^= 0x01;
        assert!(!parse_payload(RecvCodec::Vp8, &p).unwrap().intact);
        p[n - 10] ^= 0x01;
        p.pop();
        assert!(parse_payload(RecvCodec::Vp8, &p).is_err());
    }
}
