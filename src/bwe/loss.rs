//! Loss-based bandwidth estimate for subscribers that give us neither TWCC feedback nor
//! REMB: only RTCP receiver reports (RFC 3550 §6.4.2 fraction lost). The controller is
//! the loss-based part of Google Congestion Control (draft-ietf-rmcat-gcc-02 §6): above
//! 10 % loss back off in proportion to the loss, below 2 % grow by 5 %, in between hold.
//! Pure: reports and time are inputs.

/// Never estimate below this, bit/s: enough for audio and the lowest video layer.
pub const MIN_BPS: u64 = 100_000;
/// Never estimate above this, bit/s.
pub const MAX_BPS: u64 = 20_000_000;

/// The controller's state.
#[derive(Debug, Clone, Copy)]
pub struct LossEstimator {
    estimate: u64,
}

impl LossEstimator {
    /// Start at `initial_bps`.
    pub fn new(initial_bps: u64) -> Self {
        LossEstimator {
            estimate: initial_bps.clamp(MIN_BPS, MAX_BPS),
        }
    }

    /// Current estimate, bit/s.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }

    /// Apply one receiver report's fraction lost (0.0–1.0; out-of-range values are
    /// clamped, NaN ignored) and return the new estimate in bit/s.
    pub fn on_report(&mut self, fraction_lost: f32) -> u64 {
        if fraction_lost.is_nan() {
            return self.estimate;
        }
        let loss = f64::from(fraction_lost.clamp(0.0, 1.0));
        let e = self.estimate as f64;
        let next = if loss > 0.10 {
            e * (1.0 - 0.5 * loss)
        } else if loss < 0.02 {
            e * 1.05
        } else {
            e
        };
        self.estimate = (next.round() as u64).clamp(MIN_BPS, MAX_BPS);
        self.estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_on_heavy_loss_and_grows_when_clean() {
        let mut l = LossEstimator::new(1_000_000);
        assert_eq!(l.on_report(0.2), 900_000);
        assert_eq!(l.on_report(0.05), 900_000);
        assert_eq!(l.on_report(0.0), 945_000);
    }

    #[test]
    fn stays_in_bounds() {
        let mut l = LossEstimator::new(1_000_000);
        for _ in 0..100 {
            l.on_report(1.0);
        }
        assert_eq!(l.estimate(), MIN_BPS);
        for _ in 0..1000 {
            l.on_report(0.0);
        }
        assert_eq!(l.estimate(), MAX_BPS);
        assert_eq!(l.on_report(f32::NAN), MAX_BPS);
        assert_eq!(l.on_report(-3.0), MAX_BPS);
        assert_eq!(LossEstimator::new(0).estimate(), MIN_BPS);
    }
}
