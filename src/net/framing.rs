//! RFC 4571 framing for ICE over TCP (RFC 6544 §3): every STUN, DTLS and SRTP packet on
//! a TCP connection is preceded by its length as a 16-bit big-endian integer. And the
//! first-bytes test that tells such a connection from HTTP or TLS on a shared port.
//!
//! Pure functions and a sans-IO decoder over bytes; nothing here reads a socket, and
//! nothing panics on any input.

/// Why a connection's byte stream is refused. The connection is closed: RFC 4571 has no
/// way to resynchronise after a bad length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame announced more bytes than the limit (the largest datagram a room takes).
    #[error("frame of {0} bytes exceeds the limit")]
    Oversize(usize),
    /// A zero-length frame: no WebRTC packet is empty.
    #[error("empty frame")]
    Empty,
}

/// Incremental RFC 4571 decoder: feed it what the socket returned, however the stream
/// was cut, and take whole frames out.
///
/// Memory is bounded: it never holds more than one partial frame plus what one read
/// returned (the caller bounds that with its read buffer).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as frames.
    start: usize,
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::with_capacity(2 + max_frame),
            start: 0,
            max_frame,
        }
    }

    /// Append bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame's contents (without its length prefix), `Ok(None)` when more
    /// bytes are needed, or why the stream is refused (a length over the limit, or 0).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let rest = &self.buf[self.start..];
        let Some(head) = rest.get(..2) else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([head[0], head[1]]) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max_frame {
            return Err(FrameError::Oversize(len));
        }
        if rest.len() < 2 + len {
            return Ok(None);
        }
        let from = self.start + 2;
        self.start += 2 + len;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// Bytes held that are not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Append `packet` to `out` as one RFC 4571 frame. Returns `false` (and appends nothing)
/// for a packet that cannot be framed: empty or longer than 65,535 bytes.
pub fn encode_frame(packet: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(len) = u16::try_from(packet.len()) else {
        return false;
    };
    if len == 0 {
        return false;
    }
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    true
}

/// What the first bytes of a TCP connection on a shared port are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBytes {
    /// An RFC 4571-framed STUN Binding request (RFC 8489 §5, §6: class request, method
    /// Binding, the magic cookie): ICE over TCP.
    Ice,
    /// Anything else: HTTP, or a TLS ClientHello (first byte 22).
    Other,
    /// Fewer than [`FIRST_BYTES`] bytes so far and nothing decided yet.
    NeedMore,
}

/// Bytes needed to classify a connection: the 2-byte frame length, the STUN message
/// type and length, and the magic cookie.
pub const FIRST_BYTES: usize = 10;

/// Classify a connection on a shared port by its first bytes. An ICE client speaks
/// first with a Binding request (RFC 6544 §7.1: the active side sends the first check);
/// HTTP clients send an ASCII method, TLS clients a handshake record (RFC 8446 §5.1).
/// Neither has `00 01` at bytes 2–3 followed by the STUN magic cookie at bytes 6–9: an
/// HTTP request line is printable ASCII, and a TLS ClientHello has its 3-byte handshake
/// length at bytes 6–8, which would have to announce over 2 MB.
pub fn classify_first_bytes(first: &[u8]) -> FirstBytes {
    const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    // Decide early when a prefix already rules ICE out.
    let checks: [(usize, u8); 6] = [
        (2, BINDING_REQUEST[0]),
        (3, BINDING_REQUEST[1]),
        (6, MAGIC_COOKIE[0]),
        (7, MAGIC_COOKIE[1]),
        (8, MAGIC_COOKIE[2]),
        (9, MAGIC_COOKIE[3]),
    ];
    for (i, want) in checks {
        match first.get(i) {
            Some(&b) if b != want => return FirstBytes::Other,
            Some(_) => {}
            None => return FirstBytes::NeedMore,
        }
    }
    // The frame must hold at least the STUN header (20 bytes).
    if u16::from_be_bytes([first[0], first[1]]) < 20 {
        return FirstBytes::Other;
    }
    FirstBytes::Ice
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
