//! Writes real, decodable files for each codec to a temporary directory and checks them
//! with FFmpeg: `ffprobe` must report the codec, size and duration, and `ffmpeg` must
//! decode every frame without an error.
//!
//! The video comes from `tests/fixtures/record/` (64x48 `testsrc`, 15 frames at 30 fps,
//! key frames at 0 and 8, made once with FFmpeg's libvpx, libvpx-vp9, libaom-av1 and
//! libx264 encoders: IVF files and an H.264 Annex B stream with access unit delimiters),
//! converted here to the [`Frame`] form the depacketizer produces. Opus is built: 20 ms
//! CELT silence packets (RFC 6716 §3.1).
//!
//! FFmpeg must be installed (`apt-get install ffmpeg`); without it these tests fail unless
//! `SWITCHBOARD_SKIP_FFPROBE=1` is set.

use std::path::PathBuf;
use std::process::Command;

use super::tests::{opus_silence, read_file, write_file};
use super::*;

pub(crate) const VP8_IVF: &[u8] = include_bytes!("../../../tests/fixtures/record/vp8.ivf");
const VP9_IVF: &[u8] = include_bytes!("../../../tests/fixtures/record/vp9.ivf");
const AV1_IVF: &[u8] = include_bytes!("../../../tests/fixtures/record/av1.ivf");
const H264_ANNEX_B: &[u8] = include_bytes!("../../../tests/fixtures/record/h264.h264");

/// RTP ticks per frame at 30 fps on the 90 kHz clock.
pub(crate) const TICKS_30FPS: u64 = 3000;

/// The frames of an IVF file (32-byte header, then 12-byte frame headers: 32-bit size,
/// 64-bit timestamp, little-endian), timestamps converted to the 90 kHz clock.
pub(crate) fn ivf_frames(ivf: &[u8]) -> Vec<(u64, Vec<u8>)> {
    assert_eq!(&ivf[..4], b"DKIF");
    let rate = u32::from_le_bytes(ivf[16..20].try_into().unwrap());
    let scale = u32::from_le_bytes(ivf[20..24].try_into().unwrap());
    let mut frames = Vec::new();
    let mut at = 32;
    while at + 12 <= ivf.len() {
        let size = u32::from_le_bytes(ivf[at..at + 4].try_into().unwrap()) as usize;
        let pts = u64::from_le_bytes(ivf[at + 4..at + 12].try_into().unwrap());
        frames.push((
            pts * 90_000 * u64::from(scale) / u64::from(rate),
            ivf[at + 12..at + 12 + size].to_vec(),
        ));
        at += 12 + size;
    }
    frames
}

/// VP8 key frame: bit 0 of the frame tag is 0 (RFC 6386 §9.1).
pub(crate) fn vp8_frames() -> Vec<Frame> {
    ivf_frames(VP8_IVF)
        .into_iter()
        .map(|(timestamp, data)| Frame {
            timestamp,
            keyframe: data[0] & 1 == 0,
            data,
        })
        .collect()
}

/// VP9 key frame, profiles 0–2: `frame_marker` 2, profile bits, `show_existing_frame` 0,
/// `frame_type` 0 (VP9 bitstream §6.2).
fn vp9_frames() -> Vec<Frame> {
    ivf_frames(VP9_IVF)
        .into_iter()
        .map(|(timestamp, data)| Frame {
            timestamp,
            keyframe: data[0] & 0b1100_1100 == 0b1000_0000,
            data,
        })
        .collect()
}

