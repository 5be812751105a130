//! ICE over TCP: RFC 6544 passive host candidates on a TCP listener, RFC 4571 framing.
//! Each accepted connection is one candidate pair's path. Never parses RTP, never holds
//! an `Rtc`.
//!
//! * **Routing.** A connection's first frame must be a STUN Binding request whose
//!   USERNAME names a room (or shard) by the server ufrag's prefix — the same O(1) table
//!   lookup as a UDP check ([`RoomTable`]). Every frame of the connection then goes to
//!   that room's datagram queue, as a [`Datagram`] whose [`Transport::Tcp`] carries the
//!   connection's [`TcpLink`]; a later STUN frame naming another room re-routes it. TCP
//!   source addresses cannot be spoofed, so the room's task learns "this address is
//!   that connection" from the datagrams it receives ([`TcpPaths`]), and the session
//!   still binds the address only after its `Rtc` verified a check (as on UDP).
//! * **Bounds.** A connection limit (`--max-connections` style permits, refusing at the
//!   limit), [`FIRST_FRAME_TIMEOUT`] for the first frame, [`IDLE_TIMEOUT`] between
//!   frames (browsers send a consent check every few seconds, RFC 7675), frames up to
//!   [`MAX_DATAGRAM`] bytes (a longer length prefix closes the connection), and a read
//!   rate cap ([`READ_RATE`]) above which the reader stops reading and lets TCP push
//!   back on the client.
//! * **Writes never block a room.** A room hands a frame to the connection's writer
//!   task through a queue bounded in frames ([`WRITE_QUEUE`]) and in bytes not yet
//!   written to the socket ([`WRITE_QUEUE_BYTES`]); past either the frame is dropped
//!   and counted (`switchboard_tcp_frames_dropped_total{reason="backpressure"}`).
//! * **A connection's end ends only its path.** The session lives on (another pair, an
//!   ICE restart, a reconnect); it times out only if no path carries its traffic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};
use str0m::net::Transmit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use super::classify::{classify, server_ufrag, stun_username, PacketClass};
use super::demux::{Datagram, DatagramTx, RoomKey, RoomTable, Transport};
use super::framing::{encode_frame, FrameDecoder};
use super::MAX_DATAGRAM;

/// The first frame (a STUN Binding request) must arrive within this time of the accept.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that carries no frame for this long is closed. Browsers send consent
/// checks at least every 5 s (RFC 7675 §5.1), and media far more often.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued for one connection's writer, at most; beyond it frames are dropped
/// (about 600 KB of media: half a second of a 10 Mbit/s stream).
pub const WRITE_QUEUE: usize = 512;
/// Bytes handed to one connection's writer and not yet written to its socket, at most
/// (a 720p keyframe fits; a quarter of a second of a 8 Mbit/s stream); beyond it frames
/// are dropped. Bounds a client that stops reading to this much memory.
pub const WRITE_QUEUE_BYTES: usize = 256 * 1024;
/// A write that makes no progress for this long closes the connection (its client stopped
/// reading).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read per second per connection, at most (64 Mbit/s: ten 1080p publishers'
/// worth); above it the reader pauses until the second is over.
pub const READ_RATE: usize = 8 << 20;
/// Bytes read from the socket at a time.
const READ_BUF: usize = 16 * 1024;
/// Bytes the writer gathers into one `write` call, at most.
const WRITE_BATCH: usize = 64 * 1024;

/// The writing end of one ICE-TCP connection, as its room's task holds it: frames handed
/// to it are written in order by the connection's writer task.
#[derive(Debug, Clone)]
pub struct TcpLink {
    /// Unique per connection in this process.
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
    /// Bytes queued and not yet written (added before a frame is queued, taken off
    /// once the writer wrote it).
    queued: Arc<AtomicUsize>,
}

impl TcpLink {
    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// ICE-TCP metric handles.
#[derive(Clone)]
pub struct TcpMeters {
    frames_in: Counter,
    frames_out: Counter,
    open: Gauge,
    accepted: Counter,
    refused_limit: Counter,
    refused_not_ice: Counter,
    refused_unknown_room: Counter,
    closed_timeout: Counter,
    closed_framing: Counter,
    dropped_backpressure: Counter,
    dropped_no_path: Counter,
    dropped_room_busy: Counter,
}

/// Metric names of ICE over TCP.
pub mod names {
    /// Counter: RFC 4571 frames received on ICE-TCP connections.
    pub const FRAMES_IN: &str = "switchboard_tcp_frames_in_total";
    /// Counter: frames written to ICE-TCP connections' queues.
    pub const FRAMES_OUT: &str = "switchboard_tcp_frames_out_total";
    /// Gauge: open ICE-TCP connections.
    pub const CONNECTIONS: &str = "switchboard_tcp_connections";
    /// Counter: ICE-TCP connections by `outcome`: `accepted`, `refused_limit`,
    /// `refused_not_ice` (first frame not a STUN check naming a room), `refused_unknown_room`,
    /// `closed_timeout`, `closed_framing` (a length over the limit, or 0).
    pub const CONNECTION_OUTCOMES: &str = "switchboard_tcp_connections_total";
    /// Counter: frames not delivered, label `reason`: `backpressure` (the connection's
    /// write queue was full), `no_path` (no connection to the destination any more),
    /// `room_busy` (the room's inbound queue was full).
    pub const FRAMES_DROPPED: &str = "switchboard_tcp_frames_dropped_total";
}

impl TcpMeters {
    /// Register (or look up) the handles.
    pub fn new() -> Self {
        use names::*;
        let outcome = |o: &'static str| counter!(CONNECTION_OUTCOMES, "outcome" => o);
        let dropped = |r: &'static str| counter!(FRAMES_DROPPED, "reason" => r);
        TcpMeters {
            frames_in: counter!(FRAMES_IN),
            frames_out: counter!(FRAMES_OUT),
            open: gauge!(CONNECTIONS),
            accepted: outcome("accepted"),
            refused_limit: outcome("refused_limit"),
            refused_not_ice: outcome("refused_not_ice"),
            refused_unknown_room: outcome("refused_unknown_room"),
            closed_timeout: outcome("closed_timeout"),
            closed_framing: outcome("closed_framing"),
            dropped_backpressure: dropped("backpressure"),
            dropped_no_path: dropped("no_path"),
            dropped_room_busy: dropped("room_busy"),
        }
    }

