//! std side of the audit pipeline: the flush thread and file sink
//! ([`writer`]), reading, verifying and summarizing logs ([`reader`],
//! [`verify`]), and time formatting shared by export and the viewer.
//!
//! The format, the queue and the sink-agnostic flush logic live in
//! `fltpolicy_core::{queue, record}` so the Windows driver runs the same
//! code; see docs/audit-log.md.
#![forbid(unsafe_code)]

#[cfg(unix)]
pub mod forward;
pub mod reader;
pub mod verify;
pub mod writer;

pub use reader::{DecodedRecord, EventEntry, LogReader, ReadError, ReadOptions, RecordBody};

/// RFC 3339 UTC time with nanoseconds (`2026-11-21T12:00:00.123456789Z`).
pub fn rfc3339(time_ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(time_ns);
    humantime::format_rfc3339_nanos(t).to_string()
}
