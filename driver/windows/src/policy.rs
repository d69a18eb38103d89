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
//! swap completed between two of the reader's own loads. All orderings are
//! `SeqCst` so that "increment then re-check" and "publish then wait for
//! zero" cannot pass each other (a Dekker-style handshake).
//!
//! Must never: allocate or wait on the read side; free a block while a
//! reader count that could cover it is non-zero.

use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};

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
    len: usize,
}

impl PolicyBlock {
    /// Copies `image` into a fresh non-paged block and verifies the copy (so
    /// that user mode cannot change the bytes between check and use).
    /// PASSIVE_LEVEL (control path).
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
        let policy = match Policy::from_bytes(bytes) {
            Ok(p) => p,
            Err(_) => {
                // SAFETY: `raw` came from alloc_nonpaged above and nothing
                // else refers to it.
                unsafe { kernel::free_pool(raw) };
                return Err(BlockError::Invalid);
            }
        };
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
pub struct PolicySlot {
    index: AtomicUsize,
    cells: [AtomicPtr<PolicyBlock>; 2],
    readers: [AtomicUsize; 2],
    generation: AtomicU64,
}

/// A reader's hold on the active policy; released on drop.
#[derive(Debug)]
pub struct PolicyGuard<'s> {
    slot: &'s PolicySlot,
    cell: usize,
    block: &'s PolicyBlock,
}

impl PolicyGuard<'_> {
    pub fn block(&self) -> &PolicyBlock {
        self.block
    }
    /// Evaluates `ev` under the held policy.
    pub fn evaluate<'g>(&'g self, ev: &EventView<'_>) -> Verdict<'g> {
        self.block.policy.evaluate(ev)
    }
}

impl Drop for PolicyGuard<'_> {
    fn drop(&mut self) {
        self.slot.readers[self.cell].fetch_sub(1, SeqCst);
    }
}

impl Default for PolicySlot {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicySlot {
    pub const fn new() -> PolicySlot {
        PolicySlot {
            index: AtomicUsize::new(0),
            cells: [
                AtomicPtr::new(core::ptr::null_mut()),
                AtomicPtr::new(core::ptr::null_mut()),
            ],
            readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            generation: AtomicU64::new(0),
        }
    }

    /// Holds the active policy, if any. Any IRQL ≤ DISPATCH_LEVEL; never
    /// waits, never allocates.
    pub fn read(&self) -> Option<PolicyGuard<'_>> {
        loop {
            let i = self.index.load(SeqCst);
            self.readers[i].fetch_add(1, SeqCst);
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
                return Some(PolicyGuard {
                    slot: self,
                    cell: i,
                    block,
                });
            }
            self.readers[i].fetch_sub(1, SeqCst);
        }
    }

    /// Number of policies installed so far; the next load gets this + 1.
    pub fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    /// Reserves the next generation number. PASSIVE_LEVEL, one load at a time.
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, SeqCst) + 1
    }

    /// Installs `block` and retires the previous policy once its readers are
    /// gone. PASSIVE_LEVEL; the caller serialises swaps (one control request
    /// at a time). Waits (by sleeping) for readers of the old cell.
    ///
    /// # Safety
    /// `block` came from [`PolicyBlock::create`] and is owned by the caller;
    /// ownership passes to the slot.
    pub unsafe fn install(&self, block: *mut PolicyBlock) {
        let old = self.index.load(SeqCst);
        let new = old ^ 1;
        // No reader holds cell `new`: the previous install drained it, and a
        // reader that increments it now fails its re-check (index is `old`)
        // before touching the pointer.
        self.cells[new].store(block, SeqCst);
        self.index.store(new, SeqCst);
        self.drain(old);
        let retired = self.cells[old].swap(core::ptr::null_mut(), SeqCst);
        if !retired.is_null() {
            // SAFETY: readers[old] reached zero after `index` moved to `new`,
            // so no reader holds `retired` and none can acquire it again.
            unsafe { PolicyBlock::destroy(retired) };
        }
    }

    /// Removes the active policy (unload). Same rules as [`Self::install`].
    pub fn clear(&self) {
        // SAFETY: a null block is never dereferenced; install's contract
        // only concerns non-null blocks.
        unsafe { self.install(core::ptr::null_mut()) };
        let other = self.index.load(SeqCst) ^ 1;
        self.drain(other);
    }

    fn drain(&self, cell: usize) {
        while self.readers[cell].load(SeqCst) != 0 {
            kernel::yield_passive();
        }
    }
}
