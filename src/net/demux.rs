//! Demultiplexing datagrams from the one UDP port to the room actor that owns them, in
//! O(1) per datagram.
//!
//! * STUN connectivity checks carry the server's ICE ufrag in USERNAME; the ufrag starts
//!   with the room's key (see [`RoomKey`]), so one lookup in the [`RoomTable`] — touched
//!   under a lock only on STUN, never on media — finds the room.
//! * Everything else (DTLS, SRTP, SRTCP) is routed by source address, learned from the
//!   STUN checks that must precede it (RFC 8445 §7.3: media only flows on a checked pair).
//!   That map is owned by the receive loop alone: no lock on the media path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use super::classify::{classify, server_ufrag, stun_username, PacketClass};
use crate::metrics::DropReason;

/// One received datagram, owned, on its way to a room.
#[derive(Debug)]
pub struct Datagram {
    /// Where it came from.
    pub source: SocketAddr,
    /// The local address it arrived on (one of our ICE candidates).
    pub destination: SocketAddr,
    /// When the receive loop got it (monotonic).
    pub received: Instant,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// A room's number, unique in this process for its lifetime, carried as the first
/// [`RoomKey::UFRAG_PREFIX_LEN`] hex digits of every server ICE ufrag in that room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomKey(pub u32);

impl RoomKey {
    /// Hex digits of the key at the start of a ufrag.
    pub const UFRAG_PREFIX_LEN: usize = 8;

    /// The ufrag prefix for this room.
    pub fn ufrag_prefix(self) -> String {
        format!("{:08x}", self.0)
    }

    /// The room key a server ufrag names, if it is one of ours.
    pub fn from_ufrag(ufrag: &str) -> Option<RoomKey> {
        let prefix = ufrag.get(..Self::UFRAG_PREFIX_LEN)?;
        u32::from_str_radix(prefix, 16).ok().map(RoomKey)
    }
}

/// Sending half of a room's datagram queue.
pub type DatagramTx = mpsc::Sender<Datagram>;

/// Rooms by key, for STUN routing. Written on room creation and removal only.
#[derive(Default)]
pub struct RoomTable {
    rooms: RwLock<HashMap<RoomKey, DatagramTx>>,
}

impl RoomTable {
    /// Register a room's datagram queue.
    pub fn insert(&self, key: RoomKey, tx: DatagramTx) {
        self.rooms.write().insert(key, tx);
    }

    /// Forget a room.
    pub fn remove(&self, key: RoomKey) {
        self.rooms.write().remove(&key);
    }

    fn get(&self, key: RoomKey) -> Option<DatagramTx> {
        self.rooms.read().get(&key).cloned()
    }
}

/// Where a datagram goes.
#[derive(Debug)]
pub enum Route {
    /// To this room's queue.
    Room(DatagramTx),
    /// Nowhere: count it with this reason.
    Drop(DropReason),
}

/// The receive loop's routing state. Owned by the receive loop; not shared.
pub struct Demux {
    table: Arc<RoomTable>,
    by_addr: HashMap<SocketAddr, DatagramTx>,
}

/// Learned addresses kept at most; past this the map is cleared and re-learned from the
/// next consent checks (every few seconds per session, RFC 7675 §5.1).
const MAX_LEARNED: usize = 200_000;

impl Demux {
    /// A demux over the shared room table.
    pub fn new(table: Arc<RoomTable>) -> Self {
        Demux {
            table,
            by_addr: HashMap::new(),
        }
    }

    /// Decide where a datagram from `source` goes.
    pub fn route(&mut self, source: SocketAddr, buf: &[u8]) -> Route {
        match classify(buf) {
            PacketClass::Stun => self.route_stun(source, buf),
            PacketClass::Dtls | PacketClass::Rtp => match self.by_addr.get(&source) {
                Some(tx) if !tx.is_closed() => Route::Room(tx.clone()),
                Some(_) => {
                    self.by_addr.remove(&source);
                    Route::Drop(DropReason::UnknownSource)
                }
                None => Route::Drop(DropReason::UnknownSource),
            },
            PacketClass::Other => Route::Drop(DropReason::Malformed),
        }
    }

