//! Tests for the track recorder (`track.rs`) on real bitstreams: the fixtures of
//! `tests/fixtures/record/` (64x48, 30 fps, key frames at 0 and 8; `vp8-32x24.ivf` is the
//! same `testsrc` at 32x24, 9 frames, made with `ffmpeg -f lavfi -i
//! testsrc=size=32x24:rate=30 -t 0.3 -c:v libvpx -auto-alt-ref 0 -g 8 -threads 1 -f ivf`)
//! packetized here: VP8 with a 1-byte descriptor (RFC 7741 §4.2), H.264 as single NAL unit
//! packets and FU-A (RFC 6184 §5.6, §5.8). Files are checked with the writer tests' reader
//! and with FFmpeg (`probe`, skipped only with `SWITCHBOARD_SKIP_FFPROBE=1`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::record::jitter::PushError;
use crate::record::mp4::probe_tests::{
    ffmpeg_available, h264_frames, ivf_frames, probe, vp8_frames, TICKS_30FPS, VP8_IVF,
};
use crate::record::mp4::tests::{opus_silence, read_file};
use crate::record::mp4::Mp4Error;

const VP8_32X24_IVF: &[u8] = include_bytes!("../../tests/fixtures/record/vp8-32x24.ivf");

/// Payload bytes per packet: small, so that frames span several packets.
const MTU: usize = 120;
/// Frame interval at 30 fps, and the spacing of a frame's packets.
const FRAME: Duration = Duration::from_micros(33_333);
const PACKET_GAP: Duration = Duration::from_micros(200);

/// One frame to send: its RTP timestamp (relative), key frame flag, RTP payloads.
#[derive(Clone, Debug)]
struct Sent(u64, bool, Vec<Vec<u8>>);

/// VP8 payloads (RFC 7741 §4.2): a 1-byte descriptor, S=1 and PID 0 on the first packet.
fn vp8_payloads(data: &[u8]) -> Vec<Vec<u8>> {
    let chunks = data.chunks(MTU).enumerate();
    chunks
        .map(|(i, chunk)| [&[if i == 0 { 0x10 } else { 0x00 }][..], chunk].concat())
        .collect()
}

/// H.264 payloads (RFC 6184) of a sample of 4-byte length-prefixed NAL units: a single NAL
/// unit packet (§5.6) when it fits, else FU-A (§5.8: indicator F|NRI|28, header S|E|R|type).
fn h264_payloads(sample: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= sample.len() {
        let len = u32::from_be_bytes(sample[at..at + 4].try_into().unwrap()) as usize;
        let nal = &sample[at + 4..at + 4 + len];
        at += 4 + len;
        if nal.len() <= MTU {
            out.push(nal.to_vec());
            continue;
        }
        let chunks: Vec<&[u8]> = nal[1..].chunks(MTU - 2).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let start = if i == 0 { 0x80 } else { 0 };
            let end = if i + 1 == chunks.len() { 0x40 } else { 0 };
            let header = [(nal[0] & 0xe0) | 28, start | end | (nal[0] & 0x1f)];
            out.push([&header[..], chunk].concat());
        }
    }
    out
}

fn vp8_stream(ivf: &[u8]) -> Vec<Sent> {
    let frames = ivf_frames(ivf).into_iter();
    frames
        .map(|(ts, data)| Sent(ts, data[0] & 1 == 0, vp8_payloads(&data)))
        .collect()
}

/// The 64x48 VP8 fixture `loops` times over, timestamps continuing.
fn vp8_loops(loops: u64) -> Vec<Sent> {
    let frames = vp8_frames();
    let span = frames.len() as u64 * TICKS_30FPS;
    (0..loops)
        .flat_map(|l| {
            let frames = frames.iter();
            frames.map(move |f| Sent(l * span + f.timestamp, f.keyframe, vp8_payloads(&f.data)))
        })
        .collect()
}

/// One packet on the wire: when it arrives, the frame it belongs to, the packet.
type Wire = (Instant, usize, Packet);

