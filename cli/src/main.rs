//! `fltpolicy`: compile, check and test policies; run and control the
//! enforcement point; read audit logs.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only
//! wires them into clap. Only the CLI uses anyhow/miette reports: the
//! library crates return concrete error types.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Debug, Parser)]
#[command(name = "fltpolicy", version, about = "Declarative, policy-driven file-system filter")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Policy tool chain (issue 2) goes here.
    // Audit pipeline: replay, log (issue 3) goes here.
    // Enforcement point: run, load, status (issues 4, 5) go here.
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
