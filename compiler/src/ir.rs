//! Checked policy: names resolved, types checked, constants normalized for
//! the target. Lowering turns it into bytecode; the reference interpreter
//! ([`crate::oracle`]) evaluates it directly and is the test oracle for the VM.
//!
//! Normalization (done once here, never at evaluation time):
//! * Windows: `/` becomes `\`, runs of separators collapse, a trailing
//!   separator is dropped (except after a root such as `C:\`), and every
//!   string constant compared against a path or name field is case-folded
//!   with [`fltpolicy_core::text::fold`].
//! * Linux: runs of `/` collapse and a trailing `/` is dropped; nothing is
//!   folded.
use fltpolicy_core::event::{Action, OpSet, Target};

use crate::ast::Span;

/// A policy ready to lower or to interpret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub target: Target,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// 1-based position among the rules, in source order.
    pub index: u32,
    /// 1-based source line.
    pub line: u32,
    pub span: Span,
    pub action: Action,
    pub ops: OpSet,
    /// The rule's `under` clause, normalized. `None`: any path.
    pub under: Option<String>,
    /// `from`, `where` and `not unless`, joined by `and`. `None`: always.
    pub cond: Option<Cond>,
    /// `as "TAG"` or empty.
    pub tag: String,
}

/// A boolean condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Test(Test),
}

/// String-valued event fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrField {
    Path,
    Name,
    Ext,
    Dir,
    Image,
    Process,
    User,
}

/// Number-valued event fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumField {
    Pid,
    Ppid,
    Size,
}

/// One comparison, with its constant already normalized for the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    /// `==`, `!=`: whole-string equality (folded on Windows for every field
    /// but `user`, which is folded too since Windows account names are
    /// case-insensitive).
    StrEq {
        field: StrField,
        value: String,
        negate: bool,
    },
    /// `under`: the value itself or anything below it at a separator boundary.
    Under {
        field: StrField,
        value: String,
    },
    StartsWith {
        field: StrField,
        value: String,
    },
    EndsWith {
        field: StrField,
        value: String,
    },
    Contains {
        field: StrField,
        value: String,
    },
    /// `matches`: glob, `*` and `?` within a component, `**` whole components.
    Matches {
        field: StrField,
        pattern: String,
    },
    StrIn {
        field: StrField,
        values: Vec<String>,
    },
    /// Numeric comparison `field OP value`.
    Num {
        field: NumField,
        op: NumOp,
        value: u64,
    },
    NumIn {
        field: NumField,
        values: Vec<u64>,
    },
    /// `paging == value`
    Paging {
        value: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}
