//! The run: plan the sessions of a scenario ([`crate::plan`]), ramp them up at `--ramp`
//! per second (publishers first), measure for `--duration` once all are set up, then
//! stop media, DELETE every session and close every peer. Returns the raw
//! [`RunResult`]; the figures are computed in [`crate::report`].
//!
//! The `data` scenario has two phases before its window ([`DataPhases`]): it waits until
//! every connected session's channels are open, then idles for `--idle` with the
//! server's CPU sampled around it; the window starts with [`Phase::SendData`], and
//! after it the sessions get [`DATA_DRAIN`] for the last messages to arrive before
//! the DELETEs.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::cli::{Cli, Scenario};
use crate::peer::{self, Live, MediaConfig, PeerReport, Phase, Role};
pub use crate::plan::{conference_shape, plan, Planned};
use crate::procstat::{self, Sample};
use crate::progress::Progress;
use switchboard_kit::whip::{self as signaling, SignalError, WhipClient};

/// DELETEs in flight at once during teardown.
const DELETE_CONCURRENCY: usize = 16;
/// How long teardown waits for the peer tasks to end after `Close`.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How long data-only sessions keep receiving after they stop sending, before teardown.
pub const DATA_DRAIN: Duration = Duration::from_secs(1);
/// Wait between the channels being open and the first message when `--idle` is 0.
const DATA_SETTLE: Duration = Duration::from_millis(250);
/// How often the channel count is looked at while waiting for every channel to open.
const OPEN_POLL: Duration = Duration::from_millis(20);

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
    /// Data messages all data-only sessions sent in the window.
    pub data_sent: u64,
    /// Data messages all data-only sessions received (the first time) in the window.
    pub data_received: u64,
}

/// The `data` scenario's phases before its window.
#[derive(Clone, Copy, Debug, Default)]
pub struct DataPhases {
    /// Channels of the connected data-only sessions (two each).
    pub channels_expected: u64,
    /// Of those, open when sending started.
    pub channels_open: u64,
    /// From the end of the ramp (and warm-up) until every channel was open; `None`
    /// when not all were within `--setup-timeout`.
    pub all_open_after: Option<Duration>,
    /// The idle phase: channels open, nothing sent.
    pub idle: Duration,
    /// The server at the idle phase's start and end.
    pub server: [Option<Sample>; 2],
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
    /// The `data` scenario's phases before the window.
    pub data: Option<DataPhases>,
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
    for role in [Role::Publisher, Role::Viewer, Role::Data] {
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
    let is_data = matches!(cli.scenario, Scenario::Data { .. });
    let data = match &cli.scenario {
        Scenario::Data { idle, .. } if any => {
            let connected = setups.iter().filter(|s| s.setup.is_ok()).count() as u64;
            Some(data_phases(cli, *idle, &live, connected, progress).await)
        }
        _ => None,
    };
    let snapshot = || {
        [
            &live.viewer_packets,
            &live.viewer_bytes,
            &live.sent_packets,
            &live.data_sent,
            &live.data_received,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    };
    let server_start = cli.server_pid.and_then(|p| procstat::sample(Some(p)));
    let tool_start = procstat::sample(None);
    let _ = phase_tx.send(Phase::SendData);
    let c0 = snapshot();
    let window_start = Instant::now();
    live.measuring.store(true, Ordering::Relaxed);
    if any {
        progress.window(cli.duration, live.clone(), is_data);
        tokio::time::sleep(cli.duration).await;
    }
    live.measuring.store(false, Ordering::Relaxed);
    let duration = window_start.elapsed();
    let c1 = snapshot();
    let server_end = cli.server_pid.and_then(|p| procstat::sample(Some(p)));
    let tool_end = procstat::sample(None);
    let window = Window {
        duration,
        viewer_packets: c1[0] - c0[0],
        viewer_bytes: c1[1] - c0[1],
        sent_packets: c1[2] - c0[2],
        data_sent: c1[3] - c0[3],
        data_received: c1[4] - c0[4],
    };

    // Teardown: stop media (and messages: the last ones get DATA_DRAIN to arrive),
    // DELETE everything that was created, close the peers.
    progress.teardown();
    let _ = phase_tx.send(Phase::StopMedia);
    if is_data && any {
        tokio::time::sleep(DATA_DRAIN).await;
    }
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
        data,
    })
}

/// Wait until the `connected` data-only sessions have both channels open (at most
/// `--setup-timeout`), then idle for `idle` (at least [`DATA_SETTLE`], so that the
/// server has every channel before the first message), sampling the server around it.
async fn data_phases(
    cli: &Cli,
    idle: Duration,
    live: &Live,
    connected: u64,
    progress: &Progress,
) -> DataPhases {
    let expected = 2 * connected;
    let open = || live.channels_open.load(Ordering::Relaxed);
    progress.phase(
        "channels",
        format!("waiting for {expected} data channels to open"),
    );
    let start = Instant::now();
    while open() < expected && start.elapsed() < cli.setup_timeout {
        tokio::time::sleep(OPEN_POLL).await;
    }
    let all_open_after = (open() >= expected).then(|| start.elapsed());
    progress.phase(
        "idle",
        format!("{idle:?} with the channels open, nothing sent"),
    );
    let server_start = cli.server_pid.and_then(|p| procstat::sample(Some(p)));
    let idle_start = Instant::now();
    tokio::time::sleep(idle.max(DATA_SETTLE)).await;
    let idle = idle_start.elapsed();
    let server_end = cli.server_pid.and_then(|p| procstat::sample(Some(p)));
    DataPhases {
        channels_expected: expected,
        channels_open: open(),
        all_open_after,
        idle,
        server: [server_start, server_end],
    }
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
