//! Demultiplexing datagrams from the one UDP port to the room actor that owns them, in
//! O(1) per datagram.
//!
//! * STUN connectivity checks carry the server's ICE ufrag in USERNAME; the ufrag starts
//!   with the room's key (see [`RoomKey`]), so one lookup in the [`RoomTable`] — touched
//!   under a lock only on STUN, never on media — finds the room.
//! * Everything else (DTLS, SRTP, SRTCP) is routed by source address, learned from the
//!   STUN checks that must precede it (RFC 8445 §7.3: media only flows on a checked pair).
//!   That map is owned by the receive loop alone: no lock on the media path. An
//!   address is learned only once the room's session verified the STUN message's
//!   integrity: the room reports it through [`RoomTable::bind`], and the receive loop
//!   applies those reports before each batch. An unverified STUN message is routed to
//!   the room its ufrag names (which verifies or drops it) but never binds or moves an
//!   address.
//! * The learned-address map is bounded: past [`MAX_LEARNED`] entries it forgets the
//!   addresses of closed rooms, then the least recently used ones.

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
    /// How it came: the shared UDP socket, or an ICE-TCP connection (whose link the
    /// room's task keeps to send back on).
    pub transport: Transport,
}

/// The transport a [`Datagram`] came on.
#[derive(Debug, Clone)]
pub enum Transport {
    /// The shared UDP socket.
    Udp,
    /// An ICE-TCP connection (RFC 6544), one RFC 4571 frame.
    Tcp(super::tcp::TcpLink),
}

impl Datagram {
    /// A datagram received on the UDP socket.
    pub fn udp(
        source: SocketAddr,
        destination: SocketAddr,
        received: Instant,
        contents: Vec<u8>,
    ) -> Self {
        Datagram {
            source,
            destination,
            received,
            contents,
            transport: Transport::Udp,
        }
    }

    /// str0m's name for the transport (ICE candidates pair per protocol).
    pub fn proto(&self) -> str0m::net::Protocol {
        match self.transport {
            Transport::Udp => str0m::net::Protocol::Udp,
            Transport::Tcp(_) => str0m::net::Protocol::Tcp,
        }
    }
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

/// Verified bindings waiting for the receive loop, at most. Each live session re-binds
/// with every consent check (RFC 7675: every few seconds), so one lost to a full queue
/// is made good soon.
const BINDING_QUEUE: usize = 4096;

/// Rooms by key, for STUN routing, and the rooms' reports of verified source addresses.
/// Written on room creation and removal only (and bindings: one per verified STUN).
pub struct RoomTable {
    rooms: RwLock<HashMap<RoomKey, DatagramTx>>,
    bindings: mpsc::Sender<(SocketAddr, RoomKey)>,
    /// Taken by the one [`Demux`].
    receiver: parking_lot::Mutex<Option<mpsc::Receiver<(SocketAddr, RoomKey)>>>,
}

impl Default for RoomTable {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(BINDING_QUEUE);
        RoomTable {
            rooms: RwLock::default(),
            bindings: tx,
            receiver: parking_lot::Mutex::new(Some(rx)),
        }
    }
}

impl RoomTable {
    /// Register a room's datagram queue.
    pub fn insert(&self, key: RoomKey, tx: DatagramTx) {
        self.rooms.write().insert(key, tx);
    }

    /// Register a new room's (or shard's) datagram queue under a fresh random key, never
    /// one in use. Random rather than sequential, so that a participant of one room
    /// cannot name another room's key in a crafted STUN username; 0 is never used.
    pub fn register(&self, tx: DatagramTx) -> RoomKey {
        let mut rooms = self.rooms.write();
        loop {
            let key = RoomKey(rand::random());
            if key.0 != 0 && !rooms.contains_key(&key) {
                rooms.insert(key, tx);
                return key;
            }
        }
    }

