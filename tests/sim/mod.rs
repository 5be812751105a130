//! Deterministic virtual-time simulation of a `switchboard` room with str0m client peers.
//!
//! [`Sim`] owns one sans-IO `Room`, the simulated peers ([`peer`]) and their links
//! ([`link`]). [`Sim::run_until`] repeatedly takes the earliest due event — the room's
//! timeout, a shard's timeout, a peer's `Rtc` timeout, a link delivery, a publisher's
//! next media write — and processes exactly that one. Time starts at one `Instant` taken at construction
//! and only moves by adding durations to it; nothing sleeps. Signaling is an in-process
//! call to `Room::handle_join`. While [`trace::capture`] is in force, the server's
//! bandwidth estimates are kept in [`Sim::estimates`], stamped with virtual time;
//! [`video`] turns a subscriber's received packets into layers, switches and freezes.
//! Every room event is kept in [`Sim::events`]; [`conference`] adds WHEP viewers with
//! several slots and publishers that tag their media and send audio levels.
//! [`Sim::with_shards`] lets the room move WHEP sessions to subscriber shards, which the
//! driver runs alongside the room ([`shards`]).

#![allow(dead_code)]

pub mod conference;
pub mod data;
pub use switchboard_kit::link;
pub mod media;
pub mod peer;
pub mod remb;
pub mod restart;
pub mod shards;
pub mod trace;
pub mod video;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::net::Transmit;
use switchboard::conference::notices::Notice;
use switchboard::ids::{SessionId, SessionKind};
use switchboard::limits::RoomLimits;
use switchboard::limits::ShardPolicy;
use switchboard::metrics::Meters;
use switchboard::net::{Datagram, RoomKey};
use switchboard::room::{RecordOutput, Room};
use switchboard::shard::Shard;

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
    Shard(usize),
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
    /// Shard timeouts handled.
    pub shard_timeouts: u64,
    /// Shard timeouts whose deadline was not after the previous one (pushed 1 ms on).
    pub shard_stalls: u64,
    /// Peer datagrams handed to a shard rather than the room.
    pub shard_datagrams: u64,
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
    /// Every notice (join, leave, publish, unpublish), in order.
    pub notices: Vec<Notice>,
    /// What the room's recordings handed out, in order.
    pub records: Vec<RecordOutput>,
    /// Subscriber shards, by index (empty without a shard policy).
    pub shards: Vec<Shard>,
    /// The shard driving each peer's session, by peer index (see [`Sim::shard_of`]).
    shard_of: Vec<Option<usize>>,
    last_room_timeout: Option<Instant>,
    /// Per shard, as `last_room_timeout` for the room.
    last_shard_timeouts: Vec<Option<Instant>>,
}

impl Sim {
    /// An empty room at virtual time zero, without subscriber shards.
    pub fn new() -> Self {
        Sim::with_shards(ShardPolicy::default())
    }

