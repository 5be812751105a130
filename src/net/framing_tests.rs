use super::*;

fn framed(packets: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        assert!(encode_frame(p, &mut out));
    }
    out
}

fn drain(d: &mut FrameDecoder) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut frames = Vec::new();
    while let Some(f) = d.next_frame()? {
        frames.push(f.to_vec());
    }
    Ok(frames)
}

#[test]
fn frames_come_out_whole_however_the_stream_is_cut() {
    let packets: Vec<Vec<u8>> = (1..40u8).map(|n| vec![n; n as usize * 7]).collect();
    let refs: Vec<&[u8]> = packets.iter().map(|p| &p[..]).collect();
    let stream = framed(&refs);
    for cut in [1, 2, 3, 5, 64, 1000, stream.len()] {
        let mut d = FrameDecoder::new(2000);
        let mut got = Vec::new();
        for chunk in stream.chunks(cut) {
            d.push(chunk);
            got.extend(drain(&mut d).unwrap());
        }
        assert_eq!(got, packets, "cut every {cut} bytes");
        assert_eq!(d.pending(), 0);
    }
}

#[test]
fn a_partial_frame_waits_for_the_rest() {
    let stream = framed(&[b"hello world"]);
    let mut d = FrameDecoder::new(2000);
    d.push(&stream[..1]);
    assert_eq!(d.next_frame(), Ok(None));
    d.push(&stream[1..5]);
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.pending(), 5);
    d.push(&stream[5..]);
    assert_eq!(d.next_frame(), Ok(Some(&b"hello world"[..])));
    assert_eq!(d.next_frame(), Ok(None));
}

#[test]
fn an_oversize_or_empty_frame_refuses_the_stream() {
    let mut d = FrameDecoder::new(2000);
    d.push(&[0x07, 0xD1]); // 2001
    assert_eq!(d.next_frame(), Err(FrameError::Oversize(2001)));
    let mut d = FrameDecoder::new(2000);
    d.push(&[0x07, 0xD0]); // exactly 2000: waits for its bytes
    assert_eq!(d.next_frame(), Ok(None));
    let mut d = FrameDecoder::new(2000);
    d.push(&[0, 0, 1, 2, 3]);
    assert_eq!(d.next_frame(), Err(FrameError::Empty));
}

#[test]
fn garbage_first_bytes_are_refused_without_reading_further() {
    // An HTTP request read as RFC 4571: "GE" is a length of 18,245 bytes.
    let mut d = FrameDecoder::new(2000);
    d.push(b"GET / HTTP/1.1\r\n");
    assert_eq!(d.next_frame(), Err(FrameError::Oversize(0x4745)));
}

#[test]
fn encode_refuses_what_cannot_be_framed() {
    let mut out = Vec::new();
    assert!(!encode_frame(&[], &mut out));
    assert!(!encode_frame(&vec![0; 65_536], &mut out));
    assert!(out.is_empty());
    assert!(encode_frame(&vec![9; 65_535], &mut out));
    assert_eq!(&out[..2], &[0xFF, 0xFF]);
}

/// A framed STUN Binding request as a browser's first ICE-TCP check starts.
fn binding_request_prefix() -> Vec<u8> {
    let mut v = vec![0x00, 0x50, 0x00, 0x01, 0x00, 0x3C, 0x21, 0x12, 0xA4, 0x42];
    v.extend_from_slice(&[7; 12]);
    v
}

#[test]
fn port_sharing_tells_ice_from_http_and_tls() {
    let ice = binding_request_prefix();
    assert_eq!(classify_first_bytes(&ice), FirstBytes::Ice);
    assert_eq!(classify_first_bytes(&ice[..FIRST_BYTES]), FirstBytes::Ice);
    for n in 0..FIRST_BYTES {
        assert_eq!(classify_first_bytes(&ice[..n]), FirstBytes::NeedMore, "{n}");
    }
    for other in [
        &b"GET /whep HTTP/1.1\r\n"[..],
        b"POST /api/whip/r HTTP/1.1\r\n",
        b"OPTIONS * HTTP/1.1\r\n",
        // TLS 1.2/1.3 ClientHello record header and handshake header.
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03,
        ],
        // SSL 3.0 record version (byte 2 is 0x00) still differs at the cookie.
        &[0x16, 0x03, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xFC, 0x03],
    ] {
        assert_eq!(classify_first_bytes(other), FirstBytes::Other, "{other:?}");
    }
    // Decided as soon as a byte rules ICE out.
    assert_eq!(classify_first_bytes(b"GET"), FirstBytes::Other);
    assert_eq!(classify_first_bytes(&[0x16, 0x03, 0x01]), FirstBytes::Other);
    // A Binding response or indication is not how a client opens.
    let mut response = ice.clone();
    response[2..4].copy_from_slice(&[0x01, 0x01]);
    assert_eq!(classify_first_bytes(&response), FirstBytes::Other);
    // A frame too short to hold a STUN header.
    let mut short = ice;
    short[..2].copy_from_slice(&[0x00, 0x08]);
    assert_eq!(classify_first_bytes(&short), FirstBytes::Other);
}
