//! A sans-IO model of one direction of a network path: a bottleneck of optional capacity
//! with a bounded FIFO queue (tail drop), random loss from a seeded RNG, and a fixed
//! one-way propagation delay. Time only moves through the `now` given to its methods.
//! On request it records every packet offered, with its RTP header and fate.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One datagram on the wire.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Sender's address.
    pub source: SocketAddr,
    /// Receiver's address.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// Static properties of a link.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// One-way propagation delay added after serialization.
    pub delay: Duration,
    /// Probability (0..=1) that a packet is lost before it enters the queue.
    pub loss: f64,
    /// Bottleneck rate in bits per second; `None` serializes instantly.
    pub capacity_bps: Option<u64>,
    /// Most queueing delay the bottleneck buffer holds at the current capacity; a packet
    /// that would wait longer is tail-dropped.
    pub queue_limit: Duration,
    /// Seed of the loss RNG.
    pub seed: u64,
}

impl LinkConfig {
    /// A lossless link with unlimited capacity and `delay` one-way delay.
    pub fn ideal(delay: Duration) -> Self {
        LinkConfig {
            delay,
            loss: 0.0,
            capacity_bps: None,
            queue_limit: Duration::from_millis(100),
            seed: 0,
        }
    }

    /// The same link dropping each packet with probability `loss`, drawn from `seed`.
    pub fn with_loss(mut self, loss: f64, seed: u64) -> Self {
        self.loss = loss;
        self.seed = seed;
        self
    }

    /// The same link limited to `bps` bits per second.
    pub fn with_capacity(mut self, bps: u64) -> Self {
        self.capacity_bps = Some(bps);
        self
    }
}

/// What happened to one packet offered to a link (see [`Link::set_recording`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Lost at random.
    Lost,
    /// Tail-dropped: the queue was full.
    TailDropped,
    /// Queued (or sent straight on).
    Accepted,
}

/// One packet offered to a recording link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was offered.
    pub at: Instant,
    /// Its size in bytes.
    pub len: usize,
    /// Its first 12 bytes (zero-filled): an SRTP packet's RTP header is in the clear.
    pub head: [u8; 12],
    /// What became of it.
    pub fate: Fate,
}

impl Sample {
    /// Payload type and SSRC, if the packet is RTP (version 2, not an RTCP type).
    pub fn rtp(&self) -> Option<(u8, u32)> {
        let pt = self.head[1] & 0x7f;
        let rtcp = (72..=79).contains(&pt);
        if self.head[0] >> 6 != 2 || rtcp || self.len < 12 {
            return None;
        }
        let ssrc = u32::from_be_bytes([self.head[8], self.head[9], self.head[10], self.head[11]]);
        Some((pt, ssrc))
    }
}

/// Counters of one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets offered with `push`.
    pub pushed: u64,
    /// Packets lost at random.
    pub lost: u64,
    /// Packets dropped because the queue was full.
    pub tail_dropped: u64,
    /// Packets handed out by `pop_due`.
    pub delivered: u64,
    /// Bytes handed out by `pop_due`.
    pub delivered_bytes: u64,
    /// Bytes offered with `push`.
    pub pushed_bytes: u64,
    /// Bytes dropped because the queue was full.
    pub tail_dropped_bytes: u64,
}

/// One direction of a path. See the module docs.
pub struct Link {
    cfg: LinkConfig,
    rng: StdRng,
    /// Waiting for the bottleneck, with the bytes they hold.
    waiting: VecDeque<Packet>,
    waiting_bytes: u64,
    /// The packet being serialized and when its last bit leaves.
    in_service: Option<(Instant, Packet)>,
    /// Serialized, propagating: (arrival time, packet), in arrival order.
    in_flight: VecDeque<(Instant, Packet)>,
    stats: LinkStats,
    /// Every packet offered, while recording.
    samples: Option<Vec<Sample>>,
}

impl Link {
    /// A link with `cfg`, its RNG seeded from `cfg.seed`.
    pub fn new(cfg: LinkConfig) -> Self {
        Link {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            in_service: None,
            in_flight: VecDeque::new(),
            stats: LinkStats::default(),
            samples: None,
        }
    }

    /// Keep a [`Sample`] of every packet offered from now on (`true`), or stop and forget
    /// them (`false`).
    pub fn set_recording(&mut self, on: bool) {
        self.samples = on.then(Vec::new);
    }

    /// The packets offered while recording.
    pub fn samples(&self) -> &[Sample] {
        self.samples.as_deref().unwrap_or(&[])
    }

    fn record(&mut self, now: Instant, packet: &Packet, fate: Fate) {
        if let Some(log) = self.samples.as_mut() {
            let mut head = [0; 12];
            let n = packet.contents.len().min(12);
            head[..n].copy_from_slice(&packet.contents[..n]);
            log.push(Sample {
                at: now,
                len: packet.contents.len(),
                head,
                fate,
            });
        }
    }

