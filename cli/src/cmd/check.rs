//! `fltpolicy check FILE...`: report every error and warning; non-zero exit
//! when any file has errors.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use fltpolicy_compiler::{compile, CompileError};

use crate::policy_input::{render_error, TargetArg};
use fltpolicy_core::event::Target;

/// Check policies without writing images.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy sources.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// (default: the file's `target` statement, else windows)
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut failed = false;
    for f in &args.files {
        let name = f.display().to_string();
        let src = match crate::policy_input::read_source(f) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
                continue;
            }
        };
        let target = args
            .target
            .map(Target::from)
            .or_else(|| fltpolicy_compiler::check::declared_target(&src))
            .unwrap_or(Target::Windows);
        match compile(&src, &name, target) {
            Ok(c) => {
                let w = c.warnings.items.len();
                if w > 0 {
                    eprint!("{}", c.warnings.render());
                    failed |= args.deny_warnings;
                }
                println!("{name}: ok ({} rules, {w} warnings)", c.policy.rules.len());
            }
            Err(e) => {
                eprint!("{}", render_error(&e));
                if !matches!(e, CompileError::Source(_)) {
                    eprintln!();
                }
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
