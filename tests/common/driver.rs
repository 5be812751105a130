//! The tokio task behind each test peer: it owns the str0m `Rtc` and the
//! UDP socket, feeds datagrams and timeouts in, drains `poll_output` after
//! every mutation (input, timeout, RTP write), sends transmits, handles
//! events, and for publishers writes the synthetic media that its clock
//! ([`super::publisher`]) says is due.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Event, IceConnectionState, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::media::{self, RecvCodec};
use super::publisher::MediaGen;
use super::report::PeerReport;
use switchboard_kit::media as kit;
use switchboard_kit::recv::Arrival;

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

/// One packet to write.
struct Write {
    mid: Mid,
    /// Simulcast layer index and RID of the stream.
    layer: Option<(u8, Rid)>,
    pt: Pt,
    seq: u64,
    ts: u32,
    wallclock: Instant,
    payload: Vec<u8>,
    marker: bool,
    nackable: bool,
    counter: u64,
    video: bool,
}

/// Owns a peer's `Rtc` and socket; runs until closed, aborted or failed.
pub(super) struct Driver {
    pub(super) rtc: Rtc,
    pub(super) socket: UdpSocket,
    pub(super) local_addr: SocketAddr,
    pub(super) shared: Arc<Mutex<PeerReport>>,
    /// Publishers only.
    pub(super) gen: Option<MediaGen>,
    /// Payload type to codec, from the peer's own codec config.
    pub(super) pt_codecs: HashMap<u8, RecvCodec>,
    pub(super) video_mid: Mid,
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
            if !self.rtc.is_alive() {
                return self.finish(None);
            }
            let now = Instant::now();
            if let Some(d) = close_deadline {
                if now >= d {
                    self.rtc.disconnect();
                    return self.finish(None);
                }
            }
            let mut wake = timeout.min(now + Duration::from_millis(500));
            if !closing {
                if let Some(due) = self.gen.as_ref().and_then(|g| g.source.next_due()) {
                    wake = wake.min(due);
                }
            }
            if let Some(d) = close_deadline {
                wake = wake.min(d);
            }