/// AV1 temporal units split into OBUs (AV1 §5.3: header, optional extension, `leb128`
/// size): temporal delimiters dropped (AV1-ISOBMFF §2.4), a unit with a sequence header is
/// a key frame. Returns the frames and the first sequence header OBU.
fn av1_frames() -> (Vec<Frame>, Vec<u8>) {
    let mut sequence_header = None;
    let frames = ivf_frames(AV1_IVF)
        .into_iter()
        .map(|(timestamp, tu)| {
            let (mut data, mut keyframe, mut at) = (Vec::new(), false, 0);
            while at < tu.len() {
                let header = tu[at];
                let mut p = at + 1 + usize::from(header & 0x04 != 0);
                assert!(header & 0x02 != 0, "IVF OBUs carry their size");
                let (mut size, mut shift) = (0usize, 0);
                loop {
                    size |= usize::from(tu[p] & 0x7f) << shift;
                    shift += 7;
                    p += 1;
                    if tu[p - 1] & 0x80 == 0 {
                        break;
                    }
                }
                let obu = &tu[at..p + size];
                match (header >> 3) & 0x0f {
                    2 => {} // OBU_TEMPORAL_DELIMITER
                    1 => {
                        keyframe = true;
                        sequence_header.get_or_insert_with(|| obu.to_vec());
                        data.extend_from_slice(obu);
                    }
                    _ => data.extend_from_slice(obu),
                }
                at = p + size;
            }
            Frame {
                timestamp,
                keyframe,
                data,
            }
        })
        .collect();
    (frames, sequence_header.expect("a sequence header"))
}

/// H.264 Annex B (start codes) → access units at each delimiter (type 9), as 4-byte
/// length-prefixed NAL units without the delimiters (ISO/IEC 14496-15 §5.3.2); an access
/// unit with an IDR slice (type 5) is a key frame. Returns the frames, SPS and PPS.
pub(crate) fn h264_frames() -> (Vec<Frame>, Vec<u8>, Vec<u8>) {
    let starts: Vec<usize> = H264_ANNEX_B
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .map(|(i, _)| i + 3)
        .collect();
    let mut nals = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let mut end = starts
            .get(k + 1)
            .map_or(H264_ANNEX_B.len(), |&next| next - 3);
        while end > start && H264_ANNEX_B[end - 1] == 0 {
            end -= 1; // the leading zero of a 4-byte start code
        }
        nals.push(&H264_ANNEX_B[start..end]);
    }
    let (mut sps, mut pps) = (None, None);
    let mut frames: Vec<Frame> = Vec::new();
    for nal in nals {
        match nal[0] & 0x1f {
            9 => {
                frames.push(Frame {
                    timestamp: frames.len() as u64 * TICKS_30FPS,
                    keyframe: false,
                    data: Vec::new(),
                });
                continue;
            }
            7 => {
                sps.get_or_insert_with(|| nal.to_vec());
            }
            8 => {
                pps.get_or_insert_with(|| nal.to_vec());
            }
            5 => frames.last_mut().expect("AUD first").keyframe = true,
            _ => {}
        }
        let frame = frames.last_mut().expect("AUD first");
        frame
            .data
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        frame.data.extend_from_slice(nal);
    }
    (frames, sps.expect("an SPS"), pps.expect("a PPS"))
}

/// True when FFmpeg's tools run; false (skip) only with `SWITCHBOARD_SKIP_FFPROBE=1`.
pub(crate) fn ffmpeg_available() -> bool {
    let found = Command::new("ffprobe").arg("-version").output().is_ok()
        && Command::new("ffmpeg").arg("-version").output().is_ok();
    if found {
        return true;
    }
    assert!(
        std::env::var("SWITCHBOARD_SKIP_FFPROBE").as_deref() == Ok("1"),
        "ffprobe/ffmpeg not found: install FFmpeg (apt-get install ffmpeg) or set \
         SWITCHBOARD_SKIP_FFPROBE=1 to skip the recorder's FFmpeg checks"
    );
    eprintln!("SWITCHBOARD_SKIP_FFPROBE=1: FFmpeg checks skipped");
    false
}

/// What ffprobe says about one file's only stream.
#[derive(Debug)]
pub(crate) struct Probe {
    pub(crate) codec_name: String,
    pub(crate) width: Option<u64>,
    pub(crate) height: Option<u64>,
    pub(crate) channels: Option<u64>,
    /// Frames decoded by `-count_frames`.
    pub(crate) frames: Option<u64>,
    pub(crate) duration: f64,
    pub(crate) size: u64,
}

