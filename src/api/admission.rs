//! Admission of new sessions (WHIP/WHEP POST), before any body is read or any room is
//! asked: a per-client-address rate limit (GCRA, the `governor` crate), the server's
//! session limit and its limit on sessions that have not connected yet (pending).
//! The per-identity limit is the room's ([`crate::limits::RoomLimits`]), and a
//! pending session's timeout is the participant's
//! ([`crate::session::participant::CONNECT_TIMEOUT`]).
//!
//! | limit | flag | default | answer |
//! |---|---|---|---|
//! | POSTs per client address | `--post-rate`, `--post-burst` | 5/s, burst 20 | 429 + `Retry-After` |
//! | live sessions | `--max-sessions` | 1000 | 503 + `Retry-After` |
//! | sessions not connected yet | `--max-pending` | 200 | 503 + `Retry-After` |

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;

/// `Retry-After` (seconds) when the server is at its session limit: sessions end at
/// human pace, a retry much sooner would only be refused again.
const FULL_RETRY_AFTER_S: u32 = 10;
/// `Retry-After` (seconds) when too many sessions are pending: they connect or time out
/// within seconds.
const PENDING_RETRY_AFTER_S: u32 = 2;
/// The rate limiter forgets addresses that are back to a full burst every this many
/// checks, so its table holds only recently active addresses.
const FORGET_EVERY: u64 = 1024;

/// The limits, from the command line (see `src/config.rs`). 0 disables a limit.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Most live sessions on this server.
    pub max_sessions: u32,
    /// Most sessions that joined and have not connected (ICE + DTLS) yet.
    pub max_pending: u32,
    /// POSTs per second per client address (IPv4 address, or IPv6 /64).
    pub post_rate: u32,
    /// POSTs a client address may send at once before the rate applies.
    pub post_burst: u32,
}

/// The server's admission state. Cheap to check: two atomic loads and one rate-limiter
/// cell per POST.
pub struct Admission {
    limits: AdmissionLimits,
    live: Arc<AtomicI64>,
    pending: Arc<AtomicI64>,
    per_addr: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
}

impl Admission {
    /// `live` and `pending` are the rooms' counters (see [`crate::metrics::Meters`]).
    pub fn new(limits: AdmissionLimits, live: Arc<AtomicI64>, pending: Arc<AtomicI64>) -> Self {
        let per_addr = NonZeroU32::new(limits.post_rate).map(|rate| {
            let burst = NonZeroU32::new(limits.post_burst.max(limits.post_rate)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Admission {
            limits,
            live,
            pending,
            per_addr,
            checks: AtomicU64::new(0),
        }
    }

    /// No limit at all (tests that build a router by hand).
    pub fn unlimited() -> Self {
        let zero = AdmissionLimits {
            max_sessions: 0,
            max_pending: 0,
            post_rate: 0,
            post_burst: 0,
        };
        Admission::new(zero, Default::default(), Default::default())
    }

    /// Count one POST from `peer` (`None`: unknown, or forwarded by another node, which
    /// already counted it). 429 with `Retry-After` past the address's rate.
    pub fn check_rate(&self, peer: Option<IpAddr>) -> Result<(), ApiError> {
        let (Some(limiter), Some(ip)) = (&self.per_addr, peer) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&rate_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u32,
                detail: format!(
                    "too many new sessions from this address (at most {} per second)",
                    self.limits.post_rate
                ),
            }
        })
    }

    /// 503 with `Retry-After` when the server has its maximum of live or of pending
    /// sessions.
    pub fn check_capacity(&self) -> Result<(), ApiError> {
        let max = self.limits.max_sessions;
        if max > 0 && self.live.load(Ordering::Relaxed) >= i64::from(max) {
            return Err(ApiError::Overloaded {
                retry_after: FULL_RETRY_AFTER_S,
                detail: format!("the server has its maximum of {max} sessions"),
            });
        }
        let max = self.limits.max_pending;
        if max > 0 && self.pending.load(Ordering::Relaxed) >= i64::from(max) {
            return Err(ApiError::Overloaded {
                retry_after: PENDING_RETRY_AFTER_S,
                detail: format!("the server has its maximum of {max} sessions still connecting"),
            });
        }
        Ok(())
    }
}

/// The rate limit's key: an IPv4 address, or the /64 of an IPv6 one (one subscriber
/// line usually has a whole /64).
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_sessions: u32, max_pending: u32, rate: u32, burst: u32) -> AdmissionLimits {
        AdmissionLimits {
            max_sessions,
            max_pending,
            post_rate: rate,
            post_burst: burst,
        }
    }

    #[test]
    fn rate_limit_is_per_address_with_retry_after() {
        let a = Admission::new(limits(0, 0, 1, 2), Default::default(), Default::default());
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(a.check_rate(Some(one)).is_ok());
        assert!(a.check_rate(Some(one)).is_ok());
        match a.check_rate(Some(one)) {
            Err(ApiError::RateLimited { retry_after, .. }) => assert!(retry_after >= 1),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(a.check_rate(Some(two)).is_ok());
        assert!(
            a.check_rate(None).is_ok(),
            "forwarded requests are not counted"
        );
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a = Admission::new(limits(0, 0, 1, 1), Default::default(), Default::default());
        assert!(a.check_rate(Some("2001:db8::1".parse().unwrap())).is_ok());
        assert!(a.check_rate(Some("2001:db8::2".parse().unwrap())).is_err());
        assert!(a
            .check_rate(Some("2001:db8:0:1::1".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn session_and_pending_limits_answer_503() {
        let live = Arc::new(AtomicI64::new(0));
        let pending = Arc::new(AtomicI64::new(0));
        let a = Admission::new(limits(3, 2, 0, 0), Arc::clone(&live), Arc::clone(&pending));
        assert!(a.check_capacity().is_ok());
        pending.store(2, Ordering::Relaxed);
        assert!(matches!(
            a.check_capacity(),
            Err(ApiError::Overloaded { retry_after: 2, .. })
        ));
        pending.store(0, Ordering::Relaxed);
        live.store(3, Ordering::Relaxed);
        assert!(matches!(
            a.check_capacity(),
            Err(ApiError::Overloaded {
                retry_after: 10,
                ..
            })
        ));
        assert!(Admission::unlimited().check_capacity().is_ok());
    }
}
