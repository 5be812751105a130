//! `switchboard-load`: a WHIP/WHEP load and quality tool.
//!
//! It creates sessions against any WHIP/WHEP server — a `broadcast` (one publisher,
//! N viewers), a `conference` (P participants, each publishing and watching K
//! others: in one room with one multi-slot WHEP session each, or in one room per
//! participant) or `data` (N data-only WHEP sessions in one room exchanging chat and
//! position messages over data channels) — at a steady ramp, with str0m peers over
//! real UDP, one socket and one tokio task per peer. Publishers send synthetic but
//! well-formed VP8 simulcast (q/h/f) or H264, plus Opus, at real rates, with keyframes
//! on schedule and on PLI/FIR. Every payload carries its publisher's id, a per-stream
//! counter and a send timestamp after its codec header, so viewers measure loss,
//! one-way latency (same host), freezes, layer switches and slot source changes
//! without trusting RIDs or SSRCs; data messages carry a sequence number and a send
//! time the same way. With `--server-pid` it also reads the server's CPU time and RSS
//! from `/proc`. At the end every session is DELETEd.
//!
//! Modules: [`cli`] (options), [`plan`] (the sessions of a scenario), [`scenario`]
//! (ramp, window, teardown), [`data`] (data-only peers: send schedule, receive
//! checks), [`data_report`] (their figures), [`peer`]
//! (one `Rtc`, offer and answer), [`driver`] (the task that runs it), [`publisher`]
//! (media clock), [`media`] (payloads), [`stats`] and [`slot`] (what viewers measure,
//! per received stream), [`histogram`] (percentiles), [`signaling`] (HTTP),
//! [`procstat`] (`/proc`), [`report`] and [`viewers`] (figures, JSON), [`table`] (the
//! text table), [`progress`] (the live display).
//! See `docs/load-tool.md`.

#![forbid(unsafe_code)]

mod cli;
mod data;
mod data_report;
mod driver;
mod peer;
mod plan;
mod procstat;
mod progress;
mod publisher;
mod report;
mod scenario;
mod table;
mod viewers;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, Scenario};
use crate::data::DataConfig;
use crate::peer::{Live, MediaConfig};
use crate::progress::Progress;

/// Exit status when setup failures exceed `--max-failures`.
const EXIT_FAILURES: u8 = 1;
/// Exit status when the run could not happen at all (bad options, no route, I/O).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.validate() {
        eprintln!("switchboard-load: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-load: tokio runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn run(cli: &Cli) -> Result<ExitCode, String> {
    let cfg = MediaConfig {
        codec: cli.codec,
        layers: publisher::layer_plan(cli.simulcast_enabled(), cli.bitrate),
        fps: cli.fps,
        keyframe_interval: cli.keyframe_interval,
        temporal_layers: cli.temporal_layers,
        data: match cli.scenario {
            Scenario::Data {
                participants,
                rate,
                padding,
                ..
            } => DataConfig {
                rate,
                padding: padding as usize,
                participants,
            },
            _ => DataConfig::default(),
        },
    };
    let live = Arc::new(Live::new());
    let show = !cli.quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let progress = Progress::new(show);
    let result = scenario::run(cli, cfg.clone(), live, &progress).await?;
    let report = report::build(cli, &cfg, &result);

    let json_to_stdout = cli.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("JSON: {e}"))?;
        if json_to_stdout {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n")
                .map_err(|e| format!("write {}: {e}", path.display()))?;
        }
    }
    let table = table::table(&report);
    if json_to_stdout {
        eprint!("{table}");
    } else {
        print!("{table}");
        let _ = std::io::stdout().flush();
    }
    if report.sessions.failed > cli.max_failures {
        eprintln!(
            "switchboard-load: {} session(s) failed to set up (--max-failures {})",
            report.sessions.failed, cli.max_failures
        );
        return Ok(ExitCode::from(EXIT_FAILURES));
    }
    Ok(ExitCode::SUCCESS)
}
