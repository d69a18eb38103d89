//! `fltpolicy log export LOG... --format jsonl|csv|ecs|ocsf|cef [--filter EXPR]`
//!
//! One record per line. Event records carry `type: "event"`, drop records
//! `type: "dropped"`, end-of-file records `type: "end"`. Field names and
//! their Elastic Common Schema counterparts are listed in
//! docs/audit-log.md. `--filter` takes the condition syntax of a policy's
//! `where` and selects events; drop and end records are always kept so
//! gaps stay visible. Damage (a torn tail, a broken chain) is reported on
//! stderr and makes the exit status 1, after every readable record has
//! been exported.
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use fltpolicy_audit::reader::{to_hex, DecodedRecord, LogReader, RecordBody};
use fltpolicy_audit::rfc3339;
use fltpolicy_compiler::filter::Filter;
use fltpolicy_core::event::Target;
use fltpolicy_core::record::flags;
use serde_json::{json, Value};

use super::Common;
use crate::policy_input::TargetArg;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    /// Elastic Common Schema JSON, one document per line.
    Ecs,
    /// OCSF File System Activity (class 1001), one event per line.
    Ocsf,
    /// ArcSight Common Event Format, one event per line.
    Cef,
}

/// Export audit records.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Keep only events matching this condition
    /// (e.g. `process == "cat" and path under /srv`).
    #[arg(long)]
    filter: Option<String>,
    /// Path rules for --filter (default: linux when the first event's path
    /// starts with '/', else windows).
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
    /// Order of the output: `log` (as written) or `time` (by the time each
    /// operation happened: records of producers that spilled into another
    /// queue ring are written out of order; sorted within a window of
    /// ORDER_WINDOW records, bounded memory).
    #[arg(long, value_enum, default_value = "log")]
    order: Order,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    Log,
    Time,
}

/// Records held back to sort by time: far more than the queue can reorder
/// (records are written within a drain of their push), bounded memory.
pub const ORDER_WINDOW: usize = 65_536;

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 23] = [
    "type",
    "seq",
    "time",
    "op",
    "path",
    "pid",
    "ppid",
    "image",
    "process",
    "user",
    "size",
    "action",
    "rule",
    "line",
    "tag",
    "policy",
    "generation",
    "status",
    "flags",
    "count",
    "reason",
    "after_seq",
    "target_path",
];

/// A record as the JSON object `export` prints.
pub fn record_json(r: &DecodedRecord) -> Value {
    match &r.body {
        RecordBody::Event(e) if !e.target_path.is_empty() => {
            // A rename's (or link's) destination: only two-path operations
            // carry the field.
            let mut v = event_json(r, e);
            v["target_path"] = Value::String(e.target_path.clone());
            v
        }
        RecordBody::Event(e) => event_json(r, e),
        _ => other_json(r),
    }
}

fn event_json(r: &DecodedRecord, e: &fltpolicy_audit::EventEntry) -> Value {
    json!({
            "type": "event",
            "seq": r.seq,
            "time": rfc3339(r.time_ns),
            "op": e.op_name(),
            "path": e.path,
            "pid": e.pid,
            "ppid": e.ppid,
            "image": e.image,
            "process": e.process(),
            "user": e.user,
            "size": e.size,
            "action": e.action.name(),
            "rule": e.rule,
            "line": e.rule.map(|_| e.line),
            "tag": e.tag,
            "policy": to_hex(&e.policy.hash),
            "generation": e.policy.generation,
            "status": e.status,
            "flags": flags::names(e.flags).collect::<Vec<_>>(),
    })
}

