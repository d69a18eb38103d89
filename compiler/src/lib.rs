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
pub mod ir;
pub mod parse;
pub mod diag;
pub mod check;
