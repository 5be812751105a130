//! Which participant a datagram is for, within one room or subscriber shard: STUN
//! connectivity checks name the session by the server's ICE ufrag (RFC 8445 §7.2.2)
//! and teach its source address; everything else (DTLS, SRTP, SRTCP) is matched by
//! source address (RFC 8445 §7.3: media flows only on a checked pair).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::ParticipantId;
use crate::net::classify::{classify, server_ufrag, stun_username, PacketClass};
use crate::net::Datagram;

/// The ufrag and address indexes of the participants one owner drives.
#[derive(Default)]
pub struct AddrBook {
    by_addr: HashMap<SocketAddr, ParticipantId>,
    by_ufrag: HashMap<String, ParticipantId>,
}

impl AddrBook {
    /// Route STUN checks naming `ufrag` to `id`.
    pub fn insert(&mut self, ufrag: String, id: ParticipantId) {
        self.by_ufrag.insert(ufrag, id);
    }

    /// Forget `id` (its ufrag and every address it used).
    pub fn remove(&mut self, id: ParticipantId, ufrag: &str) {
        self.by_addr.retain(|_, v| *v != id);
        self.by_ufrag.remove(ufrag);
    }

    /// The participant `d` is for, if any. A STUN check naming a known ufrag (re)learns
    /// its source address, so a peer whose address changed is followed.
    pub fn lookup(&mut self, d: &Datagram) -> Option<ParticipantId> {
        if classify(&d.contents) == PacketClass::Stun {
            let by_ufrag = stun_username(&d.contents)
                .and_then(server_ufrag)
                .and_then(|u| self.by_ufrag.get(u))
                .copied();
            if let Some(id) = by_ufrag {
                self.by_addr.insert(d.source, id);
                return Some(id);
            }
        }
        self.by_addr.get(&d.source).copied()
    }
}
