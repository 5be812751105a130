//! The tokio task that drives one peer's `Rtc` over its UDP socket until told to close.
//!
//! It keeps str0m's contract through the client kit's sans-IO [`Client`]: every mutation
//! (a datagram, a timeout, an RTP write) is followed by a full drain of its outputs,
//! whose transmits go out on the socket. A publisher's client writes its media source's
//! packets on its clock and keyframes on `Event::KeyframeRequest`; viewers parse every `Event::RtpPacket` into
//! [`RecvStats`], by SSRC (one stream per WHEP slot). A data-only peer ([`DataPeer`])
//! writes its due messages with `rtc.channel(id).write(false, …)` (each write drained
//! like an RTP write) and checks every `Event::ChannelData`. Figures the progress
//! display needs go to the shared [`Live`] atomics; the rest comes back as a
//! [`PeerReport`] when the task ends. Never does HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::Pt;
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, RtcError};
use switchboard_kit::client::{Client, Out};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

use crate::data::{DataPeer, Topic};
use crate::peer::{Connected, Live, PeerReport, Phase};
use switchboard_kit::media::{self, PayloadCodec};
use switchboard_kit::recv::{Arrival, RecvStats};

/// Most datagrams read in one go before the task looks at its timers again.
const RECV_BATCH: usize = 64;

/// A negotiated peer, ready to connect and stream.
pub struct Ready {
    pub(crate) client: Client,
    pub(crate) socket: UdpSocket,
    pub(crate) local: SocketAddr,
    pub(crate) codecs: HashMap<Pt, PayloadCodec>,
    pub(crate) recv: Option<RecvStats>,
    /// A data-only session's channels, sender and receiver.
    pub(crate) data: Option<DataPeer>,
    /// Frame gap above which a viewer counts a freeze, µs.
    pub(crate) freeze_us: u64,
    pub(crate) report: PeerReport,
    pub(crate) ice_at: Option<Instant>,
}