/// Frame `i` sent at `t0 + i·FRAME`, its packets `PACKET_GAP` apart, sequence numbers from
/// `seq0`, RTP timestamps `ts0` + the frame's, marker on each frame's last packet.
fn schedule(frames: &[Sent], seq0: u64, ts0: u32, t0: Instant) -> Vec<Wire> {
    let mut seq = seq0;
    let mut out = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        for (j, payload) in frame.2.iter().enumerate() {
            let at = t0 + FRAME * i as u32 + PACKET_GAP * j as u32;
            let packet = Packet {
                seq,
                timestamp: ts0.wrapping_add(frame.0 as u32),
                marker: j + 1 == frame.2.len(),
                payload: Arc::from(payload.as_slice()),
            };
            out.push((at, i, packet));
            seq += 1;
        }
    }
    out
}

fn vp8_config(width: u16, height: u16) -> CodecConfig {
    CodecConfig::Vp8 { width, height }
}

fn video(kind: CodecKind) -> TrackRecorder {
    TrackRecorder::new(kind, 0, TrackOptions::default()).expect("a video recorder")
}

/// Outputs, each with the latest `now` when it was polled.
type Outputs = Vec<(Instant, TrackOutput)>;

/// What a run gave: the outputs, the files, the instants of the key frame requests, and
/// the file starts (true) and ends (false) with their indices, in order.
struct Ran {
    outputs: Outputs,
    files: Vec<File>,
    requests: Vec<Instant>,
    order: Vec<(bool, u32)>,
}

/// Drives a recorder like a caller would: timers up to each arrival, the packet, every
/// output drained after each call, `finish` 2 s after the last arrival.
fn run(rec: &mut TrackRecorder, mut wire: Vec<Wire>) -> Ran {
    wire.sort_by_key(|w| w.0);
    let mut clock = wire.first().map_or_else(Instant::now, |w| w.0);
    let end = wire.last().map_or(clock, |w| w.0) + Duration::from_secs(2);
    let mut outputs = Vec::new();
    for next in wire.into_iter().map(Some).chain([None]) {
        let until = next.as_ref().map_or(end, |w| w.0);
        timers(rec, until, &mut clock, &mut outputs);
        clock = clock.max(until);
        match next {
            Some((at, _, packet)) => rec.handle_packet(at, packet),
            None => rec.finish(end),
        }
        outputs.extend(poll(rec).map(|o| (clock, o)));
    }
    assert!(rec.is_finished());
    let order = outputs.iter().filter_map(|(_, o)| match o {
        TrackOutput::FileStart { index, .. } => Some((true, *index)),
        TrackOutput::FileEnd { index, .. } => Some((false, *index)),
        _ => None,
    });
    let requests = outputs
        .iter()
        .filter(|o| o.1 == TrackOutput::RequestKeyframe);
    Ran {
        files: files(outputs.iter().map(|o| &o.1)),
        requests: requests.map(|o| o.0).collect(),
        order: order.collect(),
        outputs,
    }
}

/// Fires every timer due by `until`, draining the outputs after each.
fn timers(rec: &mut TrackRecorder, until: Instant, clock: &mut Instant, out: &mut Outputs) {
    for _ in 0..100_000 {
        match rec.poll_timeout() {
            Some(due) if due <= until => {
                *clock = (*clock).max(due);
                rec.handle_timeout(due);
                out.extend(poll(rec).map(|o| (*clock, o)));
            }
            _ => return,
        }
    }
    panic!("poll_timeout never moves on");
}

/// Every output ready now.
fn poll(rec: &mut TrackRecorder) -> impl Iterator<Item = TrackOutput> + '_ {
    std::iter::from_fn(|| rec.poll_output())
}

/// One file as the outputs describe it.
#[derive(Debug)]
struct File {
    config: CodecConfig,
    first_timestamp: u64,
    started_at: Instant,
    bytes: Vec<u8>,
    totals: Option<Totals>,
}

