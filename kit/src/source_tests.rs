use super::*;

const MS: Duration = Duration::from_millis(1);

fn starts_keyframe(codec: PayloadCodec, p: &Packet) -> bool {
    media::parse(codec, &p.payload).is_ok_and(|x| x.starts_keyframe)
}

fn body(slot: Slot) -> Body {
    let (stream, counter) = match slot {
        Slot::Video {
            layer, tid, frame, ..
        } => (media::stream_byte(layer as u8, tid), frame),
        Slot::Audio { n } => (media::AUDIO_STREAM, n),
    };
    Body {
        stream,
        counter,
        ..Body::default()
    }
}

fn plan(codec: PayloadCodec, video: Vec<StreamPlan>, temporal_layers: u8) -> SourcePlan {
    SourcePlan {
        codec,
        fps: 30,
        temporal_layers,
        vp8_picture_id: true,
        video,
        audio: AudioPlan::random(80),
        max_catch_up: 3,
    }
}

#[test]
fn layers_average_their_bitrate_and_keyframe_on_schedule() {
    let t0 = Instant::now();
    let every = Keyframes::SinceLast { every: 60 };
    let video = [("q", 150_000), ("h", 500_000), ("f", 1_500_000)]
        .into_iter()
        .map(|(rid, bps)| StreamPlan::random(Some(rid.into()), Sizing::Bitrate(bps), every))
        .collect();
    let mut g = Source::new(plan(PayloadCodec::Vp8, video, 3));
    g.start(t0);
    let mut bytes = [0u64; 3];
    let mut audio = 0;
    let mut keys = [0u64; 3];
    for ms in (0..10_000).step_by(10) {
        for p in g.poll_due(t0 + ms * MS, body) {
            match p.layer {
                Some(l) => {
                    bytes[l] += p.payload.len() as u64;
                    keys[l] += u64::from(starts_keyframe(PayloadCodec::Vp8, &p));
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
    assert_eq!(g.sent.keyframes, vec![5, 5, 5]);
    // Frame 300 is a scheduled keyframe of every layer; 302 only of the requested one.
    g.poll_due(t0 + 10_040 * MS, body);
    assert_eq!(g.request_keyframe(Some(Rid::from("h"))), vec![1]);
    let pkts = g.poll_due(t0 + 10_080 * MS, body);
    let keyed: Vec<_> = pkts
        .iter()
        .filter(|p| starts_keyframe(PayloadCodec::Vp8, p))
        .map(|p| p.layer)
        .collect();
    assert_eq!(keyed, vec![Some(1)]);
}

#[test]
fn fixed_shapes_a_staggered_grid_and_contiguous_sequence_numbers() {
    let t0 = Instant::now();
    let shape = |packets, len| Shape { packets, len };
    let sizing = Sizing::Fixed {
        key: shape(4, 300),
        delta: [shape(2, 200), shape(3, 200)],
    };
    let video = (0..2)
        .map(|layer| StreamPlan {
            first_seq: 1000,
            ts_base: 90_000,
            ..StreamPlan::random(
                Some(["a", "b"][layer].into()),
                sizing,
                Keyframes::Grid {
                    every: 90,
                    offset: 30 * layer as u64,
                },
            )
        })
        .collect();
    let mut g = Source::new(SourcePlan {
        max_catch_up: u64::MAX,
        ..plan(PayloadCodec::H264, video, 1)
    });
    g.start(t0);
    // Nothing is skipped without a catch-up bound: 4 s at once.
    let pkts = g.poll_due(t0 + 4_000 * MS, body);
    assert_eq!(g.sent.frames, vec![121, 121]);
    // Layer 0 keyframes at 0 and 90; layer 1 at 0 and 60 (shifted by 30).
    let keys = |layer: usize| -> Vec<u64> {
        let mut k: Vec<u64> = pkts
            .iter()
            .filter(|p| p.layer == Some(layer) && p.keyframe)
            .map(|p| p.frame)
            .collect();
        k.dedup();
        k
    };
    assert_eq!(keys(0), vec![0, 90]);
    assert_eq!(keys(1), vec![0, 60]);
    for layer in 0..2 {
        let seqs: Vec<u64> = pkts
            .iter()
            .filter(|p| p.layer == Some(layer))
            .map(|p| p.seq)
            .collect();
        assert_eq!(seqs, (1000..1000 + seqs.len() as u64).collect::<Vec<_>>());
        let frame1: Vec<_> = pkts
            .iter()
            .filter(|p| p.layer == Some(layer) && p.frame == 1)
            .collect();
        assert_eq!(frame1.len(), 3, "odd delta frames have three packets");
        assert!(frame1
            .iter()
            .all(|p| p.payload.len() == 200 && p.ts == 93_000));
        assert_eq!(frame1.iter().filter(|p| p.marker).count(), 1);
        assert!(frame1.last().unwrap().marker);
    }
    // In due-time order, a frame before the audio packet due at the same time.
    let at: Vec<Instant> = pkts.iter().map(|p| p.wallclock).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]));
    let at_0: Vec<_> = pkts
        .iter()
        .filter(|p| p.wallclock == t0)
        .map(|p| p.layer.is_some())
        .collect();
    assert_eq!(at_0, [vec![true; 8], vec![false]].concat());
    // A packet written outside the source takes the next sequence number.
    let (seq, ts) = g.take_seq(0).unwrap();
    assert_eq!(
        seq,
        1000 + pkts.iter().filter(|p| p.layer == Some(0)).count() as u64
    );
    assert_eq!(ts, 90_000 + 121 * 3000);
}

#[test]
fn a_paused_source_sends_nothing_then_skips_ahead() {
    let t0 = Instant::now();
    let video = vec![StreamPlan::random(
        None,
        Sizing::Bitrate(300_000),
        Keyframes::Grid {
            every: 60,
            offset: 0,
        },
    )];
    let mut g = Source::new(plan(PayloadCodec::Vp8, video, 1));
    assert!(g.poll_due(t0, body).is_empty(), "not started");
    assert_eq!(g.next_due(), None);
    g.start(t0);
    assert_eq!(g.next_due(), Some(t0));
    g.poll_due(t0, body);
    g.set_paused(true);
    assert_eq!(g.next_due(), None);
    assert!(g.poll_due(t0 + 1_000 * MS, body).is_empty());
    g.set_paused(false);
    let pkts = g.poll_due(t0 + 1_000 * MS, body);
    let frames: Vec<u64> = pkts
        .iter()
        .filter(|p| p.layer.is_some())
        .map(|p| p.frame)
        .collect();
    assert_eq!(
        frames.first(),
        Some(&28),
        "three frames at most: {frames:?}"
    );
    assert_eq!(frames.last(), Some(&30));
}

#[test]
fn a_stopped_stream_sends_nothing_and_resumes_with_a_keyframe() {
    let t0 = Instant::now();
    let every = Keyframes::SinceLast { every: 300 };
    let video = [("q", 150_000), ("f", 1_500_000)]
        .into_iter()
        .map(|(rid, bps)| StreamPlan::random(Some(rid.into()), Sizing::Bitrate(bps), every))
        .collect();
    let mut g = Source::new(plan(PayloadCodec::Vp8, video, 1));
    g.start(t0);
    assert!(!g.set_stream_paused(2, true), "no such stream");
    let mut frames = [Vec::new(), Vec::new()];
    for ms in (0..3_000).step_by(10) {
        if ms == 1_000 {
            assert!(g.set_stream_paused(1, true));
        }
        if ms == 2_000 {
            assert!(g.set_stream_paused(1, false));
        }
        for p in g.poll_due(t0 + ms * MS, body) {
            if let Some(l) = p.layer {
                if frames[l].last().is_none_or(|(n, _)| *n != p.frame) {
                    frames[l].push((p.frame, starts_keyframe(PayloadCodec::Vp8, &p)));
                }
            }
        }
    }
    // The low stream never stopped; the top one skipped a second of frame numbers and
    // came back on a keyframe.
    assert_eq!(frames[0].len(), 90);
    let top: Vec<u64> = frames[1].iter().map(|(n, _)| *n).collect();
    assert!(top.iter().all(|n| *n < 30 || *n >= 60), "{top:?}");
    assert_eq!(top.len(), 60);
    let resumed = frames[1].iter().find(|(n, _)| *n >= 60).unwrap();
    assert!(resumed.1, "the first frame after resuming is a keyframe");
    assert_eq!(frames[1].iter().filter(|(_, k)| *k).count(), 2);
}
