//! `fltpolicy compile FILE [-o OUT.fpi] [--target windows|linux]`
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use fltpolicy_core::image::Policy;

use crate::policy_input::{compile_source, TargetArg};

/// Compile a policy into a verified image.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol).
    file: PathBuf,
    /// Output image; default: FILE with the extension .fpi.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Platform whose path and case rules the policy uses.
    #[arg(long, value_enum, default_value = "windows")]
    target: TargetArg,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let src = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let compiled = compile_source(&src, &args.file.display().to_string(), args.target.into())?;
    let out = args
        .output
        .unwrap_or_else(|| args.file.with_extension("fpi"));
    std::fs::write(&out, &compiled.image)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let p = Policy::from_bytes(&compiled.image).context("compiled image failed verification")?;
    let hash: String = p.hash()[..8].iter().map(|b| format!("{b:02x}")).collect();
    eprintln!(
        "{}: {} rules, {} bytes, worst case {} instructions/event, target {}, sha256 {hash}…",
        out.display(),
        p.rule_count(),
        compiled.image.len(),
        p.worst_case(),
        p.target().name()
    );
    Ok(ExitCode::SUCCESS)
}
