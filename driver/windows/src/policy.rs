//! The active policy and its swap.
//!
//! Callbacks on every CPU read the active policy at up to DISPATCH_LEVEL; the
//! control path (PASSIVE_LEVEL, one load at a time) replaces it. Readers must
//! never wait and must see either the old policy or the new one, never a
//! mix; the old policy's memory may be freed only when no reader can still
//! hold it.
//!
//! The slot keeps two cells, each with a reader count, and an index naming
//! the active cell:
//!
//! * a reader loads the index `i`, increments `readers[i]`, then re-reads
//!   the index; if it still is `i` the reader may use `cell[i]` until it
//!   decrements `readers[i]`; otherwise it backs out and retries (a swap
//!   happened in between — the retry sees the new cell);
//! * the writer fills the inactive cell `j` (which has no readers: the
//!   previous swap waited for them), publishes `index = j`, then waits until
//!   `readers[i]` drains to zero and only then frees the old block.
//!
//! Readers take no lock and never wait: the retry loop only repeats when a
//! swap completed between two of the reader's own loads. "Increment then
//! re-check" and "publish then wait for zero" must not pass each other: the
//! handshake is Dekker's (each side stores one location, then loads the
//! other), so each side has a `fence(SeqCst)` between its store and its
//! load, and every access is `SeqCst`. The accesses alone already order it
//! in the C11 model, but the fences make the requirement explicit and let
//! loom — which models SeqCst accesses as AcqRel but SeqCst fences exactly —
//! check it: without them loom reports a (false) retired-under-a-reader
//! execution.
//!
//! The slot is generic over the block type so that the loom model
//! (`loom_tests`, `RUSTFLAGS="--cfg loom"`) checks this very code with small
//! test blocks; the driver uses [`PolicySlot`] = `Slot<PolicyBlock>`.
//!
//! Must never: allocate or wait on the read side; free a block while a
//! reader count that could cover it is non-zero.

use core::sync::atomic::Ordering::SeqCst;

#[cfg(not(loom))]
use core::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicUsize};
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicUsize};

use fltpolicy_core::event::{EventView, Target, Verdict};
use fltpolicy_core::image::Policy;

use crate::kernel;

/// A verified policy in non-paged pool: the header below followed by the
/// image bytes it borrows from.
#[repr(C)]
#[derive(Debug)]
pub struct PolicyBlock {
    /// Borrows `len` bytes that follow this header in the same allocation;
    /// valid for exactly as long as the block.
    policy: Policy<'static>,
    pub generation: u64,
    pub hash: [u8; 32],
    pub rule_count: u32,
    pub target: Target,
    /// Bit `1 << op` set when some `deny` rule applies to that operation:
    /// the driver fails closed only where a deny could have applied
    /// (an operation it cannot name, [`crate::ops`]).
    pub deny_ops: u8,
    len: usize,
}

/// The verifier, in a frame of its own.
#[inline(never)]
fn verify(bytes: &'static [u8]) -> Result<Policy<'static>, fltpolicy_core::image::VerifyError> {
    Policy::from_bytes(bytes)
}

impl PolicyBlock {
    /// Copies `image` into a fresh non-paged block and verifies the copy (so
    /// that user mode cannot change the bytes between check and use).
    /// PASSIVE_LEVEL (control path).
    // Not inlined into the IOCTL handler: the verifier's frame and the
    // handler's stay separate (1 KiB stack budget, docs/windows-driver.md).
    #[inline(never)]
    pub fn create(image: &[u8], generation: u64) -> Result<*mut PolicyBlock, BlockError> {
        let header = core::mem::size_of::<PolicyBlock>();
        let total = header
            .checked_add(image.len())
            .ok_or(BlockError::NoMemory)?;
        let raw = kernel::alloc_nonpaged(total);
        if raw.is_null() {
            return Err(BlockError::NoMemory);
        }
        // SAFETY: `raw` is a fresh allocation of `header + image.len()` bytes;
        // the byte region after the header is ours and does not overlap
        // `image` (caller memory). PASSIVE_LEVEL.
        let bytes: &'static mut [u8] =
            unsafe { core::slice::from_raw_parts_mut(raw.wrapping_add(header), image.len()) };
        bytes.copy_from_slice(image);
        let bytes: &'static [u8] = bytes;
        let policy = match verify(bytes) {
            Ok(p) => p,
            Err(_) => {
                // SAFETY: `raw` came from alloc_nonpaged above and nothing
                // else refers to it.
                unsafe { kernel::free_pool(raw) };
                return Err(BlockError::Invalid);
            }
        };
        let deny_ops = deny_ops(&policy);
        let block = raw.cast::<PolicyBlock>();
        // SAFETY: pool allocations are 16-byte aligned, enough for
        // PolicyBlock; the header region is ours and uninitialised.
        unsafe {
            block.write(PolicyBlock {
                hash: policy.hash(),
                rule_count: policy.rule_count(),
                target: policy.target(),
                policy,
                generation,
                deny_ops,
                len: image.len(),
            })
        };
        Ok(block)
    }

    /// The verified policy.
    pub fn policy(&self) -> &Policy<'_> {
        &self.policy
    }

    /// Frees a block created by [`PolicyBlock::create`].
    ///
    /// # Safety
    /// `block` came from `create` and no reader can reach it any more.
    pub unsafe fn destroy(block: *mut PolicyBlock) {
        let _ = core::mem::size_of::<PolicyBlock>();
        // SAFETY: the caller guarantees exclusive ownership; the allocation
        // starts at the header.
        unsafe { kernel::free_pool(block.cast()) };
    }

    /// Size of the image the block holds.
    pub fn image_len(&self) -> usize {
        self.len
    }
}

