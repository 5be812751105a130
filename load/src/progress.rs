//! The live progress display (indicatif, on stderr): sessions set up during the ramp,
//! then the measurement window with the viewers' packet rate (the `data` scenario: the
//! messages received per second). Hidden with `--quiet` or
//! when stdout is not a terminal; then every call does nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::peer::Live;
use crate::scenario::SetupCounters;

/// How often the display is refreshed.
const TICK: Duration = Duration::from_millis(250);

/// The progress display.
pub struct Progress {
    bar: ProgressBar,
    enabled: bool,
    ticker: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Progress {
    /// A display drawn on stderr when `enabled`, else a hidden one.
    pub fn new(enabled: bool) -> Self {
        let bar = if enabled {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            enabled,
            ticker: std::sync::Mutex::new(None),
        }
    }

    fn set_ticker(&self, task: Option<JoinHandle<()>>) {
        if let Ok(mut t) = self.ticker.lock() {
            if let Some(old) = t.take() {
                old.abort();
            }
            *t = task;
        }
    }

    /// Ramp-up of `total` sessions.
    pub fn ramp(&self, total: u64, counters: Arc<SetupCounters>) {
        if !self.enabled {
            return;
        }
        self.bar.set_length(total);
        self.bar.set_position(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        ) {
            self.bar.set_style(style);
        }
        self.bar.set_prefix("setup");
        let bar = self.bar.clone();
        self.set_ticker(Some(tokio::spawn(async move {
            loop {
                let c = counters.connected.load(Ordering::Relaxed);
                let f = counters.failed.load(Ordering::Relaxed);
                let s = counters.started.load(Ordering::Relaxed);
                bar.set_message(format!(
                    "connected {c}, failed {f}, in progress {}",
                    s.saturating_sub(c + f)
                ));
                bar.set_position(c + f);
                tokio::time::sleep(TICK).await;
            }
        })));
    }

    /// The warm-up before the window.
    pub fn warmup(&self, duration: Duration) {
        self.phase("warm-up", format!("{duration:?} before measuring"));
    }

    /// A phase without a bar: `prefix`, a spinner, `msg`.
    pub fn phase(&self, prefix: &'static str, msg: String) {
        if !self.enabled {
            return;
        }
        self.set_ticker(None);
        self.bar.set_prefix(prefix);
        if let Ok(style) = ProgressStyle::with_template("{prefix:>8} {spinner} {msg}") {
            self.bar.set_style(style);
        }
        self.bar.set_message(msg);
        self.bar.enable_steady_tick(TICK);
    }

    /// The measurement window of `duration`; `data`: show data messages received
    /// rather than RTP packets.
    pub fn window(&self, duration: Duration, live: Arc<Live>, data: bool) {
        if !self.enabled {
            return;
        }
        let total_ms = duration.as_millis() as u64;
        self.bar.set_length(total_ms.max(1));
        self.bar.set_position(0);
        self.bar.reset_elapsed();
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>8} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
        ) {
            self.bar.set_style(style);
        }
        self.bar.disable_steady_tick();
        self.bar.set_prefix("measure");
        self.bar.set_message("");
        let bar = self.bar.clone();
        self.set_ticker(Some(tokio::spawn(async move {
            let (counter, what) = if data {
                (&live.data_received, "participants receive {} msg/s")
            } else {
                (&live.viewer_packets, "viewers receive {} pkt/s")
            };
            let start = tokio::time::Instant::now();
            let mut last = (start, counter.load(Ordering::Relaxed));
            loop {
                tokio::time::sleep(TICK * 4).await;
                let now = tokio::time::Instant::now();
                let count = counter.load(Ordering::Relaxed);
                let rate = (count - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
                last = (now, count);
                bar.set_position(((now - start).as_millis() as u64).min(total_ms));
                bar.set_message(what.replace("{}", &format!("{rate:.0}")));
            }
        })));
    }

    /// DELETE and close.
    pub fn teardown(&self) {
        if !self.enabled {
            return;
        }
        self.set_ticker(None);
        self.bar.set_prefix("teardown");
        if let Ok(style) = ProgressStyle::with_template("{prefix:>8} {spinner} {msg}") {
            self.bar.set_style(style);
        }
        self.bar.set_message("deleting sessions");
        self.bar.enable_steady_tick(TICK);
    }

    /// Remove the display.
    pub fn finish(&self) {
        self.set_ticker(None);
        self.bar.finish_and_clear();
    }
}
