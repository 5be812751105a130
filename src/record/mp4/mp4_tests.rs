//! Tests for the writer (`mod.rs`): whole files for each codec read back with the crate's
//! box decoder (sample counts, durations, sync flags, `tfdt`, `mfhd`, sample bytes), the
//! fragmenting policy, discontinuities, refusals, totals, and a never-panic property.

use proptest::prelude::*;

use super::*;
use crate::codec::av1::tests::AV1_SEQUENCE_HEADER;
use crate::codec::h264::tests::{PPS_BASELINE, SPS_BASELINE};

/// The reader of the recorder's files is the client kit's, shared with the simulations.
pub(crate) use switchboard_kit::mp4::{read_file, ReadFile};

/// Writes `frames` to a file: init, the fragments `push` returns, the last one.
pub(crate) fn write_file(
    config: &CodecConfig,
    limits: FragmentLimits,
    frames: impl IntoIterator<Item = Frame>,
) -> (Vec<u8>, Totals) {
    let (mut writer, mut file) = Mp4Writer::new(config, limits).expect("valid config");
    for frame in frames {
        if let Some(fragment) = writer.push(frame).expect("valid frame") {
            file.extend_from_slice(&fragment);
        }
    }
    if let Some(fragment) = writer.finish().expect("finishes") {
        file.extend_from_slice(&fragment);
    }
    (file, writer.totals())
}

fn frame(timestamp: u64, keyframe: bool, data: Vec<u8>) -> Frame {
    Frame {
        timestamp,
        keyframe,
        data,
    }
}

/// 30 fps video frames from RTP time `start`: key frames where `key(i)`, bytes tagged
/// with the index.
fn video_frames(n: usize, start: u64, key: impl Fn(usize) -> bool) -> Vec<Frame> {
    (0..n)
        .map(|i| frame(start + 3000 * i as u64, key(i), vec![i as u8; 10 + i]))
        .collect()
}

fn shape(read: &ReadFile) -> Vec<(u32, u64, usize)> {
    read.fragments
        .iter()
        .map(|f| (f.sequence, f.base_decode_time, f.samples.len()))
        .collect()
}

#[test]
fn video_fragments_start_at_key_frames() {
    let configs = [
        CodecConfig::Vp8 {
            width: 64,
            height: 48,
        },
        CodecConfig::Vp9 {
            width: 64,
            height: 48,
            profile: 0,
            bit_depth: 8,
        },
        CodecConfig::H264 {
            width: 64,
            height: 48,
            sps: SPS_BASELINE.to_vec(),
            pps: PPS_BASELINE.to_vec(),
        },
        CodecConfig::Av1 {
            width: 64,
            height: 48,
            sequence_header: AV1_SEQUENCE_HEADER.to_vec(),
        },
    ];
    for config in configs {
        let frames = video_frames(12, 1_000_000, |i| i % 5 == 0);
        let (file, totals) = write_file(&config, FragmentLimits::default(), frames.clone());
        let read = read_file(&file);
        assert_eq!(read.timescale.get(), 90_000);
        assert_eq!(read.entry, entry::sample_entry(&config).unwrap());
        assert_eq!(shape(&read), [(1, 0, 5), (2, 15_000, 5), (3, 30_000, 2)]);
        for (sample, frame) in read.samples().zip(&frames) {
            assert_eq!(sample.data, frame.data);
            assert_eq!(sample.sync, frame.keyframe);
            assert_eq!(sample.duration, 3000, "the last one repeats the previous");
        }
        assert_eq!(totals.samples, 12);
        assert_eq!(totals.fragments, 3);
        assert_eq!(totals.duration, 36_000);
        assert_eq!(totals.bytes, file.len() as u64);
        assert_eq!(totals.first_timestamp, Some(1_000_000));
        assert_eq!(totals.timescale, 90_000);
    }
}

#[test]
fn video_without_key_frames_is_cut_every_second() {
    let config = CodecConfig::Vp8 {
        width: 64,
        height: 48,
    };
    let frames = video_frames(75, 0, |i| i == 0);
    let (file, _) = write_file(&config, FragmentLimits::default(), frames);
    let read = read_file(&file);
    assert_eq!(
        shape(&read),
        [(1, 0, 30), (2, 90_000, 30), (3, 180_000, 15)]
    );
    let sync: Vec<bool> = read.samples().map(|s| s.sync).collect();
    assert!(sync[0] && sync[1..].iter().all(|s| !s));
}