    /// Describe the metrics for the exporter.
    pub fn describe() {
        use names::*;
        describe_counter!(
            FRAMES_IN,
            "RFC 4571 frames received on ICE-TCP connections."
        );
        describe_counter!(FRAMES_OUT, "Frames queued to ICE-TCP connections.");
        describe_gauge!(CONNECTIONS, "Open ICE-TCP connections.");
        describe_counter!(CONNECTION_OUTCOMES, "ICE-TCP connections by outcome.");
        describe_counter!(FRAMES_DROPPED, "ICE-TCP frames not delivered, by reason.");
    }
}

impl Default for TcpMeters {
    fn default() -> Self {
        Self::new()
    }
}

/// The ICE-TCP side of the server: accepts connections (on its own listener, or handed
/// over from the HTTP listener when the port is shared) and routes their frames.
pub struct TcpIce {
    table: Arc<RoomTable>,
    /// The TCP host candidates advertised (with their bound ports).
    candidates: Vec<SocketAddr>,
    permits: Arc<Semaphore>,
    meters: TcpMeters,
    next_id: AtomicU64,
}

impl TcpIce {
    /// ICE over TCP for the rooms of `table`, advertising `candidates`, with at most
    /// `max_connections` open connections.
    pub fn new(table: Arc<RoomTable>, candidates: Vec<SocketAddr>, max_connections: u32) -> Self {
        TcpIce {
            table,
            candidates,
            permits: Arc::new(Semaphore::new(max_connections.max(1) as usize)),
            meters: TcpMeters::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The TCP host candidates rooms advertise.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// Accept connections on `listener` forever (errors of one connection never end it).
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => self.serve(stream, peer),
                Err(e) => {
                    warn!(error = %e, "ice-tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Serve one accepted connection (from its own listener, or handed over by the
    /// shared HTTP port, which only peeked at its first bytes). At the connection limit
    /// it is closed at once.
    pub fn serve(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.meters.refused_limit.increment(1);
            return;
        };
        self.meters.accepted.increment(1);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.meters.open.increment(1.0);
            this.connection(stream, peer, permit).await;
            this.meters.open.decrement(1.0);
        });
    }

    /// Which candidate a connection arrived on (see `UdpEndpoint::destination_for`).
    fn destination_for(&self, local: SocketAddr) -> SocketAddr {
        let exact = self.candidates.iter().find(|c| **c == local);
        let same_port = |c: &&SocketAddr| c.port() == local.port();
        let family = |c: &&SocketAddr| c.is_ipv4() == local.is_ipv4();
        exact
            .or_else(|| self.candidates.iter().filter(same_port).find(family))
            .or_else(|| self.candidates.iter().find(same_port))
            .copied()
            .unwrap_or(local)
    }

    async fn connection(&self, stream: TcpStream, peer: SocketAddr, _permit: OwnedSemaphorePermit) {
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let destination = self.destination_for(local);
        let (mut reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let link = TcpLink {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            queued: Arc::clone(&queued),
        };
        let write_task = tokio::spawn(write_loop(writer, rx, queued));
        let mut conn = Connection {
            ice: self,
            peer,
            destination,
            link,
            route: None,
            decoder: FrameDecoder::new(MAX_DATAGRAM),
        };
        let mut buf = vec![0u8; READ_BUF];
        let mut window = (Instant::now(), 0usize);
        let end = loop {
            if let Err(end) = conn.drain_frames(Instant::now()) {
                break end;
            }
            let timeout = if conn.route.is_none() {
                FIRST_FRAME_TIMEOUT
            } else {
                IDLE_TIMEOUT
            };
            let n = match tokio::time::timeout(timeout, reader.read(&mut buf)).await {
                Err(_) => break End::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => break End::Closed,
                Ok(Ok(n)) => n,
            };
            conn.decoder.push(&buf[..n]);
            // The read rate cap: past READ_RATE bytes in this second, wait it out.
            window.1 += n;
            if window.1 > READ_RATE {
                let resume = window.0 + Duration::from_secs(1);
                tokio::time::sleep_until(resume.into()).await;
                window = (Instant::now(), 0);
            } else if window.0.elapsed() >= Duration::from_secs(1) {
                window = (Instant::now(), 0);
            }
        };
        match end {
            End::Timeout => self.meters.closed_timeout.increment(1),
            End::Framing => self.meters.closed_framing.increment(1),
            End::NotIce => self.meters.refused_not_ice.increment(1),
            End::UnknownRoom => self.meters.refused_unknown_room.increment(1),
            End::Closed => {}
        }
        debug!(%peer, ?end, "ice-tcp connection ended");
        // Closes the socket's write half and the queue: the room's next send to this
        // connection finds it closed and forgets it.
        write_task.abort();
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy)]
enum End {
    Timeout,
    Framing,
    NotIce,
    UnknownRoom,
    Closed,
}

/// One connection's reading side.
struct Connection<'a> {
    ice: &'a TcpIce,
    peer: SocketAddr,
    destination: SocketAddr,
    link: TcpLink,
    /// The room (or shard) the connection's frames go to, once a check named one.
    route: Option<DatagramTx>,
    decoder: FrameDecoder,
}

impl Connection<'_> {
    /// Route every whole frame received so far, stamped `received`.
    fn drain_frames(&mut self, received: Instant) -> Result<(), End> {
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(_) => return Err(End::Framing),
            };
            self.ice.meters.frames_in.increment(1);
            // A check naming a room routes the connection there (first frame: must).
            let named = (classify(frame) == PacketClass::Stun)
                .then(|| stun_username(frame).and_then(server_ufrag))
                .flatten()
                .and_then(RoomKey::from_ufrag);
            match named.map(|key| self.ice.table.get(key)) {
                Some(Some(tx)) => self.route = Some(tx),
                Some(None) if self.route.is_none() => return Err(End::UnknownRoom),
                _ => {}
            }
            let Some(tx) = &self.route else {
                return Err(End::NotIce);
            };
            let d = Datagram {
                source: self.peer,
                destination: self.destination,
                received,
                contents: frame.to_vec(),
                transport: Transport::Tcp(self.link.clone()),
            };
            match tx.try_send(d) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.ice.meters.dropped_room_busy.increment(1),
                // The room closed: its sessions are gone, and so is this path's use.
                Err(TrySendError::Closed(_)) => return Err(End::Closed),
            }
        }
    }
}

