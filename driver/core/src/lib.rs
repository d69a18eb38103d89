//! The no_std, allocation-free core shared by every enforcement point.
//!
//! Everything here must be usable inside a Windows kernel callback at
//! DISPATCH_LEVEL: nothing allocates, blocks, recurses without a bound, or
//! panics on any input. The user-mode pieces (compiler, CLI, Linux engine)
//! build on the same code so that what is tested on the host is what runs
//! in the driver.
//!
//! * [`event`] — the event view the evaluator reads, operations, actions.
//! * [`image`] — the policy image format, its verifier (the only way to
//!   obtain a [`image::Policy`]) and the evaluator over a verified policy.
//! * [`queue`] — the bounded multi-producer audit queue (never waits).
//! * [`record`] — the audit log format (frames, chain) and the flush logic.
//! * [`sync`] — the atomics behind the queue (loom-swappable).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

pub mod control;
pub mod event;
pub mod image;
pub mod queue;
pub mod record;
pub mod sync;
pub mod text;