/// Checks the output contract (indices from 0 in order; `Bytes` and `FileEnd` only for
/// the open file; files never overlap; totals count the bytes) and gathers the files.
fn files<'a>(outputs: impl IntoIterator<Item = &'a TrackOutput>) -> Vec<File> {
    let mut files: Vec<File> = Vec::new();
    let mut open = false;
    for output in outputs {
        match output {
            TrackOutput::FileStart {
                index,
                config,
                init,
                first_timestamp,
                started_at,
            } => {
                assert!(!open, "a file starts while another is open");
                assert_eq!(*index as usize, files.len(), "indices count from 0");
                open = true;
                files.push(File {
                    config: config.clone(),
                    first_timestamp: *first_timestamp,
                    started_at: *started_at,
                    bytes: init.clone(),
                    totals: None,
                });
            }
            TrackOutput::Bytes { index, bytes } => {
                assert!(open && *index as usize + 1 == files.len());
                files[*index as usize].bytes.extend_from_slice(bytes);
            }
            TrackOutput::FileEnd {
                index,
                totals,
                started_at,
            } => {
                assert!(open && *index as usize + 1 == files.len());
                let file = &mut files[*index as usize];
                assert_eq!(totals.bytes, file.bytes.len() as u64);
                assert_eq!(totals.first_timestamp, Some(file.first_timestamp));
                assert_eq!(*started_at, file.started_at);
                file.totals = Some(*totals);
                open = false;
            }
            TrackOutput::RequestKeyframe => {}
        }
    }
    files
}

/// Checks a finished video file: readable, first sample a key frame, timestamps strictly
/// increasing, `samples` frames that FFmpeg decodes without a word.
fn check_video(name: &str, file: &File, codec: &str, size: (u64, u64), samples: usize) {
    let totals = file.totals.expect("file ended");
    let read = read_file(&file.bytes);
    assert_eq!(read.samples().count(), samples);
    assert_eq!(totals.samples, samples as u64);
    // It starts at a key frame; its timestamps strictly increase.
    assert!(read.samples().next().is_some_and(|s| s.sync));
    assert!(read.samples().all(|s| s.duration > 0));
    assert_eq!(totals.discontinuities, 0);
    if !ffmpeg_available() {
        return;
    }
    let probe = probe(name, &file.bytes);
    assert_eq!(probe.codec_name, codec);
    assert_eq!((probe.width, probe.height), (Some(size.0), Some(size.1)));
    assert_eq!(probe.frames, Some(samples as u64), "every frame decodes");
}

#[test]
fn vp8_in_order_is_one_playable_file() {
    let t0 = Instant::now();
    let wire = schedule(&vp8_stream(VP8_IVF), 1000, 5, t0);
    let first_done = wire.iter().filter(|w| w.1 == 0).map(|w| w.0).max();
    let mut rec = video(CodecKind::Vp8);
    let ran = run(&mut rec, wire);
    let (first, last) = (&ran.outputs[0].1, &ran.outputs[ran.outputs.len() - 1].1);
    let config = vp8_config(64, 48);
    assert!(matches!(first, TrackOutput::FileStart { index: 0, config: c, .. } if *c == config));
    assert!(matches!(last, TrackOutput::FileEnd { index: 0, .. }));
    assert!(ran.requests.is_empty(), "it starts with a key frame");
    let file = &ran.files[0];
    assert_eq!((ran.files.len(), file.first_timestamp), (1, 5));
    assert_eq!(Some(file.started_at), first_done);
    let stats = rec.stats();
    assert_eq!((stats.frames, stats.files, stats.gaps), (15, 1, 0));
    assert_eq!(stats.dropped.total(), 0);
    assert_eq!(stats.bytes_written, file.bytes.len() as u64);
    check_video("track-vp8", file, "vp8", (64, 48), 15);

    // Without the last packet (the marker), the last frame is dropped at `finish`.
    let mut wire = schedule(&vp8_stream(VP8_IVF), 0, 0, t0);
    wire.pop();
    let mut rec = video(CodecKind::Vp8);
    let ran = run(&mut rec, wire);
    let stats = rec.stats();
    assert_eq!((stats.frames, stats.dropped.get("loss")), (14, 1));
    check_video("track-vp8-cut", &ran.files[0], "vp8", (64, 48), 14);
}

