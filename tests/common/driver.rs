//! The tokio task behind each test peer: it owns the client kit's sans-IO client
//! (the str0m `Rtc` and, for a publisher, its media source: [`super::publisher`]) and
//! the UDP socket, feeds datagrams and timeouts in, drains the client's outputs after
//! every input, sends transmits, and keeps the peer's report from its events and
//! written packets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::media::{Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, RtcError};
use switchboard_kit::client::{Client, Out, Written};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::media::{self, RecvCodec};
use super::report::PeerReport;
use switchboard_kit::recv::Got;

/// A frame gap above three frame intervals is a freeze in the kit's receiver checks.
const FREEZE_US: u64 = 3 * 1_000_000 / media::VIDEO_FPS as u64;

pub(super) enum Cmd {
    PauseMedia,
    /// Send a datagram from the peer's own socket, outside of str0m.
    SendRaw(SocketAddr, Vec<u8>),
    /// Publisher: write this many video RTP packets of this many payload bytes (a
    /// payload no generator made), next in the first video stream's sequence.
    Oversize {
        len: usize,
        count: usize,
    },
    Close,
}

/// Owns a peer's `Rtc` and socket; runs until closed, aborted or failed.
pub(super) struct Driver {
    pub(super) client: Client,
    pub(super) socket: UdpSocket,
    pub(super) local_addr: SocketAddr,
    pub(super) shared: Arc<Mutex<PeerReport>>,
    /// Payload type to codec, from the peer's own codec config.
    pub(super) pt_codecs: HashMap<u8, RecvCodec>,
    pub(super) video_mid: Mid,
    /// A simulcast publisher's RIDs, lowest layer index first (empty otherwise).
    pub(super) rids: Vec<Rid>,
    /// The frame of each video stream whose figures were counted last.
    pub(super) counted: Vec<Option<u64>>,
}