            tokio::select! {
                cmd = cmd_rx.recv(), if !closing => match cmd {
                    Some(Cmd::PauseMedia) => {
                        if let Some(g) = self.gen.as_mut() {
                            g.source.set_paused(true);
                        }
                    }
                    Some(Cmd::SendRaw(to, bytes)) => {
                        let _ = self.socket.send_to(&bytes, to).await;
                    }
                    Some(Cmd::Oversize { len, count }) => self.write_oversize(len, count),
                    Some(Cmd::Close) | None => {
                        closing = true;
                        close_deadline = Some(Instant::now() + Duration::from_millis(500));
                        if let Err(e) = self.rtc.close() {
                            self.rtc.disconnect();
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
                                if let Err(e) = self.rtc.handle_input(Input::Receive(now, recv)) {
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
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        return self.finish(Some(format!("handle_input(timeout): {e}")));
                    }
                    if let Err(e) = self.drain().await {
                        return self.finish(Some(format!("poll_output: {e}")));
                    }
                    if !closing {
                        if let Err(e) = self.write_due_media(now).await {
                            return self.finish(Some(e));
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

    /// Poll until str0m wants a timeout; send transmits, handle events.
    async fn drain(&mut self) -> Result<Instant, RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    if self
                        .socket
                        .send_to(&t.contents, t.destination)
                        .await
                        .is_ok()
                    {
                        self.shared.lock().unwrap().datagrams_out += 1;
                    }
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        let now = Instant::now();
        match e {
            Event::Connected => {
                self.shared.lock().unwrap().connected_at = Some(now);
                if let Some(g) = self.gen.as_mut() {
                    g.source.start(now);
                }
            }
            Event::IceConnectionStateChange(state) => {
                self.shared.lock().unwrap().ice_state = Some(format!("{state:?}"));
                if state == IceConnectionState::Disconnected {
                    tracing::debug!("peer {} ICE disconnected", self.local_addr);
                }
            }
            Event::KeyframeRequest(req) => {
                let mut layers = Vec::new();
                if req.mid == self.video_mid {
                    if let Some(g) = self.gen.as_mut() {
                        layers = g.request_keyframe(req.rid);
                    }
                }
                let mut s = self.shared.lock().unwrap();
                s.publisher.keyframe_requests += 1;
                for l in layers {
                    if let Some(sent) = s.publisher.layers.get_mut(l as usize) {
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
                        kind.record(codec, &pkt, now);
                        if let Ok(parsed) = kit::parse(codec, &pkt.payload) {
                            let arrival = Arrival {
                                ts: pkt.header.timestamp,
                                marker: pkt.header.marker,
                                len: pkt.payload.len(),
                                now_us: media::micros_since_epoch(now),
                            };
                            let ssrc = *pkt.header.ssrc;
                            sub.checks.record(ssrc, &parsed, arrival, true, FREEZE_US);
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

    /// Write every video frame and audio packet that is due by `now`.
    async fn write_due_media(&mut self, now: Instant) -> Result<(), String> {
        let Some(gen) = self.gen.as_mut() else {
            return Ok(());
        };
        let packets = gen.poll_due(now);
        let mut writes = Vec::with_capacity(packets.len());
        // Figures per frame: its first packet on each layer.
        let mut frame_of_layer: Vec<Option<u64>> = vec![None; gen.source.layers()];
        let mut last_frame = None;
        for p in packets {
            let Some(layer) = p.layer else {
                writes.push(Write {
                    mid: gen.audio_mid,
                    layer: None,
                    pt: gen.audio_pt,
                    seq: p.seq,
                    ts: p.ts,
                    wallclock: p.wallclock,
                    payload: p.payload,
                    marker: p.marker,
                    nackable: false,
                    counter: p.counter,
                    video: false,
                });
                continue;
            };
            let rid = gen.rid(layer).map(|rid| (layer as u8, rid));
            if frame_of_layer[layer] != Some(p.frame) {
                frame_of_layer[layer] = Some(p.frame);
                let mut s = self.shared.lock().unwrap();
                if last_frame != Some(p.frame) {
                    last_frame = Some(p.frame);
                    s.publisher.video_frames += 1;
                }
                s.publisher.keyframes_sent += u64::from(p.keyframe);
                if rid.is_some() {
                    if let Some(sent) = s.publisher.layers.get_mut(layer) {
                        sent.frames += 1;
                        if p.keyframe {
                            sent.keyframes_sent += 1;
                            sent.keyframe_sent_at.push(now);
                        }
                    }
                }
            }
            writes.push(Write {
                mid: gen.video_mid,
                layer: rid,
                pt: gen.video_pt,
                seq: p.seq,
                ts: p.ts,
                wallclock: p.wallclock,
                payload: p.payload,
                marker: p.marker,
                nackable: true,
                counter: p.counter,
                video: true,
            });
        }
        for w in writes {
            self.write(w, now).await?;
        }
        Ok(())
    }

    /// Write `count` video packets of `len` zero bytes on the first video stream,
    /// outside the media generator's accounting (see [`Cmd::Oversize`]); they go out
    /// with the next drain.
    fn write_oversize(&mut self, len: usize, count: usize) {
        let Some(gen) = self.gen.as_mut() else {
            return;
        };
        let (mid, pt, rid) = (gen.video_mid, gen.video_pt, gen.rid(0));
        let now = Instant::now();
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, rid) else {
            return;
        };
        for _ in 0..count {
            let Some((seq, ts)) = gen.source.take_seq(0) else {
                return;
            };
            tx.write_rtp(RtpWrite::new(pt, seq.into(), ts, now, vec![0; len]));
        }
    }

    /// Write one packet, hand str0m a timeout so it moves it to the wire,
    /// and drain.
    async fn write(&mut self, w: Write, now: Instant) -> Result<(), String> {
        let len = w.payload.len() as u64;
        let written = {
            let mut api = self.rtc.direct_api();
            match api.stream_tx_by_mid(w.mid, w.layer.map(|(_, rid)| rid)) {
                Some(tx) => {
                    let ssrc = *tx.ssrc();
                    tx.write_rtp(
                        RtpWrite::new(w.pt, w.seq.into(), w.ts, w.wallclock, w.payload)
                            .marker(w.marker)
                            .nackable(w.nackable),
                    );
                    Some(ssrc)
                }
                None => None,
            }
        };
        {
            let mut s = self.shared.lock().unwrap();
            let p = &mut s.publisher;
            match written {
                Some(ssrc) if w.layer.is_some() => {
                    let layer = w.layer.map_or(0, |(l, _)| l as usize);
                    if let Some(sent) = p.layers.get_mut(layer) {
                        sent.ssrc = Some(ssrc);
                        sent.counters.push(w.counter);
                        sent.bytes += len;
                    }
                }
                Some(ssrc) if w.video => {
                    p.video_ssrc = Some(ssrc);
                    p.video_counters.push(w.counter);
                }
                Some(ssrc) => {
                    p.audio_ssrc = Some(ssrc);
                    p.audio_counters.push(w.counter);
                }
                None => p.missing_stream += 1,
            }
        }
        self.drain()
            .await
            .map_err(|e| format!("poll_output after write: {e}"))?;
        self.rtc
            .handle_input(Input::Timeout(now.max(Instant::now())))
            .map_err(|e| format!("handle_input(timeout) after write: {e}"))?;
        self.drain()
            .await
            .map_err(|e| format!("poll_output after write: {e}"))?;
        Ok(())
    }
}