fn other_json(r: &DecodedRecord) -> Value {
    match &r.body {
        RecordBody::Event(e) => event_json(r, e),
        RecordBody::Dropped(d) => json!({
            "type": "dropped",
            "seq": r.seq,
            "time": rfc3339(d.time_ns),
            "since": rfc3339(d.since_ns),
            "count": d.count,
            "reason": d.reason.name(),
            "after_seq": d.after_seq,
        }),
        RecordBody::End(e) => json!({
            "type": "end",
            "seq": r.seq,
            "time": rfc3339(e.time_ns),
            "reason": match e.reason {
                fltpolicy_core::record::EndReason::Rotated => "rotated",
                fltpolicy_core::record::EndReason::Shutdown => "shutdown",
            },
        }),
    }
}

fn csv_field(v: &Value) -> String {
    let mut s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        // Numbers (a negative errno in `status` included) are never
        // formulas: kept as they are.
        other => return other.to_string(),
    };
    // A text cell a spreadsheet would run as a formula (`=HYPERLINK(...)`
    // as a file name) is prefixed with an apostrophe, which spreadsheets
    // show as text (OWASP "CSV injection").
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        s.insert(0, '\'');
    }
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A record as one CSV line (no newline).
pub fn record_csv(r: &DecodedRecord) -> String {
    let j = record_json(r);
    CSV_COLUMNS
        .iter()
        .map(|c| csv_field(j.get(*c).unwrap_or(&Value::Null)))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn run(args: Args) -> Result<ExitCode> {
    let reader = LogReader::open_with(&args.common.logs, args.common.read_options()?)?;
    let mut filter: Option<Filter> = None;
    let mut target = args.target.map(Target::from);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.format == Format::Csv {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    }
    let mut damaged = false;
    let mut reader = reader;
    // --order time: (time, seq, line), earliest first.
    let mut held = std::collections::BinaryHeap::new();
    while let Some(item) = reader.next() {
        let rec = match item {
            Ok(r) => r,
            Err(e) => {
                damaged = true;
                eprintln!("error: {e}");
                continue;
            }
        };
        if let (Some(expr), RecordBody::Event(e)) = (&args.filter, &rec.body) {
            if filter.is_none() {
                let t = *target.get_or_insert(if e.path.starts_with('/') {
                    Target::Linux
                } else {
                    Target::Windows
                });
                filter =
                    Some(Filter::parse(expr, t).map_err(|e| {
                        anyhow::anyhow!("{}", crate::policy_input::render_error(&e))
                    })?);
            }
            if let Some(f) = &filter {
                if !f.matches(&e.view()) {
                    continue;
                }
            }
        }
        let host = reader
            .files()
            .get(rec.file)
            .and_then(|f| f.header.as_ref())
            .map_or("", |h| h.host.as_str());
        let origin = super::siem::Origin { host };
        let line = match args.format {
            Format::Jsonl => Some(record_json(&rec).to_string()),
            Format::Csv => Some(record_csv(&rec)),
            Format::Ecs => super::siem::record_ecs(&rec, origin).map(|v| v.to_string()),
            Format::Ocsf => super::siem::record_ocsf(&rec, origin).map(|v| v.to_string()),
            Format::Cef => super::siem::record_cef(&rec, origin),
        };
        if let Some(line) = line {
            if args.order == Order::Time {
                held.push(std::cmp::Reverse((rec.time_ns, rec.seq, line)));
                if held.len() > ORDER_WINDOW {
                    if let Some(std::cmp::Reverse((_, _, l))) = held.pop() {
                        writeln!(out, "{l}").context("writing the export")?;
                    }
                }
            } else {
                writeln!(out, "{line}").context("writing the export")?;
            }
        }
    }
    while let Some(std::cmp::Reverse((_, _, l))) = held.pop() {
        writeln!(out, "{l}").context("writing the export")?;
    }
    // A filter that never met an event is still checked, so typos are
    // reported even on empty logs.
    if let (Some(expr), None) = (&args.filter, &filter) {
        Filter::parse(expr, target.unwrap_or(Target::Windows))
            .map_err(|e| anyhow::anyhow!("{}", crate::policy_input::render_error(&e)))?;
    }
    out.flush()?;
    Ok(if damaged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
