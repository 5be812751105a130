//! The run: plan the sessions of a scenario, ramp them up at `--ramp` per second
//! (publishers first), measure for `--duration` once all are set up, then stop media,
//! DELETE every session and close every peer. Returns the raw [`RunResult`]; the
//! figures are computed in [`crate::report`].
//!
//! Conference mappings ([`Mapping`]):
//! - `room` (default): one conference room `{room}` with many publishers, as Switchboard
//!   has (`docs/conference.md`). Participant `i` publishes with WHIP `?name=p{i}` and
//!   watches with one WHEP session `?name=p{i}` whose offer has `K` `recvonly` video
//!   m-lines and `min(K, 3)` audio ones: the server fills those slots with the other
//!   participants' media, never `p{i}`'s own.
//! - `rooms`: for servers with one publisher per room, P rooms `{room}-{i}`: participant
//!   `i` publishes to its own room and watches the rooms of the `K` participants after
//!   it (`i+1 … i+K`, wrapping) with one plain WHEP session each, so every publisher
//!   has `K` viewers.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::cli::{Cli, Mapping, Scenario};
use crate::peer::{self, Live, MediaConfig, PeerReport, PeerSpec, Phase, Role, Slots};
use crate::procstat::{self, Sample};
use crate::progress::Progress;
use switchboard_kit::whip::{self as signaling, SignalError, WhipClient};

/// DELETEs in flight at once during teardown.
const DELETE_CONCURRENCY: usize = 16;
/// How long teardown waits for the peer tasks to end after `Close`.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Most audio slots a `room`-mapped conference viewer asks for.
const MAX_AUDIO_SLOTS: u32 = 3;

/// One session to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    /// Publisher (WHIP) or viewer (WHEP).
    pub role: Role,
    /// Room name.
    pub room: String,
    /// Endpoint URL to POST to.
    pub url: String,
    /// A publisher's id (in every payload it sends); a viewer's own participant.
    pub participant: Option<u32>,
    /// The m-lines of the offer (a viewer's slots).
    pub slots: Slots,
}

impl Planned {
    /// What the peer needs to know.
    pub fn spec(&self) -> PeerSpec {
        PeerSpec {
            role: self.role,
            participant: self.participant,
            slots: self.slots,
        }
    }
}

/// A conference's shape: its mapping, how many others each participant watches (`K`),
/// and the slots of a viewer's offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// One room or one room per participant.
    pub mapping: Mapping,
    /// Participants.
    pub participants: u32,
    /// Others each participant watches.
    pub watch: u32,
    /// The m-lines of each viewer's offer.
    pub slots: Slots,
}

/// The shape of the conference scenario (`None` for a broadcast).
pub fn conference_shape(cli: &Cli) -> Option<Shape> {
    match &cli.scenario {
        Scenario::Broadcast { .. } => None,
        Scenario::Conference {
            participants,
            watch,
            mapping,
        } => Some(shape_of(*participants, *watch, *mapping)),
    }
}

fn shape_of(p: u32, watch: Option<u32>, mapping: Mapping) -> Shape {
    let k = watch
        .unwrap_or(p.saturating_sub(1))
        .min(p.saturating_sub(1));
    let slots = match mapping {
        Mapping::Room => Slots {
            video: k,
            audio: k.min(MAX_AUDIO_SLOTS),
        },
        Mapping::Rooms => Slots::ONE,
    };
    Shape {
        mapping,
        participants: p,
        watch: k,
        slots,
    }
}

/// The identity of participant `i` in a `room`-mapped conference.
pub fn participant_name(i: u32) -> String {
    format!("p{i}")
}

/// The sessions of the scenario: publishers first, in ramp order.
pub fn plan(cli: &Cli) -> Vec<Planned> {
    let base = cli.base_url();
    let session = |role, room: String, participant, slots, name: Option<String>| {
        let template = match role {
            Role::Publisher => &cli.whip_url,
            Role::Viewer => &cli.whep_url,
        };
        let mut url = signaling::endpoint(template, base, &room);
        if let Some(n) = name {
            url = signaling::with_query(&url, "name", &n);
        }
        Planned {
            role,
            room,
            url,
            participant,
            slots,
        }
    };
    let shape = match &cli.scenario {
        Scenario::Conference {
            participants,
            watch,
            mapping,
        } => shape_of(*participants, *watch, *mapping),
        Scenario::Broadcast { viewers } => {
            let one =
                |role, participant| session(role, cli.room.clone(), participant, Slots::ONE, None);
            return std::iter::once(one(Role::Publisher, Some(0)))
                .chain((0..*viewers).map(|_| one(Role::Viewer, None)))
                .collect();
        }
    };
    let (p, k) = (shape.participants, shape.watch);
    match shape.mapping {
        Mapping::Room => {
            let member = |role, i: u32, slots| {
                let name = Some(participant_name(i));
                session(role, cli.room.clone(), Some(i), slots, name)
            };
            let publishers = (0..p).map(|i| member(Role::Publisher, i, Slots::ONE));
            // K = 0 (a conference of one): nobody to watch, no viewers.
            let viewers = (0..p)
                .filter(|_| k > 0)
                .map(|i| member(Role::Viewer, i, shape.slots));
            publishers.chain(viewers).collect()
        }
        Mapping::Rooms => {
            let room = |i: u32| format!("{}-{i}", cli.room);
            let publishers =
                (0..p).map(|i| session(Role::Publisher, room(i), Some(i), Slots::ONE, None));
            let viewers = (0..p).flat_map(|i| (1..=k).map(move |d| (i, (i + d) % p)));
            publishers
                .chain(
                    viewers.map(|(i, j)| session(Role::Viewer, room(j), Some(i), Slots::ONE, None)),
                )
                .collect()
        }
    }
}