#[test]
fn lost_packets_are_repaired_or_end_in_a_key_frame_request() {
    let frames = vp8_loops(8);
    let mut wire = schedule(&frames, 0, 0, Instant::now());
    let last = wire.len() - 1;
    let mut rng = StdRng::seed_from_u64(7);
    let (mut unrepaired, mut repaired) = (Vec::new(), 0);
    for (k, (at, frame, packet)) in wire.iter_mut().enumerate() {
        if k == 0 || k == last || !rng.random_bool(0.05) {
            continue;
        }
        if rng.random_bool(0.8) {
            *at += Duration::from_millis(rng.random_range(40..300)); // NACK, RTX
            repaired += 1;
        } else {
            unrepaired.push((packet.seq, *frame, *at));
        }
    }
    wire.retain(|(_, _, p)| !unrepaired.iter().any(|u| u.0 == p.seq));
    assert!(repaired >= 10 && unrepaired.len() >= 3);
    let starts_run = |u: &&(u64, usize, Instant)| !unrepaired.iter().any(|v| v.0 + 1 == u.0);
    let runs = unrepaired.iter().filter(starts_run).count() as u64;
    // A frame missing a packet is dropped, and every frame after it until a key frame.
    let (mut broken, mut expected) = (false, 0);
    for (i, frame) in frames.iter().enumerate() {
        broken = (broken && !frame.1) || unrepaired.iter().any(|u| u.1 == i);
        expected += usize::from(!broken);
    }

    let mut rec = video(CodecKind::Vp8);
    let ran = run(&mut rec, wire);
    let stats = rec.stats();
    assert_eq!(stats.gaps, runs, "repaired packets never make a gap");
    assert_eq!(stats.lost_packets, unrepaired.len() as u64);
    assert_eq!(stats.dropped.get("too_old"), 0, "repairs in time");
    assert_eq!(stats.frames, expected as u64);
    assert!(expected < frames.len());
    assert!(ran.requests[0] >= unrepaired[0].2, "none before a loss");
    // Each unrepaired loss is asked for once given up on, unless a request for an earlier
    // one is under `keyframe_retry` old.
    let (wait, retry) = (DEFAULT_MAX_WAIT + FRAME * 2, DEFAULT_KEYFRAME_RETRY);
    for &(_, _, lost) in &unrepaired {
        let asked = |r: &&Instant| **r + retry > lost && **r <= lost + wait;
        assert!(ran.requests.iter().any(|r| asked(&r)));
    }
    assert_eq!(ran.files.len(), 1);
    check_video("track-vp8-loss", &ran.files[0], "vp8", (64, 48), expected);
}

#[test]
fn mid_stream_start_requests_a_key_frame_at_once() {
    let stream = vp8_stream(VP8_IVF);
    let wire = schedule(&stream[1..], 0, 0, Instant::now());
    let first_done = wire.iter().filter(|w| w.1 == 0).map(|w| w.0).max().unwrap();
    let key_arrives = wire.iter().find(|w| w.1 == 7).unwrap().0;
    let mut rec = video(CodecKind::Vp8);
    let ran = run(&mut rec, wire);
    assert_eq!(ran.outputs[0], (first_done, TrackOutput::RequestKeyframe));
    assert_eq!(ran.requests.len(), 1, "one per second");
    let start = ran
        .outputs
        .iter()
        .find(|o| matches!(o.1, TrackOutput::FileStart { .. }));
    assert!(
        start.unwrap().0 >= key_arrives,
        "no file before the key frame"
    );
    assert_eq!(ran.files[0].first_timestamp, stream[8].0);
    assert_eq!(rec.stats().dropped.get("waiting_for_keyframe"), 7);
    check_video("track-vp8-mid", &ran.files[0], "vp8", (64, 48), 7);
}

const TWO_FILES: [(bool, u32); 4] = [(true, 0), (false, 0), (true, 1), (false, 1)];