/// A 20 ms CELT silence packet (RFC 6716 §3.1: config 31, code 0).
pub(crate) fn opus_silence(stereo: bool) -> Vec<u8> {
    vec![if stereo { 0xfc } else { 0xf8 }, 0xff, 0xfe]
}

#[test]
fn opus_is_cut_every_second_and_all_sync() {
    let config = CodecConfig::Opus { channels: 2 };
    let frames = (0..120u64).map(|i| frame(777 + 960 * i, true, opus_silence(true)));
    let (file, totals) = write_file(&config, FragmentLimits::default(), frames);
    let read = read_file(&file);
    assert_eq!(read.timescale.get(), 48_000);
    assert_eq!(shape(&read), [(1, 0, 50), (2, 48_000, 50), (3, 96_000, 20)]);
    assert!(read.samples().all(|s| s.sync && s.duration == 960));
    assert_eq!(totals.duration, 120 * 960);
}

#[test]
fn opus_last_sample_takes_its_toc_duration() {
    let config = CodecConfig::Opus { channels: 1 };
    // Two 20 ms packets, then a 60 ms SILK one (config 3, code 0) at the end.
    let frames = [
        frame(0, true, opus_silence(false)),
        frame(960, true, opus_silence(false)),
        frame(1920, true, vec![0x18, 0x00]),
    ];
    let (file, totals) = write_file(&config, FragmentLimits::default(), frames);
    let durations: Vec<u32> = read_file(&file).samples().map(|s| s.duration).collect();
    assert_eq!(durations, [960, 960, 2880]);
    assert_eq!(totals.duration, 4800);
}

#[test]
fn timestamp_jumps_are_discontinuities() {
    let config = CodecConfig::Vp8 {
        width: 64,
        height: 48,
    };
    let frames = [
        frame(90_000, true, vec![1]),
        frame(93_000, false, vec![2]),
        frame(50, false, vec![3]),                   // backwards: a restart
        frame(3050, false, vec![4]),                 // a normal step
        frame(3050, false, vec![5]),                 // no step
        frame(3050 + 90_000 * 3600, false, vec![6]), // an hour later
        frame(3050 + 90_000 * 3600 + 6000, false, vec![7]),
    ];
    let (file, totals) = write_file(&config, FragmentLimits::default(), frames);
    let durations: Vec<u32> = read_file(&file).samples().map(|s| s.duration).collect();
    assert_eq!(durations, [3000, 3000, 3000, 3000, 3000, 6000, 6000]);
    assert_eq!(totals.discontinuities, 3);
}

#[test]
fn byte_and_sample_limits_cut_fragments() {
    let config = CodecConfig::Opus { channels: 2 };
    let limits = FragmentLimits {
        max_bytes: 100,
        ..FragmentLimits::default()
    };
    let frames = (0..10u64).map(|i| frame(960 * i, true, vec![0xfc; 40]));
    let (file, _) = write_file(&config, limits, frames);
    let sizes: Vec<usize> = read_file(&file)
        .fragments
        .iter()
        .map(|f| f.samples.len())
        .collect();
    assert_eq!(
        sizes,
        [2, 2, 2, 2, 2],
        "two 40-byte samples fit 100 bytes, three do not"
    );

    let limits = FragmentLimits {
        max_samples: 3,
        ..FragmentLimits::default()
    };
    let frames = (0..10u64).map(|i| frame(960 * i, true, opus_silence(true)));
    let (file, _) = write_file(&config, limits, frames);
    let sizes: Vec<usize> = read_file(&file)
        .fragments
        .iter()
        .map(|f| f.samples.len())
        .collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
}

#[test]
fn refused_frames_leave_the_writer_going() {
    let config = CodecConfig::Opus { channels: 2 };
    let limits = FragmentLimits {
        max_bytes: 16,
        ..FragmentLimits::default()
    };
    let (mut writer, init) = Mp4Writer::new(&config, limits).unwrap();
    assert_eq!(
        writer.push(frame(0, true, vec![])),
        Err(Mp4Error::EmptySample)
    );
    assert_eq!(
        writer.push(frame(0, true, vec![0; 17])),
        Err(Mp4Error::SampleTooLarge)
    );
    assert_eq!(Mp4Error::EmptySample.as_str(), "empty_sample");
    assert_eq!(Mp4Error::SampleTooLarge.as_str(), "sample_too_large");
    assert_eq!(writer.push(frame(0, true, opus_silence(true))), Ok(None));
    assert_eq!(
        writer.fragment(),
        Ok(None),
        "the only frame is held for its duration"
    );
    let last = writer.finish().unwrap().expect("one sample");
    let mut file = init;
    file.extend_from_slice(&last);
    assert_eq!(read_file(&file).samples().count(), 1);
    assert_eq!(writer.totals().first_timestamp, Some(0));
    assert_eq!(writer.finish(), Ok(None), "nothing left");
}

