//! The engine's only contact with the kernel's raw interfaces.
//!
//! Every `unsafe` block of the crate lives below this module, each one a
//! single system call on buffers and descriptors this module owns — except
//! the owned-image slot (`crate::slot`), which ties a verified `Policy` to
//! the heap buffer it borrows. Everything
//! above (`source`, `procinfo`, `control`) is safe code working on parsed,
//! owned values. Nothing here evaluates policy or allocates per event beyond
//! what the caller hands in.
pub mod caps;
pub mod creds;
pub mod fanotify;
pub mod fd;
pub mod handle;
pub mod proc_connector;
pub mod signals;
pub mod wake;
