//! `fltpolicy log stats LOG...`: counts per operation, action, rule and
//! process, the most frequent paths, the time range and the drops.
use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use anyhow::Result;
use fltpolicy_audit::reader::{LogReader, RecordBody};
use fltpolicy_audit::rfc3339;

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
    pub per_rule: BTreeMap<Option<u32>, (u64, String)>,
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
                let slot = s.per_rule.entry(e.rule).or_insert((0, e.tag.clone()));
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
    println!("records: {} ({} events)", s.records, s.events);
    match (s.first_ns, s.last_ns) {
        (Some(a), Some(b)) => println!("time range: {} .. {}", rfc3339(a), rfc3339(b)),
        _ => println!("time range: (no events)"),
    }
    println!("per operation:");
    for (k, v) in &s.per_op {
        println!("  {k:<10} {v}");
    }
    println!("per action:");
    for (k, v) in &s.per_action {
        println!("  {k:<10} {v}");
    }
    println!("per rule:");
    for (rule, (n, tag)) in &s.per_rule {
        let name = rule.map_or_else(|| "(none)".to_owned(), |r| format!("#{r}"));
        let tag = if tag.is_empty() {
            String::new()
        } else {
            format!(" \"{tag}\"")
        };
        println!("  {name:<10} {n}{tag}");
    }
    println!("top processes:");
    for (k, v) in top(&s.per_process, args.top) {
        println!("  {v:>8}  {k}");
    }
    println!("top paths:");
    for (k, v) in top(&s.per_path, args.top) {
        println!("  {v:>8}  {k}");
    }
    if s.drops.is_empty() {
        println!("drops: none");
    } else {
        println!("drops:");
        for (reason, (records, count)) in &s.drops {
            println!("  {reason:<16} {count} events in {records} drop records");
        }
    }
    for e in &s.errors {
        eprintln!("error: {e}");
    }
    Ok(if s.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
