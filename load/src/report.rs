//! The final report: figures computed from a [`RunResult`], serialized as JSON
//! (`--json`) and printed as a table ([`crate::table`]). Units are in the field names (`_ms`, `_s`,
//! `_kib`, `_bps`, `_percent`); a figure that could not be measured is `null`.
//! Computes and formats; does no I/O.

use serde::Serialize;

use crate::cli::{Cli, Mapping, Scenario, VideoCodec};
use crate::data_report::{self, DataEntry};
use crate::peer::{MediaConfig, Role};
use crate::scenario::{self, RunResult};
use crate::viewers::{self, pct, us_between, SlotTotals, ViewerEntry};
use switchboard_kit::recv::Histogram;

/// Most failures listed one by one.
const MAX_LISTED: usize = 50;

/// p50/p99/max of a set of durations, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Number of values.
    pub count: u64,
    /// Median, ms.
    pub p50: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// Largest, ms.
    pub max: Option<f64>,
    /// Mean, ms.
    pub mean: Option<f64>,
}

impl Percentiles {
    /// The figures of `h` (µs) in ms.
    pub fn of_us(h: &Histogram) -> Self {
        let ms = |v: Option<u64>| v.map(|us| us as f64 / 1000.0);
        Percentiles {
            count: h.len(),
            p50: ms(h.quantile(0.5)),
            p99: ms(h.quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean().map(|us| us / 1000.0),
        }
    }
}

/// A session that failed, or a DELETE that did.
#[derive(Clone, Debug, Serialize)]
pub struct FailureEntry {
    /// `publisher`, `viewer` or `data`.
    pub role: &'static str,
    /// Room.
    pub room: String,
    /// `offer`, `post`, `answer`, `connect` or `delete`.
    pub stage: &'static str,
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// Problem detail or description.
    pub detail: String,
}

/// Session counts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sessions {
    /// Sessions planned (publishers + viewers).
    pub planned: u64,
    /// Connected (ICE + DTLS) within `--setup-timeout`.
    pub connected: u64,
    /// Not connected.
    pub failed: u64,
    /// Publishers connected.
    pub publishers_connected: u64,
    /// Viewers connected.
    pub viewers_connected: u64,
    /// Data-only sessions connected.
    pub data_connected: u64,
    /// Connected sessions whose connection ended or failed before teardown.
    pub lost_during_run: u64,
    /// The failures (the first 50).
    pub failures: Vec<FailureEntry>,
}

/// The conference's shape (conference scenario only).
#[derive(Clone, Debug, Serialize)]
pub struct ConferenceEntry {
    /// `room` (one conference room) or `rooms` (one room per participant).
    pub mapping: Mapping,
    /// Participants (each one publisher).
    pub participants: u32,
    /// Others each participant watches.
    pub watch: u32,
    /// `room` mapping: video m-lines (slots) of each WHEP session; `null` for `rooms`.
    pub video_slots: Option<u32>,
    /// `room` mapping: audio m-lines (slots) of each WHEP session; `null` for `rooms`.
    pub audio_slots: Option<u32>,
}

/// One video layer the publishers send.
#[derive(Clone, Debug, Serialize)]
pub struct LayerEntry {
    /// Its RID; `null` without simulcast.
    pub rid: Option<String>,
    /// Target payload bit rate, bit/s.
    pub bitrate_bps: u64,
}

