//! A subscriber that estimates its own downlink and reports it by REMB
//! (draft-alvestrand-rmcat-remb-03) instead of sending transport-wide feedback, as aiortc
//! and older libwebrtc receivers do. The estimate follows the receive-side rate control of
//! GCC (draft-ietf-rmcat-gcc-02 §5.5) once a second, on what the peer's downlink delivered
//! in that second (`R`):
//!
//! * overuse (the downlink dropped packets, its queue holds more than [`OVERUSE_DELAY`], or
//!   a spurious signal is due, see below): the estimate falls to 0.85 × `R`;
//! * otherwise it grows by 8 % a second, but not above 1.5 × `R` + 10 kbit/s (an estimate
//!   already above that bound is held, not cut): a receiver cannot vouch for more than
//!   it sees arriving.
//!
//! Real receivers' delay detectors also fire without congestion, on arrival jitter (an
//! interpreted receiver on a busy loopback does so every few seconds): [`RembReceiver`]
//! can raise such a spurious overuse every `n`-th second of a clean link. The first
//! estimate is `R` of the first second with video, and the estimate never goes below
//! [`MIN_BPS`].

use std::time::Duration;

use super::Sim;

/// A queue longer than this at the report counts as overuse.
pub const OVERUSE_DELAY: Duration = Duration::from_millis(30);
/// The estimate never goes below this, bit/s.
pub const MIN_BPS: f64 = 10_000.0;

/// The REMB sender of one subscriber; call [`RembReceiver::tick`] once a second.
#[derive(Debug, Clone)]
pub struct RembReceiver {
    peer: usize,
    spurious_every: Option<u32>,
    seconds: u32,
    estimate: Option<f64>,
    last_delivered: u64,
    last_dropped: u64,
    /// Every REMB sent: (seconds since the start of the run, bit/s).
    pub sent: Vec<(f64, u64)>,
}

impl RembReceiver {
    /// The estimator of subscriber `peer`; with `spurious_every` = `Some(n)`, every `n`-th
    /// report follows a spurious overuse signal.
    pub fn new(peer: usize, spurious_every: Option<u32>) -> Self {
        RembReceiver {
            peer,
            spurious_every,
            seconds: 0,
            estimate: None,
            last_delivered: 0,
            last_dropped: 0,
            sent: Vec::new(),
        }
    }

    /// One second has passed: update the estimate from what arrived and send it as REMB
    /// (nothing before the first video packet, which creates the receive stream).
    pub fn tick(&mut self, sim: &mut Sim) {
        self.seconds += 1;
        let now = sim.now;
        let peer = &mut sim.peers[self.peer];
        let stats = peer.downlink.stats();
        let rate = ((stats.delivered_bytes - self.last_delivered) * 8) as f64;
        let dropped = stats.tail_dropped + stats.lost;
        let congested = dropped > self.last_dropped || peer.downlink.queue_delay() > OVERUSE_DELAY;
        self.last_delivered = stats.delivered_bytes;
        self.last_dropped = dropped;
        if peer.received.video.is_empty() {
            return;
        }
        let spurious = self
            .spurious_every
            .is_some_and(|n| self.seconds.is_multiple_of(n));
        let next = match self.estimate {
            None => rate,
            Some(_) if congested || spurious => 0.85 * rate,
            Some(e) => (e * 1.08).min(e.max(1.5 * rate + 10_000.0)),
        }
        .max(MIN_BPS);
        self.estimate = Some(next);
        let bps = next as u64;
        peer.send_remb(now, bps);
        self.sent.push((sim.elapsed(now).as_secs_f64(), bps));
    }
}
