//! `fltpolicy compile FILE [-o OUT.fpi] [--target windows|linux]`
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use fltpolicy_core::control;
use fltpolicy_core::event::Target;
use fltpolicy_core::image::Policy;

use crate::policy_input::{compile_source, read_source, TargetArg};

/// Compile a policy into a verified image.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol).
    file: PathBuf,
    /// Output image; default: FILE with the extension .fpi.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Platform whose path and case rules the policy uses.
    /// (default: the file's `target` statement, else windows)
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let src = read_source(&args.file)?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.file.with_extension("fpi"));
    if same_file(&args.file, &out) {
        bail!(
            "refusing to overwrite the input {} with the image; give another file with -o",
            args.file.display()
        );
    }
    let compiled = compile_source(
        &src,
        &args.file.display().to_string(),
        args.target.map(Into::into),
    )?;
    let target = compiled.policy.target;
    if target == Target::Windows && compiled.image.len() > control::MAX_IMAGE_LEN {
        bail!(
            "{}: the image is {} bytes; the Windows driver loads at most {} bytes (control::MAX_IMAGE_LEN), so it would refuse it. Not written. Merge rules or share lists to shrink it.",
            args.file.display(),
            compiled.image.len(),
            control::MAX_IMAGE_LEN
        );
    }
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

/// Whether `a` and `b` name the same file (through links too). `b` need
/// not exist.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