/// Why a session did not get set up.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Where it failed: `offer`, `post`, `answer` or `connect`.
    pub stage: &'static str,
    /// HTTP status, for `post`.
    pub status: Option<u16>,
    /// The problem detail or description.
    pub detail: String,
}

/// Timestamps of a session that connected.
#[derive(Clone, Copy, Debug)]
pub struct SetupTimes {
    /// The POST was sent.
    pub post_at: Instant,
    /// ICE connected (falls back to `connected_at` when str0m reported no ICE state).
    pub ice_at: Instant,
    /// DTLS done.
    pub connected_at: Instant,
}

/// Everything known about one session after the run.
#[derive(Debug)]
pub struct SessionResult {
    /// The plan.
    pub planned: Planned,
    /// Setup outcome.
    pub setup: Result<SetupTimes, Failure>,
    /// When the 201 arrived (also for sessions that failed later).
    pub created_at: Option<Instant>,
    /// The peer task's figures (absent when no task ran or it did not end in time).
    pub report: Option<PeerReport>,
    /// DELETE outcome; `None` when there was no resource to delete.
    pub delete: Option<Result<u16, SignalError>>,
}

/// What the measurement window saw, run-wide.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// Length of the window.
    pub duration: Duration,
    /// RTP packets all viewers received in the window.
    pub viewer_packets: u64,
    /// RTP payload bytes all viewers received in the window.
    pub viewer_bytes: u64,
    /// RTP packets all publishers wrote in the window.
    pub sent_packets: u64,
}

/// The raw outcome of a run.
#[derive(Debug)]
pub struct RunResult {
    /// Every session.
    pub sessions: Vec<SessionResult>,
    /// The window's run-wide counters.
    pub window: Window,
    /// Ramp-up time, from the first POST until every setup finished.
    pub ramp: Duration,
    /// Server before the ramp, at window start, at window end.
    pub server: [Option<Sample>; 3],
    /// This tool at window start and end.
    pub tool: [Option<Sample>; 2],
    /// The tool's time origin (receive stamps count from it).
    pub epoch: Instant,
}

/// Ramp-up and live counters for the progress display.
#[derive(Debug, Default)]
pub struct SetupCounters {
    /// Sessions whose setup started.
    pub started: AtomicU64,
    /// Sessions connected.
    pub connected: AtomicU64,
    /// Sessions failed.
    pub failed: AtomicU64,
}

struct Ctx {
    sig: WhipClient,
    cfg: MediaConfig,
    ip: IpAddr,
    live: Arc<Live>,
    phase: watch::Receiver<Phase>,
    setup_timeout: Duration,
    counters: Arc<SetupCounters>,
}

struct Setup {
    planned: Planned,
    setup: Result<SetupTimes, Failure>,
    created_at: Option<Instant>,
    location: Option<String>,
    task: Option<JoinHandle<PeerReport>>,
}

