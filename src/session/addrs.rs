//! Which participant a datagram is for, within one room or subscriber shard: STUN
//! connectivity checks name the session by the server's ICE ufrag (RFC 8445 §7.2.2)
//! and teach its source address; everything else (DTLS, SRTP, SRTCP) is matched by
//! source address (RFC 8445 §7.3: media flows only on a checked pair).
//!
//! An address is bound to a session only by a STUN message whose integrity the
//! session's own `Rtc` verified (RFC 8489 §14.5, with the session's ICE password): a
//! stranger who knows or guesses a ufrag can neither reach the session nor move its
//! media. Each new binding is also reported ([`AddrBook::take_bindings`]) so the
//! receive loop's demux learns the address only once it is verified.

use std::collections::HashMap;
use std::net::SocketAddr;

use str0m::net::Protocol;

use crate::ids::ParticipantId;
use crate::metrics::DropReason;
use crate::net::classify::{
    classify, server_ufrag, stun_use_candidate, stun_username, PacketClass,
};
use crate::net::Datagram;

/// A client's end of a path: the transport and its source address. A UDP and a TCP
/// path from the same address and port are different paths (and may be different
/// clients).
type Path = (Protocol, SocketAddr);

/// The ufrag and address indexes of the participants one owner drives.
#[derive(Default)]
pub(crate) struct AddrBook {
    by_addr: HashMap<Path, ParticipantId>,
    by_ufrag: HashMap<String, ParticipantId>,
    /// UDP addresses verified since the last [`AddrBook::take_bindings`] (a TCP
    /// connection routes itself and needs no demux binding).
    verified: Vec<SocketAddr>,
    /// Where each participant's client last nominated a path (USE-CANDIDATE).
    nominated: HashMap<ParticipantId, Path>,
}

/// Where a datagram goes within one room or shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// To this participant.
    Found(ParticipantId),
    /// To this participant, which nominates (USE-CANDIDATE, RFC 8445 §7.1.2) a path
    /// from another address than the one it nominated before: it moved (NAT
    /// rebinding, a new network) without an ICE restart.
    Moved(ParticipantId),
    /// Nobody here: not STUN naming a known ufrag, and from no bound address.
    Unknown,
    /// A STUN message naming a session whose integrity did not verify: dropped.
    Unverified,
}

impl Lookup {
    /// The participant the datagram is for, or the reason it is dropped (counted by the
    /// caller as `switchboard_packets_dropped_total{reason}`).
    pub(crate) fn participant(self) -> Result<ParticipantId, DropReason> {
        match self {
            Lookup::Found(id) | Lookup::Moved(id) => Ok(id),
            Lookup::Unknown => Err(DropReason::UnknownSource),
            Lookup::Unverified => Err(DropReason::StunUnverified),
        }
    }
}

impl AddrBook {
    /// Route STUN checks naming `ufrag` to `id`.
    pub(crate) fn insert(&mut self, ufrag: String, id: ParticipantId) {
        self.by_ufrag.insert(ufrag, id);
    }

    /// An ICE restart: STUN checks name `id` by `new` from now on, no longer by `old`;
    /// the addresses it was bound to stay until checks bind another.
    pub(crate) fn replace_ufrag(&mut self, id: ParticipantId, old: &str, new: String) {
        self.by_ufrag.remove(old);
        self.by_ufrag.insert(new, id);
    }

    /// Forget `id` (its ufrag and every address it used).
    pub(crate) fn remove(&mut self, id: ParticipantId, ufrag: &str) {
        self.by_addr.retain(|_, v| *v != id);
        self.nominated.remove(&id);
        self.by_ufrag.remove(ufrag);
    }

    /// The participant `d` is for. A STUN message naming a known ufrag goes to that
    /// session only if `verify(id)` (the session's `Rtc` checked its integrity); then it
    /// (re)binds its source address, so a peer whose address changed is followed.
    pub(crate) fn lookup(
        &mut self,
        d: &Datagram,
        verify: impl FnOnce(ParticipantId) -> bool,
    ) -> Lookup {
        let path = (d.proto(), d.source);
        if classify(&d.contents) == PacketClass::Stun {
            let by_ufrag = stun_username(&d.contents)
                .and_then(server_ufrag)
                .and_then(|u| self.by_ufrag.get(u))
                .copied();
            if let Some(id) = by_ufrag {
                if !verify(id) {
                    return Lookup::Unverified;
                }
                let moved = stun_use_candidate(&d.contents)
                    && self
                        .nominated
                        .insert(id, path)
                        .is_some_and(|before| before != path);
                self.by_addr.insert(path, id);
                if path.0 == Protocol::Udp {
                    self.verified.push(d.source);
                }
                return if moved {
                    Lookup::Moved(id)
                } else {
                    Lookup::Found(id)
                };
            }
        }
        match self.by_addr.get(&path) {
            Some(id) => Lookup::Found(*id),
            None => Lookup::Unknown,
        }
    }

    /// Addresses bound by a verified STUN message since the last call.
    pub(crate) fn take_bindings(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.verified)
    }
}