/// Server cost, from /proc of `--server-pid`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerCost {
    /// The PID.
    pub pid: u32,
    /// User + system CPU over the window, seconds.
    pub cpu_s: Option<f64>,
    /// The same as a share of one core, percent.
    pub cpu_percent_of_one_core: Option<f64>,
    /// CPU per packet the viewers received, µs.
    pub cpu_us_per_forwarded_packet: Option<f64>,
    /// Packets the viewers received per server CPU second.
    pub packets_per_cpu_s: Option<f64>,
    /// RSS before the ramp, KiB.
    pub rss_idle_kib: Option<u64>,
    /// RSS at the end of the window, KiB.
    pub rss_end_kib: Option<u64>,
    /// (end − idle) / connected WHEP sessions (viewers, or data-only sessions), KiB.
    pub rss_per_viewer_kib: Option<f64>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `broadcast`, `conference` or `data`.
    pub scenario: &'static str,
    /// The conference's mapping and slots; `null` for a broadcast.
    pub conference: Option<ConferenceEntry>,
    /// WHIP endpoint of the first session.
    pub whip_url: String,
    /// `vp8` or `h264`.
    pub codec: VideoCodec,
    /// The video layers the publishers send, lowest first.
    pub layers: Vec<LayerEntry>,
    /// Frame rate, frames/s.
    pub fps: u32,
    /// Publishers planned.
    pub publishers: u64,
    /// Viewers planned.
    pub viewers: u64,
    /// Sessions.
    pub sessions: Sessions,
    /// First POST until every setup finished, seconds.
    pub ramp_s: f64,
    /// Measurement window, seconds.
    pub window_s: f64,
    /// POST → ICE connected.
    pub setup_ms: Percentiles,
    /// POST → DTLS connected.
    pub connect_ms: Percentiles,
    /// 201 → a complete keyframe at a viewer, in every video slot it offered.
    pub first_keyframe_ms: Percentiles,
    /// Viewers that received a complete keyframe in every video slot they offered.
    pub viewers_with_keyframe: u64,
    /// Video and audio slots offered and received, source changes, own media.
    pub slots: SlotTotals,
    /// RTP packets received by all viewers in the window.
    pub forwarded_packets: u64,
    /// The same per second.
    pub forwarded_packets_per_s: f64,
    /// Payload bit rate received by all viewers, bit/s.
    pub forwarded_bps: f64,
    /// RTP packets written by all publishers per second, in the window.
    pub sent_packets_per_s: f64,
    /// Counters expected by all viewers in the window.
    pub loss_expected: u64,
    /// Of those, never received.
    pub loss_lost: u64,
    /// Lost / expected, percent.
    pub loss_percent: Option<f64>,
    /// Worst viewer's loss, percent.
    pub loss_worst_viewer_percent: Option<f64>,
    /// Send stamp → receive, all viewers' packets in the window.
    pub latency_ms: Percentiles,
    /// The same, audio packets only.
    pub audio_latency_ms: Percentiles,
    /// Frame gaps above 3 frame intervals, all viewers.
    pub freezes: u64,
    /// Sum of those gaps, ms.
    pub freeze_total_ms: f64,
    /// Viewers with at least one freeze.
    pub viewers_with_freezes: u64,
    /// Spatial layer changes, all viewers, in the window.
    pub layer_switches: u64,
    /// Mean per connected viewer.
    pub layer_switches_per_viewer: Option<f64>,
    /// Video slots (one per viewer in a broadcast) by the spatial layer (0 = lowest)
    /// they received last.
    pub viewers_by_final_layer: Vec<u64>,
    /// Payloads viewers could not read (wrong codec header, no body).
    pub unreadable_packets: u64,
    /// Keyframes the publishers sent, and PLI/FIR requests they received.
    pub keyframes_sent: u64,
    /// See `keyframes_sent`.
    pub keyframe_requests: u64,
    /// Server cost, with `--server-pid`.
    pub server: Option<ServerCost>,
    /// This tool's CPU over the window, seconds.
    pub tool_cpu_s: Option<f64>,
    /// DELETEs answered 2xx.
    pub deletes_ok: u64,
    /// DELETEs that failed.
    pub deletes_failed: u64,
    /// The failed DELETEs (the first 50).
    pub delete_failures: Vec<FailureEntry>,
    /// Every viewer.
    pub viewer_details: Vec<ViewerEntry>,
    /// The `data` scenario's figures; `null` for the others.
    pub data: Option<DataEntry>,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Publisher => "publisher",
        Role::Viewer => "viewer",
        Role::Data => "data",
    }
}