/// Run the scenario of `cli`.
pub async fn run(
    cli: &Cli,
    cfg: MediaConfig,
    live: Arc<Live>,
    progress: &Progress,
) -> Result<RunResult, String> {
    let planned = plan(cli);
    let ip = match cli.local_ip {
        Some(ip) => ip,
        None => signaling::local_ip_towards(
            &planned.first().map(|p| p.url.clone()).unwrap_or_default(),
        )?,
    };
    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let counters = Arc::new(SetupCounters::default());
    let ctx = Arc::new(Ctx {
        sig: WhipClient::new(
            cli.http_timeout,
            cli.token.clone(),
            concat!("switchboard-load/", env!("CARGO_PKG_VERSION")),
            true,
        )?,
        cfg,
        ip,
        live: live.clone(),
        phase: phase_rx,
        setup_timeout: cli.setup_timeout,
        counters: counters.clone(),
    });
    let server_idle = cli.server_pid.and_then(|p| procstat::sample(Some(p)));

    // Ramp: publishers, then (once they are up) viewers, at `--ramp` sessions per second.
    progress.ramp(planned.len() as u64, counters.clone());
    let ramp_start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / cli.ramp);
    let mut setups = Vec::with_capacity(planned.len());
    for role in [Role::Publisher, Role::Viewer] {
        let mut handles = Vec::new();
        let group_start = tokio::time::Instant::now();
        for (i, p) in planned.iter().filter(|p| p.role == role).enumerate() {
            tokio::time::sleep_until(group_start + interval * i as u32).await;
            counters.started.fetch_add(1, Ordering::Relaxed);
            handles.push(tokio::spawn(setup(ctx.clone(), p.clone())));
        }
        for h in handles {
            match h.await {
                Ok(s) => setups.push(s),
                Err(e) => return Err(format!("a setup task failed: {e}")),
            }
        }
    }
    let ramp = ramp_start.elapsed();

    // Warm-up, then the measurement window (skipped when nothing connected).
    let any = setups.iter().any(|s| s.setup.is_ok());
    if any && !cli.warmup.is_zero() {
        progress.warmup(cli.warmup);
        tokio::time::sleep(cli.warmup).await;
    }
    let snapshot = || {
        (
            live.viewer_packets.load(Ordering::Relaxed),
            live.viewer_bytes.load(Ordering::Relaxed),
            live.sent_packets.load(Ordering::Relaxed),
        )
    };
    let server_start = cli.server_pid.and_then(|p| procstat::sample(Some(p)));
    let tool_start = procstat::sample(None);
    let (p0, b0, s0) = snapshot();
    let window_start = Instant::now();
    live.measuring.store(true, Ordering::Relaxed);
    if any {
        progress.window(cli.duration, live.clone());
        tokio::time::sleep(cli.duration).await;
    }
    live.measuring.store(false, Ordering::Relaxed);
    let duration = window_start.elapsed();
    let (p1, b1, s1) = snapshot();
    let server_end = cli.server_pid.and_then(|p| procstat::sample(Some(p)));
    let tool_end = procstat::sample(None);
    let window = Window {
        duration,
        viewer_packets: p1 - p0,
        viewer_bytes: b1 - b0,
        sent_packets: s1 - s0,
    };

    // Teardown: stop media, DELETE everything that was created, close the peers.
    progress.teardown();
    let _ = phase_tx.send(Phase::StopMedia);
    let limit = Arc::new(Semaphore::new(DELETE_CONCURRENCY));
    let deletes: Vec<_> = setups
        .iter()
        .map(|s| {
            let (sig, limit, location) = (ctx.sig.clone(), limit.clone(), s.location.clone());
            tokio::spawn(async move {
                let location = location?;
                let _permit = limit.acquire().await.ok()?;
                Some(sig.delete(&location).await)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(setups.len());
    for (s, d) in setups.into_iter().zip(deletes) {
        let delete = d.await.unwrap_or_else(|e| {
            Some(Err(SignalError {
                status: None,
                detail: format!("DELETE task failed: {e}"),
            }))
        });
        results.push((s, delete));
    }
    let _ = phase_tx.send(Phase::Close);
    let deadline = tokio::time::Instant::now() + CLOSE_GRACE;
    let mut sessions = Vec::with_capacity(results.len());
    for (s, delete) in results {
        let report = match s.task {
            Some(task) => tokio::time::timeout_at(deadline, task)
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        sessions.push(SessionResult {
            planned: s.planned,
            setup: s.setup,
            created_at: s.created_at,
            report,
            delete,
        });
    }
    progress.finish();
    Ok(RunResult {
        sessions,
        window,
        ramp,
        server: [server_idle, server_start, server_end],
        tool: [tool_start, tool_end],
        epoch: live.epoch,
    })
}

/// Create one session: offer, POST, answer, connect.
async fn setup(ctx: Arc<Ctx>, planned: Planned) -> Setup {
    let mut out = Setup {
        planned,
        setup: Err(Failure {
            stage: "offer",
            status: None,
            detail: String::new(),
        }),
        created_at: None,
        location: None,
        task: None,
    };
    let result = connect(&ctx, &mut out).await;
    match &result {
        Ok(_) => ctx.counters.connected.fetch_add(1, Ordering::Relaxed),
        Err(_) => ctx.counters.failed.fetch_add(1, Ordering::Relaxed),
    };
    out.setup = result;
    out
}

async fn connect(ctx: &Ctx, out: &mut Setup) -> Result<SetupTimes, Failure> {
    let fail = |stage, status, detail: String| Failure {
        stage,
        status,
        detail,
    };
    let offered = peer::offer(out.planned.spec(), &ctx.cfg, ctx.ip)
        .await
        .map_err(|e| fail("offer", None, e))?;
    let post_at = Instant::now();
    let created = ctx
        .sig
        .post_offer(&out.planned.url, offered.offer.clone())
        .await
        .map_err(|e| fail("post", e.status, e.detail))?;
    let created_at = Instant::now();
    out.created_at = Some(created_at);
    out.location = Some(created.location);
    let ready = offered
        .accept(&created.answer, &ctx.cfg, &ctx.live)
        .map_err(|e| fail("answer", Some(201), e))?;
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(ready.run(ctx.live.clone(), ctx.phase.clone(), tx));
    let left = ctx.setup_timeout.saturating_sub(post_at.elapsed());
    match tokio::time::timeout(left, rx).await {
        Ok(Ok(c)) => {
            out.task = Some(task);
            Ok(SetupTimes {
                post_at,
                ice_at: c.ice_at.unwrap_or(c.at),
                connected_at: c.at,
            })
        }
        Ok(Err(_)) => {
            // The task ended before connecting: its report says why.
            let why = task
                .await
                .ok()
                .and_then(|r| r.error)
                .unwrap_or_else(|| "the peer ended before connecting".into());
            Err(fail("connect", None, why))
        }
        Err(_) => {
            out.task = Some(task);
            Err(fail(
                "connect",
                None,
                format!("not connected (ICE + DTLS) within {:?}", ctx.setup_timeout),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["switchboard-load", "--url", "http://h:1", "--room", "r"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn broadcast_is_one_publisher_then_viewers() {
        let p = plan(&cli(&["broadcast", "--viewers", "3"]));
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].role, Role::Publisher);
        assert_eq!(p[0].url, "http://h:1/whip/r");
        assert!(p[1..]
            .iter()
            .all(|s| s.role == Role::Viewer && s.url == "http://h:1/whep/r"));
    }

    #[test]
    fn conference_rooms_maps_onto_one_publisher_rooms() {
        let p = plan(&cli(&[
            "conference",
            "--participants",
            "3",
            "--watch",
            "1",
            "--mapping",
            "rooms",
        ]));
        let rooms: Vec<(Role, &str, Option<u32>)> = p
            .iter()
            .map(|s| (s.role, s.room.as_str(), s.participant))
            .collect();
        assert_eq!(
            rooms,
            vec![
                (Role::Publisher, "r-0", Some(0)),
                (Role::Publisher, "r-1", Some(1)),
                (Role::Publisher, "r-2", Some(2)),
                (Role::Viewer, "r-1", Some(0)),
                (Role::Viewer, "r-2", Some(1)),
                (Role::Viewer, "r-0", Some(2)),
            ]
        );
        assert!(p
            .iter()
            .all(|s| s.slots == Slots::ONE && !s.url.contains('?')));
        assert_eq!(p[3].url, "http://h:1/whep/r-1");
        // Default: everyone watches everyone else.
        assert_eq!(
            plan(&cli(&[
                "conference",
                "--participants",
                "4",
                "--mapping",
                "rooms"
            ]))
            .len(),
            4 + 12
        );
    }

    #[test]
    fn conference_room_is_one_room_with_named_participants_and_slots() {
        let p = plan(&cli(&["conference", "--participants", "6", "--watch", "4"]));
        assert_eq!(p.len(), 12);
        for (i, s) in p.iter().enumerate() {
            let n = (i % 6) as u32;
            let (role, path, slots) = if i < 6 {
                (Role::Publisher, "whip", Slots::ONE)
            } else {
                (Role::Viewer, "whep", Slots { video: 4, audio: 3 })
            };
            assert_eq!(s.role, role, "{s:?}");
            assert_eq!(s.room, "r");
            assert_eq!(s.url, format!("http://h:1/{path}/r?name=p{n}"));
            assert_eq!(s.participant, Some(n));
            assert_eq!(s.slots, slots, "{s:?}");
        }
        // Default K: all others; fewer than 3 others means fewer audio slots.
        let p = plan(&cli(&["conference", "--participants", "3"]));
        assert_eq!(p.len(), 6);
        assert_eq!(p[3].slots, Slots { video: 2, audio: 2 });
        // A template with a query of its own gets `&name=`.
        let p = plan(&cli(&[
            "--whep-url",
            "{url}/whep/{room}?participant=x",
            "conference",
            "--participants",
            "2",
        ]));
        assert_eq!(p[2].url, "http://h:1/whep/r?participant=x&name=p0");
        assert_eq!(p[0].url, "http://h:1/whip/r?name=p0");
        // A conference of one has no one to watch.
        assert_eq!(plan(&cli(&["conference", "--participants", "1"])).len(), 1);
        let shape = conference_shape(&cli(&["conference", "--participants", "5"])).unwrap();
        assert_eq!((shape.mapping, shape.watch), (Mapping::Room, 4));
    }
}
