//! Keyframe-request throttling for ONE published track (or one simulcast layer of it).
//!
//! Owns: deciding *when* the SFU asks the publisher for a keyframe (a PLI, RFC 4585 §6.3.1, or a
//! FIR, RFC 5104 §4.3.1), so that any number of subscribers asking at once (joins, layer switches,
//! their own PLIs) cost the publisher at most one request per interval, a request made during the
//! quiet interval is deferred rather than lost, and a request that went unanswered is retried.
//!
//! Never: builds or sends RTCP, reads a clock (time comes in as `now`), allocates, or tracks
//! *which* subscriber asked (the caller forwards the next keyframe to everyone waiting).
//!
//! # Semantics
//!
//! - The first [`request`](KeyframeThrottle::request) is sent at once.
//! - After a send, the throttle is *awaiting* a keyframe until [`on_keyframe`]. Requests while
//!   awaiting are covered by the request in flight: they become pending and only fire (as a
//!   retry) `retry_after` after the last send if no keyframe arrived by then.
//! - Once a keyframe has arrived, a new request is sent at once if `min_interval` has passed since
//!   the last send, otherwise it becomes pending and fires `min_interval` after the last send.
//! - A keyframe clears any pending request (everyone waiting gets that keyframe).
//! - The request that caused a send is not retried by itself: a caller that is still waiting says
//!   so by calling `request` again (e.g. for every packet it drops while waiting for a keyframe),
//!   which makes it pending and so retried after `retry_after` if the keyframe never comes.
//!
//! [`on_keyframe`]: KeyframeThrottle::on_keyframe

use std::time::{Duration, Instant};

/// Default time after a request was sent without any keyframe arriving before a still-waiting
/// request is sent again: 1 s. RTCP travels over unreliable transport (RFC 3550 §6), so a PLI can
/// be lost; waiting two intervals avoids re-asking an encoder that is merely slow to deliver.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Coalesces and throttles keyframe requests for one published track/layer. See the module
/// documentation for the exact semantics.
#[derive(Clone, Debug)]
pub(crate) struct KeyframeThrottle {
    min_interval: Duration,
    retry_after: Duration,
    /// When the last request was sent to the publisher.
    last_sent: Option<Instant>,
    /// A request was sent and no keyframe has arrived since.
    awaiting: bool,
    /// Someone asked and was neither sent nor satisfied yet.
    pending: bool,
    last_keyframe: Option<Instant>,
    sent: u64,
    coalesced: u64,
}

