//! `fltpolicy`: compile, check and test policies; run and control the
//! enforcement point; read audit logs.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only
//! wires them into clap. Only the CLI uses anyhow/miette reports: the
//! library crates return concrete error types.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod events;
mod policy_input;

#[derive(Debug, Parser)]
#[command(
    name = "fltpolicy",
    version,
    about = "Declarative, policy-driven file-system filter"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compile a policy into a verified image (.fpi).
    Compile(cmd::compile::Args),
    /// Check policies and report every error and warning.
    Check(cmd::check::Args),
    /// Print policies in canonical layout.
    Fmt(cmd::fmt::Args),
    /// Disassemble an image (header, path trie, programs).
    Disasm(cmd::disasm::Args),
    /// Evaluate events (JSON lines) against a policy.
    Eval(cmd::eval::Args),
    /// Run a policy's shipped cases and report rule coverage.
    Test(cmd::test::Args),
    /// Measure evaluation cost in ns/event.
    Bench(cmd::bench::Args),
    /// Run recorded events through policy, queue and writer into a log.
    Replay(cmd::replay::Args),
    /// Convert other tools' configurations (Sysmon) into a policy.
    Import(cmd::import::Args),
    /// Read audit logs: view, export, verify, stats.
    Log(cmd::log::Args),
    // Enforcement point: run, load, status (issues 4, 5) go here.
    /// Run the Linux engine (fanotify) in the foreground until Ctrl-C/SIGTERM.
    Run(cmd::run::Args),
    /// Load a policy into the running enforcement point (hot reload).
    Load(cmd::load::Args),
    /// Show the running enforcement point's counters and policy.
    Status(cmd::status::Args),
    /// Point the Windows driver's audit log at a new file.
    SetLogPath(cmd::set_log_path::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(a) => cmd::compile::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Fmt(a) => cmd::fmt::run(a),
        Command::Disasm(a) => cmd::disasm::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Test(a) => cmd::test::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Load(a) => cmd::load::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::SetLogPath(a) => cmd::set_log_path::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Log(a) => cmd::log::run(a),
        Command::Import(a) => cmd::import::run(a),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`fltpolicy log stats | head`):
        // nothing left to say and no one to say it to; exit quietly, the
        // way a tool killed by SIGPIPE would.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// Whether `e` (or one of its causes) is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `e` and its causes, joined by `: `, each cause printed once: an error
/// whose message already quotes its source (`cannot create LOG: File
/// exists`) does not get that source appended again.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_quoted_by_its_parent_is_printed_once() {
        let io = std::io::Error::from_raw_os_error(17);
        let text = io.to_string();
        let e = anyhow::Error::new(io).context(format!("cannot create the audit log x: {text}"));
        let shown = error_chain(&e);
        assert_eq!(shown.matches(&text).count(), 1, "{shown}");
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(2)).context("opening x");
        assert!(
            error_chain(&e).starts_with("opening x: "),
            "{}",
            error_chain(&e)
        );
    }
}
