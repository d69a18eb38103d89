//! `fltpolicy log verify LOG...`: exit 0 only when every file is intact
//! and chained; otherwise exit 1 naming the first bad record (file, byte
//! offset, sequence number) and whether the tail is torn.
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Result;
use fltpolicy_audit::reader::{Anchor, ReadError};
use fltpolicy_audit::verify::verify;

use super::Common;

/// Verify audit logs.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// `SEQ:HEX` printed by an earlier verify and kept off this machine:
    /// the log must still reach that chain value at that record, which
    /// catches a log cut short or rewritten with a recomputed chain.
    #[arg(long)]
    anchor: Option<Anchor>,
}

fn seq_of(e: &ReadError) -> String {
    match e {
        ReadError::ChainBroken { seq, .. } => format!("seq {seq}"),
        ReadError::SeqGap { found, .. } => format!("seq {found}"),
        ReadError::Corrupt {
            after_seq: Some(s), ..
        }
        | ReadError::TornTail {
            after_seq: Some(s), ..
        } => format!("the record after seq {s}"),
        _ => "no readable seq".to_owned(),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut opts = args.common.read_options()?;
    opts.anchor = args.anchor;
    let rep = verify(&args.common.logs, opts)?;
    let sealing = rep
        .files
        .iter()
        .filter_map(|f| f.header.as_ref())
        .map(|h| h.sealing.name())
        .next()
        .unwrap_or("none");
    let first = rep.files.iter().filter_map(|f| f.summary.first_seq).min();
    let last = rep.files.iter().filter_map(|f| f.summary.last_seq).max();
    let range = match (first, last) {
        (Some(a), Some(b)) => format!("seq {a}..{b}"),
        _ => "no records".to_owned(),
    };
    for n in &rep.notes {
        eprintln!("note: {n}");
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if rep.ok() {
        writeln!(
            out,
            "ok: {} file(s), {} records ({} events, {} drop records covering {} lost events{}), {}, chain {}",
            rep.files.len(),
            rep.records,
            rep.events,
            rep.drop_records,
            rep.dropped,
            if rep.retired > 0 {
                format!(", {} records removed by retention", rep.retired)
            } else {
                String::new()
            },
            range,
            sealing
        )?;
        if let Some(head) = rep.head {
            writeln!(out, "anchor: {head}  (keep it off this machine; `log verify --anchor` proves the log still extends it)")?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "FAILED: {} problem(s) in {} file(s)",
        rep.errors.len() + rep.unchecked.len(),
        rep.files.len()
    )?;
    if let Some(e) = rep.first_error() {
        let offset = e
            .offset()
            .map_or_else(|| "header".to_owned(), |o| format!("offset {o}"));
        writeln!(
            out,
            "first bad record: {} at {} ({}): {}",
            e.path().display(),
            offset,
            seq_of(e),
            e
        )?;
    }
    for p in &rep.unchecked {
        writeln!(
            out,
            "{}: sealed with HMAC-SHA256; give --key-file to check its chain",
            p.display()
        )?;
    }
    match rep.torn_tail() {
        Some(ReadError::TornTail {
            path,
            offset,
            bytes,
            ..
        }) => writeln!(
            out,
            "tail: torn — {} ends with an incomplete record of {bytes} bytes at offset {offset}",
            path.display()
        )?,
        _ => writeln!(out, "tail: not torn")?,
    }
    for e in rep.errors.iter().skip(1) {
        writeln!(out, "also: {e}")?;
    }
    out.flush()?;
    Ok(ExitCode::from(1))
}