/// The union of the operation sets of the policy's `deny` rules.
fn deny_ops(policy: &Policy<'_>) -> u8 {
    let mut ops = 0u8;
    for i in 0..policy.rule_count() {
        if let Some(r) = policy.rule(i) {
            if r.action == fltpolicy_core::event::Action::Deny as u8 {
                ops |= r.ops;
            }
        }
    }
    ops
}

/// Why a policy could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// Non-paged pool is exhausted.
    NoMemory,
    /// The verifier rejected the image.
    Invalid,
}

/// The two-cell slot described in the module docs.
#[derive(Debug)]
pub struct Slot<T> {
    index: AtomicUsize,
    cells: [AtomicPtr<T>; 2],
    readers: [AtomicUsize; 2],
    generation: AtomicU64,
}

/// The driver's slot.
pub type PolicySlot = Slot<PolicyBlock>;

/// A reader's hold on the active block; released on drop.
#[derive(Debug)]
pub struct Guard<'s, T> {
    slot: &'s Slot<T>,
    cell: usize,
    block: &'s T,
}

/// A reader's hold on the active policy.
pub type PolicyGuard<'s> = Guard<'s, PolicyBlock>;

impl<T> Guard<'_, T> {
    pub fn block(&self) -> &T {
        self.block
    }
}

impl PolicyGuard<'_> {
    /// Evaluates `ev` under the held policy.
    pub fn evaluate<'g>(&'g self, ev: &EventView<'_>) -> Verdict<'g> {
        #[cfg(not(feature = "kernel"))]
        crate::sim::note_evaluation();
        self.block.policy.evaluate(ev)
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.slot.readers[self.cell].fetch_sub(1, SeqCst);
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slot<T> {
    /// An empty slot.
    #[cfg(not(loom))]
    pub const fn new() -> Slot<T> {
        Slot {
            index: AtomicUsize::new(0),
            cells: [
                AtomicPtr::new(core::ptr::null_mut()),
                AtomicPtr::new(core::ptr::null_mut()),
            ],
            readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            generation: AtomicU64::new(0),
        }
    }

    /// An empty slot (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    pub fn new() -> Slot<T> {
        Slot {
            index: AtomicUsize::new(0),
            cells: [
                AtomicPtr::new(core::ptr::null_mut()),
                AtomicPtr::new(core::ptr::null_mut()),
            ],
            readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            generation: AtomicU64::new(0),
        }
    }

    /// Holds the active block, if any. Any IRQL <= DISPATCH_LEVEL; never
    /// waits, never allocates.
    pub fn read(&self) -> Option<Guard<'_, T>> {
        loop {
            let i = self.index.load(SeqCst);
            self.readers[i].fetch_add(1, SeqCst);
            fence(SeqCst);
            if self.index.load(SeqCst) == i {
                let p = self.cells[i].load(SeqCst);
                if p.is_null() {
                    self.readers[i].fetch_sub(1, SeqCst);
                    return None;
                }
                // SAFETY: cell `i` is active and our count in readers[i] is
                // visible to any writer before it could retire the block
                // (it publishes a new index, then waits for readers[i] == 0),
                // so the block lives until the guard drops.
                let block = unsafe { &*p };
                return Some(Guard {
                    slot: self,
                    cell: i,
                    block,
                });
            }
            self.readers[i].fetch_sub(1, SeqCst);
        }
    }

    /// Number of blocks installed so far; the next load gets this + 1.
    pub fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    /// Reserves the next generation number. PASSIVE_LEVEL, one load at a time.
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, SeqCst) + 1
    }

    /// Installs `block` and retires the previous one with `retire` once its
    /// readers are gone. PASSIVE_LEVEL; the caller serialises installs.
    /// Waits (by sleeping) for readers of the old cell.
    ///
    /// # Safety
    /// `block` is null or owned by the caller (ownership passes to the slot);
    /// `retire` may free a block that no reader can reach.
    pub unsafe fn install_with(&self, block: *mut T, retire: unsafe fn(*mut T)) {
        let old = self.index.load(SeqCst);
        let new = old ^ 1;
        // No reader holds cell `new`: the previous install drained it, and a
        // reader that increments it now fails its re-check (index is `old`)
        // before touching the pointer.
        self.cells[new].store(block, SeqCst);
        self.index.store(new, SeqCst);
        fence(SeqCst);
        self.drain(old);
        let retired = self.cells[old].swap(core::ptr::null_mut(), SeqCst);
        if !retired.is_null() {
            // SAFETY: readers[old] reached zero after `index` moved to `new`,
            // so no reader holds `retired` and none can acquire it again.
            unsafe { retire(retired) };
        }
    }

    /// Removes the active block (unload). Same rules as [`Self::install_with`].
    pub fn clear_with(&self, retire: unsafe fn(*mut T)) {
        // SAFETY: a null block transfers nothing.
        unsafe { self.install_with(core::ptr::null_mut(), retire) };
        let other = self.index.load(SeqCst) ^ 1;
        self.drain(other);
    }

    fn drain(&self, cell: usize) {
        while self.readers[cell].load(SeqCst) != 0 {
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            kernel::yield_passive();
        }
    }
}

