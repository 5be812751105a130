//! The one sans-IO client peer: a str0m `Rtc` and, for a publisher, its media
//! [`Source`], kept to str0m's contract (every mutation is followed by a full drain of
//! `poll_output`) whatever drives it: the test peers' tokio task over a UDP socket, the
//! load tool's task, or the simulations' virtual-time loop. The driver moves bytes and
//! time; the client starts the media at `Event::Connected`, answers keyframe requests
//! (PLI/FIR, by RID) from the source, and writes what the source says is due.
//!
//! Like str0m's `Rtc`: feed input ([`Client::handle_input`], [`Client::write_due`]),
//! then call [`Client::poll_output`] until it returns [`Out::Timeout`]. Outputs come in
//! the order str0m made them, with one [`Out::Written`] per media packet written. Never
//! reads the clock: `now` (monotonic) is passed in.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::media::{Mid, Pt};
use str0m::net::Transmit;
use str0m::rtp::{ExtensionValues, RtpWrite, Ssrc};
use str0m::{Event, Input, Output, Rtc, RtcError};

use crate::media::Body;
use crate::source::{Slot, Source};

/// Numbers the body of each packet: the slot, and the time it is written (send stamps).
pub type Bodies = Box<dyn FnMut(Slot, Instant) -> Body + Send>;

/// A publisher's source and where its packets go.
pub struct Publishing {
    /// The media source.
    pub source: Source,
    bodies: Bodies,
    audio_mid: Mid,
    pub(crate) video_mid: Mid,
    audio_pt: Pt,
    video_pt: Pt,
    /// Header extension values of every audio packet (e.g. an RFC 6464 level).
    pub audio_ext: ExtensionValues,
}

impl Publishing {
    /// `source` sends audio on `audio_mid` with `audio_pt` and video on `video_mid`
    /// (one send stream per simulcast RID) with `video_pt`; `bodies` numbers payloads.
    pub fn new(
        source: Source,
        bodies: Bodies,
        (audio_mid, audio_pt): (Mid, Pt),
        (video_mid, video_pt): (Mid, Pt),
    ) -> Self {
        Publishing {
            source,
            bodies,
            audio_mid,
            video_mid,
            audio_pt,
            video_pt,
            audio_ext: ExtensionValues::default(),
        }
    }
}

/// One media packet handed to str0m.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Video stream (index into the source's plan), `None` for audio.
    pub layer: Option<usize>,
    /// Frame (video) or packet (audio) number.
    pub frame: u64,
    /// Part of a keyframe.
    pub keyframe: bool,
    /// The body's counter.
    pub counter: u64,
    /// Payload bytes.
    pub len: usize,
    /// The send stream's SSRC; `None` when the `Rtc` has no send stream for it (an
    /// m-line or RID the answer refused): the packet was dropped.
    pub ssrc: Option<Ssrc>,
}

/// What the driver must act on.
// Like str0m's `Output`, which carries its `Event` unboxed: boxing would allocate once
// per received RTP packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Out {
    /// Send these bytes.
    Transmit(Transmit),
    /// An event of the `Rtc`, after the client acted on it (media started at
    /// `Connected`, a keyframe scheduled at `KeyframeRequest`).
    Event(Event),
    /// A media packet was written.
    Written(Written),
    /// The `Rtc` wants a timeout input at this time (or new input before); the media
    /// wants [`Client::write_due`] at [`Client::next_due`].
    Timeout(Instant),
}

/// The sans-IO client peer.
pub struct Client {
    rtc: Rtc,
    publishing: Option<Publishing>,
    queue: VecDeque<Out>,
    /// The time of the latest input (media starts then at `Connected`).
    now: Instant,
    /// One timeout input per batch of writes rather than per packet.
    batch: bool,
}

impl Client {
    /// A client of `rtc` (offer made, answer accepted or not yet) at `now`.
    pub fn new(rtc: Rtc, now: Instant) -> Self {
        Client {
            rtc,
            publishing: None,
            queue: VecDeque::new(),
            now,
            batch: false,
        }
    }

    /// Hand str0m the time once per [`Client::write_due`] rather than after every packet:
    /// cheaper for many peers, but str0m's pacer then picks the order of the packets
    /// queued on different streams (by SSRC, which is random), so a simulation would no
    /// longer replay. Off by default: each packet goes out as it is written.
    pub fn batch_writes(&mut self, on: bool) {
        self.batch = on;
    }

    /// Publish `p` once connected (or now, when already connected).
    pub fn publish(&mut self, p: Publishing) {
        self.publishing = Some(p);
    }

    /// The publisher's source and settings, if publishing.
    pub fn publishing(&mut self) -> Option<&mut Publishing> {
        self.publishing.as_mut()
    }