/// The H.264 fixture through FU-A: one file; sent again with a new SPS (another
/// `level_idc`, H.264 §7.3.2.1.1), as after a publisher's encoder restart: a second file.
#[test]
fn h264_through_fu_a_then_a_new_sps() {
    let (frames, sps, pps) = h264_frames();
    let offset = frames.len() as u64 * TICKS_30FPS;
    let pass = |n: u64, level: u8| {
        frames.iter().map(move |f| {
            let mut payloads = h264_payloads(&f.data);
            let sps = payloads.iter_mut().filter(|p| p[0] & 0x1f == 7);
            sps.for_each(|p| p[3] = level);
            Sent(n * offset + f.timestamp, f.keyframe, payloads)
        })
    };
    let once: Vec<Sent> = pass(0, sps[3]).collect();
    let fu_a = once.iter().flat_map(|f| &f.2).filter(|p| p[0] & 0x1f == 28);
    assert!(fu_a.count() > 10, "big NAL units go as FU-A");
    let mut rec = video(CodecKind::H264);
    let ran = run(&mut rec, schedule(&once, 0, 90_000, Instant::now()));
    assert!(ran.requests.is_empty());
    let h264 = |sps: &[u8]| CodecConfig::H264 {
        width: 64,
        height: 48,
        sps: sps.to_vec(),
        pps: pps.clone(),
    };
    assert_eq!((ran.files.len(), &ran.files[0].config), (1, &h264(&sps)));
    check_video("track-h264", &ran.files[0], "h264", (64, 48), 15);

    let level = if sps[3] == 31 { 30 } else { 31 };
    let twice: Vec<Sent> = pass(0, sps[3]).chain(pass(1, level)).collect();
    let mut rec = video(CodecKind::H264);
    let ran = run(&mut rec, schedule(&twice, 9, u32::MAX - 9, Instant::now()));
    assert_eq!(ran.order, TWO_FILES);
    let (first, second) = (&ran.files[0], &ran.files[1]);
    assert_eq!(
        second.config,
        h264(&[&sps[..3], &[level], &sps[4..]].concat())
    );
    assert_eq!(second.first_timestamp, first.first_timestamp + offset);
    check_video("track-h264-sps0", first, "h264", (64, 48), 15);
    check_video("track-h264-sps1", second, "h264", (64, 48), 15);
}

/// A VP8 key frame of another size (a simulcast layer switch) starts a new file exactly
/// when the writer's `accepts` refuses the new config.
#[test]
fn a_vp8_size_change_follows_the_writer() {
    let mut frames = vp8_stream(VP8_IVF);
    let offset = frames.len() as u64 * TICKS_30FPS;
    let small = vp8_stream(VP8_32X24_IVF).into_iter();
    frames.extend(small.map(|f| Sent(f.0 + offset, f.1, f.2)));
    assert_eq!(frames.len(), 24);
    let limits = FragmentLimits::default();
    let (writer, _) = Mp4Writer::new(&vp8_config(64, 48), limits).unwrap();
    let split = !writer.accepts(&vp8_config(32, 24));
    let mut rec = video(CodecKind::Vp8);
    let ran = run(&mut rec, schedule(&frames, 70_000, 0, Instant::now()));
    assert_eq!(rec.stats().files, 1 + u64::from(split));
    assert_eq!(rec.stats().frames, 24);
    if split {
        assert_eq!(ran.order, TWO_FILES);
        assert_eq!(ran.files[1].config, vp8_config(32, 24));
        assert_eq!(ran.files[1].first_timestamp, offset);
        check_video("track-vp8-big", &ran.files[0], "vp8", (64, 48), 15);
        check_video("track-vp8-small", &ran.files[1], "vp8", (32, 24), 9);
    } else {
        check_video("track-vp8-sizes", &ran.files[0], "vp8", (64, 48), 24);
    }
}

#[test]
fn publisher_restart_keeps_one_file() {
    for seq_jump in [0, 1 << 20] {
        let mut rec = video(CodecKind::Vp8);
        let stream = vp8_stream(VP8_IVF);
        let t0 = Instant::now();
        let mut wire = schedule(&stream, 10, 0, t0);
        let next = wire.last().unwrap().2.seq + 1 + seq_jump;
        wire.extend(schedule(&stream, next, 0x8000_1234, t0 + FRAME * 20));
        let ran = run(&mut rec, wire);
        assert!(
            ran.requests.is_empty(),
            "the new source starts with a key frame"
        );
        let totals = ran.files[0].totals.unwrap();
        assert_eq!((ran.files.len(), totals.samples), (1, 30));
        assert_eq!(totals.discontinuities, 1);
        assert_eq!(rec.stats().gaps, u64::from(seq_jump > 0));
    }
}

