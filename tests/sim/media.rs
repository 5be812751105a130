//! Synthetic media for the simulation: VP8 RTP payloads (RFC 7741 payload descriptor and,
//! on the first packet of a frame, a VP8 payload header — a keyframe one with the start
//! code and dimensions, or a delta one) and Opus-sized audio payloads. After the codec
//! bytes every payload carries an 8-byte packet counter, a 2-byte body length and a body
//! derived from the counter, so a receiver can check each payload byte for byte.

/// Video: packets per frame.
pub const PACKETS_PER_FRAME: u64 = 4;
/// Video: body bytes of a keyframe packet / a delta frame packet.
const KEY_BODY: usize = 1000;
const DELTA_BODY: usize = 500;
/// Audio: body bytes of one 20 ms Opus packet.
const AUDIO_BODY: usize = 80;

/// What a parsed payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The sender's packet counter (per kind).
    pub counter: u64,
    /// Video: this packet starts a frame (descriptor S=1, PID=0).
    pub frame_start: bool,
    /// Video: this packet starts a keyframe (frame start and P bit 0).
    pub keyframe_start: bool,
}

/// Why a payload failed to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corrupt {
    /// Too short for its headers.
    Truncated(usize),
    /// The length field disagrees with the bytes present.
    Length { declared: usize, present: usize },
    /// A keyframe header without the VP8 start code.
    StartCode,
    /// A body byte differs from the pattern.
    Body { counter: u64, offset: usize },
}

fn pattern(counter: u64, i: usize) -> u8 {
    (counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i as u8).wrapping_mul(31)
}

fn body(out: &mut Vec<u8>, counter: u64, len: usize) {
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend((0..len).map(|i| pattern(counter, i)));
}

fn check_body(counter_at: usize, p: &[u8]) -> Result<u64, Corrupt> {
    let head = p
        .get(counter_at..counter_at + 10)
        .ok_or(Corrupt::Truncated(p.len()))?;
    let counter = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
    let declared = u16::from_be_bytes([head[8], head[9]]) as usize;
    let rest = &p[counter_at + 10..];
    if rest.len() != declared {
        return Err(Corrupt::Length {
            declared,
            present: rest.len(),
        });
    }
    if let Some(offset) = rest
        .iter()
        .enumerate()
        .position(|(i, b)| *b != pattern(counter, i))
    {
        return Err(Corrupt::Body { counter, offset });
    }
    Ok(counter)
}

/// The payload of packet `index` (0-based) of a video frame; `counter` is the packet's
/// running number over the whole video stream.
pub fn vp8_payload(counter: u64, keyframe: bool, index: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(KEY_BODY + 32);
    let first = index == 0;
    // Payload descriptor: X=0, N=0, S=first, PID=0.
    p.push(if first { 0x10 } else { 0x00 });
    if first {
        if keyframe {
            // Frame tag: P=0 (key frame), version 0, show_frame=1, first partition size.
            p.extend_from_slice(&[0x10, 0x02, 0x00]);
            // Start code and 640x360, no scaling.
            p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
        } else {
            // Frame tag: P=1 (inter frame), show_frame=1.
            p.extend_from_slice(&[0x11, 0x02, 0x00]);
        }
    }
    body(
        &mut p,
        counter,
        if keyframe { KEY_BODY } else { DELTA_BODY },
    );
    p
}

/// Parse and verify a payload made by [`vp8_payload`].
pub fn parse_vp8(p: &[u8]) -> Result<Parsed, Corrupt> {
    let d = *p.first().ok_or(Corrupt::Truncated(0))?;
    let frame_start = d & 0x10 != 0 && d & 0x07 == 0;
    let (keyframe_start, at) = if frame_start {
        let tag = *p.get(1).ok_or(Corrupt::Truncated(p.len()))?;
        if tag & 0x01 == 0 {
            if p.get(4..7) != Some(&[0x9d, 0x01, 0x2a][..]) {
                return Err(Corrupt::StartCode);
            }
            (true, 11)
        } else {
            (false, 4)
        }
    } else {
        (false, 1)
    };
    let counter = check_body(at, p)?;
    Ok(Parsed {
        counter,
        frame_start,
        keyframe_start,
    })
}

/// The payload of audio packet `counter`: a TOC byte (SILK-only 20 ms mono) and a body.
pub fn opus_payload(counter: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(AUDIO_BODY + 16);
    p.push(0x08);
    body(&mut p, counter, AUDIO_BODY);
    p
}

/// Parse and verify a payload made by [`opus_payload`].
pub fn parse_opus(p: &[u8]) -> Result<Parsed, Corrupt> {
    let counter = check_body(1, p)?;
    Ok(Parsed {
        counter,
        frame_start: false,
        keyframe_start: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_detect_corruption() {
        let k = vp8_payload(7, true, 0);
        assert_eq!(
            parse_vp8(&k),
            Ok(Parsed {
                counter: 7,
                frame_start: true,
                keyframe_start: true
            })
        );
        let d = vp8_payload(8, false, 0);
        assert!(!parse_vp8(&d).unwrap().keyframe_start);
        assert!(parse_vp8(&d).unwrap().frame_start);
        let m = vp8_payload(9, true, 2);
        assert!(!parse_vp8(&m).unwrap().frame_start);
        let mut bad = vp8_payload(10, false, 1);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(parse_vp8(&bad), Err(Corrupt::Body { .. })));
        assert_eq!(parse_opus(&opus_payload(3)).unwrap().counter, 3);
        assert!(parse_opus(&opus_payload(3)[..50]).is_err());
    }
}
