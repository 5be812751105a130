//! The UDP side: one socket for all WebRTC traffic, its receive loop, and the demux that
//! hands each datagram to the room actor owning it. Never parses RTP, never holds an `Rtc`.
//!
//! The receive loop uses `quinn-udp` for batched receives (`recvmmsg`, GRO) and, just as
//! important, the destination address of every datagram (`IP_PKTINFO`): with one socket
//! bound to a wildcard address, str0m's ICE agent needs to know which of our host
//! candidates a check arrived on.

pub mod classify;
pub mod demux;

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

pub use demux::{Datagram, DatagramTx, Demux, RoomKey, RoomTable, Route};

use crate::metrics::{DropReason, Meters};

/// The shared UDP socket and what rooms need to send on it.
pub struct UdpEndpoint {
    socket: UdpSocket,
    state: UdpSocketState,
    candidates: Vec<SocketAddr>,
}

impl UdpEndpoint {
    /// Bind `addr` and remember the ICE host candidate addresses (with the bound port).
    ///
    /// `candidates` with port 0 take the bound port (useful with `--udp-addr ...:0`).
    pub fn bind(addr: SocketAddr, candidates: Vec<SocketAddr>) -> io::Result<Arc<Self>> {
        let std_socket = std::net::UdpSocket::bind(addr)?;
        std_socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&std_socket).into())?;
        // Large buffers absorb bursts (a keyframe to many viewers) without loss.
        let _ = state.set_recv_buffer_size((&std_socket).into(), 8 << 20);
        let _ = state.set_send_buffer_size((&std_socket).into(), 8 << 20);
        let socket = UdpSocket::from_std(std_socket)?;
        let port = socket.local_addr()?.port();
        let candidates = candidates
            .into_iter()
            .map(|c| SocketAddr::new(c.ip(), port))
            .collect();
        Ok(Arc::new(UdpEndpoint {
            socket,
            state,
            candidates,
        }))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The ICE host candidates rooms advertise (public addresses with the bound port).
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// Send one datagram. Waits only while the socket buffer is full.
    pub async fn send(&self, destination: SocketAddr, contents: &[u8]) -> io::Result<()> {
        match self.socket.try_send_to(contents, destination) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.socket.send_to(contents, destination).await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// Which candidate a datagram arrived on: the destination IP when it is one of our
    /// candidates, else the first candidate of the same family (a public address behind
    /// 1:1 NAT arrives on a private interface address), else the first candidate.
    fn destination_for(&self, dst_ip: Option<std::net::IpAddr>) -> SocketAddr {
        let port = self.candidates[0].port();
        if let Some(ip) = dst_ip {
            let exact = SocketAddr::new(ip, port);
            if self.candidates.contains(&exact) {
                return exact;
            }
            if let Some(c) = self.candidates.iter().find(|c| c.is_ipv4() == ip.is_ipv4()) {
                return *c;
            }
        }
        self.candidates[0]
    }

    /// The receive loop: read batches, stamp them, route each datagram, never block on a
    /// room (a full room queue drops and counts). Runs until the socket fails.
    pub async fn run_recv(self: Arc<Self>, mut demux: Demux, meters: Meters) -> io::Result<()> {
        let slot = if self.state.gro_segments() > 1 {
            64 * 1024
        } else {
            2048
        };
        let mut storage = vec![0u8; slot * BATCH_SIZE];
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        loop {
            self.socket.readable().await?;
            let res = {
                let mut bufs: Vec<IoSliceMut<'_>> =
                    storage.chunks_mut(slot).map(IoSliceMut::new).collect();
                self.socket.try_io(Interest::READABLE, || {
                    self.state.recv((&self.socket).into(), &mut bufs, &mut meta)
                })
            };
            let n = match res {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    warn!(error = %e, "udp receive failed");
                    continue;
                }
            };
            let received = Instant::now();
            for (m, buf) in meta.iter().zip(storage.chunks(slot)).take(n) {
                let destination = self.destination_for(m.dst_ip);
                let stride = m.stride.max(1);
                for datagram in buf[..m.len].chunks(stride) {
                    meters.udp_in.increment(1);
                    match demux.route(m.addr, datagram) {
                        Route::Room(tx) => {
                            let d = Datagram {
                                source: m.addr,
                                destination,
                                received,
                                contents: datagram.to_vec(),
                            };
                            match tx.try_send(d) {
                                Ok(()) => {}
                                Err(TrySendError::Full(_)) => meters.dropped(DropReason::RoomBusy),
                                Err(TrySendError::Closed(_)) => {
                                    meters.dropped(DropReason::UnknownSource)
                                }
                            }
                        }
                        Route::Drop(reason) => {
                            debug!(source = %m.addr, reason = reason.as_str(), "datagram dropped");
                            meters.dropped(reason);
                        }
                    }
                }
            }
        }
    }
}
