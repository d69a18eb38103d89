//! The active policy and its atomic replacement (hot reload).
//!
//! [`PolicySlot`] holds an `Arc<LoadedPolicy>`. Event threads keep their own
//! clone and compare a generation counter (one relaxed-cost atomic load per
//! batch) to notice a swap; only then do they take the lock to clone the new
//! `Arc`. An event is evaluated against exactly one policy, the one the
//! thread held when it started that batch, and the record says which
//! (hash + generation). The old policy is freed when the last thread drops
//! its clone — never while a thread is evaluating with it.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fltpolicy_core::event::Target;
use fltpolicy_core::image::{Policy, VerifyError};
use fltpolicy_core::record::PolicyId;

use crate::facts::PolicyFacts;

/// Why an image was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("policy image rejected by the verifier: {0}")]
    Verify(VerifyError),
    #[error("policy was compiled for {found}, this engine enforces linux policies")]
    WrongTarget { found: &'static str },
}

/// A verified image, owned. The `Policy` borrows the heap copy of the bytes
/// this struct owns and frees in `Drop`.
#[derive(Debug)]
pub struct LoadedPolicy {
    /// Heap bytes of the image, from `Box::into_raw`; freed in `Drop`.
    bytes: *mut [u8],
    /// Borrows `*bytes`; never handed out with a lifetime longer than `&self`.
    policy: Policy<'static>,
    pub generation: u64,
    pub hash: [u8; 32],
    pub facts: PolicyFacts,
}

// SAFETY: the raw pointer is only an owner of immutable bytes (never written
// after construction); `Policy` only reads them. Sharing or sending the
// struct shares read-only data, exactly like `Arc<[u8]>`.
unsafe impl Send for LoadedPolicy {}
// SAFETY: see `Send`: all access through `&LoadedPolicy` is read-only.
unsafe impl Sync for LoadedPolicy {}

impl LoadedPolicy {
    /// Verifies `image` and takes ownership of it as generation `generation`.
    pub fn new(image: Vec<u8>, generation: u64) -> Result<LoadedPolicy, LoadError> {
        let raw: *mut [u8] = Box::into_raw(image.into_boxed_slice());
        // SAFETY: `raw` comes from `Box::into_raw` just above: valid,
        // initialized and not aliased mutably. The reference is only used
        // while `self` (which frees `raw` in Drop) is alive.
        let bytes: &'static [u8] = unsafe { &*raw };
        let policy = match Policy::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: `raw` came from `Box::into_raw` and `bytes` (its
                // only borrow) is not used after this point.
                drop(unsafe { Box::from_raw(raw) });
                return Err(LoadError::Verify(e));
            }
        };
        let loaded = LoadedPolicy {
            bytes: raw,
            policy,
            generation,
            hash: policy.hash(),
            facts: PolicyFacts::of(&policy),
        };
        if policy.target() != Target::Linux {
            return Err(LoadError::WrongTarget {
                found: policy.target().name(),
            });
        }
        Ok(loaded)
    }

    /// The verified policy, borrowed for as long as `self`.
    pub fn policy(&self) -> Policy<'_> {
        self.policy
    }

    /// The identity written into every record.
    pub fn id(&self) -> PolicyId {
        PolicyId::new(&self.hash, self.generation)
    }

    pub fn image(&self) -> &[u8] {
        // SAFETY: `bytes` is live until Drop and never written.
        unsafe { &*self.bytes }
    }
}

impl Drop for LoadedPolicy {
    fn drop(&mut self) {
        // SAFETY: `bytes` came from `Box::into_raw` in `new` and is freed
        // only here; `policy` (the only borrow) dies with `self`.
        drop(unsafe { Box::from_raw(self.bytes) });
    }
}

/// The slot event threads read the active policy from.
#[derive(Debug)]
pub struct PolicySlot {
    generation: AtomicU64,
    current: Mutex<Arc<LoadedPolicy>>,
}

impl PolicySlot {
    pub fn new(first: LoadedPolicy) -> PolicySlot {
        PolicySlot {
            generation: AtomicU64::new(first.generation),
            current: Mutex::new(Arc::new(first)),
        }
    }

    /// Generation of the active policy.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The active policy.
    pub fn load(&self) -> Arc<LoadedPolicy> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Verifies `image` and makes it the active policy with the next
    /// generation. On error the active policy is untouched.
    pub fn swap(&self, image: Vec<u8>) -> Result<Arc<LoadedPolicy>, LoadError> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let next = Arc::new(LoadedPolicy::new(image, cur.generation + 1)?);
        *cur = Arc::clone(&next);
        self.generation.store(next.generation, Ordering::Release);
        Ok(next)
    }
}

/// An event thread's view of the slot: its own `Arc`, refreshed when the
/// generation moves.
#[derive(Debug)]
pub struct PolicyReader {
    held: Arc<LoadedPolicy>,
}

impl PolicyReader {
    pub fn new(slot: &PolicySlot) -> PolicyReader {
        PolicyReader { held: slot.load() }
    }

    /// The policy to evaluate the next batch with.
    pub fn refresh(&mut self, slot: &PolicySlot) -> &Arc<LoadedPolicy> {
        if slot.generation() != self.held.generation {
            self.held = slot.load();
        }
        &self.held
    }
}
