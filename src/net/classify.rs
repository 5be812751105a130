//! Classifying datagrams on the one shared UDP port (RFC 7983 §7) and reading the STUN
//! USERNAME (RFC 8489 §14.3) so a connectivity check can be routed to its room.
//! Pure functions over bytes; never panics on any input.

/// What a datagram on a WebRTC port is, by its first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    /// STUN, first byte 0..=3.
    Stun,
    /// DTLS, first byte 20..=63.
    Dtls,
    /// RTP or RTCP, first byte 128..=191.
    Rtp,
    /// Anything else (ZRTP, TURN channel data, garbage).
    Other,
}

/// Classify a datagram by its first byte (RFC 7983 §7). An empty datagram is `Other`.
pub fn classify(buf: &[u8]) -> PacketClass {
    match buf.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Other,
    }
}

/// STUN magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// STUN USERNAME attribute type (RFC 8489 §18.3).
const ATTR_USERNAME: u16 = 0x0006;
/// USE-CANDIDATE attribute type (RFC 8445 §16.1).
const ATTR_USE_CANDIDATE: u16 = 0x0025;
/// STUN header length in bytes (RFC 8489 §5).
const HEADER_LEN: usize = 20;

/// The USERNAME attribute of a STUN message, if it is a well-formed STUN message that
/// carries one. Returns `None` for anything malformed: a first byte outside STUN's range
/// (0–3, RFC 7983 §7, the same rule as [`classify`]), wrong cookie, a length that does
/// not fit the datagram, or truncated attributes.
pub fn stun_username(buf: &[u8]) -> Option<&[u8]> {
    stun_attribute(buf, ATTR_USERNAME)
}

/// Whether a well-formed STUN message carries USE-CANDIDATE (RFC 8445 §7.1.2): the
/// controlling agent nominates the pair it is sent on.
pub fn stun_use_candidate(buf: &[u8]) -> bool {
    stun_attribute(buf, ATTR_USE_CANDIDATE).is_some()
}

/// The value of the first attribute of type `typ` of a well-formed STUN message (see
/// [`stun_username`] for what is malformed).
fn stun_attribute(buf: &[u8], typ: u16) -> Option<&[u8]> {
    if buf.len() < HEADER_LEN || buf[0] > 3 || buf[4..8] != MAGIC_COOKIE {
        return None;
    }
    let msg_len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if !msg_len.is_multiple_of(4) || HEADER_LEN + msg_len > buf.len() {
        return None;
    }
    let mut attrs = &buf[HEADER_LEN..HEADER_LEN + msg_len];
    while attrs.len() >= 4 {
        let t = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let padded = (len + 3) & !3;
        if 4 + len > attrs.len() {
            return None;
        }
        if t == typ {
            return Some(&attrs[4..4 + len]);
        }
        attrs = attrs.get(4 + padded..)?;
    }
    None
}

/// The receiver's ufrag in a connectivity check's USERNAME `"<receiver>:<sender>"`
/// (RFC 8445 §7.2.2): for a check sent to us, our own (server) ufrag.
pub fn server_ufrag(username: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(username).ok()?;
    let (ours, _theirs) = s.split_once(':')?;
    Some(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binding request with a USERNAME and a trailing (fake) MESSAGE-INTEGRITY.
    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        attrs.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        attrs.extend_from_slice(&[0xAA; 20]);
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[0x00, 0x01]), PacketClass::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80, 96]), PacketClass::Rtp);
        assert_eq!(classify(&[0xbf]), PacketClass::Rtp);
        assert_eq!(classify(&[0x40]), PacketClass::Other);
        assert_eq!(classify(&[]), PacketClass::Other);
    }

    #[test]
    fn reads_username() {
        let msg = binding_request("0000002aabcdefgh:cl1ent");
        let user = stun_username(&msg).expect("username");
        assert_eq!(user, b"0000002aabcdefgh:cl1ent");
        assert_eq!(server_ufrag(user), Some("0000002aabcdefgh"));
    }

    #[test]
    fn reads_use_candidate() {
        let plain = binding_request("abcd:efgh");
        assert!(!stun_use_candidate(&plain));
        // USE-CANDIDATE (zero length) before the fake MESSAGE-INTEGRITY.
        let mut nominating = plain.clone();
        let at = nominating.len() - 24;
        nominating.splice(at..at, [0x00, 0x25, 0x00, 0x00]);
        let len = u16::from_be_bytes([nominating[2], nominating[3]]) + 4;
        nominating[2..4].copy_from_slice(&len.to_be_bytes());
        assert!(stun_use_candidate(&nominating));
        assert_eq!(stun_username(&nominating), Some(&b"abcd:efgh"[..]));
        for n in 0..nominating.len() {
            assert!(!stun_use_candidate(&nominating[..n]), "truncated at {n}");
        }
    }

    #[test]
    fn rejects_malformed() {
        let msg = binding_request("abcd:efgh");
        // Every truncation is refused, never a panic.
        for n in 0..msg.len() {
            assert_eq!(stun_username(&msg[..n]), None, "truncated at {n}");
        }
        let mut bad_cookie = msg.clone();
        bad_cookie[5] = 0;
        assert_eq!(stun_username(&bad_cookie), None);
        let mut bad_len = msg.clone();
        bad_len[3] = 0xff;
        assert_eq!(stun_username(&bad_len), None);
        // An attribute that claims more than the message holds.
        let mut overlong = msg;
        overlong[HEADER_LEN + 3] = 0xf0;
        assert_eq!(stun_username(&overlong), None);
        assert_eq!(server_ufrag(b"no-colon"), None);
        assert_eq!(server_ufrag(&[0xff, b':', 0x00]), None);
    }

    /// Found by the `datagram` fuzz target: a datagram whose first byte is in DTLS's range
    /// (20–63) but that otherwise looks like STUN gave a USERNAME while `classify` called
    /// it DTLS. Both now follow RFC 7983: STUN's first byte is 0–3.
    #[test]
    fn a_username_only_from_what_classifies_as_stun() {
        let msg = binding_request("abcd:efgh");
        for first in 0..=255u8 {
            let mut m = msg.clone();
            m[0] = first;
            let class = classify(&m);
            assert_eq!(
                stun_username(&m).is_some(),
                class == PacketClass::Stun,
                "first byte {first}: {class:?}"
            );
        }
    }

    #[test]
    fn no_username_attribute() {
        let mut msg = vec![0x00, 0x01, 0x00, 0x00];
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[0; 12]);
        assert_eq!(stun_username(&msg), None);
    }
}
