//! `fltpolicy disasm IMAGE`: a human-readable listing of an image (a
//! `.pol` is compiled first), like `tcpdump -d`.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::policy_input::{load, TargetArg};

/// Print an image's header, path trie and per-rule programs.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image (.fpi) or policy source (.pol).
    image: PathBuf,
    /// Target when compiling a source.
    /// (default: the file's `target` statement, else windows)
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let loaded = load(&args.image, args.target.map(Into::into))?;
    print!(
        "{}",
        fltpolicy_compiler::disasm::disassemble(&loaded.policy())
    );
    Ok(ExitCode::SUCCESS)
}
