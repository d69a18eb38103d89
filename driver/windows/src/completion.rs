//! Completion contexts: what a pre-operation callback hands its
//! post-operation callback.
//!
//! Post-op can run at DISPATCH_LEVEL (a paging write completed in a DPC),
//! where `FltGetStreamHandleContext`, `FltGetInstanceContext` and the name
//! queries may not be called (all documented for IRQL <= APC_LEVEL). So,
//! as in Microsoft's swapBuffers sample, pre-op (IRQL <= APC_LEVEL) takes
//! everything post-op needs and passes it as the completion context:
//!
//! * the stream-handle context reference (the cached name and user), which
//!   post-op releases with `FltReleaseContext` (IRQL <= DISPATCH_LEVEL) on
//!   every path, `FLTFL_POST_OPERATION_DRAINING` included;
//! * the verdict pre-op decided — action, rule, line, tag — and the identity
//!   (hash, generation) of the policy that decided it, copied, so that post-op
//!   records exactly that decision with the final status and evaluates
//!   nothing: a policy swap in between cannot lose or change it;
//! * for creates, the not yet set stream-handle context pre-create built
//!   (normalized name and requester SID), for post-create to set or free.
//!
//! The blocks come from a fixed pool in the image's non-paged `.bss`,
//! claimed and returned with one atomic bit operation each (any IRQL <=
//! DISPATCH_LEVEL, never waits, never allocates). When every block is in
//! use the caller records in pre-op without the final status and the
//! shortfall is counted ([`exhausted`]); nothing is lost silently.
//!
//! Must never: hand out a block twice; be released twice; hold a policy
//! reader across the I/O (that would stall `install`).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use fltpolicy_core::event::{Action, Op, Verdict};
use fltpolicy_core::record::{PolicyId, MAX_TAG_BYTES};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_CONTEXT;

use crate::policy::PolicyGuard;

/// Blocks in the pool: in-flight operations that carry a decision. Logged
/// creates, reads, writes and set-information requests hold one from
/// pre-op to post-op only.
pub const SLOTS: usize = 1024;
const WORDS: usize = SLOTS / 64;
const _: () = assert!(SLOTS % 64 == 0);

/// A verdict copied out of the policy that decided it.
#[derive(Debug, Clone, Copy)]
pub struct CarriedVerdict {
    pub action: Action,
    pub rule: Option<u32>,
    pub line: u32,
    tag_len: u16,
    tag: [u8; MAX_TAG_BYTES],
    pub policy: PolicyId,
}

impl CarriedVerdict {
    const EMPTY: CarriedVerdict = CarriedVerdict {
        action: Action::None,
        rule: None,
        line: 0,
        tag_len: 0,
        tag: [0; MAX_TAG_BYTES],
        policy: PolicyId {
            hash: [0; fltpolicy_core::record::POLICY_ID_BYTES],
            generation: 0,
        },
    };

    /// Copies `v` (decided under `guard`'s policy) into `self`, in place
    /// (no 300-byte temporary on a callback's stack). A tag longer than
    /// the record's limit is cut at a character boundary here, as the
    /// record encoder would cut it (and the record flags it).
    pub fn fill(&mut self, v: &Verdict<'_>, guard: &PolicyGuard<'_>) {
        let b = guard.block();
        self.action = v.action;
        self.rule = v.rule;
        self.line = v.line;
        let mut n = v.tag.len().min(MAX_TAG_BYTES);
        while !v.tag.is_char_boundary(n) {
            n -= 1;
        }
        self.tag[..n].copy_from_slice(&v.tag.as_bytes()[..n]);
        self.tag_len = n as u16;
        self.policy = PolicyId::new(&b.hash, b.generation);
    }

    /// The verdict, borrowing the copied tag.
    pub fn verdict(&self) -> Verdict<'_> {
        Verdict {
            action: self.action,
            rule: self.rule,
            line: self.line,
            tag: core::str::from_utf8(&self.tag[..usize::from(self.tag_len)]).unwrap_or(""),
        }
    }
}

/// What pre-op hands post-op.
#[derive(Debug)]
pub struct Completion {
    /// A referenced stream-handle context ([`crate::names::NameRef`] turned
    /// into its raw pointer), or null. Post-op releases it.
    pub name: PFLT_CONTEXT,
    pub op: Op,
    pub size: u64,
    pub pid: u64,
    pub paging: bool,
    /// When pre-op saw the operation (the record's time: when the
    /// operation happened, not when it completed).
    pub time_ns: u64,
    /// Whether `verdict` is to be recorded in post-op.
    pub record: bool,
    pub verdict: CarriedVerdict,
    /// Creates: pre-create could not name the file; post-create decides
    /// the operations in `deferred_ops` (bit per [`Op`]) on the name of the
    /// opened file.
    pub deferred_ops: u8,
}

