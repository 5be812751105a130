//! A publisher's media clock: frame (or audio packet) `n` of a stream is due at
//! `start + n × period`, whatever the task's wake-ups, so the media a client sends keeps
//! its rate when the task runs late, and a task that fell far behind skips ahead rather
//! than bursting (an encoder drops frames; it does not send them all at once).
//!
//! Never reads the clock: `now` (monotonic) is passed in.

use std::ops::Range;
use std::time::{Duration, Instant};

/// One periodic stream's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticker {
    period: Duration,
    start: Option<Instant>,
    next: u64,
}

impl Ticker {
    /// A clock of `period` (above zero), not started.
    pub fn new(period: Duration) -> Self {
        assert!(!period.is_zero(), "a media clock needs a period");
        Ticker {
            period,
            start: None,
            next: 0,
        }
    }

    /// Start at `at` (item 0 is due then); a started clock keeps its start.
    pub fn start(&mut self, at: Instant) {
        self.start.get_or_insert(at);
    }

    /// When it started, if it has.
    pub fn started(&self) -> Option<Instant> {
        self.start
    }

    /// When item `n` is due, once started.
    pub fn at(&self, n: u64) -> Option<Instant> {
        let offset = self.period.checked_mul(u32::try_from(n).ok()?)?;
        self.start.map(|s| s + offset)
    }

    /// The next item's number.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// When the next item is due, once started.
    pub fn next_due(&self) -> Option<Instant> {
        self.at(self.next)
    }

    /// The next item, whether due or not (a caller that interleaves streams in time
    /// order takes them one at a time).
    pub fn advance(&mut self) -> u64 {
        self.next += 1;
        self.next - 1
    }

    /// The items due by `now`, in order, at most `max_catch_up` of them (above zero):
    /// older ones are skipped. Empty before the start.
    pub fn due(&mut self, now: Instant, max_catch_up: u64) -> Range<u64> {
        let Some(start) = self.start else {
            return self.next..self.next;
        };
        let elapsed = now.saturating_duration_since(start);
        let last = (elapsed.as_nanos() / self.period.as_nanos()) as u64;
        if last < self.next {
            return self.next..self.next;
        }
        let first = self
            .next
            .max((last + 1).saturating_sub(max_catch_up.max(1)));
        self.next = last + 1;
        first..last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn items_fall_due_on_the_grid_and_a_late_task_skips_ahead() {
        let t0 = Instant::now();
        let mut t = Ticker::new(20 * MS);
        assert_eq!(t.due(t0, 3), 0..0);
        assert_eq!(t.next_due(), None);
        t.start(t0);
        t.start(t0 + MS);
        assert_eq!(t.started(), Some(t0));
        assert_eq!(t.due(t0, 3), 0..1);
        assert_eq!(t.due(t0 + 19 * MS, 3), 1..1);
        assert_eq!(t.next_due(), Some(t0 + 20 * MS));
        assert_eq!(t.due(t0 + 40 * MS, 3), 1..3);
        // Items 3 to 13 are due: only the last three are sent.
        assert_eq!(t.due(t0 + 260 * MS, 3), 11..14);
        assert_eq!(t.at(13), Some(t0 + 260 * MS));
        assert_eq!((t.next(), t.advance()), (14, 14));
        assert_eq!(t.next_due(), Some(t0 + 300 * MS));
    }
}
