//! Syntax tree of a `.pol` file, as written, with byte spans.
//!
//! The parser produces it; [`crate::check`] resolves names and types into
//! [`crate::ir`]; `fmt` prints it back in canonical layout. Nothing here is
//! normalized: values are kept exactly as the author wrote them so that
//! diagnostics and `fmt` can show them.

/// A half-open byte range `[start, end)` into the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
    pub fn len(self) -> usize {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        (s.start, s.len()).into()
    }
}

/// A node with the span it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

/// A whole policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct File {
    pub items: Vec<Item>,
    /// Comments with their spans, kept so `fmt` does not drop them.
    pub comments: Vec<Spanned<String>>,
    /// Byte offset where each source line starts (the first is 0), so that
    /// `fmt` can tell a trailing comment from one on its own line and keep
    /// blank lines without the source text. Empty when the tree was not
    /// parsed from text.
    pub line_starts: Vec<usize>,
    /// Names of `let` statements that did not parse (see
    /// [`crate::parse::parse_partial`]): the checker treats them as defined
    /// with an unknown value, so their uses are not reported again.
    pub broken_lets: Vec<Spanned<String>>,
}

impl File {
    /// The 0-based line holding byte `offset`, if line starts are known.
    pub fn line_index(&self, offset: usize) -> Option<usize> {
        if self.line_starts.is_empty() {
            return None;
        }
        Some(
            self.line_starts
                .partition_point(|&s| s <= offset)
                .saturating_sub(1),
        )
    }
}

// A file holds few items, built once; boxing rules would only add an
// indirection to every pass over them.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Let(Let),
    Rule(Rule),
    /// `target linux` / `target windows`: the platform the file is written
    /// for (first statement only).
    Target(TargetDecl),
}

/// `target linux` / `target windows`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetDecl {
    pub target: Spanned<fltpolicy_core::event::Target>,
    /// The whole statement.
    pub span: Span,
}

/// `let NAME = VALUE`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Let {
    pub name: Spanned<String>,
    pub value: Spanned<Value>,
    pub span: Span,
}

/// A literal or a reference, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A bare word or path without quotes: `C:\Data`, `/srv/data`, `backup.exe`.
    Bare(String),
    /// A double-quoted string, unescaped; backslashes are literal and `""`
    /// stands for one `"` (a string ends at the next lone `"`).
    Quoted(String),
    /// A decimal number.
    Number(u64),
    /// `true` / `false`.
    Bool(bool),
    /// `[v, v, ...]`
    List(Vec<Spanned<Value>>),
    /// `$name`
    Var(String),
    /// A condition given a name: `let noisy = image under C:\Updater or
    /// pid == 4`, used as `$noisy` where a condition goes.
    Cond(Box<Spanned<Expr>>),
}

/// The action keyword of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKw {
    Log,
    Deny,
    Allow,
}

impl ActionKw {
    pub fn action(self) -> fltpolicy_core::event::Action {
        use fltpolicy_core::event::Action;
        match self {
            ActionKw::Log => Action::Log,
            ActionKw::Deny => Action::Deny,
            ActionKw::Allow => Action::Allow,
        }
    }
}

/// The operations a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ops {
    /// `any`
    Any,
    /// `write, rename, delete` — each op with the span of its keyword.
    List(Vec<Spanned<fltpolicy_core::event::Op>>),
}

/// `ACTION OPS [under PATH] [from WHO] [where COND] [unless COND] [as "TAG"]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Spanned<ActionKw>,
    pub ops: Spanned<Ops>,
    pub under: Option<Spanned<Value>>,
    pub from: Option<Spanned<Who>>,
    pub where_: Option<Spanned<Expr>>,
    pub unless: Option<Spanned<Expr>>,
    pub tag: Option<Spanned<String>>,
    /// `$name`s among the operations (`log $edits, create under ...`): each
    /// names a list of operation words (`let edits = [write, rename]`).
    pub op_refs: Vec<Spanned<String>>,
    /// The `disabled` keyword: the rule is checked but not compiled in.
    pub disabled: Option<Span>,
    /// The whole rule.
    pub span: Span,
    /// 1-based source line of the rule's first token.
    pub line: u32,
}

/// `from pid N` / `from image PATH` / `from process NAME`
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    Pid(Spanned<Value>),
    Image(Spanned<Value>),
    Process(Spanned<Value>),
}

/// A condition, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    And(Box<Spanned<Expr>>, Box<Spanned<Expr>>),
    Or(Box<Spanned<Expr>>, Box<Spanned<Expr>>),
    Not(Box<Spanned<Expr>>),
    /// `( expr )`, kept so `fmt` can reproduce the author's grouping.
    Paren(Box<Spanned<Expr>>),
    /// `FIELD OP VALUE`; the field is kept as written and resolved by the
    /// checker so an unknown field gets a diagnostic with its span.
    Compare {
        field: Spanned<String>,
        op: Spanned<CmpOp>,
        value: Spanned<Value>,
    },
    /// A field used alone as a boolean (`paging`): same as `FIELD == true`.
    Flag(Spanned<String>),
    /// `$name` of a named condition (`let NAME = CONDITION`).
    Ref(Spanned<String>),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Under,
    StartsWith,
    EndsWith,
    Contains,
    In,
    Matches,
}

impl CmpOp {
    pub fn keyword(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Under => "under",
            CmpOp::StartsWith => "startswith",
            CmpOp::EndsWith => "endswith",
            CmpOp::Contains => "contains",
            CmpOp::In => "in",
            CmpOp::Matches => "matches",
        }
    }
}