    fn route_stun(&mut self, source: SocketAddr, buf: &[u8]) -> Route {
        let key = stun_username(buf)
            .and_then(server_ufrag)
            .and_then(RoomKey::from_ufrag);
        let Some(key) = key else {
            // A STUN response or indication without USERNAME: route by address if known
            // (a keepalive from a known peer), else it is not for us.
            return match self.by_addr.get(&source) {
                Some(tx) if !tx.is_closed() => Route::Room(tx.clone()),
                _ => Route::Drop(DropReason::Malformed),
            };
        };
        let Some(tx) = self.table.get(key) else {
            return Route::Drop(DropReason::UnknownRoom);
        };
        if self.by_addr.len() >= MAX_LEARNED && !self.by_addr.contains_key(&source) {
            self.by_addr.retain(|_, tx| !tx.is_closed());
            if self.by_addr.len() >= MAX_LEARNED {
                self.by_addr.clear();
            }
        }
        self.by_addr.insert(source, tx.clone());
        Route::Room(tx)
    }

    /// Number of learned source addresses.
    pub fn learned(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_check(server_ufrag: &str) -> Vec<u8> {
        let user = format!("{server_ufrag}:peer");
        let mut attrs = vec![0x00, 0x06, 0x00, user.len() as u8];
        attrs.extend_from_slice(user.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01, 0x00, attrs.len() as u8, 0x21, 0x12, 0xA4, 0x42];
        msg.extend_from_slice(&[1; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn ufrag_prefix_round_trip() {
        let key = RoomKey(0x2a);
        let ufrag = format!("{}xyzw", key.ufrag_prefix());
        assert_eq!(RoomKey::from_ufrag(&ufrag), Some(key));
        assert_eq!(RoomKey::from_ufrag("short"), None);
        assert_eq!(RoomKey::from_ufrag("zzzzzzzzabc"), None);
    }

    #[test]
    fn stun_learns_address_then_media_follows() {
        let table = Arc::new(RoomTable::default());
        let (tx, _rx) = mpsc::channel(4);
        table.insert(RoomKey(7), tx);
        let mut demux = Demux::new(table);

        let rtp = [0x80u8, 96, 0, 1];
        assert!(matches!(
            demux.route(addr(5000), &rtp),
            Route::Drop(DropReason::UnknownSource)
        ));
        let check = stun_check(&format!("{}abcd", RoomKey(7).ufrag_prefix()));
        assert!(matches!(demux.route(addr(5000), &check), Route::Room(_)));
        assert!(matches!(demux.route(addr(5000), &rtp), Route::Room(_)));
        assert!(matches!(demux.route(addr(5000), &[22, 1]), Route::Room(_)));
        assert!(matches!(
            demux.route(addr(5001), &rtp),
            Route::Drop(DropReason::UnknownSource)
        ));
        assert_eq!(demux.learned(), 1);
    }

    #[test]
    fn unknown_room_and_garbage_are_dropped() {
        let mut demux = Demux::new(Arc::new(RoomTable::default()));
        let check = stun_check("0000000fabcd");
        assert!(matches!(
            demux.route(addr(1), &check),
            Route::Drop(DropReason::UnknownRoom)
        ));
        assert!(matches!(
            demux.route(addr(1), &[0x40, 0, 0]),
            Route::Drop(DropReason::Malformed)
        ));
        assert!(matches!(
            demux.route(addr(1), &[]),
            Route::Drop(DropReason::Malformed)
        ));
        assert!(matches!(
            demux.route(addr(1), &[0, 1, 0]),
            Route::Drop(DropReason::Malformed)
        ));
    }

    #[test]
    fn closed_room_is_forgotten() {
        let table = Arc::new(RoomTable::default());
        let (tx, rx) = mpsc::channel(4);
        table.insert(RoomKey(1), tx);
        let mut demux = Demux::new(table.clone());
        let check = stun_check(&format!("{}abcd", RoomKey(1).ufrag_prefix()));
        assert!(matches!(demux.route(addr(9), &check), Route::Room(_)));
        drop(rx);
        table.remove(RoomKey(1));
        assert!(matches!(
            demux.route(addr(9), &[0x80, 0]),
            Route::Drop(DropReason::UnknownSource)
        ));
        assert_eq!(demux.learned(), 0);
    }
}
