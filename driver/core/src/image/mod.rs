//! Policy images: format, verifier and evaluator.
//!
//! [`Policy::from_bytes`] is the only constructor of [`Policy`]; the
//! evaluator only accepts a `Policy`, so every image it runs has been
//! verified (bounds, forward-only jumps, bounded cost).
use crate::event::{EventView, Target, Verdict};

/// A verified policy image borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    bytes: &'a [u8],
}

/// Why an image was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyError;

impl<'a> Policy<'a> {
    /// Verifies `bytes` and returns the policy. Never panics.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Policy<'a>, VerifyError> {
        let _ = bytes;
        todo!("image verifier")
    }

    /// Evaluates one event: first matching rule decides.
    pub fn evaluate(&self, ev: &EventView<'_>) -> Verdict<'a> {
        let _ = (ev, self.bytes);
        todo!("evaluator")
    }

    /// SHA-256 of the image body; identifies the policy in audit records.
    pub fn hash(&self) -> [u8; 32] {
        todo!()
    }

    /// Platform the policy was compiled for.
    pub fn target(&self) -> Target {
        todo!()
    }

    /// Number of rules.
    pub fn rule_count(&self) -> u32 {
        todo!()
    }
}
