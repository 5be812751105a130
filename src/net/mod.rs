//! The UDP side: one socket for all WebRTC traffic, its receive loop, and the demux that
//! hands each datagram to the room actor owning it. Never parses RTP, never holds an `Rtc`.
//!
//! The receive loop uses `quinn-udp` for batched receives (`recvmmsg`, GRO) and, just as
//! important, the destination address of every datagram (`IP_PKTINFO`): with one socket
//! bound to a wildcard address, str0m's ICE agent needs to know which of our host
//! candidates a check arrived on. Sends go out per room wake-up as a batch, with a
//! viewer's run of equal-size datagrams in one UDP GSO send ([`UdpEndpoint::send_batch`]).

pub mod classify;
pub mod demux;

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use str0m::net::Transmit;
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

    /// Send a batch of datagrams (what a room produced in one wake-up), in place of one
    /// `sendto` each. The batch is grouped by destination, keeping each destination's
    /// order (a stable sort; order across destinations does not matter), and a run of
    /// equal-size datagrams to one destination — a video frame's fragments to one viewer
    /// — goes out as one UDP GSO send (`UDP_SEGMENT`, through `quinn-udp`; the last
    /// segment may be shorter), where the kernel supports it. `scratch` is reused for
    /// the concatenated segments. Returns the number of datagrams that failed to send.
    pub async fn send_batch(&self, batch: &mut [Transmit], scratch: &mut Vec<u8>) -> usize {
        batch.sort_by_key(|t| t.destination);
        let max = self.state.max_gso_segments().max(1);
        let mut failed = 0;
        let mut i = 0;
        let calls = metrics::counter!(crate::metrics::names::UDP_SENDS);
        while i < batch.len() {
            let run = gso_run(&batch[i..], max);
            calls.increment(1);
            if run == 1 {
                let t = &batch[i];
                if let Err(e) = self.send(t.destination, &t.contents).await {
                    debug!(destination = %t.destination, error = %e, "udp send failed");
                    failed += 1;
                }
            } else {
                failed += self.send_gso(&batch[i..i + run], scratch).await;
            }
            i += run;
        }
        failed
    }

    /// One GSO send of `run` (same destination; all but the last of one size).
    async fn send_gso(&self, run: &[Transmit], scratch: &mut Vec<u8>) -> usize {
        scratch.clear();
        for t in run {
            scratch.extend_from_slice(&t.contents);
        }
        let transmit = quinn_udp::Transmit {
            destination: run[0].destination,
            ecn: None,
            contents: scratch,
            segment_size: Some(run[0].contents.len()),
            src_ip: None,
        };
        let sent = self
            .socket
            .async_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), &transmit)
            })
            .await;
        match sent {
            Ok(()) => 0,
            Err(e) => {
                // GSO refused on this route (e.g. EIO from a device without checksum
                // offload): send the segments one by one.
                debug!(destination = %run[0].destination, error = %e, "gso send failed, sending singly");
                let mut failed = 0;
                for t in run {
                    if self.send(t.destination, &t.contents).await.is_err() {
                        failed += 1;
                    }
                }
                failed
            }
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

/// Most bytes in one GSO send (the UDP length field and the kernel's limit).
const GSO_MAX_BYTES: usize = 65_000;

/// How many datagrams from the start of `batch` (sorted by destination) can go in one
/// GSO send: same destination, every one but the last exactly the first's size, the last
/// no larger, at most `max` segments and [`GSO_MAX_BYTES`]. At least 1.
fn gso_run(batch: &[Transmit], max: usize) -> usize {
    let Some(first) = batch.first() else {
        return 0;
    };
    let size = first.contents.len();
    let mut n = 1;
    while n < batch.len()
        && n < max
        && (n + 1) * size <= GSO_MAX_BYTES
        && batch[n].destination == first.destination
        && batch[n - 1].contents.len() == size
        && batch[n].contents.len() <= size
        && !batch[n].contents.is_empty()
    {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::net::Protocol;

    fn t(port: u16, len: usize) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: "127.0.0.1:1".parse().unwrap(),
            destination: SocketAddr::from(([127, 0, 0, 1], port)),
            contents: vec![0u8; len].into(),
        }
    }

    #[test]
    fn gso_runs_are_one_destination_of_one_size_with_a_shorter_tail() {
        let b = [t(5, 1200), t(5, 1200), t(5, 800), t(5, 1200)];
        assert_eq!(gso_run(&b, 64), 3, "a shorter datagram ends the run");
        let b = [t(5, 1200), t(6, 1200)];
        assert_eq!(gso_run(&b, 64), 1, "another destination ends the run");
        let b = [t(5, 800), t(5, 1200)];
        assert_eq!(gso_run(&b, 64), 1, "a larger datagram cannot follow");
        let b: Vec<Transmit> = (0..10).map(|_| t(5, 1200)).collect();
        assert_eq!(gso_run(&b, 4), 4, "the kernel's segment limit");
        assert_eq!(gso_run(&b, 1), 1, "no GSO");
        let b: Vec<Transmit> = (0..80).map(|_| t(5, 1200)).collect();
        assert_eq!(
            gso_run(&b, 128),
            GSO_MAX_BYTES / 1200,
            "at most 64 KB per send"
        );
        assert_eq!(gso_run(&[], 64), 0);
    }
}