/// Compute the report of a run.
pub fn build(cli: &Cli, cfg: &MediaConfig, run: &RunResult) -> Report {
    let mut setup = Histogram::default();
    let mut connect = Histogram::default();
    let mut first_key = Histogram::default();
    let mut latency = Histogram::default();
    let mut audio_latency = Histogram::default();
    let mut s = Sessions {
        planned: run.sessions.len() as u64,
        ..Default::default()
    };
    let (mut expected, mut lost, mut worst) = (0, 0, None::<f64>);
    let (mut freezes, mut freeze_us, mut frozen, mut switches) = (0, 0, 0, 0);
    let (mut unreadable, mut keyframes_sent, mut keyframe_requests) = (0, 0, 0);
    let mut details: Vec<ViewerEntry> = Vec::new();
    let mut slots = SlotTotals::default();
    let mut delete_failures = Vec::new();
    let (mut deletes_ok, mut deletes_failed) = (0, 0);
    for r in &run.sessions {
        let role = role_name(r.planned.role);
        match &r.setup {
            Ok(t) => {
                s.connected += 1;
                match r.planned.role {
                    Role::Publisher => s.publishers_connected += 1,
                    Role::Viewer => s.viewers_connected += 1,
                    Role::Data => s.data_connected += 1,
                }
                setup.record(us_between(t.post_at, t.ice_at));
                connect.record(us_between(t.post_at, t.connected_at));
                if r.report.as_ref().is_none_or(|p| p.error.is_some()) {
                    s.lost_during_run += 1;
                }
            }
            Err(f) => {
                s.failed += 1;
                if s.failures.len() < MAX_LISTED {
                    s.failures.push(FailureEntry {
                        role,
                        room: r.planned.room.clone(),
                        stage: f.stage,
                        status: f.status,
                        detail: f.detail.clone(),
                    });
                }
            }
        }
        match &r.delete {
            Some(Ok(_)) => deletes_ok += 1,
            Some(Err(e)) => {
                deletes_failed += 1;
                if delete_failures.len() < MAX_LISTED {
                    delete_failures.push(FailureEntry {
                        role,
                        room: r.planned.room.clone(),
                        stage: "delete",
                        status: e.status,
                        detail: e.detail.clone(),
                    });
                }
            }
            None => {}
        }
        if let Some(sent) = r.report.as_ref().and_then(|p| p.sent.as_ref()) {
            keyframes_sent += sent.keyframes.iter().sum::<u64>();
            keyframe_requests += sent.keyframe_requests;
        }
        if r.planned.role == Role::Viewer {
            let recv = r.report.as_ref().and_then(|p| p.recv.as_ref());
            let entry = viewers::viewer_entry(r, run.epoch, &mut first_key);
            slots.add(&entry, recv);
            details.push(entry);
            if let Some(v) = recv {
                latency.merge(&v.latency_us);
                audio_latency.merge(&v.audio_latency_us);
                expected += v.expected();
                lost += v.lost();
                if let Some(p) = pct(v.lost(), v.expected()) {
                    worst = Some(worst.map_or(p, |w| w.max(p)));
                }
                freezes += v.freezes();
                freeze_us += v.freeze_us();
                frozen += u64::from(v.freezes() > 0);
                switches += v.layer_switches();
                unreadable += v.unreadable;
            }
        }
    }
    let window_s = run.window.duration.as_secs_f64().max(1e-9);
    let w = &run.window;
    let whep_connected = s.viewers_connected + s.data_connected;
    let server = cli.server_pid.map(|pid| {
        let [idle, start, end] = run.server;
        let cpu_s = start.zip(end).map(|(a, b)| (b.cpu_s - a.cpu_s).max(0.0));
        let rss_idle = idle.and_then(|x| x.rss_kib);
        let rss_end = end.and_then(|x| x.rss_kib);
        ServerCost {
            pid,
            cpu_s,
            cpu_percent_of_one_core: cpu_s.map(|c| c * 100.0 / window_s),
            cpu_us_per_forwarded_packet: cpu_s
                .filter(|_| w.viewer_packets > 0)
                .map(|c| c * 1e6 / w.viewer_packets as f64),
            packets_per_cpu_s: cpu_s
                .filter(|c| *c > 0.0)
                .map(|c| w.viewer_packets as f64 / c),
            rss_idle_kib: rss_idle,
            rss_end_kib: rss_end,
            rss_per_viewer_kib: rss_idle
                .zip(rss_end)
                .filter(|_| whep_connected > 0)
                .map(|(a, b)| (b as f64 - a as f64) / whep_connected as f64),
        }
    });
    let [t0, t1] = run.tool;
    let connected_viewers = s.viewers_connected;
    let (publishers, viewers_planned) =
        run.sessions
            .iter()
            .fold((0, 0), |(p, v), r| match r.planned.role {
                Role::Publisher => (p + 1, v),
                Role::Viewer => (p, v + 1),
                Role::Data => (p, v),
            });
    Report {
        scenario: match cli.scenario {
            Scenario::Broadcast { .. } => "broadcast",
            Scenario::Conference { .. } => "conference",
            Scenario::Data { .. } => "data",
        },
        conference: scenario::conference_shape(cli).map(|c| {
            let room = c.mapping == Mapping::Room;
            ConferenceEntry {
                mapping: c.mapping,
                participants: c.participants,
                watch: c.watch,
                video_slots: room.then_some(c.slots.video),
                audio_slots: room.then_some(c.slots.audio),
            }
        }),
        whip_url: run
            .sessions
            .first()
            .map(|r| r.planned.url.clone())
            .unwrap_or_default(),
        codec: cli.codec,
        layers: cfg
            .layers
            .iter()
            .map(|l| LayerEntry {
                rid: l.rid.map(|r| r.to_string()),
                bitrate_bps: l.bitrate,
            })
            .collect(),
        fps: cfg.fps,
        publishers,
        viewers: viewers_planned,
        ramp_s: run.ramp.as_secs_f64(),
        window_s,
        setup_ms: Percentiles::of_us(&setup),
        connect_ms: Percentiles::of_us(&connect),
        viewers_with_keyframe: first_key.len(),
        first_keyframe_ms: Percentiles::of_us(&first_key),
        slots,
        forwarded_packets: w.viewer_packets,
        forwarded_packets_per_s: w.viewer_packets as f64 / window_s,
        forwarded_bps: w.viewer_bytes as f64 * 8.0 / window_s,
        sent_packets_per_s: w.sent_packets as f64 / window_s,
        loss_expected: expected,
        loss_lost: lost,
        loss_percent: pct(lost, expected),
        loss_worst_viewer_percent: worst,
        latency_ms: Percentiles::of_us(&latency),
        audio_latency_ms: Percentiles::of_us(&audio_latency),
        freezes,
        freeze_total_ms: freeze_us as f64 / 1000.0,
        viewers_with_freezes: frozen,
        layer_switches: switches,
        layer_switches_per_viewer: (connected_viewers > 0)
            .then(|| switches as f64 / connected_viewers as f64),
        viewers_by_final_layer: viewers::final_layers(&details, cfg.layers.len()),
        unreadable_packets: unreadable,
        keyframes_sent,
        keyframe_requests,
        server,
        tool_cpu_s: t0.zip(t1).map(|(a, b)| b.cpu_s - a.cpu_s),
        deletes_ok,
        deletes_failed,
        delete_failures,
        sessions: s,
        viewer_details: details,
        data: data_report::build(cli, run),
    }
}
