//! [`Histogram`]: a small log-linear histogram of `u64` values (microseconds here) for
//! percentiles. Pure bookkeeping.

/// Values below this are counted exactly; above it with 1/128 relative precision.
const LINEAR_LIMIT: u64 = 1024;
/// Sub-buckets per power of two above [`LINEAR_LIMIT`].
const SUB_BUCKETS: u64 = 128;

/// A log-linear histogram of `u64` values (microseconds here): exact below 1024, within
/// 0.8 % above. Grows only as far as the largest value recorded.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < LINEAR_LIMIT {
            return v as usize;
        }
        let exp = 63 - u64::from(v.leading_zeros()); // >= 10
        let sub = (v >> (exp - 7)) & (SUB_BUCKETS - 1);
        (LINEAR_LIMIT + (exp - 10) * SUB_BUCKETS + sub) as usize
    }

    /// The smallest value that falls into bucket `i` (`i` up to one past the last).
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR_LIMIT {
            return i;
        }
        let exp = (i - LINEAR_LIMIT) / SUB_BUCKETS + 10;
        let sub = (i - LINEAR_LIMIT) % SUB_BUCKETS;
        (1 << exp) | (sub << (exp - 7))
    }

    /// Record one value.
    pub fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// No value recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at quantile `q` (0..=1), by nearest rank, as the highest value of its
    /// bucket (never above the largest recorded); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some((Self::value(i + 1) - 1).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Largest value recorded.
    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// Mean value.
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        assert!((p50 / 50_000.0 - 1.0).abs() < 0.01, "{p50}");
        assert_eq!(h.quantile(1.0), Some(100_000));
        assert_eq!(h.quantile(0.0001), Some(10));
        let mut g = Histogram::default();
        g.merge(&h);
        assert_eq!(g.len(), 100_000);
        assert!(Histogram::default().quantile(0.5).is_none());
    }
}