impl Driver {
    pub(super) async fn run(mut self, mut cmd_rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut buf = vec![0u8; 2048];
        let mut closing = false;
        let mut close_deadline = None;
        loop {
            let timeout = match self.drain().await {
                Ok(t) => t,
                Err(e) => return self.finish(Some(format!("poll_output: {e}"))),
            };
            if !self.client.rtc_ref().is_alive() {
                return self.finish(None);
            }
            let now = Instant::now();
            if let Some(d) = close_deadline {
                if now >= d {
                    self.client.rtc().disconnect();
                    return self.finish(None);
                }
            }
            let mut wake = timeout.min(now + Duration::from_millis(500));
            if !closing {
                if let Some(due) = self.client.next_due() {
                    wake = wake.min(due);
                }
            }
            if let Some(d) = close_deadline {
                wake = wake.min(d);
            }

            tokio::select! {
                cmd = cmd_rx.recv(), if !closing => match cmd {
                    Some(Cmd::PauseMedia) => {
                        if let Some(p) = self.client.publishing() {
                            p.source.set_paused(true);
                        }
                    }
                    Some(Cmd::SendRaw(to, bytes)) => {
                        let _ = self.socket.send_to(&bytes, to).await;
                    }
                    Some(Cmd::Oversize { len, count }) => self.write_oversize(len, count),
                    Some(Cmd::Close) | None => {
                        closing = true;
                        close_deadline = Some(Instant::now() + Duration::from_millis(500));
                        if let Err(e) = self.client.rtc().close() {
                            self.client.rtc().disconnect();
                            return self.finish(Some(format!("close: {e}")));
                        }
                    }
                },
                res = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = res {
                        let now = Instant::now();
                        {
                            let mut s = self.shared.lock().unwrap();
                            s.datagrams_in += 1;
                            s.bytes_in += n as u64;
                        }
                        match Receive::new(Protocol::Udp, source, self.local_addr, &buf[..n]) {
                            Ok(recv) => {
                                if let Err(e) = self.client.handle_input(Input::Receive(now, recv)) {
                                    return self.finish(Some(format!("handle_input(receive): {e}")));
                                }
                            }
                            Err(_) => self.shared.lock().unwrap().datagrams_unparsable += 1,
                        }
                    }
                    // Errors (e.g. ICMP port unreachable surfacing as
                    // ConnectionRefused) are not fatal for a UDP socket.
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if let Err(e) = self.client.handle_input(Input::Timeout(now)) {
                        return self.finish(Some(format!("handle_input(timeout): {e}")));
                    }
                    if let Err(e) = self.drain().await {
                        return self.finish(Some(format!("poll_output: {e}")));
                    }
                    if !closing {
                        if let Err(e) = self.client.write_due(now) {
                            return self.finish(Some(format!("write: {e}")));
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self, error: Option<String>) {
        let mut s = self.shared.lock().unwrap();
        s.finished = true;
        if error.is_some() && s.error.is_none() {
            s.error = error;
        }
    }

    /// Poll until str0m wants a timeout; send transmits, handle events and writes.
    async fn drain(&mut self) -> Result<Instant, RtcError> {
        loop {
            match self.client.poll_output()? {
                Out::Timeout(t) => return Ok(t),
                Out::Transmit(t) => {
                    if self
                        .socket
                        .send_to(&t.contents, t.destination)
                        .await
                        .is_ok()
                    {
                        self.shared.lock().unwrap().datagrams_out += 1;
                    }
                }
                Out::Event(e) => self.on_event(e),
                Out::Written(w) => self.on_written(w),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        let now = Instant::now();
        match e {
            Event::Connected => {
                self.shared.lock().unwrap().connected_at = Some(now);
            }
            Event::IceConnectionStateChange(state) => {
                self.shared.lock().unwrap().ice_state = Some(format!("{state:?}"));
                if state == IceConnectionState::Disconnected {
                    tracing::debug!("peer {} ICE disconnected", self.local_addr);
                }
            }
            Event::KeyframeRequest(req) => {
                // The simulcast layers it names (the client scheduled their keyframes).
                let layers: Vec<usize> = match req.rid {
                    _ if req.mid != self.video_mid => Vec::new(),
                    Some(rid) if self.rids.contains(&rid) => self
                        .rids
                        .iter()
                        .position(|r| *r == rid)
                        .into_iter()
                        .collect(),
                    _ => (0..self.rids.len()).collect(),
                };
                let mut s = self.shared.lock().unwrap();
                s.publisher.keyframe_requests += 1;
                for l in layers {
                    if let Some(sent) = s.publisher.layers.get_mut(l) {
                        sent.keyframe_requests += 1;
                        sent.keyframe_requested_at.push(now);
                    }
                }
            }
            Event::RtpPacket(pkt) => {
                let mut s = self.shared.lock().unwrap();
                let sub = &mut s.subscriber;
                match self.pt_codecs.get(&*pkt.header.payload_type) {
                    Some(&codec) => {
                        let kind = if codec.is_video() {
                            &mut sub.video
                        } else {
                            &mut sub.audio
                        };
                        // One reading of the payload for both views of what arrived.
                        let read = Got::read(now, codec, &pkt);
                        kind.record(codec, &pkt, now, read.as_ref());
                        if let Ok(got) = &read {
                            let arrival = got.arrival(media::micros_since_epoch(now));
                            let ssrc = *pkt.header.ssrc;
                            sub.checks
                                .record(ssrc, &got.parsed(), arrival, true, FREEZE_US);
                        }
                    }
                    None => sub.unknown_pt += 1,
                }
            }
            Event::Closed => {
                self.shared.lock().unwrap().remote_closed = true;
            }
            _ => {}
        }
    }

    /// The figures of one packet the client wrote.
    fn on_written(&mut self, w: Written) {
        let now = Instant::now();
        let mut s = self.shared.lock().unwrap();
        let p = &mut s.publisher;
        let Some(ssrc) = w.ssrc else {
            p.missing_stream += 1;
            return;
        };
        let Some(layer) = w.layer else {
            p.audio_ssrc = Some(*ssrc);
            p.audio_counters.push(w.counter);
            return;
        };
        // A frame's first packet on a stream: count the frame (once for all streams).
        if self.counted.get(layer).copied().flatten() != Some(w.frame) {
            if !self.counted.contains(&Some(w.frame)) {
                p.video_frames += 1;
            }
            if let Some(c) = self.counted.get_mut(layer) {
                *c = Some(w.frame);
            }
            p.keyframes_sent += u64::from(w.keyframe);
            if let Some(sent) = p.layers.get_mut(layer) {
                sent.frames += 1;
                if w.keyframe {
                    sent.keyframes_sent += 1;
                    sent.keyframe_sent_at.push(now);
                }
            }
        }
        if self.rids.is_empty() {
            p.video_ssrc = Some(*ssrc);
            p.video_counters.push(w.counter);
        } else if let Some(sent) = p.layers.get_mut(layer) {
            sent.ssrc = Some(*ssrc);
            sent.counters.push(w.counter);
            sent.bytes += w.len as u64;
        }
    }

    /// Write `count` video packets of `len` zero bytes on the first video stream,
    /// outside the media source's accounting (see [`Cmd::Oversize`]); they go out
    /// with the next drain.
    fn write_oversize(&mut self, len: usize, count: usize) {
        let now = Instant::now();
        for _ in 0..count {
            if !self.client.write_raw_video(now, 0, len, 0) {
                return;
            }
        }
    }
}
