//! Deterministic virtual-time simulation of a `switchboard` room with str0m client peers.
//!
//! [`Sim`] owns one sans-IO `Room`, the simulated peers ([`peer`]) and their links
//! ([`link`]). [`Sim::run_until`] repeatedly takes the earliest due event — the room's
//! timeout, a peer's `Rtc` timeout, a link delivery, a publisher's next media write —
//! and processes exactly that one. Time starts at one `Instant` taken at construction
//! and only moves by adding durations to it; nothing sleeps. Signaling is an in-process
//! call to `Room::handle_join`. While [`trace::capture`] is in force, the server's
//! bandwidth estimates are kept in [`Sim::estimates`], stamped with virtual time;
//! [`video`] turns a subscriber's received packets into layers, switches and freezes.
//! Every room event is kept in [`Sim::events`]; [`conference`] adds WHEP viewers with
//! several slots and publishers that tag their media and send audio levels.

#![allow(dead_code)]

pub mod conference;
pub mod link;
pub mod media;
pub mod peer;
pub mod trace;
pub mod video;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use switchboard::metrics::Meters;
use switchboard::net::{Datagram, RoomKey};
use switchboard::room::room::Room;
use switchboard::room::{SessionId, SessionKind};

use conference::SimEvent;
use link::{LinkConfig, Packet};
use media::LayerSpec;
use peer::{Feedback, Peer, Role};

/// The server's one host candidate.
pub const SERVER_ADDR: &str = "10.0.0.1:3478";

/// Most events one [`Sim::run_until`] call may process before the run is declared stuck.
const STEP_CAP: u64 = 5_000_000;

/// What `run_until` picked.
#[derive(Debug, Clone, Copy)]
enum Due {
    Room,
    Uplink(usize),
    Downlink(usize),
    Rtc(usize),
    Media(usize),
}

/// Counters of the driver itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events processed.
    pub steps: u64,
    /// Room timeouts handled.
    pub room_timeouts: u64,
    /// Room timeouts whose deadline was not after the previous one (pushed 1 ms on).
    pub room_stalls: u64,
    /// Server datagrams to an address no peer has.
    pub stray: u64,
}

/// A bandwidth estimate the server's forwarder received for a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Virtual time of the step that produced it.
    pub at: Instant,
    /// The subscriber's index in [`Sim::peers`].
    pub peer: usize,
    /// The estimate, bit/s.
    pub bps: u64,
}

/// The simulated world.
pub struct Sim {
    /// Start of virtual time.
    pub t0: Instant,
    /// Current virtual time.
    pub now: Instant,
    /// The room under test.
    pub room: Room,
    /// The server's address.
    pub server: SocketAddr,
    /// Peers, in joining order.
    pub peers: Vec<Peer>,
    /// Each peer's WHIP/WHEP resource id, by peer index.
    pub resources: Vec<SessionId>,
    /// Driver counters.
    pub stats: SimStats,
    /// Bandwidth estimates, while [`trace::capture`] is in force on this thread.
    pub estimates: Vec<Estimate>,
    /// Every room event, in order, stamped with the virtual time of the step that
    /// queued it.
    pub events: Vec<SimEvent>,
    last_room_timeout: Option<Instant>,
}

impl Sim {
    /// An empty room at virtual time zero.
    pub fn new() -> Self {
        let t0 = Instant::now();
        let server: SocketAddr = SERVER_ADDR.parse().expect("server address");
        let room = Room::new(
            "sim".into(),
            RoomKey(1),
            vec![server],
            Default::default(),
            Meters::new(),
        );
        Sim {
            t0,
            now: t0,
            room,
            server,
            peers: Vec::new(),
            resources: Vec::new(),
            stats: SimStats::default(),
            estimates: Vec::new(),
            events: Vec::new(),
            last_room_timeout: None,
        }
    }