/// Writes `file` to a temporary path, probes it, decodes it fully and removes it.
pub(crate) fn probe(name: &str, file: &[u8]) -> Probe {
    let path: PathBuf = std::env::temp_dir().join(format!(
        "switchboard-record-{}-{name}.mp4",
        std::process::id()
    ));
    std::fs::write(&path, file).expect("temp file written");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(decode.status.success(), "ffmpeg decode failed");
    assert!(
        decode.stderr.is_empty(),
        "ffmpeg decoding {name}: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let streams = json["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "one track per file");
    let stream = &streams[0];
    let format = &json["format"];
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let probe = Probe {
        codec_name: stream["codec_name"].as_str().unwrap_or_default().to_owned(),
        width: stream["width"].as_u64(),
        height: stream["height"].as_u64(),
        channels: stream["channels"].as_u64(),
        frames: number(&stream["nb_read_frames"]).map(|n| n as u64),
        duration: number(&format["duration"])
            .or_else(|| number(&stream["duration"]))
            .expect("a duration"),
        size: number(&format["size"]).unwrap_or_default() as u64,
    };
    eprintln!("ffprobe {name}: {probe:?}");
    probe
}

fn check_video(name: &str, config: CodecConfig, frames: Vec<Frame>, codec_name: &str) {
    let count = frames.len();
    let keys = frames.iter().filter(|f| f.keyframe).count();
    let (file, totals) = write_file(&config, FragmentLimits::default(), frames);
    let read = read_file(&file);
    assert_eq!(read.samples().count(), count);
    assert_eq!(read.samples().filter(|s| s.sync).count(), keys);
    assert_eq!(read.fragments.len(), keys, "a fragment per key frame");
    assert_eq!(totals.duration, count as u64 * TICKS_30FPS);
    if !ffmpeg_available() {
        return;
    }
    let probe = probe(name, &file);
    assert_eq!(probe.codec_name, codec_name);
    assert_eq!((probe.width, probe.height), (Some(64), Some(48)));
    assert_eq!(probe.frames, Some(count as u64), "every frame decodes");
    assert!(
        (probe.duration - count as f64 / 30.0).abs() < 0.001,
        "{probe:?}"
    );
    assert_eq!(probe.size, file.len() as u64);
}

#[test]
fn vp8_file_plays() {
    let frames = vp8_frames();
    assert_eq!(frames.len(), 15);
    let config = CodecConfig::Vp8 {
        width: 64,
        height: 48,
    };
    check_video("vp8", config, frames, "vp8");
}

#[test]
fn vp9_file_plays() {
    let config = CodecConfig::Vp9 {
        width: 64,
        height: 48,
        profile: 0,
        bit_depth: 8,
    };
    check_video("vp9", config, vp9_frames(), "vp9");
}

#[test]
fn av1_file_plays() {
    let (frames, sequence_header) = av1_frames();
    let config = CodecConfig::Av1 {
        width: 64,
        height: 48,
        sequence_header,
    };
    check_video("av1", config, frames, "av1");
}

#[test]
fn h264_file_plays() {
    let (frames, sps, pps) = h264_frames();
    let config = CodecConfig::H264 {
        width: 64,
        height: 48,
        sps,
        pps,
    };
    check_video("h264", config, frames, "h264");
}

#[test]
fn opus_file_plays() {
    for channels in [1u8, 2] {
        let frames = (0..50u64).map(|i| Frame {
            timestamp: 960 * i,
            keyframe: true,
            data: opus_silence(channels == 2),
        });
        let config = CodecConfig::Opus { channels };
        let (file, totals) = write_file(&config, FragmentLimits::default(), frames);
        assert_eq!(totals.duration, 48_000);
        if !ffmpeg_available() {
            return;
        }
        let probe = probe(&format!("opus{channels}"), &file);
        assert_eq!(probe.codec_name, "opus");
        assert_eq!(probe.channels, Some(u64::from(channels)));
        assert_eq!(probe.frames, Some(50), "every packet decodes");
        assert!((probe.duration - 1.0).abs() < 0.001, "{probe:?}");
    }
}
