//! A sliding-window bitrate meter: bytes seen over the last window, in bits per second.
//! Used to measure what each published track (and later each simulcast layer) really
//! sends, so allocation uses measured rather than nominal rates.

use std::time::{Duration, Instant};

/// Number of buckets the window is split into.
const BUCKETS: usize = 10;

/// Bitrate over a sliding window of `window`, in `BUCKETS` buckets. No allocation after
/// construction; `now` must be monotonic.
#[derive(Debug, Clone)]
pub(crate) struct BitrateMeter {
    bucket_len: Duration,
    buckets: [u64; BUCKETS],
    /// Start of the current bucket.
    current_start: Option<Instant>,
    current: usize,
}

impl BitrateMeter {
    /// A meter over `window` (e.g. 1 s). A zero window is treated as 1 ms.
    pub(crate) fn new(window: Duration) -> Self {
        let bucket_len = (window / BUCKETS as u32).max(Duration::from_micros(100));
        BitrateMeter {
            bucket_len,
            buckets: [0; BUCKETS],
            current_start: None,
            current: 0,
        }
    }

    fn advance(&mut self, now: Instant) {
        let Some(start) = self.current_start else {
            self.current_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        let steps = (elapsed.as_nanos() / self.bucket_len.as_nanos()) as usize;
        if steps == 0 {
            return;
        }
        for i in 1..=steps.min(BUCKETS) {
            self.buckets[(self.current + i) % BUCKETS] = 0;
        }
        self.current = (self.current + steps) % BUCKETS;
        self.current_start = Some(start + self.bucket_len * steps as u32);
    }

    /// Count `bytes` seen at `now`.
    pub(crate) fn record(&mut self, now: Instant, bytes: usize) {
        self.advance(now);
        self.buckets[self.current] += bytes as u64;
    }

    /// Bits per second over the window ending at `now`.
    pub(crate) fn bitrate(&mut self, now: Instant) -> u64 {
        self.advance(now);
        let bytes: u64 = self.buckets.iter().sum();
        // The current bucket is partly filled: divide by the span actually covered.
        let partial = self
            .current_start
            .map(|s| now.saturating_duration_since(s))
            .unwrap_or_default()
            .min(self.bucket_len);
        let window = self.bucket_len * (BUCKETS as u32 - 1) + partial;
        bytes * 8 * 1_000_000_000 / window.as_nanos().max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::new(Duration::from_secs(1));
        // 1000 bytes every 10 ms = 800 kbit/s.
        for i in 0..300u32 {
            m.record(t0 + Duration::from_millis(10) * i, 1000);
        }
        let r = m.bitrate(t0 + Duration::from_millis(2995));
        assert!((780_000..=820_000).contains(&r), "{r}");
    }

    #[test]
    fn decays_to_zero() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::new(Duration::from_secs(1));
        m.record(t0, 10_000);
        assert!(m.bitrate(t0) > 0);
        assert_eq!(m.bitrate(t0 + Duration::from_secs(2)), 0);
        // Long gaps never panic or overflow.
        assert_eq!(m.bitrate(t0 + Duration::from_secs(100_000)), 0);
    }
}
