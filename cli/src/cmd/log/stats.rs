//! `fltpolicy log stats LOG...`: counts per operation, action, rule and
//! process, the most frequent paths, the time range and the drops.
use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Result;
use fltpolicy_audit::reader::{to_hex, LogReader, RecordBody};
use fltpolicy_audit::rfc3339;

use fltpolicy_core::record::DropReason;

use super::Common;

/// Summarize audit logs.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// How many paths and processes to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
}

/// Counters over a set of records.
#[derive(Debug, Default)]
pub struct Stats {
    pub records: u64,
    pub events: u64,
    pub per_op: BTreeMap<String, u64>,
    pub per_action: BTreeMap<String, u64>,
    /// Per (policy hash prefix, generation-independent) and rule index:
    /// rule #3 of one policy is not rule #3 of another.
    pub per_rule: BTreeMap<(String, Option<u32>), (u64, String)>,
    pub per_process: HashMap<String, u64>,
    pub per_path: HashMap<String, u64>,
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub drops: BTreeMap<String, (u64, u64)>,
    pub errors: Vec<String>,
}

fn top(map: &HashMap<String, u64>, n: usize) -> Vec<(&str, u64)> {
    let mut v: Vec<_> = map.iter().map(|(k, c)| (k.as_str(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.truncate(n);
    v
}

pub fn collect(reader: LogReader) -> Stats {
    let mut s = Stats::default();
    for item in reader {
        let rec = match item {
            Ok(r) => r,
            Err(e) => {
                s.errors.push(e.to_string());
                continue;
            }
        };
        s.records += 1;
        match &rec.body {
            RecordBody::Event(e) => {
                s.events += 1;
                *s.per_op.entry(e.op_name().to_owned()).or_default() += 1;
                *s.per_action.entry(e.action.name().to_owned()).or_default() += 1;
                let key = (to_hex(&e.policy.hash[..8]), e.rule);
                let slot = s.per_rule.entry(key).or_insert((0, e.tag.clone()));
                slot.0 += 1;
                *s.per_process.entry(e.process().to_owned()).or_default() += 1;
                *s.per_path.entry(e.path.clone()).or_default() += 1;
                s.first_ns = Some(s.first_ns.map_or(rec.time_ns, |t| t.min(rec.time_ns)));
                s.last_ns = Some(s.last_ns.map_or(rec.time_ns, |t| t.max(rec.time_ns)));
            }
            RecordBody::Dropped(d) => {
                let slot = s.drops.entry(d.reason.name().to_owned()).or_default();
                slot.0 += 1;
                slot.1 += d.count;
            }
            RecordBody::End(_) => {}
        }
    }
    s
}

pub fn run(args: Args) -> Result<ExitCode> {
    let reader = LogReader::open_with(&args.common.logs, args.common.read_options()?)?;
    let s = collect(reader);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    print(&mut out, &s, args.top)?;
    out.flush()?;
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    Ok(if s.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the summary. An error (a closed pipe) ends it.
fn print(out: &mut impl Write, s: &Stats, n_top: usize) -> std::io::Result<()> {
    writeln!(out, "records: {} ({} events)", s.records, s.events)?;
    match (s.first_ns, s.last_ns) {
        (Some(a), Some(b)) => writeln!(out, "time range: {} .. {}", rfc3339(a), rfc3339(b))?,
        _ => writeln!(out, "time range: (no events)")?,
    }
    writeln!(out, "per operation:")?;
    for (k, v) in &s.per_op {
        writeln!(out, "  {k:<10} {v}")?;
    }
    writeln!(out, "per action:")?;
    for (k, v) in &s.per_action {
        writeln!(out, "  {k:<10} {v}")?;
    }
    writeln!(
        out,
        "per policy and rule (policy sha256 prefix, rule index):"
    )?;
    for ((policy, rule), (n, tag)) in &s.per_rule {
        let name = rule.map_or_else(|| "(none)".to_owned(), |r| format!("#{r}"));
        let tag = if tag.is_empty() {
            String::new()
        } else {
            format!(" \"{tag}\"")
        };
        writeln!(out, "  {policy} {name:<6} {n}{tag}")?;
    }
    writeln!(out, "top processes:")?;
    for (k, v) in top(&s.per_process, n_top) {
        writeln!(out, "  {v:>8}  {k}")?;
    }
    writeln!(out, "top paths:")?;
    for (k, v) in top(&s.per_path, n_top) {
        writeln!(out, "  {v:>8}  {k}")?;
    }
    if s.drops.is_empty() {
        writeln!(out, "drops: none")?;
    } else {
        writeln!(out, "drops:")?;
        for (reason, (records, count)) in &s.drops {
            if reason == DropReason::KernelOverflow.name() {
                // fanotify reports that its queue overflowed, not how many
                // events it discarded: each notice is one or more events.
                writeln!(
                    out,
                    "  {reason:<16} {count} overflow notices in {records} drop records (each notice: the kernel discarded one or more events; it does not say how many)"
                )?;
            } else if reason == DropReason::Retention.name() {
                // Written, then deliberately removed with their files.
                writeln!(
                    out,
                    "  {reason:<16} {count} records removed with their files by the retention limit ({records} drop records; not lost events)"
                )?;
            } else {
                writeln!(
                    out,
                    "  {reason:<16} {count} events in {records} drop records"
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_overflow_counts_notices_and_says_so() {
        let mut s = Stats::default();
        s.drops
            .insert(DropReason::KernelOverflow.name().to_owned(), (1, 1));
        s.drops
            .insert(DropReason::QueueFull.name().to_owned(), (2, 40));
        let mut out = Vec::new();
        print(&mut out, &s, 10).unwrap();
        let out = String::from_utf8(out).unwrap();
        let line = out.lines().find(|l| l.contains("kernel_overflow")).unwrap();
        assert!(!line.contains("1 events"), "{line}");
        assert!(line.contains("1 overflow notices"), "{line}");
        assert!(line.contains("does not say how many"), "{line}");
        assert!(
            out.contains("queue_full       40 events in 2 drop records"),
            "{out}"
        );
    }
}
