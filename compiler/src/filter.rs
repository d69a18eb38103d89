//! One condition, as a filter over events or audit records.
//!
//! The viewer's filter bar and `log export --filter` take the condition
//! syntax of `where` (`process == "cat" and path under /srv`). A filter is
//! checked exactly like a rule's condition and evaluated by the reference
//! interpreter: filters run in user mode over records already written, so
//! clarity wins over speed here.
use fltpolicy_core::event::{EventView, Target};

use crate::diag::Diagnostics;
use crate::ir::Cond;
use crate::{check, oracle, parse, CompileError};

/// A checked condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    target: Target,
    cond: Cond,
}

impl Filter {
    /// Parses and checks `expr` for `target`.
    pub fn parse(expr: &str, target: Target) -> Result<Filter, CompileError> {
        let name = "<filter>";
        let ast = parse::parse_condition(expr).map_err(|d| Diagnostics::new(name, expr, d))?;
        let cond =
            check::check_condition(&ast, target).map_err(|d| Diagnostics::new(name, expr, d))?;
        Ok(Filter { target, cond })
    }

    /// Whether the event satisfies the condition.
    pub fn matches(&self, ev: &EventView<'_>) -> bool {
        oracle::eval_cond(self.target, &self.cond, ev)
    }

    /// The platform whose comparison rules the filter uses.
    pub fn target(&self) -> Target {
        self.target
    }
}
