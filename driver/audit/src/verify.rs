//! `log verify`: read every record, check every frame, the chain within
//! and across files, and sequence continuity; summarize.
//!
//! A log verifies when every file's header and frames are intact, every
//! frame's chain tag matches, sequence numbers run without gaps, and each
//! file of a session continues the previous one (index, sequence, chain,
//! and an end-of-file rotation record). Findings that are not damage are
//! reported as notes: a last file without an end record (writer still
//! running, or killed at a frame boundary), a set that starts after a
//! session's first file (older files deleted), a keyed log read without
//! its key (chain not checked — this one does fail verification).

use std::path::Path;

use crate::reader::{Anchor, FileInfo, LogReader, ReadError, ReadOptions, RecordBody};
use fltpolicy_core::record::chain::Sealing;
use fltpolicy_core::record::DropReason;

/// What `verify` found.
#[derive(Debug)]
pub struct VerifyReport {
    pub files: Vec<FileInfo>,
    pub records: u64,
    pub events: u64,
    pub drop_records: u64,
    /// Events lost (drop records of every reason but retention).
    pub dropped: u64,
    /// Records removed by the retention limit, as the writer declared
    /// ([`DropReason::Retention`]): written, then deliberately deleted.
    pub retired: u64,
    /// Every problem, in file order.
    pub errors: Vec<ReadError>,
    /// Observations that do not fail verification.
    pub notes: Vec<String>,
    /// Files whose chain could not be checked (keyed, no key).
    pub unchecked: Vec<std::path::PathBuf>,
    /// Chain value after the last verified record (an anchor to keep).
    pub head: Option<Anchor>,
    /// The last record retention records declare removed, to explain a
    /// set that starts after a session's first file.
    retention_end: u64,
}

impl VerifyReport {
    /// True when every file is intact and chained.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.unchecked.is_empty()
    }

    /// The first problem found.
    pub fn first_error(&self) -> Option<&ReadError> {
        self.errors.first()
    }

    /// Whether some file ends in a torn (incomplete) record.
    pub fn torn_tail(&self) -> Option<&ReadError> {
        self.errors.iter().find(|e| e.is_torn_tail())
    }
}

/// Verifies the log made of `paths`.
pub fn verify<P: AsRef<Path>>(paths: &[P], opts: ReadOptions) -> Result<VerifyReport, ReadError> {
    let opts_anchor = opts.anchor;
    let mut reader = LogReader::open_with(paths, opts)?;
    let mut report = VerifyReport {
        files: Vec::new(),
        records: 0,
        events: 0,
        drop_records: 0,
        dropped: 0,
        retired: 0,
        errors: Vec::new(),
        notes: Vec::new(),
        unchecked: Vec::new(),
        head: None,
        retention_end: 0,
    };
    for item in reader.by_ref() {
        match item {
            Ok(rec) => {
                report.records += 1;
                match rec.body {
                    RecordBody::Event(_) => report.events += 1,
                    RecordBody::Dropped(d) if d.reason == DropReason::Retention => {
                        report.drop_records += 1;
                        report.retired += d.count;
                        report.retention_end = report.retention_end.max(d.after_seq + d.count);
                        report.notes.push(format!(
                            "seq {}..{}: {} records removed with their files by the log's retention limit, declared by the writer at seq {}",
                            d.after_seq + 1,
                            d.after_seq + d.count,
                            d.count,
                            d.seq
                        ));
                    }
                    RecordBody::Dropped(d) => {
                        report.drop_records += 1;
                        report.dropped += d.count;
                        if d.reason == DropReason::LogLost {
                            report.notes.push(format!(
                                "seq {}..{}: {} records lost with a log file (deleted, renamed or replaced while written, or a torn tail cut on restart), declared by the writer at seq {}",
                                d.after_seq + 1,
                                d.seq.saturating_sub(1),
                                d.count,
                                d.seq
                            ));
                        }
                    }
                    RecordBody::End(_) => {}
                }
            }
            Err(e) => report.errors.push(e),
        }
    }
    report.files = reader.files().to_vec();
    report.head = reader.head();
    if let Some(a) = opts_anchor {
        if !reader.anchor_reached() {
            let path = report
                .files
                .last()
                .map(|f| f.path.clone())
                .unwrap_or_default();
            report
                .errors
                .push(ReadError::AnchorNotReached { path, seq: a.seq });
        }
    }
    let n = report.files.len();
    for (i, f) in report.files.iter().enumerate() {
        if f.summary.empty {
            report.notes.push(format!(
                "{}: empty log (0 bytes): created but nothing written yet",
                f.path.display()
            ));
        }
        let Some(h) = &f.header else { continue };
        if matches!(h.sealing, Sealing::HmacSha256 { .. }) && !f.summary.chain_checked {
            report.unchecked.push(f.path.clone());
        }
        let next_same_session = report.files[i + 1..n].iter().any(|g| {
            g.header
                .as_ref()
                .is_some_and(|gh| gh.session_id == h.session_id)
        });
        if !next_same_session && f.summary.end.is_none() && f.summary.torn_tail.is_none() {
            report.notes.push(format!(
                "{}: no end record: the writer is still running or stopped without closing the log",
                f.path.display()
            ));
        }
        if h.file_index > 0
            && !f.summary.anchored
            && f.summary.errors == 0
            && f.summary.declared_loss.is_none()
        {
            // Retention records declare each removal in the file that
            // follows it (earlier declarations may be gone with later
            // removals): the last one must end right before this file.
            let declared =
                i == 0 && report.retention_end > 0 && report.retention_end + 1 == h.first_seq;
            if declared {
                report.notes.push(format!(
                    "{}: the files before it were removed by the log's retention limit, as the writer declared (records up to seq {})",
                    f.path.display(),
                    report.retention_end
                ));
                continue;
            }
            report.notes.push(format!(
                "{}: starts at rotation {} of its session; earlier files were not given, so its link to them is not checked",
                f.path.display(),
                h.file_index
            ));
        }
    }
    Ok(report)
}