#[test]
fn explicit_fragment_cuts_pending_samples() {
    let config = CodecConfig::Vp8 {
        width: 64,
        height: 48,
    };
    let (mut writer, mut file) = Mp4Writer::new(&config, FragmentLimits::default()).unwrap();
    for f in video_frames(4, 0, |i| i == 0) {
        assert_eq!(writer.push(f), Ok(None));
    }
    file.extend(writer.fragment().unwrap().expect("three complete samples"));
    file.extend(writer.finish().unwrap().expect("the held one"));
    assert_eq!(shape(&read_file(&file)), [(1, 0, 3), (2, 9000, 1)]);
}

#[test]
fn accepts_the_same_sample_entry_and_vp8_vp9_size_changes() {
    let config = CodecConfig::Vp8 {
        width: 64,
        height: 48,
    };
    let (writer, _) = Mp4Writer::new(&config, FragmentLimits::default()).unwrap();
    assert!(writer.accepts(&config));
    // A simulcast layer switch: the key frame codes its size (RFC 6386 §9.1).
    assert!(writer.accepts(&CodecConfig::Vp8 {
        width: 128,
        height: 96
    }));
    let vp9 = |width, profile| CodecConfig::Vp9 {
        width,
        height: 48,
        profile,
        bit_depth: 8,
    };
    let (writer9, _) = Mp4Writer::new(&vp9(64, 0), FragmentLimits::default()).unwrap();
    assert!(writer9.accepts(&vp9(128, 0)));
    assert!(!writer9.accepts(&vp9(64, 1)));
    assert!(!writer.accepts(&CodecConfig::Opus { channels: 2 }));
    assert!(!writer.accepts(&CodecConfig::Vp8 {
        width: 0,
        height: 0
    }));
}

proptest! {
    #[test]
    fn any_frames_make_a_readable_file(
        steps in proptest::collection::vec((0u64..200_000, any::<bool>(), 1usize..300), 0..120),
        max_bytes in 1usize..2000,
        max_samples in 0usize..20,
    ) {
        let config = CodecConfig::Vp8 { width: 64, height: 48 };
        let limits = FragmentLimits { max_bytes, max_samples, ..FragmentLimits::default() };
        let (mut writer, mut file) = Mp4Writer::new(&config, limits).unwrap();
        let mut timestamp = 0u64;
        let mut accepted = Vec::new();
        for (i, (step, key, len)) in steps.into_iter().enumerate() {
            // Mostly forward, sometimes backward, sometimes huge.
            timestamp = match i % 7 {
                3 => timestamp.saturating_sub(step),
                5 => timestamp.wrapping_add(step << 20),
                _ => timestamp.wrapping_add(step),
            };
            let f = frame(timestamp, key, vec![i as u8; len]);
            match writer.push(f.clone()) {
                Ok(out) => {
                    accepted.push(f);
                    file.extend(out.unwrap_or_default());
                }
                Err(e) => prop_assert_eq!(e, Mp4Error::SampleTooLarge),
            }
            prop_assert!(writer.payload.len() <= max_bytes);
            prop_assert!(writer.samples.len() <= max_samples.max(1));
        }
        file.extend(writer.finish().unwrap().unwrap_or_default());
        let read = read_file(&file);
        let data: Vec<&Vec<u8>> = read.samples().map(|s| &s.data).collect();
        prop_assert_eq!(data, accepted.iter().map(|f| &f.data).collect::<Vec<_>>());
        prop_assert!(read.samples().all(|s| s.duration > 0));
        let totals = writer.totals();
        prop_assert_eq!(totals.bytes, file.len() as u64);
        prop_assert_eq!(totals.samples, accepted.len() as u64);
        let sum: u64 = read.samples().map(|s| u64::from(s.duration)).sum();
        prop_assert_eq!(totals.duration, sum);
        let mut expected_time = 0;
        for fragment in &read.fragments {
            prop_assert_eq!(fragment.base_decode_time, expected_time);
            expected_time += fragment.samples.iter().map(|s| u64::from(s.duration)).sum::<u64>();
        }
    }
}