impl PolicySlot {
    /// Installs a policy block.
    ///
    /// # Safety
    /// `block` came from [`PolicyBlock::create`] and is owned by the caller.
    pub unsafe fn install(&self, block: *mut PolicyBlock) {
        // SAFETY: per the caller; destroy frees a block nobody can reach.
        unsafe { self.install_with(block, PolicyBlock::destroy) }
    }

    /// Removes and frees the active policy (unload).
    pub fn clear(&self) {
        self.clear_with(PolicyBlock::destroy)
    }
}

/// Model checks of the slot's protocol on the code above (loom explores
/// every interleaving of the atomics): a reader never sees a retired block,
/// always sees one whole block, and every block is retired exactly once.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::Slot;
    use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use loom::sync::Arc;

    struct Blk {
        id: u64,
        /// Set by `retire`; a reader holding the block must never see it.
        retired: AtomicBool,
    }

    unsafe fn retire(p: *mut Blk) {
        // SAFETY: the slot hands each block to `retire` once; the test keeps
        // the memory alive (and frees it after the model) so a premature
        // retirement shows up as a flag a reader sees, not as UB.
        let b = unsafe { &*p };
        assert!(
            !b.retired.swap(true, SeqCst),
            "block {} retired twice",
            b.id
        );
    }

    fn blk(id: u64) -> *mut Blk {
        Box::into_raw(Box::new(Blk {
            id,
            retired: AtomicBool::new(false),
        }))
    }

    #[test]
    fn policy_loom_readers_never_see_a_retired_block() {
        loom::model(|| {
            let slot = Arc::new(Slot::<Blk>::new());
            let (b1, b2, b3) = (blk(1), blk(2), blk(3));
            // SAFETY: fresh blocks, ownership passes to the slot.
            unsafe { slot.install_with(b1, retire) };
            let reader = {
                let slot = slot.clone();
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        if let Some(g) = slot.read() {
                            let b = g.block();
                            assert!(
                                !b.retired.load(SeqCst),
                                "reader holds retired block {}",
                                b.id
                            );
                            assert!((1..=3).contains(&b.id));
                            loom::thread::yield_now();
                            assert!(
                                !b.retired.load(SeqCst),
                                "block {} retired under a reader",
                                b.id
                            );
                        }
                    }
                })
            };
            // SAFETY: as above.
            unsafe { slot.install_with(b2, retire) };
            // SAFETY: as above.
            unsafe { slot.install_with(b3, retire) };
            reader.join().unwrap();
            slot.clear_with(retire);
            for p in [b1, b2, b3] {
                // SAFETY: every block was retired exactly once (checked in
                // `retire`) and no reader is left.
                let b = unsafe { Box::from_raw(p) };
                assert!(b.retired.load(SeqCst), "block {} never retired", b.id);
            }
        });
    }
}
