//! `fltpolicy replay POLICY --events FILE.jsonl --log OUT`
//!
//! Runs recorded events through the full pipeline an enforcement point
//! runs — the verified image's VM, the audit queue, the flush thread —
//! and writes the log the driver would have written. Ops use it to try a
//! policy against a captured trace before deploying it.
//!
//! Events are pushed with back-pressure (a replay waits for room instead
//! of dropping) unless `--drop-when-full` asks for the driver's behaviour.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use fltpolicy_audit::writer::{now_ns, FileSink, FlushConfig, FlushThread, DEFAULT_MAX_FILE_BYTES};
use fltpolicy_core::record::{EventData, PolicyId};

use crate::events::read_jsonl;
use crate::policy_input::{load, TargetArg};

/// Replay recorded events through policy, queue and writer into a log.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol) or image (.fpi).
    policy: PathBuf,
    /// Events, one JSON object per line (op, path, pid, ppid, image, user,
    /// size, paging).
    #[arg(long)]
    events: PathBuf,
    /// The log to write (must not exist; rotations go to OUT.1, OUT.2, ...).
    #[arg(long)]
    log: PathBuf,
    /// Target when compiling a source.
    /// (default: the file's `target` statement, else windows)
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
    /// Rotate files at this size in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Seal the chain with HMAC-SHA256 under this key (32 raw bytes or 64
    /// hex digits).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Policy load generation recorded in each record.
    #[arg(long, default_value_t = 1)]
    generation: u64,
    /// Repeat the event file this many times (load generation).
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Drop events when the queue is full, as a driver callback would,
    /// instead of waiting for the writer.
    #[arg(long)]
    drop_when_full: bool,
    /// fsync after every batch.
    #[arg(long)]
    sync: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let loaded = load(&args.policy, args.target.map(Into::into))?;
    let policy = loaded.policy();
    let events = read_jsonl(&args.events)?;
    let key = args
        .key_file
        .as_deref()
        .map(crate::cmd::log::read_key)
        .transpose()?;
    if args.log.exists() {
        bail!(
            "{} exists; replay never appends to a log",
            args.log.display()
        );
    }
    let sink = FileSink::create(&args.log)
        .with_context(|| format!("cannot create {}", args.log.display()))?
        .sync_each_batch(args.sync);
    let flush = FlushThread::start(
        sink,
        FlushConfig {
            key,
            max_file_bytes: args.max_file_bytes,
            interval: Duration::from_millis(50),
            ..FlushConfig::default()
        },
    )?;
    let producer = flush.producer();
    let id = PolicyId::new(&policy.hash(), args.generation);
    let mut recorded = 0u64;
    let mut dropped = 0u64;
    for _ in 0..args.repeat {
        for ev in &events {
            let view = ev.view();
            let verdict = policy.evaluate(&view);
            if !verdict.action.records() {
                continue;
            }
            let data = EventData::from_view(&view, &verdict, id, now_ns(), None);
            let r = if args.drop_when_full {
                producer.push(&data)
            } else {
                producer.push_waiting(&data)
            };
            match r {
                Ok(()) => recorded += 1,
                Err(_) => dropped += 1,
            }
        }
    }
    let (_, stats) = flush
        .shutdown()
        .map_err(|(_, _, e)| anyhow::anyhow!("writing {}: {e}", args.log.display()))?;
    let lost: u64 = stats.drops_recorded.iter().sum();
    eprintln!(
        "replayed {} events: {} recorded, {} written to {} ({} file(s), {} bytes), {} dropped",
        events.len() as u64 * args.repeat,
        recorded + dropped,
        stats.events_written,
        args.log.display(),
        stats.files,
        stats.bytes_written,
        lost
    );
    Ok(if lost > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