    /// The `Rtc`, for what the client does not wrap (SDP, channels, direct API, close).
    /// A mutation through it must be followed by [`Client::poll_output`] until
    /// [`Out::Timeout`], like any input.
    pub fn rtc(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    /// The `Rtc`, read-only.
    pub fn rtc_ref(&self) -> &Rtc {
        &self.rtc
    }

    /// Feed `input` (a datagram or a timeout) at its time.
    pub fn handle_input(&mut self, input: Input) -> Result<(), RtcError> {
        let (Input::Timeout(t) | Input::Receive(t, _)) = &input;
        self.now = *t;
        self.rtc.handle_input(input)
    }

    /// When the next media packet is due (publishing, connected, not paused).
    pub fn next_due(&self) -> Option<Instant> {
        self.publishing.as_ref()?.source.next_due()
    }

    /// Write every media packet due by `now`, each followed by a timeout input (unless
    /// [`Client::batch_writes`]) and a full drain (queued for [`Client::poll_output`]),
    /// then a timeout input so str0m's pacer moves what is left.
    pub fn write_due(&mut self, now: Instant) -> Result<(), RtcError> {
        self.now = now;
        let Some(p) = self.publishing.as_mut() else {
            return Ok(());
        };
        let bodies = &mut p.bodies;
        let packets = p.source.poll_due(now, |slot| bodies(slot, now));
        for pkt in packets {
            let p = self.publishing.as_mut().expect("publishing");
            let (mid, rid, pt) = match pkt.layer {
                Some(l) => (p.video_mid, p.source.rid(l), p.video_pt),
                None => (p.audio_mid, None, p.audio_pt),
            };
            let written = Written {
                layer: pkt.layer,
                frame: pkt.frame,
                keyframe: pkt.keyframe,
                counter: pkt.counter,
                len: pkt.payload.len(),
                ssrc: None,
            };
            let mut write = RtpWrite::new(pt, pkt.seq.into(), pkt.ts, pkt.wallclock, pkt.payload)
                .marker(pkt.marker)
                .nackable(pkt.layer.is_some());
            if pkt.layer.is_none() {
                write = write.ext_vals(p.audio_ext.clone());
            }
            let mut api = self.rtc.direct_api();
            let ssrc = api.stream_tx_by_mid(mid, rid).map(|tx| {
                let ssrc = tx.ssrc();
                tx.write_rtp(write);
                ssrc
            });
            self.queue
                .push_back(Out::Written(Written { ssrc, ..written }));
            if !self.batch {
                self.rtc.handle_input(Input::Timeout(now))?;
            }
            self.drain_to_queue()?;
        }
        self.rtc.handle_input(Input::Timeout(now))
    }

    /// Write one packet of `len` bytes outside the source on video stream `layer`, next
    /// in its sequence, as a broken or hostile sender would (a payload no generator
    /// made). Returns whether the stream exists.
    pub fn write_raw_video(&mut self, now: Instant, layer: usize, len: usize, byte: u8) -> bool {
        let Some(p) = self.publishing.as_mut() else {
            return false;
        };
        let (mid, rid, pt) = (p.video_mid, p.source.rid(layer), p.video_pt);
        let Some((seq, ts)) = p.source.take_seq(layer) else {
            return false;
        };
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, rid) else {
            return false;
        };
        tx.write_rtp(RtpWrite::new(pt, seq.into(), ts, now, vec![byte; len]));
        true
    }

    /// The next output; call until [`Out::Timeout`] after every input.
    pub fn poll_output(&mut self) -> Result<Out, RtcError> {
        if let Some(out) = self.queue.pop_front() {
            return Ok(out);
        }
        self.poll_rtc()
    }

    /// Drain the `Rtc` into the queue (between writes).
    fn drain_to_queue(&mut self) -> Result<(), RtcError> {
        loop {
            match self.poll_rtc()? {
                Out::Timeout(_) => return Ok(()),
                out => self.queue.push_back(out),
            }
        }
    }

    fn poll_rtc(&mut self) -> Result<Out, RtcError> {
        Ok(match self.rtc.poll_output()? {
            Output::Timeout(t) => Out::Timeout(t),
            Output::Transmit(t) => Out::Transmit(t),
            Output::Event(e) => {
                self.on_event(&e);
                Out::Event(e)
            }
        })
    }

    fn on_event(&mut self, e: &Event) {
        let Some(p) = self.publishing.as_mut() else {
            return;
        };
        match e {
            Event::Connected => p.source.start(self.now),
            Event::KeyframeRequest(req) if req.mid == p.video_mid => {
                // A RID no stream has (none should) refreshes every stream.
                let known = (0..p.source.layers()).any(|l| p.source.rid(l) == req.rid);
                p.source.request_keyframe(req.rid.filter(|_| known));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
