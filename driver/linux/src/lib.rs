//! The Linux enforcement point of fltpolicy: fanotify events through the
//! shared core (verifier, evaluator, queue, record format).
//!
//! Layout (one responsibility per module):
//! * [`sys`] — every system call and all of the crate's `unsafe`: fanotify
//!   groups, marks and the event-buffer parser, file handles, the process
//!   connector, capabilities, descriptors;
//! * [`source`] — the event threads (notification, permission, deadline
//!   watchdog): kernel events → [`fltpolicy_core::event::EventView`] →
//!   verdict → record, and the answers to permission events;
//! * [`procinfo`] — pid → image/ppid/user, cached per process;
//! * [`path`] — path normalization shared with the compiler's rules;
//! * [`marks`] — fanotify bits ⇄ policy operations, mark points;
//! * [`facts`] — what a verified image needs subscribed;
//! * [`slot`] — the active policy and its atomic swap;
//! * [`sink`] — the boundary to the audit queue;
//! * [`engine`] — start, reload, status, stop;
//! * [`control`] — the root-only control socket and its protocol;
//! * [`pipeline`] — log writer + engine + control socket, as `fltpolicy run` runs them.
//!
//! What can be denied on Linux: `open` (FAN_OPEN_PERM, including the open
//! of an executable by `execve`) and `read` (FAN_ACCESS_PERM). Everything
//! else — create, delete, rename, write, setinfo, close — is reported by
//! fanotify after the fact and can only be logged; a `deny` rule on those
//! operations produces a record with action `deny` and no status, counted
//! as `deny_unenforceable`. See `docs/linux-engine.md`.
#![cfg(target_os = "linux")]

pub mod control;
pub mod engine;
pub mod facts;
pub mod marks;
pub mod mirror;
pub mod path;
pub mod pipeline;
pub mod procinfo;
pub mod sink;
pub mod slot;
pub mod source;
pub mod stats;
pub mod sys;

pub use engine::{Engine, EngineConfig, EngineError, EngineStatus};