/// Write queued frames in order, gathering what is queued into one write.
async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&batch)).await {
            Ok(Ok(())) => {
                queued.fetch_sub(batch.len(), Ordering::Relaxed);
            }
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// A room's (or shard's) TCP paths: which connection each TCP source address is,
/// learned from the datagrams it received over TCP. Owned by the task; no lock.
///
/// Bounded: an entry exists only for a connection that delivered a frame to this task,
/// connections are bounded by [`TcpIce`]'s limit, and closed ones are pruned whenever
/// the map doubles.
#[derive(Default)]
pub struct TcpPaths {
    links: HashMap<SocketAddr, TcpLink>,
    prune_at: usize,
    meters: TcpMeters,
}

impl TcpPaths {
    /// Learn the connection `d` came on, if it came over TCP.
    pub fn learn(&mut self, d: &Datagram) {
        let Transport::Tcp(link) = &d.transport else {
            return;
        };
        if self.links.get(&d.source).is_some_and(|l| l.id == link.id) {
            return;
        }
        self.links.insert(d.source, link.clone());
        if self.links.len() > self.prune_at {
            self.links.retain(|_, l| !l.is_closed());
            self.prune_at = (self.links.len() * 2).max(64);
        }
    }

    /// Queue `t` (a TCP transmit) on its destination's connection as one RFC 4571
    /// frame. Dropped and counted when no connection leads there or its queue is full.
    pub fn send(&mut self, t: &Transmit) {
        let meters = &self.meters;
        let Some(link) = self.links.get(&t.destination) else {
            meters.dropped_no_path.increment(1);
            return;
        };
        let len = 2 + t.contents.len();
        // Counted before it is queued, so the writer never takes off what was not added.
        if link.queued.fetch_add(len, Ordering::Relaxed) + len > WRITE_QUEUE_BYTES {
            link.queued.fetch_sub(len, Ordering::Relaxed);
            meters.dropped_backpressure.increment(1);
            return;
        }
        let mut frame = Vec::with_capacity(len);
        if !encode_frame(&t.contents, &mut frame) {
            link.queued.fetch_sub(len, Ordering::Relaxed);
            return;
        }
        match link.tx.try_send(frame) {
            Ok(()) => meters.frames_out.increment(1),
            Err(e) => {
                link.queued.fetch_sub(len, Ordering::Relaxed);
                if let TrySendError::Full(_) = e {
                    meters.dropped_backpressure.increment(1);
                } else {
                    self.links.remove(&t.destination);
                    meters.dropped_no_path.increment(1);
                }
            }
        }
    }

    /// Connections known.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// No connection known.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
