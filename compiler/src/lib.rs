//! The `.pol` compiler.
//!
//! Stages, each with its own error type:
//! 1. [`parse`] — nom parser with spans → [`ast::File`] (syntax errors);
//! 2. [`check`] — names, fields, types, normalization → [`ir::Policy`]
//!    (semantic errors, warnings for unreachable/shadowed rules);
//! 3. [`lower`] — checked IR → bytecode image, verified again before it is
//!    returned (limit errors).
//!
//! [`oracle`] is the reference interpreter over the checked IR: slow,
//! obvious, allocation-happy, and the test oracle for the VM.
//! [`filter`] compiles a single condition (the viewer's filter bar and
//! `log export --filter`).
#![forbid(unsafe_code)]

pub mod ast;
pub mod check;
pub mod diag;
pub mod disasm;
pub mod filter;
pub mod fmt;
pub mod ir;
pub mod lower;
pub mod oracle;
pub mod parse;

use fltpolicy_core::event::Target;
use fltpolicy_core::image::{Policy as VerifiedPolicy, VerifyError};

pub use diag::{Diagnostic, Diagnostics, Severity};

/// Why a policy did not compile.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CompileError {
    /// Syntax or semantic errors, all of them, with spans (boxed: the
    /// report carries the source text).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Source(Box<Diagnostics>),
    /// The policy is valid but exceeds an image limit.
    #[error("{file}: {error}")]
    #[diagnostic(code(pol::limit))]
    Lower {
        file: String,
        #[source]
        error: lower::LowerError,
    },
    /// The compiler produced an image its own verifier rejects: a compiler
    /// bug, reported rather than shipped.
    #[error("{file}: internal compiler error: the image failed verification: {error}")]
    #[diagnostic(code(pol::internal))]
    Verify { file: String, error: VerifyError },
}

impl From<Diagnostics> for CompileError {
    fn from(d: Diagnostics) -> Self {
        CompileError::Source(Box::new(d))
    }
}

/// A compiled policy.
#[derive(Debug)]
pub struct Compiled {
    /// The verified image bytes (`.fpi`).
    pub image: Vec<u8>,
    /// The checked IR it was lowered from (for the reference interpreter,
    /// `disasm` annotations and coverage).
    pub policy: ir::Policy,
    /// Warnings (possibly none), renderable like errors.
    pub warnings: Diagnostics,
}

/// Parses and checks `source`: the front end without lowering. On success
/// returns the checked IR and the warnings.
pub fn front_end(
    source: &str,
    file_name: &str,
    target: Target,
) -> Result<(ir::Policy, Diagnostics), CompileError> {
    // Statements that parse are checked even when others do not, so one
    // syntax error does not hide the semantic errors elsewhere.
    let (file, syntax) = parse::parse_partial(source);
    let (policy, mut items) = check::check(&file, target);
    if !syntax.is_empty() {
        // Warnings about the rule set as a whole would be about a file with
        // statements missing.
        items.retain(|d| {
            !matches!(
                d.code,
                "pol::unreachable" | "pol::no-effect" | "pol::unused"
            )
        });
        items.extend(syntax);
        items.sort_by_key(|d| (d.span.start, d.span.end));
    }
    let diags = Diagnostics::new(file_name, source, items);
    match policy {
        Some(p) if !diags.has_errors() => Ok((p, diags)),
        _ => Err(diags.into()),
    }
}

/// Compiles `source` for `target`: parse, check, lower, and verify the
/// result with the same verifier the enforcement points use.
pub fn compile(source: &str, file_name: &str, target: Target) -> Result<Compiled, CompileError> {
    let (policy, warnings) = front_end(source, file_name, target)?;
    let image = lower::lower(&policy).map_err(|error| CompileError::Lower {
        file: file_name.to_owned(),
        error,
    })?;
    if let Err(error) = VerifiedPolicy::from_bytes(&image) {
        return Err(CompileError::Verify {
            file: file_name.to_owned(),
            error,
        });
    }
    Ok(Compiled {
        image,
        policy,
        warnings,
    })
}