impl Completion {
    /// Clears the fields a new owner relies on (the tag bytes beyond
    /// `tag_len` are never read).
    fn reset(&mut self) {
        self.name = core::ptr::null_mut();
        self.op = Op::Open;
        self.size = 0;
        self.pid = 0;
        self.paging = false;
        self.time_ns = 0;
        self.record = false;
        self.verdict.action = Action::None;
        self.verdict.rule = None;
        self.verdict.line = 0;
        self.verdict.tag_len = 0;
        self.deferred_ops = 0;
    }

    const EMPTY: Completion = Completion {
        name: core::ptr::null_mut(),
        op: Op::Open,
        size: 0,
        pid: 0,
        paging: false,
        time_ns: 0,
        record: false,
        verdict: CarriedVerdict::EMPTY,
        deferred_ops: 0,
    };
}

struct Slot(UnsafeCell<Completion>);

// SAFETY: a slot is reached only through the bitmap: whoever set its bit
// owns it exclusively until it clears the bit (Release), and the next owner
// sets it again (Acquire). FltMgr orders pre-op before post-op.
unsafe impl Sync for Slot {}

static POOL: [Slot; SLOTS] = [const { Slot(UnsafeCell::new(Completion::EMPTY)) }; SLOTS];
static USED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
static EXHAUSTED: AtomicU64 = AtomicU64::new(0);

/// Claims a block, reset to empty. Any IRQL <= DISPATCH_LEVEL; never waits:
/// at most one pass over the bitmap, starting at the caller's CPU's word.
/// `None` (and [`exhausted`] counts it) when every block is in use.
pub fn claim(cpu_hint: usize) -> Option<&'static mut Completion> {
    for k in 0..WORDS {
        let w = (cpu_hint + k) % WORDS;
        let mut cur = USED[w].load(Ordering::Relaxed);
        while cur != u64::MAX {
            let bit = (!cur).trailing_zeros();
            match USED[w].compare_exchange_weak(
                cur,
                cur | (1u64 << bit),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let i = w * 64 + bit as usize;
                    // SAFETY: we just set bit `i`: the slot is ours alone
                    // until `release` clears it.
                    let c = unsafe { &mut *POOL[i].0.get() };
                    c.reset();
                    return Some(c);
                }
                Err(now) => cur = now,
            }
        }
    }
    EXHAUSTED.fetch_add(1, Ordering::Relaxed);
    None
}

/// The block behind a completion-context pointer from [`as_context`].
///
/// # Safety
/// `p` came from [`as_context`] of a claimed block not yet released.
pub unsafe fn from_context(p: *const core::ffi::c_void) -> &'static mut Completion {
    // SAFETY: per the caller, `p` points at a claimed slot we own.
    unsafe { &mut *p.cast_mut().cast::<Completion>() }
}

/// The pointer FltMgr carries from pre-op to post-op.
pub fn as_context(c: &'static mut Completion) -> *mut core::ffi::c_void {
    (c as *mut Completion).cast()
}

/// Returns a block to the pool. Any IRQL <= DISPATCH_LEVEL. The caller has
/// released the context reference the block held.
pub fn release(c: &'static mut Completion) {
    let base = POOL.as_ptr() as usize;
    let i = ((c as *mut Completion as usize) - base) / core::mem::size_of::<Slot>();
    debug_assert!(i < SLOTS);
    c.name = core::ptr::null_mut();
    let prev = USED[i / 64].fetch_and(!(1u64 << (i % 64)), Ordering::Release);
    debug_assert!(
        prev & (1u64 << (i % 64)) != 0,
        "completion block released twice"
    );
}

/// Blocks currently claimed (the simulation checks it is 0 at unload).
pub fn in_use() -> usize {
    USED.iter()
        .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
        .sum()
}

/// How many times a block was wanted and none was free.
pub fn exhausted() -> u64 {
    EXHAUSTED.load(Ordering::Relaxed)
}

/// Claims every free block (simulation tests: exhaust the pool). Returns
/// how many were taken; [`release_all_claimed_by_test`] undoes it.
#[cfg(not(feature = "kernel"))]
pub fn claim_all_for_test() -> Vec<usize> {
    let mut v = std::vec::Vec::new();
    while let Some(c) = claim(0) {
        v.push(c as *mut Completion as usize);
    }
    v
}

/// Undoes [`claim_all_for_test`].
#[cfg(not(feature = "kernel"))]
pub fn release_all_claimed_by_test(v: Vec<usize>) {
    for p in v {
        // SAFETY: each came from `claim` in claim_all_for_test.
        release(unsafe { &mut *(p as *mut Completion) });
    }
}

#[cfg(not(feature = "kernel"))]
use std::vec::Vec;