#[test]
fn opus_loss_is_counted_never_waits_for_key_frames() {
    let mut rng = StdRng::seed_from_u64(5);
    let t0 = Instant::now();
    let (mut wire, mut lost) = (Vec::new(), Vec::new());
    let payload: Arc<[u8]> = opus_silence(true).into();
    for seq in 0..150u64 {
        if seq > 0 && seq < 149 && rng.random_bool(0.05) {
            lost.push(seq);
            continue;
        }
        let (timestamp, payload) = (960 * seq as u32, payload.clone());
        let packet = Packet {
            seq,
            timestamp,
            marker: false,
            payload,
        };
        wire.push((t0 + Duration::from_millis(20 * seq), 0, packet));
    }
    let runs = lost.iter().filter(|&&l| !lost.contains(&(l - 1))).count() as u64;
    let mut rec = TrackRecorder::new(CodecKind::Opus, 2, TrackOptions::default()).unwrap();
    let ran = run(&mut rec, wire);
    assert!(ran.requests.is_empty(), "audio never asks");
    let stats = rec.stats();
    assert!(lost.len() >= 3);
    assert_eq!((stats.gaps, stats.lost_packets), (runs, lost.len() as u64));
    assert_eq!(stats.frames, 150 - lost.len() as u64);
    assert_eq!(ran.files.len(), 1);
    assert_eq!(ran.files[0].config, CodecConfig::Opus { channels: 2 });
    let totals = ran.files[0].totals.unwrap();
    assert_eq!(totals.duration, 150 * 960, "lost packets keep the timeline");
    if ffmpeg_available() {
        let probe = probe("track-opus-loss", &ran.files[0].bytes);
        assert_eq!((probe.codec_name, probe.channels), ("opus".into(), Some(2)));
    }
}

#[test]
fn key_frame_requests_are_rate_limited_and_stop() {
    let stream = vp8_stream(VP8_IVF);
    // 3.3 s of delta frames (no key frame), then the whole stream from its key frame.
    let payloads = |i: u64| stream[1 + (i % 7) as usize].2.clone();
    let delta = |i: u64| Sent(i * TICKS_30FPS, false, payloads(i));
    let mut frames: Vec<Sent> = (0..100).map(delta).collect();
    let key = stream.iter().cloned();
    frames.extend(key.map(|f| Sent(f.0 + 100 * TICKS_30FPS, f.1, f.2)));
    let retry = Duration::from_secs(1);
    let options = TrackOptions {
        keyframe_retry: retry,
        ..Default::default()
    };
    let mut rec = TrackRecorder::new(CodecKind::Vp8, 0, options).unwrap();
    let t0 = Instant::now();
    let requests = run(&mut rec, schedule(&frames, 0, 0, t0)).requests;
    assert!(requests.windows(2).all(|w| w[1] - w[0] >= retry));
    assert_eq!(requests.len(), 4, "at 0, 1, 2 and 3 s: {requests:?}");
    assert!(requests[3] < t0 + FRAME * 100, "none after the key frame");
    assert_eq!((rec.stats().keyframe_requests, rec.stats().frames), (4, 15));
}

#[test]
fn a_caller_that_stops_polling_holds_bounded_memory() {
    let mut options = TrackOptions::default();
    (options.max_packets, options.limits.max_samples) = (256, 1);
    let mut rec = TrackRecorder::new(CodecKind::Vp8, 0, options).unwrap();
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(11);
    let mut wire = schedule(&vp8_loops(20), 0, 0, t0);
    // Then a flood of garbage around the same sequence numbers.
    let end = wire.last().unwrap().0;
    for k in 0..20_000u32 {
        let len = rng.random_range(0..300);
        let payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let packet = Packet {
            seq: 3000 + u64::from(k) + rng.random_range(0..64),
            timestamp: rng.random(),
            marker: rng.random(),
            payload: payload.into(),
        };
        wire.push((end + Duration::from_micros(u64::from(k) * 50), 0, packet));
    }
    for (at, _, packet) in wire {
        rec.handle_packet(at, packet);
        rec.handle_timeout(at);
        assert!(rec.queued() <= MAX_QUEUED + 16 && rec.buffered_packets() <= 256);
    }
    assert!(rec.stats().dropped.get("full") > 0, "{:?}", rec.stats());
    let mut outputs: Vec<_> = poll(&mut rec).collect();
    rec.finish(t0 + Duration::from_secs(60));
    outputs.extend(poll(&mut rec));
    assert!(rec.is_finished());
    assert!(files(&outputs).iter().all(|f| f.totals.is_some()));
}

