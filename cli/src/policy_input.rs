//! Loading a policy given on the command line: a `.pol` source (compiled
//! here) or a compiled image (recognized by its magic, whatever its name).
use std::path::Path;

use anyhow::{bail, Context, Result};
use fltpolicy_compiler::parse::MAX_SOURCE_LEN;
use fltpolicy_compiler::{compile, ir, Compiled};
use fltpolicy_core::event::Target;
use fltpolicy_core::image::format::{MAGIC, MAX_IMAGE_LEN};
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

/// Reads at most `limit` bytes of `path`; a longer file is an error (so a
/// huge file is never read whole).
pub fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > limit {
        bail!(
            "{}: larger than {limit} bytes, the most a policy {} may hold",
            path.display(),
            if bytes.starts_with(&MAGIC) {
                "image"
            } else {
                "source"
            }
        );
    }
    Ok(bytes)
}

/// Reads a policy source (at most [`MAX_SOURCE_LEN`] bytes of UTF-8).
pub fn read_source(path: &Path) -> Result<String> {
    let bytes = read_bounded(path, MAX_SOURCE_LEN)?;
    String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", path.display()))
}

/// Reads `path`: an image is verified, a source is compiled for `target`
/// (warnings are printed to stderr), with miette-rendered errors.
///
/// Whatever is handed to an evaluator or an enforcement point must be a
/// policy: an empty file, a `.fpi` file without an image's magic, binary
/// data, or a source without a single rule is an error, never an empty
/// policy that would let everything through unrecorded.
pub fn load(path: &Path, target: Option<Target>) -> Result<Loaded> {
    let bytes = read_bounded(path, MAX_IMAGE_LEN.max(MAX_SOURCE_LEN))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!(
            "{}: empty file: expected a policy image (.fpi) or a policy source (.pol)",
            path.display()
        );
    }
    if bytes.starts_with(&MAGIC) {
        if let Err(e) = Policy::from_bytes(&bytes) {
            bail!("{}: invalid policy image: {e}", path.display());
        }
        return Ok(Loaded {
            image: bytes,
            ir: None,
        });
    }
    let named_image = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("fpi"));
    if named_image || bytes.contains(&0) {
        bail!(
            "{}: not a policy image (it does not start with the image magic {:?}){}",
            path.display(),
            String::from_utf8_lossy(&MAGIC),
            if named_image {
                "; compile a source with `fltpolicy compile`"
            } else {
                ", and binary data is not a policy source"
            }
        );
    }
    let source = String::from_utf8(bytes)
        .with_context(|| format!("{}: neither a policy image nor UTF-8 text", path.display()))?;
    let compiled = compile_source(&source, &path.display().to_string(), target)?;
    if compiled.policy.rules.is_empty() {
        bail!(
            "{}: the policy has no rules (only comments or `let`s); refusing to use an empty policy",
            path.display()
        );
    }
    Ok(Loaded {
        image: compiled.image,
        ir: Some(compiled.policy),
    })
}

/// Compiles, printing warnings; on errors returns a report carrying the
/// rendered diagnostics.
///
/// `target`: the one asked for on the command line, if any; otherwise the
/// file's `target` statement, otherwise Windows. A file whose statement
/// disagrees with an explicit target does not compile.
pub fn compile_source(source: &str, name: &str, target: Option<Target>) -> Result<Compiled> {
    let target = target
        .or_else(|| fltpolicy_compiler::check::declared_target(source))
        .unwrap_or(Target::Windows);
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