    /// An empty room at virtual time zero that spreads its WHEP sessions over
    /// subscriber shards as `policy` says (the default policy: never).
    pub fn with_shards(policy: ShardPolicy) -> Self {
        let t0 = Instant::now();
        let server: SocketAddr = SERVER_ADDR.parse().expect("server address");
        let limits = RoomLimits {
            shards: policy,
            ..Default::default()
        };
        let room = Room::new(
            "sim".into(),
            RoomKey(1),
            vec![server],
            limits,
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
            notices: Vec::new(),
            records: Vec::new(),
            shards: Vec::new(),
            shard_of: Vec::new(),
            last_room_timeout: None,
            last_shard_timeouts: Vec::new(),
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
    pub(crate) fn next_addr(&self) -> SocketAddr {
        let index = self.peers.len();
        format!("10.0.0.{}:5000", index + 2).parse().expect("addr")
    }

    /// Post `peer`'s offer as a `kind` session of the identity of its name and apply the
    /// answer (a WHEP session may go to a subscriber shard, started first if the room
    /// wants one). Returns its index in [`Sim::peers`].
    pub(crate) fn admit(
        &mut self,
        kind: SessionKind,
        peer: Peer,
        offer: &str,
        pending: SdpPendingOffer,
    ) -> usize {
        let index = self.peers.len();
        let name = peer.name.clone();
        if kind == SessionKind::Subscriber {
            self.start_shard_if_wanted();
        }
        let joined = self
            .room
            .handle_join(self.now, kind, offer, &join_options(&name))
            .unwrap_or_else(|e| panic!("{name}: join refused: {e}"));
        self.last_room_timeout = None;
        self.peers.push(peer);
        self.resources.push(joined.session);
        self.pump();
        self.peers[index].accept_answer(self.now, pending, &joined.answer);
        index
    }

    /// Peer `index` leaves: the room gets a DELETE for its resource (a sharded session's
    /// shard is told to close it) and the peer stops (its `Rtc` is dropped from the run;
    /// datagrams still on its links are discarded).
    pub fn leave(&mut self, index: usize) -> bool {
        let existed = self.room.handle_leave(self.now, &self.resources[index]);
        self.last_room_timeout = None;
        self.peers[index].gone = true;
        self.pump();
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
    /// each shard, then each peer's uplink, downlink, `Rtc` and media), so runs are
    /// reproducible.
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
        for (i, t) in self.shard_deadlines() {
            consider(Some(t), Due::Shard(i));
        }
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
                self.pump();
            }
            Due::Shard(i) => self.shard_timeout(i),
            Due::Uplink(i) => {
                if let Some(p) = self.peers[i].uplink.pop_due(now) {
                    let d = Datagram::udp(p.source, p.destination, now, p.contents);
                    if let Some(s) = self.shard_of(i) {
                        self.shard_datagram(s, d);
                    } else {
                        // New input: a deadline at `now` is fresh, not a repeat.
                        self.last_room_timeout = None;
                        self.room.handle_datagram(now, d);
                    }
                    self.pump();
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

    /// Put a datagram of the room or a shard on the downlink of the peer it is
    /// addressed to (counted as stray if no peer still running has that address).
    fn send_down(&mut self, t: Transmit) {
        let found = self
            .peers
            .iter_mut()
            .find(|p| p.addr == t.destination && !p.gone);
        let Some(peer) = found else {
            self.stats.stray += 1;
            return;
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

/// Common checks of what subscriber `peer` received: intact payloads, no unknown
/// payload type, audio and video each on one SSRC, and every video payload from the
/// layer the publisher (peer 0) wrote it for.
pub fn check_intact(sim: &Sim, peer: usize) {
    let sub = &sim.peers[peer];
    let r = &sub.received;
    assert!(
        r.corrupt.is_empty(),
        "{}: corrupt payloads {:?}",
        sub.name,
        r.corrupt
    );
    assert_eq!(
        r.unknown, 0,
        "{}: packets of unknown payload type",
        sub.name
    );
    assert!(!r.video.is_empty(), "{}: no video", sub.name);
    assert!(!r.audio.is_empty(), "{}: no audio", sub.name);
    for (kind, got) in [("video", &r.video), ("audio", &r.audio)] {
        let first = got[0].ssrc;
        assert!(
            got.iter().all(|g| g.ssrc == first),
            "{}: {kind} arrived on more than one SSRC",
            sub.name
        );
    }
    // Every payload came from the layer the publisher wrote it for.
    let sent = &sim.peers[0].sent;
    for g in &r.video {
        assert_eq!(
            sent.video_layer.get(g.counter as usize),
            Some(&g.layer),
            "{}: packet {} claims layer {}",
            sub.name,
            g.counter,
            g.layer
        );
    }
}

/// `t` in seconds with two decimals, for printed figures.
pub fn secs(t: Duration) -> String {
    format!("{:.2} s", t.as_secs_f64())
}

impl Sim {
    /// Join a subscriber now over `link` both ways and, once it is connected (within
    /// 5 s), limit its downlink to `bps`. The handshake crosses an unlimited downlink:
    /// DTLS records carry ECDSA signatures of random length (a byte or two either way),
    /// and serialized at a finite rate those bytes would shift every later event by
    /// microseconds, enough for the estimator to take other decisions; the run would
    /// not replay. Media only starts as the handshake completes, so this changes nothing
    /// else. Returns its index in [`Sim::peers`].
    pub fn subscribe_limited(&mut self, name: &str, link: LinkConfig, bps: u64) -> usize {
        let index = self.join(name, Role::Subscriber, link, link);
        let deadline = self.now + Duration::from_secs(5);
        let at = self.run_until_connected(index, deadline);
        self.peers[index].downlink.set_capacity(at, Some(bps));
        index
    }

    /// The last estimate for `peer` logged in each whole second up to `end`, kbit/s
    /// (0 before the first).
    pub fn estimates_per_second(&self, peer: usize, end: Duration) -> Vec<u64> {
        let mut out = vec![0; end.as_secs() as usize];
        let mut last = 0;
        let mut it = self.estimates.iter().filter(|e| e.peer == peer).peekable();
        for (s, slot) in out.iter_mut().enumerate() {
            let until = self.at(Duration::from_secs(s as u64 + 1));
            while let Some(e) = it.next_if(|e| e.at < until) {
                last = e.bps / 1000;
            }
            *slot = last;
        }
        out
    }
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

/// Every simulated peer joins as the identity of its name.
pub fn join_options(name: &str) -> switchboard::conference::info::JoinOptions {
    switchboard::conference::info::JoinOptions {
        identity: Some(name.to_owned()),
        ..Default::default()
    }
}

/// Collects failed checks so that one run reports all of them (and every figure).
#[derive(Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    /// Record `what` as failed unless `ok`.
    pub fn check(&mut self, ok: bool, what: String) {
        if !ok {
            println!("FAILED: {what}");
            self.0.push(what);
        }
    }

    /// Fail the test if any check failed, listing them all.
    pub fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} failed checks:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}