#[test]
fn every_label_is_listed_and_bad_tracks_are_refused() {
    use DropReason::*;
    let reasons = [Malformed, Unsupported, TooLarge, Loss, MissingConfig];
    let more = [WaitingForKeyframe, AfterFrameEnd, Incomplete, Empty];
    let reasons = reasons.into_iter().chain(more);
    let push = [PushError::TooOld, PushError::Duplicate, PushError::Full].map(PushError::as_str);
    let mp4 = [
        Mp4Error::EmptySample,
        Mp4Error::SampleTooLarge,
        Mp4Error::InvalidConfig(""),
    ];
    let mp4 = mp4.iter().map(Mp4Error::as_str).chain(["encode"]);
    for label in reasons.map(DropReason::as_str).chain(push).chain(mp4) {
        let listed = &DROP_LABELS[..DROP_LABELS.len() - 1];
        assert!(listed.contains(&label), "{label}");
    }
    assert!(TrackRecorder::new(CodecKind::H265, 0, TrackOptions::default()).is_err());
    assert!(TrackRecorder::new(CodecKind::Opus, 3, TrackOptions::default()).is_err());
}

/// `Fixture(from, count)`: packets of the VP8 fixture, sequence numbers continuing;
/// `Packet(seq step, timestamp step, marker, payload)`; `Wait(ms)`; `Poll`: drain.
#[derive(Clone, Debug)]
enum Op {
    Fixture(usize, usize),
    Packet(i64, u32, bool, Vec<u8>),
    Wait(u64),
    Poll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..200usize, 1..40usize).prop_map(|(from, count)| Op::Fixture(from, count)),
        4 => (prop_oneof![-3..4i64, Just(1 << 20)], prop_oneof![Just(0u32), any::<u32>()],
              any::<bool>(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(seq, ts, marker, payload)| Op::Packet(seq, ts, marker, payload)),
        1 => (0..2000u64).prop_map(Op::Wait),
        2 => Just(Op::Poll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_packets_never_panic_and_outputs_stay_consistent(
        kind in prop::sample::select(vec![CodecKind::Vp8, CodecKind::Vp9, CodecKind::H264,
                                          CodecKind::Av1, CodecKind::Opus]),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        // 64x48, 32x24 then 64x48 again: two resolution changes.
        let mut frames = vp8_stream(VP8_IVF);
        frames.extend(vp8_stream(VP8_32X24_IVF).into_iter().chain(vp8_stream(VP8_IVF)));
        let ts = |i: usize, f: &Sent| Sent(i as u64 * TICKS_30FPS, f.1, f.2.clone());
        let frames: Vec<Sent> = frames.iter().enumerate().map(|(i, f)| ts(i, f)).collect();
        let fixture = schedule(&frames, 0, 0, Instant::now());
        let options = TrackOptions { max_packets: 64, ..TrackOptions::default() };
        let mut rec = TrackRecorder::new(kind, 2, options).unwrap();
        let mut now = Instant::now();
        let (mut seq, mut ts, mut outputs) = (1000u64, 0u32, Vec::new());
        for op in ops {
            match op {
                Op::Fixture(from, count) => {
                    for (_, _, packet) in fixture.iter().skip(from).take(count) {
                        seq += 1;
                        rec.handle_packet(now, Packet { seq, ..packet.clone() });
                    }
                }
                Op::Packet(step, dt, marker, payload) => {
                    seq = seq.saturating_add_signed(step);
                    ts = ts.wrapping_add(dt);
                    let payload = Arc::from(payload.as_slice());
                    rec.handle_packet(now, Packet { seq, timestamp: ts, marker, payload });
                }
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    rec.handle_timeout(now);
                }
                Op::Poll => outputs.extend(poll(&mut rec)),
            }
            prop_assert!(rec.queued() <= MAX_QUEUED + 16);
            prop_assert!(rec.buffered_packets() <= 64);
            prop_assert!(rec.depacketizer.buffered() <= rec.depacketizer.max_frame_size());
        }
        rec.finish(now);
        outputs.extend(poll(&mut rec));
        prop_assert!(rec.is_finished());
        let files = files(&outputs);
        prop_assert!(files.iter().all(|f| f.totals.is_some()));
        let stats = rec.stats();
        prop_assert_eq!(stats.files, files.len() as u64);
        let bytes: usize = files.iter().map(|f| f.bytes.len()).sum();
        prop_assert_eq!(stats.bytes_written, bytes as u64);
        if kind == CodecKind::Opus {
            prop_assert_eq!(stats.keyframe_requests, 0);
        }
    }
}
