//! What a live session and a live room hold outside their own state — the sessions
//! gauge, the live-session count (drain and the pod-deletion cost read it), the rooms
//! gauge, the registry entry and the demux key — as guards that undo it when dropped.
//!
//! A session or room that ends normally says why ([`SessionLedger::end`]). One that is
//! dropped without ending — its room task panicked and unwound — is counted as ended
//! with reason `room_failed`, so a fault in one room leaves no gauge, count or demux
//! entry behind for the rest of the process.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::SessionKind;
use crate::metrics;

/// The `reason` label of sessions whose room task failed (panicked).
pub(crate) const ROOM_FAILED: &str = "room_failed";

/// One live session's share of the gauges. Created when the session joins; [`end`]
/// it with a reason, or drop it (room failure).
///
/// [`end`]: SessionLedger::end
#[derive(Debug)]
pub(crate) struct SessionLedger {
    kind: SessionKind,
    live: Arc<AtomicI64>,
    ended: bool,
}

impl SessionLedger {
    /// Count a new session of `kind`: `switchboard_sessions{kind}` and
    /// `switchboard_sessions_created_total{kind}` up, `live` up by one.
    pub(crate) fn open(kind: SessionKind, live: &Arc<AtomicI64>) -> Self {
        metrics::session_created(kind.as_str());
        live.fetch_add(1, Ordering::Relaxed);
        SessionLedger {
            kind,
            live: Arc::clone(live),
            ended: false,
        }
    }

    /// The session ended for `reason` (a metric label): its counts go down.
    pub(crate) fn end(mut self, reason: &'static str) {
        self.close(reason);
    }

    fn close(&mut self, reason: &'static str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        metrics::session_ended(self.kind.as_str(), reason);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for SessionLedger {
    fn drop(&mut self) {
        self.close(ROOM_FAILED);
    }
}

/// How a room's task ended: `None` while it runs, then `Some(failed)`.
pub(crate) type RoomEnd = tokio::sync::watch::Sender<Option<bool>>;

/// A live room's registrations: the rooms gauge, and what `on_drop` undoes (its
/// registry entry and demux key). A room task that returns calls [`RoomGuard::finish`];
/// a guard dropped without it belongs to a task that panicked (tokio drops a panicked
/// task's future after catching the panic), so the room's end is published as failed
/// and requests waiting on the room are answered "room failed" instead of being
/// retried into a fresh room.
pub(crate) struct RoomGuard {
    end: RoomEnd,
    finished: bool,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl RoomGuard {
    /// Count a live room; `on_drop` runs when the guard is dropped, however the room ends.
    pub(crate) fn new(end: RoomEnd, on_drop: impl FnOnce() + Send + 'static) -> Self {
        metrics::rooms_gauge().increment(1.0);
        RoomGuard {
            end,
            finished: false,
            on_drop: Some(Box::new(on_drop)),
        }
    }

    /// The room's task returned normally.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for RoomGuard {
    fn drop(&mut self) {
        if !self.finished {
            metrics::room_failed();
        }
        metrics::rooms_gauge().decrement(1.0);
        if let Some(undo) = self.on_drop.take() {
            undo();
        }
        self.end.send_replace(Some(!self.finished));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_dropped_ledger_gives_back_its_count() {
        let live = Arc::new(AtomicI64::new(0));
        let a = SessionLedger::open(SessionKind::Publisher, &live);
        let b = SessionLedger::open(SessionKind::Subscriber, &live);
        assert_eq!(live.load(Ordering::Relaxed), 2);
        a.end("delete");
        assert_eq!(live.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(live.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_guard_dropped_unfinished_marks_the_room_failed() {
        let (end, ended) = tokio::sync::watch::channel(None);
        let undone = Arc::new(AtomicBool::new(false));
        let u = Arc::clone(&undone);
        // Dropped without `finish`: what tokio does with a panicked task's future.
        drop(RoomGuard::new(end, move || {
            u.store(true, Ordering::Relaxed)
        }));
        assert_eq!(*ended.borrow(), Some(true));
        assert!(undone.load(Ordering::Relaxed));

        let (end, ended) = tokio::sync::watch::channel(None);
        RoomGuard::new(end, || {}).finish();
        assert_eq!(*ended.borrow(), Some(false), "a normal end is no failure");
    }
}