    /// A room's (or shard's) session verified a STUN message from `source`: datagrams
    /// from it go to room `key` from now on. Never blocks; dropped when the receive loop
    /// is `BINDING_QUEUE` reports behind (the next consent check binds again).
    pub fn bind(&self, source: SocketAddr, key: RoomKey) {
        let _ = self.bindings.try_send((source, key));
    }

    /// Forget a room.
    pub fn remove(&self, key: RoomKey) {
        self.rooms.write().remove(&key);
    }

    /// The queue of room (or shard) `key`.
    pub(crate) fn get(&self, key: RoomKey) -> Option<DatagramTx> {
        self.rooms.read().get(&key).cloned()
    }

    /// Number of registered rooms and shards.
    pub fn len(&self) -> usize {
        self.rooms.read().len()
    }

    /// No room or shard is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    bindings: mpsc::Receiver<(SocketAddr, RoomKey)>,
    /// Learned address → its room's queue and when it was last used (in batches).
    by_addr: HashMap<SocketAddr, (DatagramTx, u64)>,
    /// Counts [`Demux::apply_bindings`] calls: the receive loop's batches.
    tick: u64,
}

/// Learned addresses kept at most (two per session of a very large server); past this
/// the addresses of closed rooms are forgotten, then the least recently used eighth.
/// A forgotten live address is learned again from its next consent check (every few
/// seconds per session, RFC 7675 §5.1).
pub(crate) const MAX_LEARNED: usize = 200_000;

impl Demux {
    /// A demux over the shared room table. Panics if the table already has a demux
    /// (one receive loop per table, by construction in `server.rs`).
    pub fn new(table: Arc<RoomTable>) -> Self {
        let bindings = table
            .receiver
            .lock()
            .take()
            .expect("one demux per room table");
        Demux {
            table,
            bindings,
            by_addr: HashMap::new(),
            tick: 0,
        }
    }

    /// Learn the addresses rooms verified since the last call. The receive loop calls
    /// this before routing each batch.
    pub fn apply_bindings(&mut self) {
        self.tick += 1;
        while let Ok((source, key)) = self.bindings.try_recv() {
            if let Some(tx) = self.table.get(key) {
                self.learn(source, tx);
            }
        }
    }

    fn learn(&mut self, source: SocketAddr, tx: DatagramTx) {
        if self.by_addr.len() >= MAX_LEARNED && !self.by_addr.contains_key(&source) {
            self.by_addr.retain(|_, (tx, _)| !tx.is_closed());
            if self.by_addr.len() >= MAX_LEARNED {
                self.evict_least_recent();
            }
        }
        self.by_addr.insert(source, (tx, self.tick));
    }

