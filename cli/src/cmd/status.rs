//! `fltpolicy status [--control SOCKET] [--json]`: counters of the running
//! enforcement point and the identity of its policy. Linux: the engine's
//! control socket. Windows: the driver's control device.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

/// Show the running enforcement point's counters and policy.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The engine's control socket (Linux; as given to `fltpolicy run --control`).
    #[arg(long)]
    control: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The status both platforms report (Linux adds its own counters).
#[derive(Debug, Default, Serialize)]
struct Report {
    events_seen: u64,
    matched: u64,
    logged: u64,
    denied: u64,
    dropped: u64,
    queue_depth: u64,
    policy_hash: String,
    generation: u64,
    rule_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    linux: Option<LinuxExtra>,
    #[serde(skip_serializing_if = "Option::is_none")]
    windows: Option<WindowsExtra>,
}

/// The driver's log writer: `writing`, or why it is not (`squatted`: a
/// directory, file or reparse point a user planted occupies the log's
/// path; `no-volume`; `open-failed`; `starting`).
#[derive(Debug, Default, Serialize)]
struct WindowsExtra {
    log_state: String,
    /// NTSTATUS of the last failed open, hex; empty while writing.
    #[serde(skip_serializing_if = "String::is_empty")]
    log_error: String,
}

#[derive(Debug, Default, Serialize)]
struct LinuxExtra {
    /// Records accepted by the audit queue.
    queued: u64,
    kernel_overflows: u64,
    deadline_allows: u64,
    deny_unenforceable: u64,
    unresolved_paths: u64,
    /// Event records lost because the log could not be written.
    write_failed: u64,
    write_failed_bytes: u64,
    write_failures: u64,
    /// The last log write failed (none has succeeded since).
    write_failing: bool,
    log_files_lost: u64,
    /// Unplaceable events outside every policy tree (not losses).
    unresolved_outside: u64,
    blocking: bool,
    watching: Vec<String>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn run(args: Args) -> Result<ExitCode> {
    let r = query(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "policy       sha256 {} (generation {}, {} rules)",
        r.policy_hash, r.generation, r.rule_count
    );
    println!("events seen  {}", r.events_seen);
    println!("matched      {}", r.matched);
    println!("logged       {}", r.logged);
    println!("denied       {}", r.denied);
    println!("dropped      {}", r.dropped);
    println!("queue depth  {}", r.queue_depth);
    if let Some(l) = &r.linux {
        println!(
            "write_failed {} records, {} bytes ({} failed writes){}",
            l.write_failed,
            l.write_failed_bytes,
            l.write_failures,
            if l.write_failing {
                "  FAILING NOW: the log cannot be written"
            } else {
                ""
            }
        );
        if l.log_files_lost > 0 {
            println!(
                "log files lost {} (deleted or replaced while written; the chain went on in a new file)",
                l.log_files_lost
            );
        }
        println!("queued       {}", l.queued);
        println!("kernel overflows       {}", l.kernel_overflows);
        println!("deadline allows        {}", l.deadline_allows);
        println!("deny (log only ops)    {}", l.deny_unenforceable);
        println!("unresolved paths       {}", l.unresolved_paths);
        println!("unresolved (outside)   {}", l.unresolved_outside);
        println!(
            "blocking     {}",
            if l.blocking {
                "yes (permission events)"
            } else {
                "no (log only)"
            }
        );
        println!("watching     {}", l.watching.join(", "));
    }
    if let Some(w) = &r.windows {
        if w.log_error.is_empty() {
            println!("log          {}", w.log_state);
        } else {
            println!("log          {} ({})", w.log_state, w.log_error);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
fn query(args: &Args) -> Result<Report> {
    let Some(socket) = &args.control else {
        anyhow::bail!(
            "--control SOCKET is required: the socket given to `fltpolicy run --control`"
        );
    };
    let s = fltpolicy_linux::control::client::status(socket)?;
    Ok(Report {
        events_seen: s.events_seen,
        matched: s.matched,
        logged: s.logged,
        denied: s.denied,
        dropped: s.dropped,
        queue_depth: s.queue_depth,
        policy_hash: hex(&s.policy_hash),
        generation: s.generation,
        rule_count: s.rule_count,
        linux: Some(LinuxExtra {
            queued: s.queued,
            kernel_overflows: s.kernel_overflows,
            deadline_allows: s.deadline_allows,
            deny_unenforceable: s.deny_unenforceable,
            unresolved_paths: s.unresolved_paths,
            write_failed: s.write_failed,
            write_failed_bytes: s.write_failed_bytes,
            write_failures: s.write_failures,
            write_failing: s.write_failing,
            log_files_lost: s.log_files_lost,
            unresolved_outside: s.unresolved_outside,
            blocking: s.blocking,
            watching: s.watching,
        }),
        windows: None,
    })
}

#[cfg(windows)]
fn query(_args: &Args) -> Result<Report> {
    let s = crate::cmd::control_windows::query_status()?;
    Ok(Report {
        events_seen: s.events_seen,
        matched: s.matched,
        logged: s.logged,
        denied: s.denied,
        dropped: s.dropped,
        queue_depth: s.queued,
        policy_hash: hex(&s.policy_hash),
        generation: s.generation,
        rule_count: s.rule_count,
        linux: None,
        windows: Some(WindowsExtra {
            log_state: fltpolicy_core::control::LogState::from_u32(s.log_state).map_or_else(
                || format!("unknown ({})", s.log_state),
                |l| l.name().to_string(),
            ),
            log_error: if s.log_error == 0 {
                String::new()
            } else {
                format!("{:#010x}", s.log_error as u32)
            },
        }),
    })
}

#[cfg(not(any(target_os = "linux", windows)))]
fn query(_args: &Args) -> Result<Report> {
    anyhow::bail!("no enforcement point on this platform")
}
