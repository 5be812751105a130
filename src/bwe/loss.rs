//! Loss-based bandwidth estimate for subscribers that give us neither TWCC feedback nor
//! REMB: only RTCP receiver reports (RFC 3550 §6.4.2 fraction lost). The controller is
//! the loss-based part of Google Congestion Control (draft-ietf-rmcat-gcc-02 §6): above
//! 10 % loss back off in proportion to the loss, below 2 % grow by 5 %, in between hold.
//! Growth is capped relative to what is actually sent (as GCC caps its increase at 1.5×
//! the acknowledged rate): without the cap a lightly loaded downlink would let the
//! estimate run far past the link, and the first real congestion would take seconds of
//! backing off to reach. Pure: reports and rates are inputs.

/// Never estimate below this, bit/s. The allocator pauses video when the estimate stays
/// below the lowest layer, so this is a floor for the controller, not a promise of video.
pub const MIN_BPS: u64 = 100_000;
/// However little is sent, the estimate may grow this far above it, bit/s: enough to
/// resume the lowest video layer after a pause, which no receiver report can show room
/// for while nothing is sent.
pub const GROWTH_ALLOWANCE_BPS: u64 = 250_000;
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
    /// clamped, NaN ignored), given `sent_bps` (what was sent to this receiver lately,
    /// bit/s) and `probe_bps` (what the allocator would like to send: every track's best
    /// layer with its headroom; 0 for nothing), and return the new estimate in bit/s.
    /// Growth stops at max(1.5 × `sent_bps`, `sent_bps` + [`GROWTH_ALLOWANCE_BPS`],
    /// `probe_bps`): with no way to probe, growing toward what is wanted is how a
    /// loss-only receiver is tried on the next layer (its reports then tell whether it
    /// fits), and nothing beyond it is ever claimed. An estimate already above the cap is
    /// held, not cut.
    pub fn on_report(&mut self, fraction_lost: f32, sent_bps: u64, probe_bps: u64) -> u64 {
        if fraction_lost.is_nan() {
            return self.estimate;
        }
        let loss = f64::from(fraction_lost.clamp(0.0, 1.0));
        let e = self.estimate as f64;
        let next = if loss > 0.10 {
            e * (1.0 - 0.5 * loss)
        } else if loss < 0.02 {
            let cap = (sent_bps.saturating_mul(3) / 2)
                .max(sent_bps.saturating_add(GROWTH_ALLOWANCE_BPS))
                .max(probe_bps);
            (e * 1.05).min((cap as f64).max(e))
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
        assert_eq!(l.on_report(0.2, 1_000_000, 0), 900_000);
        assert_eq!(l.on_report(0.05, 1_000_000, 0), 900_000);
        assert_eq!(l.on_report(0.0, 1_000_000, 0), 945_000);
    }

    #[test]
    fn growth_is_capped_by_what_is_sent() {
        let mut l = LossEstimator::new(1_000_000);
        // 400 kbit/s sent: at most 650 kbit/s (400 k + the allowance); above it, hold.
        assert_eq!(l.on_report(0.0, 400_000, 0), 1_000_000);
        let mut l = LossEstimator::new(600_000);
        assert_eq!(l.on_report(0.0, 400_000, 0), 630_000);
        assert_eq!(l.on_report(0.0, 400_000, 0), 650_000);
        assert_eq!(l.on_report(0.0, 400_000, 0), 650_000);
        // 2 Mbit/s sent: 1.5× applies.
        let mut l = LossEstimator::new(2_900_000);
        assert_eq!(l.on_report(0.0, 2_000_000, 0), 3_000_000);
        // Paused (audio only): still room to resume the lowest layer.
        let mut l = LossEstimator::new(MIN_BPS);
        for _ in 0..100 {
            l.on_report(0.0, 50_000, 0);
        }
        assert_eq!(l.estimate(), 300_000);
        // A probe target lets it grow to the next layer's need.
        for _ in 0..100 {
            l.on_report(0.0, 50_000, 700_000);
        }
        assert_eq!(l.estimate(), 700_000);
    }

    #[test]
    fn stays_in_bounds() {
        let mut l = LossEstimator::new(1_000_000);
        for _ in 0..100 {
            l.on_report(1.0, 0, 0);
        }
        assert_eq!(l.estimate(), MIN_BPS);
        for _ in 0..1000 {
            l.on_report(0.0, u64::MAX, 0);
        }
        assert_eq!(l.estimate(), MAX_BPS);
        assert_eq!(l.on_report(f32::NAN, 0, 0), MAX_BPS);
        assert_eq!(l.on_report(-3.0, u64::MAX, 0), MAX_BPS);
        assert_eq!(LossEstimator::new(0).estimate(), MIN_BPS);
    }
}
