//! `fltpolicy log export|verify|stats` (and `view`, the bundled viewer):
//! reading audit logs written by an enforcement point or by `replay`.
//!
//! All of them read through `fltpolicy_audit::reader`, so they agree on
//! what a log contains and on what counts as damage.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use fltpolicy_audit::ReadOptions;

pub mod export;
pub mod siem;
pub mod stats;
pub mod verify;

/// Read, verify and summarize audit logs.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LogCommand {
    /// Export records as JSON lines, CSV, ECS, OCSF or CEF (one per line).
    Export(export::Args),
    /// Check every file: frames, chain, sequence, links between files.
    Verify(verify::Args),
    /// Summarize: counts per operation, rule, process; top paths; drops.
    Stats(stats::Args),
    /// Browse in a terminal UI: filter, follow, drops, record details.
    View(crate::cmd::view::ViewArgs),
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        LogCommand::Export(a) => export::run(a),
        LogCommand::Verify(a) => verify::run(a),
        LogCommand::Stats(a) => stats::run(a),
        LogCommand::View(a) => crate::cmd::view::run(a).map(|()| ExitCode::SUCCESS),
    }
}

/// Options shared by the log commands.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Log files (any order: files of one session are put in chain order).
    #[arg(required = true)]
    pub logs: Vec<PathBuf>,
    /// Key of an HMAC-sealed log: a file holding 32 raw bytes or 64 hex
    /// digits.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

impl Common {
    pub fn read_options(&self) -> Result<ReadOptions> {
        Ok(ReadOptions {
            key: self.key_file.as_deref().map(read_key).transpose()?,
            anchor: None,
        })
    }
}

/// Reads a sealing key: 32 raw bytes, or 64 hex digits (whitespace ignored).
pub fn read_key(path: &Path) -> Result<[u8; 32]> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read key {}", path.display()))?;
    if bytes.len() == 32 {
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        return Ok(k);
    }
    let hex: Vec<u8> = bytes
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        bail!("{}: a key is 32 raw bytes or 64 hex digits", path.display());
    }
    let mut k = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).context("hex")?;
        k[i] = u8::from_str_radix(s, 16).context("hex")?;
    }
    Ok(k)
}