impl KeyframeThrottle {
    /// A throttle sending at most one request per `min_interval` (the forwarder uses
    /// [`KEYFRAME_MIN_INTERVAL`](super::KEYFRAME_MIN_INTERVAL))
    /// and retrying an unanswered one after `max(DEFAULT_RETRY_AFTER, min_interval)`.
    pub(crate) fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            retry_after: DEFAULT_RETRY_AFTER.max(min_interval),
            last_sent: None,
            awaiting: false,
            pending: false,
            last_keyframe: None,
            sent: 0,
            coalesced: 0,
        }
    }

    /// Sets the retry delay (time since the last send without a keyframe before a pending request
    /// fires again). Clamped to at least `min_interval`.
    #[cfg(test)]
    pub(crate) fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after.max(self.min_interval);
        self
    }

    /// Someone needs a keyframe. Returns true if the caller must send a PLI/FIR to the publisher
    /// now; otherwise the request is remembered as pending (see [`poll_timeout`]) and counted as
    /// coalesced.
    ///
    /// [`poll_timeout`]: KeyframeThrottle::poll_timeout
    pub(crate) fn request(&mut self, now: Instant) -> bool {
        if self.is_due(now) {
            self.mark_sent(now);
            true
        } else {
            self.pending = true;
            self.coalesced = self.coalesced.saturating_add(1);
            false
        }
    }

    /// A keyframe arrived from the publisher at `now`: the request in flight and any pending
    /// request are satisfied.
    pub(crate) fn on_keyframe(&mut self, now: Instant) {
        self.awaiting = false;
        self.pending = false;
        self.last_keyframe = Some(now);
    }

    /// When the pending request becomes due, if one is pending: the last send plus
    /// `retry_after` while awaiting a keyframe, plus `min_interval` otherwise. `None` when nothing
    /// is pending (or the deadline is not representable).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        self.last_sent?.checked_add(self.gap())
    }

    /// Returns true if a pending request is due at `now`; it is then marked sent and the caller
    /// must send a PLI/FIR to the publisher.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.pending && self.is_due(now) {
            self.mark_sent(now);
            true
        } else {
            false
        }
    }

    /// Whether a request is pending (deferred, not yet sent).
    #[cfg(test)]
    pub(crate) fn is_pending(&self) -> bool {
        self.pending
    }

    /// When the last keyframe arrived, as reported to [`on_keyframe`](Self::on_keyframe).
    #[cfg(test)]
    pub(crate) fn last_keyframe(&self) -> Option<Instant> {
        self.last_keyframe
    }

    /// Number of requests the caller was told to send (`request` or `handle_timeout` returned true).
    #[cfg(test)]
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Number of `request` calls that did not cause an immediate send (deferred or covered by the
    /// request in flight).
    #[cfg(test)]
    pub(crate) fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// Minimum spacing between sends that applies now.
    fn gap(&self) -> Duration {
        if self.awaiting {
            self.retry_after
        } else {
            self.min_interval
        }
    }

    fn is_due(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|sent| now.saturating_duration_since(sent) >= self.gap())
    }

    fn mark_sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.awaiting = true;
        self.pending = false;
        self.sent = self.sent.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarder::KEYFRAME_MIN_INTERVAL;

    const MS: Duration = Duration::from_millis(1);

    fn throttle() -> (KeyframeThrottle, Instant) {
        (KeyframeThrottle::new(KEYFRAME_MIN_INTERVAL), Instant::now())
    }

    #[test]
    fn first_request_is_sent_immediately() {
        let (mut k, t0) = throttle();
        assert_eq!(k.poll_timeout(), None);
        assert!(k.request(t0));
        assert_eq!((k.sent(), k.coalesced(), k.is_pending()), (1, 0, false));
        assert_eq!(k.poll_timeout(), None);
    }

    #[test]
    fn burst_of_100_requests_sends_one() {
        let (mut k, t0) = throttle();
        let sent = (0..100).filter(|i| k.request(t0 + *i * MS)).count();
        assert_eq!(sent, 1);
        assert_eq!((k.sent(), k.coalesced()), (1, 99));
        // The keyframe answers all of them: nothing left to send.
        k.on_keyframe(t0 + 150 * MS);
        assert_eq!(k.poll_timeout(), None);
        assert!(!k.handle_timeout(t0 + 10_000 * MS));
        assert_eq!(k.sent(), 1);
    }

    #[test]
    fn request_after_keyframe_is_deferred_to_exactly_last_sent_plus_interval() {
        let (mut k, t0) = throttle();
        assert!(k.request(t0));
        k.on_keyframe(t0 + 100 * MS);
        // A new subscriber joins after that keyframe: it needs another one, but not before 500 ms.
        assert!(!k.request(t0 + 200 * MS));
        let due = t0 + KEYFRAME_MIN_INTERVAL;
        assert_eq!(k.poll_timeout(), Some(due));
        assert!(!k.handle_timeout(due - Duration::from_nanos(1)));
        assert!(k.handle_timeout(due));
        assert_eq!((k.sent(), k.coalesced(), k.poll_timeout()), (2, 1, None));
        assert!(!k.handle_timeout(due + 10 * MS), "fires once");
    }

    #[test]
    fn keyframe_cancels_pending_request() {
        let (mut k, t0) = throttle();
        assert!(k.request(t0));
        k.on_keyframe(t0 + 50 * MS);
        assert!(!k.request(t0 + 60 * MS));
        assert!(k.is_pending());
        k.on_keyframe(t0 + 70 * MS);
        assert_eq!((k.is_pending(), k.poll_timeout()), (false, None));
        assert!(!k.handle_timeout(t0 + KEYFRAME_MIN_INTERVAL));
        assert_eq!(k.last_keyframe(), Some(t0 + 70 * MS));
    }

    #[test]
    fn request_after_interval_with_keyframe_is_sent_at_once() {
        let (mut k, t0) = throttle();
        assert!(k.request(t0));
        k.on_keyframe(t0 + 100 * MS);
        assert!(k.request(t0 + KEYFRAME_MIN_INTERVAL));
        assert_eq!((k.sent(), k.coalesced()), (2, 0));
    }

    #[test]
    fn unanswered_request_is_retried_after_retry_after() {
        let (mut k, t0) = throttle();
        assert!(k.request(t0));
        // Still waiting, between min_interval and retry_after: covered by the request in flight.
        assert!(!k.request(t0 + 600 * MS));
        assert_eq!(k.poll_timeout(), Some(t0 + DEFAULT_RETRY_AFTER));
        assert!(!k.handle_timeout(t0 + 999 * MS));
        assert!(k.handle_timeout(t0 + DEFAULT_RETRY_AFTER));
        assert_eq!(k.sent(), 2);
        // A request made directly after retry_after is sent without a timer.
        assert!(k.request(t0 + DEFAULT_RETRY_AFTER * 2));
        assert_eq!(k.sent(), 3);
    }

    #[test]
    fn a_lone_sent_request_is_not_retried_without_a_new_request() {
        let (mut k, t0) = throttle();
        assert!(k.request(t0));
        assert_eq!(k.poll_timeout(), None);
        assert!(!k.handle_timeout(t0 + 10 * DEFAULT_RETRY_AFTER));
    }

    #[test]
    fn retry_after_is_clamped_to_min_interval() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::new(KEYFRAME_MIN_INTERVAL).with_retry_after(10 * MS);
        assert!(k.request(t0));
        assert!(!k.request(t0 + 100 * MS));
        assert_eq!(k.poll_timeout(), Some(t0 + KEYFRAME_MIN_INTERVAL));

        let mut k = KeyframeThrottle::new(3 * DEFAULT_RETRY_AFTER);
        assert!(k.request(t0));
        assert!(!k.request(t0 + 10 * MS));
        assert_eq!(k.poll_timeout(), Some(t0 + 3 * DEFAULT_RETRY_AFTER));
    }

    #[test]
    fn time_going_backwards_or_huge_durations_do_not_panic() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut k = KeyframeThrottle::new(Duration::MAX);
        assert!(k.request(t0));
        assert!(!k.request(t0 - Duration::from_secs(5)));
        assert_eq!(k.poll_timeout(), None, "deadline not representable");
        assert!(!k.handle_timeout(t0 + Duration::from_secs(3600)));
        k.on_keyframe(t0 - Duration::from_secs(1));
        assert!(!k.request(t0));
    }
}
