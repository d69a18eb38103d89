//! Over-aligned non-paged allocations.
//!
//! ExAllocatePool2 guarantees 16-byte alignment for small blocks (page
//! alignment only from PAGE_SIZE up). [`crate::globals::Globals`] holds the
//! queue's cache-padded (128-byte aligned) indices, so it is allocated here:
//! the block is over-allocated, the object placed at the next aligned
//! address, and the pool address stored in the word just before it.

use core::mem::{align_of, size_of};

use crate::kernel;

/// Allocates zeroed, non-paged, suitably aligned memory for one `T`.
/// IRQL <= DISPATCH_LEVEL. Null on failure.
pub fn alloc_for<T>() -> *mut T {
    let align = align_of::<T>().max(size_of::<usize>());
    let Some(size) = size_of::<T>().checked_add(align + size_of::<usize>()) else {
        return core::ptr::null_mut();
    };
    let base = kernel::alloc_nonpaged(size);
    if base.is_null() {
        return core::ptr::null_mut();
    }
    let first = base as usize + size_of::<usize>();
    let aligned = (first + align - 1) & !(align - 1);
    let offset = aligned - base as usize;
    // SAFETY: `offset + size_of::<T>() <= size` (offset < align + word), so
    // the object and the word before it lie inside the block; the word is
    // usize-aligned because `aligned` is.
    unsafe {
        base.wrapping_add(offset - size_of::<usize>())
            .cast::<usize>()
            .write(base as usize);
    }
    base.wrapping_add(offset).cast::<T>()
}

/// Frees memory from [`alloc_for`].
///
/// # Safety
/// `p` came from `alloc_for::<T>` and is not used afterwards.
pub unsafe fn free_for<T>(p: *mut T) {
    // SAFETY: alloc_for stored the pool address in the preceding word.
    let base = unsafe { p.cast::<usize>().wrapping_sub(1).read() } as *mut u8;
    // SAFETY: `base` is the pool block alloc_for allocated.
    unsafe { kernel::free_pool(base) };
}