    /// How long a packet offered now would wait in the bottleneck queue (zero without a
    /// capacity limit).
    pub fn queue_delay(&self) -> Duration {
        match self.cfg.capacity_bps {
            Some(bps) if bps > 0 => {
                Duration::from_nanos((self.waiting_bytes * 8).saturating_mul(1_000_000_000) / bps)
            }
            _ => Duration::ZERO,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Change the bottleneck rate from `now` on. The packet being serialized finishes at
    /// its old rate; everything behind it uses the new one.
    pub fn set_capacity(&mut self, now: Instant, bps: Option<u64>) {
        self.advance(now);
        self.cfg.capacity_bps = bps;
        if bps.is_none() {
            // No bottleneck any more: the queue drains at once.
            while let Some(p) = self.waiting.pop_front() {
                self.waiting_bytes -= p.contents.len() as u64;
                self.in_flight.push_back((now + self.cfg.delay, p));
            }
        }
    }

    /// Change the loss probability from now on.
    pub fn set_loss(&mut self, loss: f64) {
        self.cfg.loss = loss;
    }

    /// Offer a packet at `now`.
    pub fn push(&mut self, now: Instant, packet: Packet) {
        self.advance(now);
        self.stats.pushed += 1;
        let size = packet.contents.len() as u64;
        self.stats.pushed_bytes += size;
        // One draw per packet, always, so the loss pattern depends only on the packet count.
        let draw: f64 = self.rng.random();
        if draw < self.cfg.loss {
            self.stats.lost += 1;
            self.record(now, &packet, Fate::Lost);
            return;
        }
        let Some(bps) = self.cfg.capacity_bps else {
            self.record(now, &packet, Fate::Accepted);
            self.in_flight.push_back((now + self.cfg.delay, packet));
            return;
        };
        let limit_bytes = (bps as f64 * self.cfg.queue_limit.as_secs_f64() / 8.0) as u64;
        if self.in_service.is_some() && self.waiting_bytes + size > limit_bytes {
            self.stats.tail_dropped += 1;
            self.stats.tail_dropped_bytes += size;
            self.record(now, &packet, Fate::TailDropped);
            return;
        }
        self.record(now, &packet, Fate::Accepted);
        self.waiting_bytes += size;
        self.waiting.push_back(packet);
        self.start_service(now);
    }

    /// When `pop_due` next has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let service = self.in_service.as_ref().map(|(t, _)| *t);
        let flight = self.in_flight.front().map(|(t, _)| *t);
        match (service, flight) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next packet that has arrived by `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Packet> {
        self.advance(now);
        if self.in_flight.front().is_some_and(|(t, _)| *t <= now) {
            let (_, p) = self.in_flight.pop_front()?;
            self.stats.delivered += 1;
            self.stats.delivered_bytes += p.contents.len() as u64;
            return Some(p);
        }
        None
    }

    /// Move every packet whose serialization ended by `now` onto the wire.
    fn advance(&mut self, now: Instant) {
        while let Some((done, _)) = &self.in_service {
            let done = *done;
            if done > now {
                break;
            }
            let (_, p) = self.in_service.take().expect("in service");
            self.in_flight.push_back((done + self.cfg.delay, p));
            self.start_service(done);
        }
    }

    /// Start serializing the head of the queue at `at` if the bottleneck is idle.
    fn start_service(&mut self, at: Instant) {
        if self.in_service.is_some() {
            return;
        }
        let Some(p) = self.waiting.pop_front() else {
            return;
        };
        let size = p.contents.len() as u64;
        self.waiting_bytes -= size;
        let bps = self.cfg.capacity_bps.unwrap_or(u64::MAX).max(1);
        let nanos = (size * 8).saturating_mul(1_000_000_000) / bps;
        self.in_service = Some((at + Duration::from_nanos(nanos), p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(len: usize) -> Packet {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        Packet {
            source: a,
            destination: a,
            contents: vec![0; len],
        }
    }

    #[test]
    fn capacity_serializes_and_tail_drops() {
        let t0 = Instant::now();
        // 1 Mbit/s, 100 ms queue = 12 500 bytes; 1250-byte packets take 10 ms each.
        let mut l = Link::new(LinkConfig::ideal(Duration::from_millis(5)).with_capacity(1_000_000));
        for _ in 0..20 {
            l.push(t0, pkt(1250));
        }
        // One in service plus ten queued; the rest are dropped.
        assert_eq!(l.stats().tail_dropped, 9);
        let mut arrivals = Vec::new();
        while let Some(t) = l.poll_timeout() {
            if let Some(_p) = l.pop_due(t) {
                arrivals.push(t - t0);
            }
        }
        assert_eq!(arrivals.len(), 11);
        assert_eq!(arrivals[0], Duration::from_millis(15));
        assert_eq!(arrivals[10], Duration::from_millis(115));
    }

    #[test]
    fn capacity_steps_apply_to_packets_not_yet_serialized() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        // 5 Mbit/s: a 625-byte packet takes 1 ms.
        let mut l = Link::new(LinkConfig::ideal(Duration::ZERO).with_capacity(5_000_000));
        l.push(t0, pkt(625));
        l.push(t0, pkt(625));
        // Down to 500 kbit/s while the first is on the wire: the second takes 10 ms.
        l.set_capacity(t0 + ms / 2, Some(500_000));
        let mut arrivals = Vec::new();
        while let Some(t) = l.poll_timeout() {
            if l.pop_due(t).is_some() {
                arrivals.push(t - t0);
            }
        }
        assert_eq!(arrivals, [ms, 11 * ms]);
        // Back up: the next one takes 1 ms again.
        l.set_capacity(t0 + 20 * ms, Some(5_000_000));
        l.push(t0 + 20 * ms, pkt(625));
        assert_eq!(l.poll_timeout(), Some(t0 + 21 * ms));
    }

    #[test]
    fn loss_is_seeded() {
        let t0 = Instant::now();
        let run = || {
            let mut l = Link::new(LinkConfig::ideal(Duration::ZERO).with_loss(0.3, 9));
            (0..1000).for_each(|_| l.push(t0, pkt(10)));
            l.stats().lost
        };
        let lost = run();
        assert_eq!(lost, run());
        assert!((200..400).contains(&lost), "lost {lost} of 1000 at 30 %");
    }
}
