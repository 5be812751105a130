//! When a subscriber's video may be paused for bandwidth, and how it comes back.
//!
//! Owns: the rule that decides, per subscriber, whether the lowest layer of every track is
//! kept although the estimate is below what those layers need ([`PauseGate`]). Never
//! allocates layers (`bwe::allocator` does), touches packets or reads a clock.
//!
//! # Why the estimate kind matters
//!
//! A paused track sends nothing, so whatever estimate follows must find room for it
//! without it:
//! * **TWCC** (send-side GCC): str0m pads and probes up to what the allocation asks for,
//!   so the estimate can rise while video is paused, and the track resumes once it covers
//!   the lowest layer. Pausing after the estimate has stayed below the lowest layers for
//!   [`PAUSE_AFTER`] is safe: there is a way back.
//! * **REMB** (the receiver's GCC): a receive-side estimate grows at most to 1.5× the
//!   incoming rate (draft-ietf-rmcat-gcc-02 §5.5) and str0m cannot pad without transport-wide
//!   feedback. With video paused only audio arrives, the estimate can never climb back
//!   above a video layer, and the viewer keeps its audio and loses its video for good.
//!   Such an estimate also sits at or below what is sent whenever the receiver's delay
//!   detector fires (it then falls to 0.85× the incoming rate), with no congestion at all.
//! * **Loss** (`bwe::loss`, receiver reports only): no probing either.
//!
//! So for the kinds that cannot probe, a low estimate alone never pauses video: the lowest
//! layers are kept unless the receiver also reports congestion loss (fraction lost at or
//! above [`CONGESTED_LOSS`], the level where GCC's loss controller backs off,
//! draft-ietf-rmcat-gcc-02 §6) while the estimate has been short for [`PAUSE_AFTER`]. A
//! track paused that way is probed with media: after a back-off ([`RETRY_MIN`], doubling
//! up to [`RETRY_MAX`] while trials fail) the lowest layers are sent again for a trial; a
//! congested report during the trial pauses them again at once, a trial without one for
//! [`TRIAL`] ends the pause for good (LiveKit's stream allocator probes a REMB path with
//! media in the same way, and mediasoup never pauses a single-stream consumer for
//! bandwidth).

use std::time::{Duration, Instant};

use super::EstimateKind;

/// A subscriber's tracks are paused only after its estimate has stayed below their lowest
/// layers this long. GCC estimates dip hard and briefly (at startup, on a scheduling
/// hiccup); pausing on a dip would freeze video for the seconds it takes to climb back,
/// while a link that really cannot carry the lowest layer stays low.
pub const PAUSE_AFTER: Duration = Duration::from_secs(4);
/// A receiver report with at least this fraction lost (0.0–1.0) shows congestion.
pub const CONGESTED_LOSS: f32 = 0.10;
/// A congested report counts as current this long (receiver reports come about once a
/// second).
pub const LOSS_MEMORY: Duration = Duration::from_secs(3);
/// First wait before a track paused on an estimate that cannot probe is tried again.
pub const RETRY_MIN: Duration = Duration::from_secs(4);
/// Longest wait between such trials (the back-off doubles after each failed one).
pub const RETRY_MAX: Duration = Duration::from_secs(32);
/// Reports received this soon after a trial starts describe the time before it (nothing
/// was sent on the paused video): they neither fail nor pass the trial.
pub const TRIAL_GRACE: Duration = Duration::from_secs(1);
/// A trial without a congested report for this long ends the pause.
pub const TRIAL: Duration = Duration::from_secs(5);

/// Where the gate stands for an estimate that cannot probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The lowest layers are sent.
    Running,
    /// The lowest layers are withheld until `retry_at`.
    Paused { retry_at: Instant },
    /// The lowest layers are sent again since `since`, to see whether they fit now.
    Trial { since: Instant },
}

/// Per-subscriber pause rule; see the module documentation.
#[derive(Debug, Clone)]
pub struct PauseGate {
    /// Since when the estimate has been below the lowest layers without a break.
    starved_since: Option<Instant>,
    /// The last receiver report at or above [`CONGESTED_LOSS`].
    lossy_at: Option<Instant>,
    state: State,
    /// The wait before the next trial, should the lowest layers be paused now.
    backoff: Duration,
}

impl Default for PauseGate {
    fn default() -> Self {
        Self::new()
    }
}

impl PauseGate {
    /// A gate with no history: nothing paused.
    pub fn new() -> Self {
        PauseGate {
            starved_since: None,
            lossy_at: None,
            state: State::Running,
            backoff: RETRY_MIN,
        }
    }

    /// A receiver report's fraction lost (0.0–1.0, RFC 3550 §6.4.1) for one of the
    /// subscriber's video streams, at `now`. NaN is ignored.
    pub fn on_loss_report(&mut self, now: Instant, fraction_lost: f32) {
        if fraction_lost >= CONGESTED_LOSS {
            self.lossy_at = Some(now);
        }
    }

    /// Whether the lowest layers are withheld by a pause on an estimate that cannot probe
    /// (waiting for the next trial).
    pub fn paused(&self) -> bool {
        matches!(self.state, State::Paused { .. })
    }

    /// Decide at `now`, for an estimate of `kind` that is `starved` (its usable share is
    /// below the sum of the tracks' lowest layers), whether the lowest layers are kept
    /// anyway (`true`: allocate as if the estimate covered them) or the estimate is
    /// followed, which pauses video it cannot carry (`false`). Without starvation the
    /// answer is `false` (the estimate already covers them) and any pause ends.
    pub fn hold_floor(&mut self, now: Instant, kind: EstimateKind, starved: bool) -> bool {
        if !starved {
            self.starved_since = None;
            self.state = match self.state {
                State::Trial { since } if now.saturating_duration_since(since) < TRIAL => {
                    State::Trial { since }
                }
                _ => State::Running,
            };
            if self.state == State::Running {
                self.backoff = RETRY_MIN;
            }
            return false;
        }
        let since = *self.starved_since.get_or_insert(now);
        let starved_for = now.saturating_duration_since(since);
        if kind.can_probe() {
            // The estimator probes with padding: follow the estimate after the grace
            // period, it shows when the lowest layers fit again.
            self.state = State::Running;
            return starved_for < PAUSE_AFTER;
        }
        match self.state {
            State::Paused { retry_at } if now < retry_at => false,
            State::Paused { .. } => {
                self.state = State::Trial { since: now };
                true
            }
            State::Trial { since } => {
                let failed = self
                    .lossy_at
                    .is_some_and(|at| at >= since + TRIAL_GRACE && at <= now);
                if failed {
                    self.pause(now);
                    return false;
                }
                if now.saturating_duration_since(since) >= TRIAL {
                    self.state = State::Running;
                    self.backoff = RETRY_MIN;
                }
                true
            }
            State::Running => {
                let congested = self
                    .lossy_at
                    .is_some_and(|at| now.saturating_duration_since(at) <= LOSS_MEMORY);
                if starved_for >= PAUSE_AFTER && congested {
                    self.pause(now);
                    return false;
                }
                true
            }
        }
    }

    fn pause(&mut self, now: Instant) {
        self.state = State::Paused {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
#[path = "pause_tests.rs"]
mod tests;