    /// Virtual time `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.t0)
    }

    /// Join a peer now, at address 10.0.0.(2 + index):5000, over `up`/`down` links; a
    /// publisher sends one video stream ([`media::SINGLE`]). Returns its index in
    /// [`Sim::peers`].
    pub fn join(&mut self, name: &str, role: Role, up: LinkConfig, down: LinkConfig) -> usize {
        self.join_with(name, role, &[media::SINGLE], Feedback::Default, up, down)
    }

    /// Join a subscriber whose offer negotiates `feedback` (see [`Feedback`]).
    pub fn join_subscriber(
        &mut self,
        name: &str,
        feedback: Feedback,
        up: LinkConfig,
        down: LinkConfig,
    ) -> usize {
        self.join_with(name, Role::Subscriber, &[], feedback, up, down)
    }

    /// Join a publisher whose video is `layers` (simulcast when they have RIDs).
    pub fn join_publisher(
        &mut self,
        name: &str,
        layers: &[LayerSpec],
        up: LinkConfig,
        down: LinkConfig,
    ) -> usize {
        self.join_with(name, Role::Publisher, layers, Feedback::Default, up, down)
    }

    fn join_with(
        &mut self,
        name: &str,
        role: Role,
        layers: &[LayerSpec],
        feedback: Feedback,
        up: LinkConfig,
        down: LinkConfig,
    ) -> usize {
        let links = (up, down);
        let (peer, offer, pending) = Peer::offer_with(
            self.now,
            name,
            role,
            layers,
            self.next_addr(),
            links,
            feedback,
        );
        let kind = match role {
            Role::Publisher => SessionKind::Publisher,
            Role::Subscriber => SessionKind::Subscriber,
        };
        self.admit(kind, peer, &offer, pending)
    }

    /// The address of the next peer to join: 10.0.0.(2 + index):5000.
    fn next_addr(&self) -> SocketAddr {
        let index = self.peers.len();
        format!("10.0.0.{}:5000", index + 2).parse().expect("addr")
    }

    /// Post `peer`'s offer as a `kind` session of the identity of its name and apply the
    /// answer. Returns its index in [`Sim::peers`].
    fn admit(
        &mut self,
        kind: SessionKind,
        peer: Peer,
        offer: &str,
        pending: SdpPendingOffer,
    ) -> usize {
        let index = self.peers.len();
        let name = peer.name.clone();
        let joined = self
            .room
            .handle_join(self.now, kind, offer, &join_options(&name))
            .unwrap_or_else(|e| panic!("{name}: join refused: {e}"));
        self.last_room_timeout = None;
        self.peers.push(peer);
        self.resources.push(joined.session);
        self.flush_room();
        self.peers[index].accept_answer(self.now, pending, &joined.answer);
        index
    }

    /// Peer `index` leaves: the room gets a DELETE for its resource and the peer stops
    /// (its `Rtc` is dropped from the run; datagrams still on its links are discarded).
    pub fn leave(&mut self, index: usize) -> bool {
        let existed = self.room.handle_leave(self.now, &self.resources[index]);
        self.last_room_timeout = None;
        self.peers[index].gone = true;
        self.flush_room();
        existed
    }

    /// Process every event due up to and including `end`, then set the clock to `end`.
    pub fn run_until(&mut self, end: Instant) {
        self.run(end, |_| false);
        self.now = self.now.max(end);
    }

    /// Process events due up to `end` until `stop` holds after one of them; the clock
    /// stays at that event. Returns whether `stop` held; if it never did, every event up
    /// to `end` was processed and the clock is at `end`.
    pub fn run_until_or(&mut self, end: Instant, stop: impl Fn(&Sim) -> bool) -> bool {
        let stopped = self.run(end, stop);
        if !stopped {
            self.now = self.now.max(end);
        }
        stopped
    }

    /// Run until peer `index` reports `Connected`, at the latest until `deadline`
    /// (panics if it has not connected by then). Returns when it connected.
    pub fn run_until_connected(&mut self, index: usize, deadline: Instant) -> Instant {
        let connected = |sim: &Sim| sim.peers[index].connected_at.is_some();
        if !connected(self) {
            self.run_until_or(deadline, connected);
        }
        self.peers[index].connected_at.unwrap_or_else(|| {
            panic!(
                "{} not connected by {:?}",
                self.peers[index].name,
                self.elapsed(deadline)
            )
        })
    }

    fn run(&mut self, end: Instant, stop: impl Fn(&Sim) -> bool) -> bool {
        let mut steps = 0u64;
        while let Some((t, due)) = self.next_due().filter(|(t, _)| *t <= end) {
            self.now = self.now.max(t);
            steps += 1;
            self.stats.steps += 1;
            if steps > STEP_CAP {
                panic!(
                    "simulation stuck: {STEP_CAP} events before {:?}, at {:?} on {due:?}",
                    self.elapsed(end),
                    self.elapsed(self.now)
                );
            }
            self.process(due);
            for (id, bps) in trace::take() {
                // Participant ids count joins from 1, in the order of `peers`.
                self.estimates.push(Estimate {
                    at: self.now,
                    peer: id.saturating_sub(1) as usize,
                    bps,
                });
            }
            if stop(self) {
                return true;
            }
        }
        false
    }

    /// The earliest due event. Ties go to the first in a fixed order (the room, then
    /// each peer's uplink, downlink, `Rtc` and media), so runs are reproducible.
    fn next_due(&self) -> Option<(Instant, Due)> {
        let mut best: Option<(Instant, Due)> = None;
        let mut consider = |t: Option<Instant>, d: Due| {
            if let Some(t) = t {
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, d));
                }
            }
        };
        let room = self
            .room
            .poll_timeout()
            .map(|t| match self.last_room_timeout {
                // The room keeps a deadline it was already called for: move on by 1 ms
                // rather than spin at one instant.
                Some(last) if t <= last => last + Duration::from_millis(1),
                _ => t,
            });
        consider(room, Due::Room);
        for (i, p) in self.peers.iter().enumerate().filter(|(_, p)| !p.gone) {
            consider(p.uplink.poll_timeout(), Due::Uplink(i));
            consider(p.downlink.poll_timeout(), Due::Downlink(i));
            consider(Some(p.poll_timeout()), Due::Rtc(i));
            consider(p.next_media_at(), Due::Media(i));
        }
        best
    }

    fn process(&mut self, due: Due) {
        let now = self.now;
        match due {
            Due::Room => {
                if self
                    .last_room_timeout
                    .is_some_and(|l| self.room.poll_timeout() <= Some(l))
                {
                    self.stats.room_stalls += 1;
                }
                self.last_room_timeout = Some(now);
                self.stats.room_timeouts += 1;
                self.room.handle_timeout(now);
                self.flush_room();
            }
            Due::Uplink(i) => {
                if let Some(p) = self.peers[i].uplink.pop_due(now) {
                    // New input: a deadline at `now` is fresh, not a repeat.
                    self.last_room_timeout = None;
                    self.room.handle_datagram(
                        now,
                        Datagram {
                            source: p.source,
                            destination: p.destination,
                            received: now,
                            contents: p.contents,
                        },
                    );
                    self.flush_room();
                }
            }
            Due::Downlink(i) => {
                if let Some(p) = self.peers[i].downlink.pop_due(now) {
                    self.peers[i].handle_receive(now, p);
                }
            }
            Due::Rtc(i) => self.peers[i].handle_timeout(now),
            Due::Media(i) => self.peers[i].write_media(now),
        }
    }

    /// Keep the room's events, and put its datagrams on the downlink of the peer they
    /// are addressed to.
    fn flush_room(&mut self) {
        for (audience, event) in self.room.take_events() {
            self.events.push(SimEvent::new(self.now, audience, &event));
        }
        while let Some(t) = self.room.poll_transmit() {
            let found = self
                .peers
                .iter_mut()
                .find(|p| p.addr == t.destination && !p.gone);
            let Some(peer) = found else {
                self.stats.stray += 1;
                continue;
            };
            peer.downlink.push(
                self.now,
                Packet {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.to_vec(),
                },
            );
        }
    }
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

/// Every simulated peer joins as the identity of its name.
pub fn join_options(name: &str) -> switchboard::room::info::JoinOptions {
    switchboard::room::info::JoinOptions {
        identity: Some(name.to_owned()),
        ..Default::default()
    }
}
