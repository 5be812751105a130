//! When a subscriber's video may be paused for bandwidth, and how it comes back.
//!
//! Owns: the rule that decides, per subscriber, whether the lowest layer of every track is
//! kept although the estimate is below what those layers need ([`PauseGate`]). Never
//! allocates layers (`bwe::allocator` does), touches packets or reads a clock.
//!
//! # A low estimate alone never pauses video
//!
//! GCC estimates dip hard and for seconds without any congestion: at startup (the
//! estimate starts at an initial guess and backs off on the first delay spike), when a
//! receiver or the server is short of CPU for a moment (the delay detector reads late
//! feedback as a growing queue), and after each back-off the climb near the last
//! congestion point is additive, several seconds for a few hundred kbit/s
//! (draft-ietf-rmcat-gcc-02 §5.5). A viewer whose lowest layer is paused on such a dip
//! loses whole seconds of video for nothing; measured on a loaded 2-core machine, a
//! viewer's estimate fell from 2.0 to 0.69 Mbit/s on connecting (no loss at any point)
//! and took 4.4 s to climb back over a 0.9 Mbit/s stream, and the 4 s grace period of
//! the earlier rule paused it in about one run in five. mediasoup never pauses a
//! single-stream consumer for bandwidth; libwebrtc suspends a stream only below its
//! minimum bitrate.
//!
//! So the lowest layer of every track is kept while the estimate is short, unless the
//! receiver also reports congestion loss (fraction lost at or above [`CONGESTED_LOSS`],
//! the level where GCC's loss controller backs off, draft-ietf-rmcat-gcc-02 §6) while the
//! estimate has been short for [`PAUSE_AFTER`]. A link that really cannot carry the
//! lowest layer overflows its queue and shows that loss within a second or two.
//!
//! # How a paused track comes back, by estimate kind
//!
//! A paused track sends nothing, so whatever estimate follows must find room for it
//! without it:
//! * **TWCC** (send-side GCC): str0m pads and probes up to what the allocation asks for,
//!   so the estimate can rise while video is paused, and the track resumes once it covers
//!   the lowest layer.
//! * **REMB** (the receiver's GCC): a receive-side estimate grows at most to 1.5× the
//!   incoming rate (draft-ietf-rmcat-gcc-02 §5.5) and str0m cannot pad without transport-wide
//!   feedback. With video paused only audio arrives, the estimate can never climb back
//!   above a video layer, and the viewer would keep its audio and lose its video for good.
//! * **Loss** (`bwe::loss`, receiver reports only): no probing either.
//!
//! So a track paused on an estimate that cannot probe is probed with media: after a
//! back-off ([`RETRY_MIN`], doubling up to [`RETRY_MAX`] while trials fail) the lowest
//! layers are sent again for a trial; a congested report during the trial pauses them
//! again at once, a trial without one for [`TRIAL`] ends the pause for good (LiveKit's
//! stream allocator probes a REMB path with media in the same way).

use std::time::{Duration, Instant};

use super::EstimateKind;

/// A subscriber's tracks are paused only after its estimate has stayed below their lowest
/// layers this long, with congestion loss reported (see the module documentation).
pub(crate) const PAUSE_AFTER: Duration = Duration::from_secs(4);
/// A receiver report with at least this fraction lost (0.0–1.0) shows congestion.
pub(crate) const CONGESTED_LOSS: f32 = 0.10;
/// A congested report counts as current this long (receiver reports come about once a
/// second).
pub(crate) const LOSS_MEMORY: Duration = Duration::from_secs(3);
/// First wait before a track paused on an estimate that cannot probe is tried again.
pub(crate) const RETRY_MIN: Duration = Duration::from_secs(4);
/// Longest wait between such trials (the back-off doubles after each failed one).
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(32);
/// Reports received this soon after a trial starts describe the time before it (nothing
/// was sent on the paused video): they neither fail nor pass the trial.
pub(crate) const TRIAL_GRACE: Duration = Duration::from_secs(1);
/// A trial without a congested report for this long ends the pause.
pub(crate) const TRIAL: Duration = Duration::from_secs(5);

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
pub(crate) struct PauseGate {
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
    pub(crate) fn new() -> Self {
        PauseGate {
            starved_since: None,
            lossy_at: None,
            state: State::Running,
            backoff: RETRY_MIN,
        }
    }

    /// A receiver report's fraction lost (0.0–1.0, RFC 3550 §6.4.1) for one of the
    /// subscriber's video streams, at `now`. NaN is ignored.
    pub(crate) fn on_loss_report(&mut self, now: Instant, fraction_lost: f32) {
        if fraction_lost >= CONGESTED_LOSS {
            self.lossy_at = Some(now);
        }
    }

    /// Whether a receiver report at or above [`CONGESTED_LOSS`] arrived within
    /// [`LOSS_MEMORY`] of `now`.
    pub(crate) fn congested(&self, now: Instant) -> bool {
        self.lossy_at
            .is_some_and(|at| now.saturating_duration_since(at) <= LOSS_MEMORY)
    }

    /// Whether the lowest layers are withheld by a pause on an estimate that cannot probe
    /// (waiting for the next trial).
    #[cfg(test)]
    pub(crate) fn paused(&self) -> bool {
        matches!(self.state, State::Paused { .. })
    }

    /// Decide at `now` (monotonic), for an estimate of `kind` that is `starved` (its usable
    /// share is below the sum of the tracks' lowest layers), whether the lowest layers are
    /// kept anyway (`true`: allocate as if the estimate covered them) or the estimate is
    /// followed, which pauses video it cannot carry (`false`: only after [`PAUSE_AFTER`]
    /// of starvation with congestion loss reported). Without starvation the answer is
    /// `false` (the estimate already covers them) and any pause ends.
    pub(crate) fn hold_floor(&mut self, now: Instant, kind: EstimateKind, starved: bool) -> bool {
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
        let congested = self.congested(now);
        if kind.can_probe() {
            // The estimator probes with padding: once congestion confirms the shortfall,
            // follow the estimate; it shows when the lowest layers fit again.
            self.state = State::Running;
            return !(starved_for >= PAUSE_AFTER && congested);
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
