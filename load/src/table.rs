//! The report as a plain-text table for the terminal. Formats only.

use std::fmt::Write as _;

use clap::ValueEnum;

use crate::data_report;
use crate::report::{Percentiles, Report};

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} ms"))
}

fn num(v: Option<f64>, unit: &str, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}{unit}"))
}

/// The report as a plain-text table.
pub fn table(r: &Report) -> String {
    let mut t = String::new();
    let s = &r.sessions;
    let layers: Vec<String> = r
        .layers
        .iter()
        .map(|l| {
            let name = l.rid.as_deref().unwrap_or("single");
            format!("{name} {} kbit/s", l.bitrate_bps / 1000)
        })
        .collect();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(t, "{k:<22} {v}");
    };
    match &r.data {
        Some(d) => row(
            "scenario",
            format!(
                "data: {} participants, one data-only WHEP session each (chat: ordered, reliable; pos: unordered, no retransmissions); {} msg/s per topic, {} B padding",
                d.participants, d.rate_per_topic, d.padding_bytes
            ),
        ),
        None => row(
            "scenario",
            format!(
                "{}: {} publisher(s), {} viewer(s); {:?} [{}] @ {} fps + Opus",
                r.scenario,
                r.publishers,
                r.viewers,
                r.codec,
                layers.join(", "),
                r.fps
            ),
        ),
    }
    if let Some(c) = &r.conference {
        let shape = match (c.video_slots, c.audio_slots) {
            (Some(v), Some(a)) => format!(
                "one room, {} participants each watching {} with one WHEP session of {v} video + {a} audio slots",
                c.participants, c.watch
            ),
            _ => format!(
                "one room per participant, {} participants each watching {} (one WHEP session per watched room)",
                c.participants, c.watch
            ),
        };
        let name = c
            .mapping
            .to_possible_value()
            .map(|v| v.get_name().to_owned());
        row("mapping", format!("{}: {shape}", name.unwrap_or_default()));
        let sl = &r.slots;
        row(
            "slots",
            format!(
                "video {} of {} receiving ({} with a keyframe), audio {} of {}; {} source changes; {} own-media packets",
                sl.video_receiving,
                sl.video_offered,
                sl.video_with_keyframe,
                sl.audio_receiving,
                sl.audio_offered,
                sl.source_switches,
                sl.own_media_packets
            ),
        );
    }
    row(
        "ramp / window",
        format!("{:.1} s / {:.1} s", r.ramp_s, r.window_s),
    );
    row(
        "sessions",
        format!(
            "{} connected, {} failed (publishers {}, viewers {}, data-only {}), {} lost during run",
            s.connected,
            s.failed,
            s.publishers_connected,
            s.viewers_connected,
            s.data_connected,
            s.lost_during_run
        ),
    );
    for f in &s.failures {
        row(
            "  failure",
            format!(
                "{} {} at {} (HTTP {}): {}",
                f.role,
                f.room,
                f.stage,
                f.status.map_or("-".into(), |c| c.to_string()),
                f.detail
            ),
        );
    }
    let p = |x: &Percentiles| format!("p50 {}  p99 {}  max {}", ms(x.p50), ms(x.p99), ms(x.max));
    row("setup (POST→ICE)", p(&r.setup_ms));
    row("connect (POST→DTLS)", p(&r.connect_ms));
    let rows = match &r.data {
        Some(d) => data_report::rows(d),
        None => media_rows(r),
    };
    for (k, v) in rows {
        row(k, v);
    }
    if let Some(c) = &r.server {
        let cpu = format!(
            "{} ({} of one core)",
            num(c.cpu_s, " s", 2),
            num(c.cpu_percent_of_one_core, " %", 0)
        );
        if let Some(d) = &r.data {
            row("server cpu, window", cpu);
            for (k, v) in data_report::server_rows(d) {
                row(k, v);
            }
        } else {
            row(
                "server cpu",
                format!(
                    "{cpu}: {} per forwarded packet, {} packets per cpu-s",
                    num(c.cpu_us_per_forwarded_packet, " µs", 1),
                    num(c.packets_per_cpu_s, "", 0)
                ),
            );
        }
        let mib = |k: Option<u64>| num(k.map(|k| k as f64 / 1024.0), " MiB", 1);
        row(
            "server rss",
            format!(
                "idle {}, end {}, {} per {}",
                mib(c.rss_idle_kib),
                mib(c.rss_end_kib),
                num(c.rss_per_viewer_kib, " KiB", 0),
                if r.data.is_some() {
                    "data-only session"
                } else {
                    "viewer"
                }
            ),
        );
    }
    row("tool cpu", num(r.tool_cpu_s, " s", 2));
    row(
        "deletes",
        format!("{} ok, {} failed", r.deletes_ok, r.deletes_failed),
    );
    for f in &r.delete_failures {
        row(
            "  delete failure",
            format!(
                "{} {} (HTTP {}): {}",
                f.role,
                f.room,
                f.status.map_or("-".into(), |c| c.to_string()),
                f.detail
            ),
        );
    }
    t
}

/// The media rows: keyframes, forwarding, loss, latency, freezes, layers.
fn media_rows(r: &Report) -> Vec<(&'static str, String)> {
    let p = |x: &Percentiles| format!("p50 {}  p99 {}  max {}", ms(x.p50), ms(x.p99), ms(x.max));
    let mut out = Vec::new();
    out.push((
        "first keyframe (201→)",
        format!(
            "{}  ({} of {} viewers)",
            p(&r.first_keyframe_ms),
            r.viewers_with_keyframe,
            r.viewers
        ),
    ));
    out.push((
        "forwarded",
        format!(
            "{:.0} pkt/s, {:.2} Mbit/s to viewers (publishers send {:.0} pkt/s)",
            r.forwarded_packets_per_s,
            r.forwarded_bps / 1e6,
            r.sent_packets_per_s
        ),
    ));
    out.push((
        "loss",
        format!(
            "{} ({} of {} packets; worst viewer {})",
            num(r.loss_percent, " %", 3),
            r.loss_lost,
            r.loss_expected,
            num(r.loss_worst_viewer_percent, " %", 3)
        ),
    ));
    out.push(("latency (one-way)", p(&r.latency_ms)));
    out.push(("  audio only", p(&r.audio_latency_ms)));
    out.push((
        "freezes",
        format!(
            "{} ({:.0} ms in all, {} viewers)",
            r.freezes, r.freeze_total_ms, r.viewers_with_freezes
        ),
    ));
    let by_layer: Vec<String> = r
        .viewers_by_final_layer
        .iter()
        .zip(&r.layers)
        .map(|(n, l)| format!("{}: {n}", l.rid.as_deref().unwrap_or("single")))
        .collect();
    out.push((
        "layer switches",
        format!(
            "{} ({} per viewer); {} ended on {}",
            r.layer_switches,
            num(r.layer_switches_per_viewer, "", 2),
            if r.conference.is_some() {
                "video slots"
            } else {
                "viewers"
            },
            by_layer.join(", ")
        ),
    ));
    out.push((
        "keyframes",
        format!(
            "{} sent, {} requests (PLI/FIR) received",
            r.keyframes_sent, r.keyframe_requests
        ),
    ));
    if r.unreadable_packets > 0 {
        out.push(("unreadable payloads", r.unreadable_packets.to_string()));
    }
    out
}