    /// Forget the least recently used eighth of the learned addresses.
    fn evict_least_recent(&mut self) {
        let mut ticks: Vec<u64> = self.by_addr.values().map(|(_, t)| *t).collect();
        let cut = ticks.len() / 8;
        let (_, threshold, _) = ticks.select_nth_unstable(cut);
        let threshold = *threshold;
        let mut budget = cut.max(1);
        self.by_addr.retain(|_, (_, t)| {
            if *t <= threshold && budget > 0 {
                budget -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Decide where a datagram from `source` goes.
    pub fn route(&mut self, source: SocketAddr, buf: &[u8]) -> Route {
        match classify(buf) {
            PacketClass::Stun => self.route_stun(source, buf),
            PacketClass::Dtls | PacketClass::Rtp => match self.by_addr.get_mut(&source) {
                Some((tx, used)) if !tx.is_closed() => {
                    *used = self.tick;
                    Route::Room(tx.clone())
                }
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
                Some((tx, _)) if !tx.is_closed() => Route::Room(tx.clone()),
                _ => Route::Drop(DropReason::Malformed),
            };
        };
        // To the room the ufrag names, which verifies it; the address is learned only
        // when the room reports it verified (`apply_bindings`).
        match self.table.get(key) {
            Some(tx) => Route::Room(tx),
            None => Route::Drop(DropReason::UnknownRoom),
        }
    }

    /// Number of learned source addresses.
    pub fn learned(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A STUN Binding request whose USERNAME is `"<server_ufrag>:peer"` (RFC 8489 §5,
    /// §14.3), without integrity: what the demux reads, for the net tests.
    pub(crate) fn stun_check(server_ufrag: &str) -> Vec<u8> {
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
        let mut demux = Demux::new(Arc::clone(&table));

        let rtp = [0x80u8, 96, 0, 1];
        assert!(matches!(
            demux.route(addr(5000), &rtp),
            Route::Drop(DropReason::UnknownSource)
        ));
        let check = stun_check(&format!("{}abcd", RoomKey(7).ufrag_prefix()));
        assert!(matches!(demux.route(addr(5000), &check), Route::Room(_)));
        // Not learned until the room verified it.
        assert!(matches!(
            demux.route(addr(5000), &rtp),
            Route::Drop(DropReason::UnknownSource)
        ));
        table.bind(addr(5000), RoomKey(7));
        demux.apply_bindings();
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
        table.bind(addr(9), RoomKey(1));
        demux.apply_bindings();
        assert_eq!(demux.learned(), 1);
        drop(rx);
        table.remove(RoomKey(1));
        assert!(matches!(
            demux.route(addr(9), &[0x80, 0]),
            Route::Drop(DropReason::UnknownSource)
        ));
        assert_eq!(demux.learned(), 0);
    }

    #[test]
    fn an_unverified_stun_never_moves_a_live_binding() {
        let table = Arc::new(RoomTable::default());
        let (tx_a, _rx_a) = mpsc::channel(4);
        let (tx_b, mut rx_b) = mpsc::channel(4);
        table.insert(RoomKey(1), tx_a);
        table.insert(RoomKey(2), tx_b);
        let mut demux = Demux::new(Arc::clone(&table));
        table.bind(addr(7), RoomKey(1));
        demux.apply_bindings();
        // From the same address, a check naming room 2 goes to room 2 to be verified...
        let check = stun_check(&format!("{}abcd", RoomKey(2).ufrag_prefix()));
        assert!(matches!(demux.route(addr(7), &check), Route::Room(_)));
        // ...but media from the address still goes to room 1 until room 2 verifies it.
        let Route::Room(tx) = demux.route(addr(7), &[0x80, 96]) else {
            panic!("bound address dropped");
        };
        tx.try_send(Datagram::udp(addr(7), addr(1), Instant::now(), vec![0x80]))
            .unwrap();
        assert!(rx_b.try_recv().is_err(), "room 2 got room 1's media");
    }

    #[test]
    fn a_full_map_evicts_closed_then_least_recent_addresses() {
        let table = Arc::new(RoomTable::default());
        let (tx, _rx) = mpsc::channel(4);
        let mut demux = Demux::new(Arc::clone(&table));
        for i in 0..MAX_LEARNED {
            demux.tick = i as u64;
            let a = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1));
            demux.learn(a, tx.clone());
        }
        assert_eq!(demux.learned(), MAX_LEARNED);
        demux.tick += 1;
        demux.learn(addr(1), tx.clone());
        let learned = demux.learned();
        assert!(
            learned <= MAX_LEARNED - MAX_LEARNED / 8 + 1 && learned > MAX_LEARNED / 2,
            "{learned}"
        );
        // The newest and the just-learned survive; the oldest went.
        assert!(demux.by_addr.contains_key(&addr(1)));
        assert!(!demux
            .by_addr
            .contains_key(&SocketAddr::from(([10, 0, 0, 0], 1))));
        let newest = MAX_LEARNED - 1;
        let a = SocketAddr::from((
            [10, (newest >> 16) as u8, (newest >> 8) as u8, newest as u8],
            1,
        ));
        assert!(demux.by_addr.contains_key(&a));
    }
}
