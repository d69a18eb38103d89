//! The atomics the audit queue is built from, behind one name so that
//! `RUSTFLAGS="--cfg loom"` can swap in loom's model-checked versions.
//!
//! Nothing outside this module names `core::sync::atomic` directly in the
//! queue: that is what lets the loom models in `queue::loom_tests` explore
//! every interleaving of the real code rather than of a copy.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Aligns (and so pads) a value to its own 128-byte block so that the
/// consumer's and the producers' indices never share a cache line (two lines
/// on x86_64, where the adjacent-line prefetcher pairs them — the same choice
/// crossbeam's `CachePadded` makes).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
