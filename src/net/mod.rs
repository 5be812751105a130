//! The UDP side: one socket for all WebRTC traffic, its receive loop, and the demux that
//! hands each datagram to the room actor owning it. Never parses RTP, never holds an `Rtc`.
//!
//! The receive loop uses `quinn-udp` for batched receives (`recvmmsg`, GRO) and, just as
//! important, the destination address of every datagram (`IP_PKTINFO`): with one socket
//! bound to a wildcard address, str0m's ICE agent needs to know which of our host
//! candidates a check arrived on. Rooms send their output batches with `sendmmsg(2)`
//! (through `rustix`): one system call for up to [`SEND_BATCH`] datagrams to any mix of
//! destinations.

pub mod classify;
pub(crate) mod demux;
pub mod framing;
pub mod tcp;

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

pub use demux::{Datagram, DatagramTx, Demux, RoomKey, RoomTable, Route, Transport};
pub use tcp::{TcpIce, TcpMeters, TcpPaths};

use crate::metrics::{DropReason, Meters};

/// The host candidates every session advertises (RFC 8445 §5.1.1.1): the UDP ones, and
/// passive TCP ones (RFC 6544 §4.5) after them. str0m gives TCP host candidates a lower
/// type preference (90 against 126), so clients use TCP only when no UDP pair works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCandidates {
    /// Addresses (with the bound port) of the UDP socket.
    pub udp: Vec<SocketAddr>,
    /// Addresses (with the listening port) where ICE-TCP connections are accepted.
    pub tcp: Vec<SocketAddr>,
}

impl HostCandidates {
    /// The candidates as str0m builds and advertises them: UDP first, then TCP passive.
    /// An address str0m refuses (unspecified, or multicast) is skipped with a warning.
    pub fn to_str0m(&self) -> Vec<str0m::Candidate> {
        let udp = self
            .udp
            .iter()
            .map(|a| (*a, str0m::Candidate::host(*a, "udp")));
        let tcp = self.tcp.iter().map(|a| {
            let c = str0m::Candidate::builder()
                .tcp()
                .host(*a)
                .tcptype(str0m::net::TcpType::Passive)
                .build();
            (*a, c)
        });
        udp.chain(tcp)
            .filter_map(|(addr, c)| match c {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!(%addr, error = %e, "skipping unusable host candidate");
                    None
                }
            })
            .collect()
    }
}

impl From<Vec<SocketAddr>> for HostCandidates {
    /// UDP candidates only.
    fn from(udp: Vec<SocketAddr>) -> Self {
        HostCandidates {
            udp,
            tcp: Vec::new(),
        }
    }
}

/// Datagrams per `sendmmsg(2)` call (the kernel takes up to `UIO_MAXIOV`, 1024).
pub const SEND_BATCH: usize = 64;

/// One `sendmmsg(2)` of up to [`SEND_BATCH`] datagrams, each to its own destination.
/// Returns how many the kernel took (the first failure ends the call; an error means the
/// first datagram failed).
fn sendmmsg_chunk(socket: &UdpSocket, chunk: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    let addrs: Vec<SocketAddrAny> = chunk.iter().map(|(a, _)| SocketAddrAny::from(*a)).collect();
    let iovs: Vec<[io::IoSlice<'_>; 1]> =
        chunk.iter().map(|(_, d)| [io::IoSlice::new(d)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(&iovs)
        .zip(controls.iter_mut())
        .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
        .collect();
    sendmmsg(socket, &mut msgs, SendFlags::empty()).map_err(io::Error::from)
}

/// The shared UDP socket and what rooms need to send on it.
pub struct UdpEndpoint {
    socket: UdpSocket,
    state: UdpSocketState,
    candidates: Vec<SocketAddr>,
}

/// The largest datagram handed to a room, in bytes. str0m 0.25 sizes its packet and
/// SRTP scratch buffers at 2,000 bytes; WebRTC peers stay under the path MTU (about
/// 1,200–1,500 bytes, DTLS handshakes fragment to it), so anything larger is hostile or
/// broken (or was truncated by the 2,048-byte receive slot) and is dropped here, counted
/// as `oversize`, before any parser sees it.
pub const MAX_DATAGRAM: usize = 2_000;

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

    /// Send datagrams to (possibly) different destinations with as few system calls as
    /// possible: `sendmmsg(2)` in chunks of [`SEND_BATCH`], through `rustix`. Waits while
    /// the socket buffer is full. A datagram the kernel refuses (an unreachable
    /// destination) is skipped and counted in the returned error count; the rest still go
    /// out. Returns `(sent, failed)`.
    pub async fn send_many(&self, datagrams: &[(SocketAddr, &[u8])]) -> (usize, usize) {
        let (mut sent, mut failed) = (0, 0);
        let mut rest = datagrams;
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(SEND_BATCH)];
            let res = self
                .socket
                .try_io(Interest::WRITABLE, || sendmmsg_chunk(&self.socket, chunk));
            match res {
                Ok(n) if n > 0 => {
                    sent += n;
                    rest = &rest[n..];
                }
                Ok(_) => {
                    // The kernel took none without an error: skip one rather than spin.
                    failed += 1;
                    rest = &rest[1..];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.socket.writable().await.is_err() {
                        return (sent, failed + rest.len());
                    }
                }
                Err(e) => {
                    // The first datagram of the chunk failed: skip it, keep the rest.
                    warn!(destination = %rest[0].0, error = %e, "udp send failed");
                    failed += 1;
                    rest = &rest[1..];
                }
            }
        }
        (sent, failed)
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
            demux.apply_bindings();
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
                    if datagram.len() > MAX_DATAGRAM {
                        meters.dropped(DropReason::Oversize);
                        continue;
                    }
                    match demux.route(m.addr, datagram) {
                        Route::Room(tx) => {
                            let d = Datagram::udp(m.addr, destination, received, datagram.to_vec());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[tokio::test]
    async fn send_many_reaches_every_destination_in_order_across_chunks() {
        let endpoint = UdpEndpoint::bind(local(), vec![local()]).unwrap();
        let a = std::net::UdpSocket::bind(local()).unwrap();
        let b = std::net::UdpSocket::bind(local()).unwrap();
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let payloads: Vec<Vec<u8>> = (0..150u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let datagrams: Vec<(SocketAddr, &[u8])> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (if i % 3 == 0 { to_a } else { to_b }, &p[..]))
            .collect();
        assert_eq!(endpoint.send_many(&datagrams).await, (150, 0));
        for (socket, want) in [(&a, 50), (&b, 100)] {
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < want {
                let n = socket.recv(&mut buf).unwrap();
                got.push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
            }
            let expected: Vec<u32> = (0..150u32)
                .filter(|i| (i % 3 == 0) == (want == 50))
                .collect();
            assert_eq!(got, expected);
        }
    }

    #[tokio::test]
    async fn send_many_skips_a_refused_datagram_and_sends_the_rest() {
        let endpoint = UdpEndpoint::bind(local(), vec![local()]).unwrap();
        let a = std::net::UdpSocket::bind(local()).unwrap();
        a.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to_a = a.local_addr().unwrap();
        // An IPv6 destination on an IPv4 socket: the kernel refuses that one message.
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let datagrams: Vec<(SocketAddr, &[u8])> =
            vec![(to_a, b"one"), (v6, b"bad"), (to_a, b"two")];
        assert_eq!(endpoint.send_many(&datagrams).await, (2, 1));
        let mut buf = [0u8; 8];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"two");
    }
}
