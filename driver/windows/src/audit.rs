//! Producers' side of the audit pipeline: turning a decided event into a
//! queued record.
//!
//! The queue ([`fltpolicy_core::queue`]) is per-CPU rings in one non-paged
//! buffer; a producer passes its processor number as the ring hint, never
//! waits, and on a full ring the queue counts the drop itself (the flush
//! thread turns drop counts into drop records). Nothing here allocates.

use fltpolicy_core::sync::AtomicU64;

use fltpolicy_core::event::{EventView, Verdict};
use fltpolicy_core::queue::{Queue, MIN_RING_WORDS};
use fltpolicy_core::record::{EventData, PolicyId};

use crate::globals::{Counters, Globals};
use crate::kernel;
use crate::policy::PolicyGuard;

/// Rings in the queue. Producers hash their CPU number onto a ring; eight
/// rings keep contention negligible on common machines while the queue's
/// fixed part stays small (it is built on DriverEntry's stack once).
pub const RINGS: usize = 8;
/// Words per ring: 32 KiB, about 300 typical records per CPU between two
/// flushes (the flush thread wakes every second, or at half-full).
pub const RING_WORDS: usize = 4096;
/// Non-paged bytes the queue storage takes (256 KiB).
pub const STORAGE_BYTES: usize = RINGS * RING_WORDS * 8;

const _: () = assert!(RING_WORDS >= MIN_RING_WORDS && RING_WORDS.is_power_of_two());

/// The driver's queue type: storage in non-paged pool owned by [`Globals`].
pub type AuditQueue = Queue<&'static [AtomicU64], RINGS>;

/// Allocates the queue storage. PASSIVE_LEVEL (DriverEntry).
pub fn alloc_storage() -> Option<&'static [AtomicU64]> {
    let p = kernel::alloc_nonpaged(STORAGE_BYTES);
    if p.is_null() {
        return None;
    }
    // SAFETY: a fresh, zeroed, 16-byte aligned allocation of exactly
    // RINGS * RING_WORDS words; AtomicU64 has the size and alignment of u64
    // and zero is a valid value. It lives until `free_storage`.
    Some(unsafe { core::slice::from_raw_parts(p.cast::<AtomicU64>(), RINGS * RING_WORDS) })
}

/// Frees storage from [`alloc_storage`].
///
/// # Safety
/// The queue built over `words` is gone (or will never be used again).
pub unsafe fn free_storage(words: &'static [AtomicU64]) {
    // SAFETY: the pointer came from alloc_nonpaged in alloc_storage.
    unsafe { kernel::free_pool(words.as_ptr().cast_mut().cast()) };
}

/// Queues the record of `ev` decided by `verdict` under the held policy.
/// The record is built in [`record_decided`]'s frame, never inlined into a
/// callback's (the stack-budget test, `tests/stack.rs`).
/// Any IRQL ≤ DISPATCH_LEVEL; never waits, never allocates. Wakes the
/// flush thread when the ring passes its high-water mark.
pub fn record(
    g: &Globals,
    guard: &PolicyGuard<'_>,
    ev: &EventView<'_>,
    verdict: &Verdict<'_>,
    status: Option<i32>,
) {
    let b = guard.block();
    record_decided(
        g,
        PolicyId::new(&b.hash, b.generation),
        ev,
        verdict,
        status,
        kernel::system_time_ns(),
    );
}

/// Queues the record of `ev` decided by `verdict` under the policy
/// `policy` — a decision carried from pre-op to post-op
/// ([`crate::completion`]), recorded without holding that policy. Any
/// IRQL <= DISPATCH_LEVEL; never waits, never allocates. `time_ns` is
/// when the operation happened (pre-op's clock for a carried decision),
/// not when it completed.
#[inline(never)]
pub fn record_decided(
    g: &Globals,
    policy: PolicyId,
    ev: &EventView<'_>,
    verdict: &Verdict<'_>,
    status: Option<i32>,
    time_ns: u64,
) {
    if !g.producers.enter() {
        return;
    }
    push(g, policy, ev, verdict, status, None, time_ns);
    g.producers.exit();
}

/// Queues the record of a rename or link decided on its destination:
/// `ev` names the file (source), `target` the destination the verdict was
/// reached on (flagged `target_matched`). Any IRQL <= DISPATCH_LEVEL.
#[inline(never)]
pub fn record_target(
    g: &Globals,
    guard: &PolicyGuard<'_>,
    ev: &EventView<'_>,
    verdict: &Verdict<'_>,
    status: Option<i32>,
    target: &str,
) {
    if !g.producers.enter() {
        return;
    }
    let b = guard.block();
    push(
        g,
        PolicyId::new(&b.hash, b.generation),
        ev,
        verdict,
        status,
        Some(target),
        kernel::system_time_ns(),
    );
    g.producers.exit();
}

fn push(
    g: &Globals,
    policy: PolicyId,
    ev: &EventView<'_>,
    verdict: &Verdict<'_>,
    status: Option<i32>,
    target: Option<&str>,
    time_ns: u64,
) {
    let mut data = EventData::from_view(ev, verdict, policy, time_ns, status);
    if let Some(t) = target {
        data = data.with_target(t);
        data.flags |= fltpolicy_core::record::flags::TARGET_MATCHED;
    }
    if let Ok(pushed) = g.queue.push(kernel::current_processor(), &data) {
        Counters::bump(&g.counters.logged_queued);
        if pushed.wake_flusher {
            // SAFETY: the event lives in Globals (non-paged) for the life of
            // the driver; KeSetEvent with Wait = FALSE is valid at
            // IRQL <= DISPATCH_LEVEL.
            unsafe { kernel::event_set(g.flush.wake.get()) };
        }
    }
}
