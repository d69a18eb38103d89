//! Loading a policy given on the command line: a `.pol` source (compiled
//! here) or a compiled image (recognized by its magic, whatever its name).
use std::path::Path;

use anyhow::{bail, Context, Result};
use fltpolicy_compiler::{compile, ir, Compiled};
use fltpolicy_core::event::Target;
use fltpolicy_core::image::format::MAGIC;
use fltpolicy_core::image::Policy;

/// A policy ready to evaluate.
#[derive(Debug)]
pub struct Loaded {
    /// Verified image bytes (re-borrow with [`Loaded::policy`]).
    pub image: Vec<u8>,
    /// The checked IR when the input was source (needed by the reference
    /// engine, `test` coverage and `disasm` annotations).
    pub ir: Option<ir::Policy>,
}

impl Loaded {
    pub fn policy(&self) -> Policy<'_> {
        // Verified when loaded; verifying again is cheap and keeps this
        // function free of any unchecked path.
        Policy::from_bytes(&self.image).expect("image verified at load")
    }
}

/// Reads `path`: an image is verified, a source is compiled for `target`
/// (warnings are printed to stderr), with miette-rendered errors.
pub fn load(path: &Path, target: Target) -> Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(&MAGIC) {
        if let Err(e) = Policy::from_bytes(&bytes) {
            bail!("{}: invalid policy image: {e}", path.display());
        }
        return Ok(Loaded {
            image: bytes,
            ir: None,
        });
    }
    let source = String::from_utf8(bytes)
        .with_context(|| format!("{}: neither a policy image nor UTF-8 text", path.display()))?;
    let compiled = compile_source(&source, &path.display().to_string(), target)?;
    Ok(Loaded {
        image: compiled.image,
        ir: Some(compiled.policy),
    })
}

/// Compiles, printing warnings; on errors returns a report carrying the
/// rendered diagnostics.
pub fn compile_source(source: &str, name: &str, target: Target) -> Result<Compiled> {
    match compile(source, name, target) {
        Ok(c) => {
            if !c.warnings.items.is_empty() {
                eprint!("{}", c.warnings.render());
            }
            Ok(c)
        }
        Err(e) => Err(anyhow::anyhow!("{}", render_error(&e))),
    }
}

/// Renders a compile error with miette (file:line:col, source line, caret,
/// hint), without colours so it reads the same in logs and terminals.
pub fn render_error(e: &fltpolicy_compiler::CompileError) -> String {
    match e {
        fltpolicy_compiler::CompileError::Source(d) => {
            format!("{}{}", d.render(), d)
        }
        other => other.to_string(),
    }
}

/// `--target` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    Windows,
    Linux,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Target {
        match t {
            TargetArg::Windows => Target::Windows,
            TargetArg::Linux => Target::Linux,
        }
    }
}
