//! `fltpolicy fmt FILE... [--check | --write]`: canonical layout.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use fltpolicy_compiler::{diag::Diagnostics, fmt::format, parse::parse};

/// Print policies in canonical layout (or check / rewrite them).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Exit non-zero when a file is not in canonical layout; print nothing else.
    #[arg(long, conflicts_with = "write")]
    check: bool,
    /// Rewrite the files in place.
    #[arg(long, short)]
    write: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut status = ExitCode::SUCCESS;
    for f in &args.files {
        let name = f.display().to_string();
        let src = crate::policy_input::read_source(f)?;
        let ast = match parse(&src) {
            Ok(a) => a,
            Err(items) => {
                let d = Diagnostics::new(&name, &src, items);
                eprintln!("{}{d}", d.render());
                status = ExitCode::FAILURE;
                continue;
            }
        };
        let out = format(&ast);
        if args.check {
            if out != src {
                println!("{name}: not in canonical layout");
                status = ExitCode::FAILURE;
            }
        } else if args.write {
            if out != src {
                std::fs::write(f, &out).with_context(|| format!("cannot write {name}"))?;
                eprintln!("{name}: reformatted");
            }
        } else {
            print!("{out}");
        }
    }
    Ok(status)
}
