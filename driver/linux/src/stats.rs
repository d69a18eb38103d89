//! Engine counters, shared by the event threads, the control socket and
//! `status`. Relaxed atomics: each counter is independently monotonic and
//! nothing is synchronized through them.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Counters {
    /// Operations reported by fanotify (a merged kernel event carrying
    /// open+write+close counts three), the engine's own excluded.
    pub events_seen: AtomicU64,
    /// Events a rule matched (any action other than none).
    pub matched: AtomicU64,
    /// Records accepted by the audit queue.
    pub queued: AtomicU64,
    /// Permission events answered with deny.
    pub denied: AtomicU64,
    /// `deny` verdicts on operations Linux can only observe after the fact
    /// (create, delete, rename, write, close): recorded, not prevented.
    pub deny_unenforceable: AtomicU64,
    /// Records the audit queue refused because it was full.
    pub queue_full: AtomicU64,
    /// `FAN_Q_OVERFLOW` notices (kernel dropped events, count unknown).
    pub kernel_overflows: AtomicU64,
    /// Permission events answered allow by the deadline watchdog.
    pub deadline_allows: AtomicU64,
    /// Events whose directory handle could not be turned into a path (the
    /// directory was deleted before the event was read, e.g. inside an
    /// `rm -r` of a tree the engine had not seen yet): not evaluated, only
    /// counted here (`status`); no drop record exists for this reason.
    pub unresolved: AtomicU64,
    /// Events that could not be placed but certainly lie outside every
    /// policy tree (the namespace mirror knows every directory under them):
    /// counted here, never reported as a loss.
    pub unresolved_outside: AtomicU64,
    /// The engine's own events, skipped.
    pub own_events: AtomicU64,
}

impl Counters {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}