impl Ready {
    /// Drive the peer until [`Phase::Close`] or until the `Rtc` dies. `connected` fires
    /// once ICE and DTLS are up.
    pub async fn run(
        mut self,
        live: Arc<Live>,
        mut phase: watch::Receiver<Phase>,
        connected: oneshot::Sender<Connected>,
    ) -> PeerReport {
        let mut connected = Some(connected);
        let mut buf = vec![0u8; 2048];
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let timeout = match self.drain(&live, &mut connected).await {
                Ok(t) => t,
                Err(e) => return self.finish(Some(format!("poll_output: {e}"))),
            };
            if !self.client.rtc_ref().is_alive() {
                // The server may close first once the session is DELETEd.
                let running = *phase.borrow() == Phase::Run;
                return self.finish(running.then(|| "the connection closed".into()));
            }
            let mut wake = timeout.min(Instant::now() + Duration::from_secs(1));
            if let Some(due) = self.client.next_due() {
                wake = wake.min(due);
            }
            if let Some(due) = self.data.as_ref().and_then(DataPeer::next_due) {
                wake = wake.min(due);
            }
            sleep.as_mut().reset(wake.into());
            tokio::select! {
                changed = phase.changed() => {
                    let p = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Close };
                    match p {
                        Phase::Run => {}
                        Phase::SendData => {
                            if let Some(d) = self.data.as_mut() {
                                d.start(Instant::now());
                            }
                        }
                        Phase::StopMedia => {
                            if let Some(p) = self.client.publishing() {
                                p.source.set_paused(true);
                            }
                            if let Some(d) = self.data.as_mut() {
                                d.stop();
                            }
                        }
                        Phase::Close => {
                            let _ = self.client.rtc().close();
                            let _ = self.drain(&live, &mut connected).await;
                            self.client.rtc().disconnect();
                            return self.finish(None);
                        }
                    }
                }
                res = self.socket.recv_from(&mut buf) => {
                    // Errors (ICMP port unreachable as ConnectionRefused) are not fatal.
                    if let Ok(first) = res {
                        let batch = self.receive_batch(&mut buf, first, &live, &mut connected);
                        if let Err(e) = batch.await {
                            return self.finish(Some(e));
                        }
                    }
                }
                _ = &mut sleep => {
                    let now = Instant::now();
                    if let Err(e) = self.client.handle_input(Input::Timeout(now)) {
                        return self.finish(Some(format!("timeout: {e}")));
                    }
                    if let Err(e) = self.write_media(now, &live, &mut connected).await {
                        return self.finish(Some(e));
                    }
                }
            }
        }
    }

    fn finish(mut self, error: Option<String>) -> PeerReport {
        self.report.error = error;
        self.report.recv = self.recv.take();
        self.report.sent = self.client.publishing().map(|p| p.source.sent.clone());
        self.report.data = self.data.take().map(|d| d.stats);
        self.report
    }

    /// Handle the datagram `first` (in `buf`), then whatever else is already queued,
    /// up to [`RECV_BATCH`], without going back to the timers.
    async fn receive_batch(
        &mut self,
        buf: &mut [u8],
        first: (usize, SocketAddr),
        live: &Live,
        connected: &mut Option<oneshot::Sender<Connected>>,
    ) -> Result<(), String> {
        let (n, source) = first;
        self.receive(&buf[..n], source, live, connected).await?;
        for _ in 0..RECV_BATCH {
            let Ok((n, source)) = self.socket.try_recv_from(buf) else {
                break;
            };
            self.receive(&buf[..n], source, live, connected).await?;
        }
        Ok(())
    }

    async fn receive(
        &mut self,
        data: &[u8],
        source: SocketAddr,
        live: &Live,
        connected: &mut Option<oneshot::Sender<Connected>>,
    ) -> Result<(), String> {
        // Anything str0m cannot classify (not STUN/DTLS/RTP) is not ours to handle.
        let Ok(recv) = Receive::new(Protocol::Udp, source, self.local, data) else {
            return Ok(());
        };
        self.client
            .handle_input(Input::Receive(Instant::now(), recv))
            .map_err(|e| format!("receive: {e}"))?;
        self.drain(live, connected)
            .await
            .map(|_| ())
            .map_err(|e| format!("poll_output: {e}"))
    }

    /// Write every due packet and data message (each write drained), then let str0m's
    /// pacer move them.
    async fn write_media(
        &mut self,
        now: Instant,
        live: &Live,
        connected: &mut Option<oneshot::Sender<Connected>>,
    ) -> Result<(), String> {
        let due = self.data.as_mut().map(|d| d.due(now)).unwrap_or_default();
        for topic in due {
            self.write_data(topic, live);
            self.drain(live, connected)
                .await
                .map_err(|e| format!("poll_output after a data write: {e}"))?;
        }
        self.client
            .write_due(now.max(Instant::now()))
            .map_err(|e| format!("write: {e}"))?;
        self.drain(live, connected)
            .await
            .map(|_| ())
            .map_err(|e| format!("poll_output: {e}"))
    }

    /// Write the next message of `topic` on its channel, stamped now.
    fn write_data(&mut self, topic: Topic, live: &Live) {
        let Some(d) = self.data.as_mut() else {
            return;
        };
        let text = d.message(topic, live.micros(Instant::now()));
        let ok = d.channel(topic).is_some_and(|id| {
            self.client
                .rtc()
                .channel(id)
                .is_some_and(|mut c| c.write(false, text.as_bytes()).unwrap_or(false))
        });
        d.written(topic, text.len(), ok);
        if ok {
            live.data_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Poll until str0m asks for a timeout: send transmits, handle events.
    async fn drain(
        &mut self,
        live: &Live,
        connected: &mut Option<oneshot::Sender<Connected>>,
    ) -> Result<Instant, RtcError> {
        loop {
            match self.client.poll_output()? {
                Out::Timeout(t) => return Ok(t),
                Out::Written(_) => {
                    live.sent_packets.fetch_add(1, Ordering::Relaxed);
                }
                Out::Transmit(t) => {
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                        if e.kind() == std::io::ErrorKind::WouldBlock {
                            let _ = self.socket.send_to(&t.contents, t.destination).await;
                        }
                    }
                }
                Out::Event(e) => self.on_event(e, live, connected),
            }
        }
    }

    fn on_event(
        &mut self,
        e: Event,
        live: &Live,
        connected: &mut Option<oneshot::Sender<Connected>>,
    ) {
        match e {
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.ice_at.get_or_insert_with(Instant::now);
                }
                IceConnectionState::Disconnected => self.report.ice_disconnects += 1,
                _ => {}
            },
            Event::Connected => {
                let now = Instant::now();
                if let Some(tx) = connected.take() {
                    let _ = tx.send(Connected {
                        ice_at: self.ice_at,
                        at: now,
                    });
                }
            }
            Event::ChannelOpen(id, label) => {
                let now = Instant::now();
                if self
                    .data
                    .as_mut()
                    .is_some_and(|d| d.opened(id, &label, now))
                {
                    live.channels_open.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::ChannelData(m) => {
                let now_us = live.micros(Instant::now());
                if self
                    .data
                    .as_mut()
                    .is_some_and(|d| d.receive(m.id, &m.data, now_us))
                {
                    live.data_received.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::ChannelClose(id) => {
                if let Some(d) = self.data.as_mut() {
                    d.closed(id);
                }
            }
            Event::RtpPacket(pkt) => {
                let Some(recv) = self.recv.as_mut() else {
                    return;
                };
                live.viewer_packets.fetch_add(1, Ordering::Relaxed);
                live.viewer_bytes
                    .fetch_add(pkt.payload.len() as u64, Ordering::Relaxed);
                let parsed = self
                    .codecs
                    .get(&pkt.header.payload_type)
                    .ok_or(media::ParseError::Codec)
                    .and_then(|&c| media::parse(c, &pkt.payload));
                match parsed {
                    Ok(p) => recv.record(
                        *pkt.header.ssrc,
                        &p,
                        Arrival {
                            ts: pkt.header.timestamp,
                            marker: pkt.header.marker,
                            len: pkt.payload.len(),
                            now_us: live.micros(Instant::now()),
                        },
                        live.measuring.load(Ordering::Relaxed),
                        self.freeze_us,
                    ),
                    Err(_) => recv.unreadable += 1,
                }
            }
            _ => {}
        }
    }
}
