//! The checker: [`ast::File`] → [`ir::Policy`].
//!
//! Resolves `$name` references against earlier `let`s, resolves field
//! names, checks that every comparison makes sense for its field's type,
//! normalizes constants for the target (see [`crate::ir`]) and joins each
//! rule's `from`, `where` and `unless` into one condition. It also warns
//! about rules that can never decide anything because an earlier,
//! unconditional rule already covers them.
//!
//! It reports every problem it finds rather than stopping at the first, and
//! it never panics: every value it cannot use becomes a diagnostic.
//!
//! Normalization rules, per target:
//! * path-valued constants (`under`, `path`/`dir`/`image` compared with
//!   `==`, `!=`, `in`, `under`, and `from image`): on Windows `/` becomes
//!   `\`, separator runs collapse (a leading `\\` of a UNC path is kept), a
//!   trailing separator is dropped except after a root (`C:\`, `\`); on
//!   Linux `/` runs collapse and a trailing `/` is dropped except for `/`.
//! * `startswith`/`endswith`/`contains`/`matches` on path-valued fields get
//!   the separator conversion and run collapsing but keep a trailing
//!   separator, which is meaningful for a prefix (`startswith C:\Tmp\`).
//! * On Windows every string constant is then case-folded with
//!   [`fltpolicy_core::text::fold_char`]; on Linux nothing is folded.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use fltpolicy_core::event::{Action, OpSet, Target};
use fltpolicy_core::text::fold_char;

use crate::ast::{self, CmpOp, Expr, Item, Ops, Span, Spanned, Value, Who};

/// The target a source declares with `target linux|windows` as its first
/// statement, if any. Cheap (reads only up to the first statement), for
/// tools that must pick a target before compiling.
pub fn declared_target(source: &str) -> Option<Target> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    for line in source.lines() {
        let code = line.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            continue;
        }
        let mut words = code.split_whitespace();
        if !words.next()?.eq_ignore_ascii_case("target") {
            return None;
        }
        let t = words.next()?;
        return if t.eq_ignore_ascii_case("linux") {
            Some(Target::Linux)
        } else if t.eq_ignore_ascii_case("windows") {
            Some(Target::Windows)
        } else {
            None
        };
    }
    None
}
use crate::diag::{suggest, Diagnostic};
use crate::ir::{self, Cond, NumField, NumOp, StrField, Test};
use crate::parse::FIELD_WORDS;

/// Checks a parsed file for `target`.
///
/// Returns the policy iff there are no errors; the diagnostics include
/// warnings either way, in source order.
pub fn check(file: &ast::File, target: Target) -> (Option<ir::Policy>, Vec<Diagnostic>) {
    let (policy, diags, _) = check_counted(file, target);
    (policy, diags)
}

/// Most list items one compile may materialize: every item copied into a
/// `let`'s list (a spliced `$list` counts its items) and every item of a
/// list used in a comparison. An image stores a list item as a 4-byte
/// index and the Windows driver loads at most 1 MiB, so no loadable policy
/// comes near this.
pub const MAX_EXPANDED_ITEMS: u64 = 1 << 20;

/// Most bytes of string constants one compile may produce from the source
/// (each use of a `$name` copies its string once, normalized for the
/// target). Twice the largest image.
pub const MAX_EXPANDED_BYTES: u64 = 32 << 20;

/// What the checker materialized: the measure its running time and memory
/// are linear in (beyond the source itself). Both are capped by
/// [`MAX_EXPANDED_ITEMS`] and [`MAX_EXPANDED_BYTES`]; going over is a
/// located `pol::too-large` error, so checking any input of `n` bytes costs
/// `O(n + MAX_EXPANDED_ITEMS + MAX_EXPANDED_BYTES)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// List items copied (definitions, splices and uses).
    pub items: u64,
    /// Bytes of string constants produced for comparisons.
    pub bytes: u64,
}

/// [`check`], also returning the [`Work`] it did.
pub fn check_counted(
    file: &ast::File,
    target: Target,
) -> (Option<ir::Policy>, Vec<Diagnostic>, Work) {
    let mut cx = Checker::new(target);
    // `let`s that did not parse: defined, value unknown, already reported.
    for b in &file.broken_lets {
        cx.let_order.push(b.node.clone());
        cx.lets.insert(
            b.node.clone(),
            Binding {
                value: None,
                name_span: b.span,
                used: true,
            },
        );
    }
    let mut rules = Vec::new();
    let mut count = 0usize;
    for (k, item) in file.items.iter().enumerate() {
        match item {
            Item::Target(d) => cx.declared(d, k == 0),
            Item::Let(l) => cx.define(l),
            Item::Rule(r) if r.disabled.is_some() => {
                // Checked like any rule, then left out: not counted, so the
                // numbers of the compiled rules stay dense.
                let _ = cx.rule(r, 0);
            }
            Item::Rule(r) => {
                // Source order, counting rules that have errors too, so the
                // numbers in messages match what the author counts
                // (disabled rules are not counted).
                count += 1;
                let index = u32::try_from(count).unwrap_or(u32::MAX);
                if let Some(rule) = cx.rule(r, index) {
                    rules.push(rule);
                }
            }
        }
    }
    cx.warn_unused_lets();
    cx.warn_shadowed(&rules);
    cx.warn_pointless_allows(&rules);
    let mut diags = cx.diags;
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    let policy = (!diags.iter().any(Diagnostic::is_error)).then_some(ir::Policy { target, rules });
    (policy, diags, cx.work)
}

/// Checks a lone condition (a filter). There are no `let`s in a filter, so
/// any `$name` is an error.
pub fn check_condition(expr: &Spanned<Expr>, target: Target) -> Result<Cond, Vec<Diagnostic>> {
    let mut cx = Checker::new(target);
    let cond = cx.expr(expr);
    let errors: Vec<Diagnostic> = cx.diags.into_iter().filter(Diagnostic::is_error).collect();
    match cond {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(errors),
    }
}

/// A value with its references resolved. Shared, never copied: `$name`
/// hands out the same `Rc`, and strings are interned (equal text, same
/// pointer) so lists de-duplicate in constant time per item.
#[derive(Clone, Debug)]
enum Resolved {
    Str(Rc<str>),
    Num(u64),
    Bool(bool),
    /// De-duplicated, in first-occurrence order.
    List(Rc<[(Resolved, Span)]>),
    /// A named condition, with its size in nodes (what each use costs).
    Cond(Rc<Cond>, usize),
}

/// Identity of a list item for de-duplication (strings are interned).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ItemKey {
    Str(usize),
    Num(u64),
    Bool(bool),
    List(usize),
    Cond(usize),
}

fn item_key(r: &Resolved) -> ItemKey {
    match r {
        Resolved::Str(s) => ItemKey::Str(Rc::as_ptr(s) as *const u8 as usize),
        Resolved::Num(n) => ItemKey::Num(*n),
        Resolved::Bool(b) => ItemKey::Bool(*b),
        Resolved::List(l) => ItemKey::List(Rc::as_ptr(l) as *const (Resolved, Span) as usize),
        Resolved::Cond(c, ..) => ItemKey::Cond(Rc::as_ptr(c) as usize),
    }
}

impl Resolved {
    fn kind(&self) -> &'static str {
        match self {
            Resolved::Str(_) => "a string",
            Resolved::Num(_) => "a number",
            Resolved::Bool(_) => "a boolean",
            Resolved::List(_) => "a list",
            Resolved::Cond(..) => "a condition",
        }
    }
}

struct Binding {
    value: Option<Resolved>,
    name_span: Span,
    used: bool,
}

/// The type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldTy {
    Str(StrField),
    Num(NumField),
    Paging,
}

fn field_of(name: &str) -> Option<FieldTy> {
    Some(match name.to_ascii_lowercase().as_str() {
        "path" => FieldTy::Str(StrField::Path),
        "name" => FieldTy::Str(StrField::Name),
        "ext" => FieldTy::Str(StrField::Ext),
        "dir" => FieldTy::Str(StrField::Dir),
        "image" => FieldTy::Str(StrField::Image),
        "process" => FieldTy::Str(StrField::Process),
        "user" => FieldTy::Str(StrField::User),
        "pid" => FieldTy::Num(NumField::Pid),
        "ppid" => FieldTy::Num(NumField::Ppid),
        "size" => FieldTy::Num(NumField::Size),
        "paging" => FieldTy::Paging,
        _ => return None,
    })
}

/// Whether a string field holds a full path (gets separator normalization).
fn is_path_field(f: StrField) -> bool {
    matches!(f, StrField::Path | StrField::Dir | StrField::Image)
}

fn str_field_name(f: StrField) -> &'static str {
    match f {
        StrField::Path => "path",
        StrField::Name => "name",
        StrField::Ext => "ext",
        StrField::Dir => "dir",
        StrField::Image => "image",
        StrField::Process => "process",
        StrField::User => "user",
    }
}

fn num_field_name(f: NumField) -> &'static str {
    match f {
        NumField::Pid => "pid",
        NumField::Ppid => "ppid",
        NumField::Size => "size",
    }
}

/// How much path normalization a constant gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PathNorm {
    /// Not a path: fold only.
    None,
    /// A pattern or fragment: separators converted and collapsed.
    Separators,
    /// A whole path: separators, and no trailing separator except at a root.
    Full,
}

/// Normalizes `s` for comparison against events of `target`.
fn normalize(s: &str, target: Target, norm: PathNorm) -> String {
    let sep = target.separator() as char;
    let mut out = String::with_capacity(s.len());
    if norm == PathNorm::None {
        out.push_str(s);
    } else {
        let is_sep = |c: char| c == sep || (target == Target::Windows && c == '/');
        let mut chars = s.chars().peekable();
        // A UNC prefix `\\server` keeps its double separator.
        if target == Target::Windows {
            let mut probe = s.chars();
            if let (Some(a), Some(b), Some(c)) = (probe.next(), probe.next(), probe.next()) {
                if is_sep(a) && is_sep(b) && !is_sep(c) {
                    out.push(sep);
                    out.push(sep);
                    chars.next();
                    chars.next();
                }
            }
        }
        let mut prev_sep = out.ends_with(sep);
        for c in chars {
            if is_sep(c) {
                if !prev_sep {
                    out.push(sep);
                }
                prev_sep = true;
            } else {
                out.push(c);
                prev_sep = false;
            }
        }
        if norm == PathNorm::Full && out.ends_with(sep) && !is_root(&out, target) {
            out.pop();
        }
    }
    if target.case_insensitive() {
        out.chars().map(fold_char).collect()
    } else {
        out
    }
}

/// `\`, `C:\`, `\\` or `/`: a path whose trailing separator must stay.
fn is_root(p: &str, target: Target) -> bool {
    match target {
        Target::Linux => p == "/",
        Target::Windows => {
            let b = p.as_bytes();
            p == "\\"
                || p == "\\\\"
                || (b.len() == 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
        }
    }
}

/// Whether a normalized path is absolute on `target`.
fn is_absolute(p: &str, target: Target) -> bool {
    match target {
        Target::Linux => p.starts_with('/'),
        Target::Windows => {
            let b = p.as_bytes();
            p.starts_with('\\')
                || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
                || (b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        }
    }
}

/// Whether normalized path `inner` is `outer` or below it, at a separator
/// boundary (the semantics of `under`, as the evaluators implement it). The
/// checker itself uses [`ancestors`], which lists every such `outer` at
/// once; this definition is what the tests hold it to.
#[cfg(test)]
fn path_under(inner: &str, outer: &str, target: Target) -> bool {
    let sep = target.separator() as char;
    if inner == outer {
        return true;
    }
    match inner.strip_prefix(outer) {
        Some(rest) => outer.ends_with(sep) || rest.starts_with(sep),
        None => false,
    }
}

struct Checker {
    target: Target,
    lets: HashMap<String, Binding>,
    /// Names in definition order, for help texts.
    let_order: Vec<String>,
    diags: Vec<Diagnostic>,
    /// Every distinct string literal, once.
    interned: HashSet<Rc<str>>,
    work: Work,
    /// Whether the expansion limit was already reported.
    over_limit: bool,
}

impl Checker {
    fn new(target: Target) -> Self {
        Checker {
            target,
            lets: HashMap::new(),
            let_order: Vec::new(),
            diags: Vec::new(),
            interned: HashSet::new(),
            work: Work::default(),
            over_limit: false,
        }
    }

    fn intern(&mut self, s: &str) -> Rc<str> {
        if let Some(r) = self.interned.get(s) {
            return r.clone();
        }
        let r: Rc<str> = Rc::from(s);
        self.interned.insert(r.clone());
        r
    }

    /// Accounts for `items` list items and `bytes` string bytes about to be
    /// materialized at `span`; `false` (after one located error) once the
    /// caps are exceeded, and the caller then does not do the work.
    fn charge(&mut self, items: usize, bytes: usize, span: Span) -> bool {
        if self.over_limit {
            return false;
        }
        self.work.items = self.work.items.saturating_add(items as u64);
        self.work.bytes = self.work.bytes.saturating_add(bytes as u64);
        if self.work.items <= MAX_EXPANDED_ITEMS && self.work.bytes <= MAX_EXPANDED_BYTES {
            return true;
        }
        if !self.over_limit {
            self.over_limit = true;
            let what = if self.work.items > MAX_EXPANDED_ITEMS {
                format!("{MAX_EXPANDED_ITEMS} list items")
            } else {
                format!("{MAX_EXPANDED_BYTES} bytes of string constants")
            };
            self.error(
                Diagnostic::error(
                    "pol::too-large",
                    span,
                    format!("expanding this takes the policy over {what}, the most one compile may produce"),
                )
                .with_label("expansion limit reached here")
                .with_help("lists that splice other lists grow with every level; define one list per purpose and refer to it where it is used"),
            );
        }
        false
    }

    /// [`normalize`], charged against the expansion caps.
    fn norm(&mut self, s: &str, norm: PathNorm, span: Span) -> Option<String> {
        self.charge(0, s.len(), span)
            .then(|| normalize(s, self.target, norm))
    }

    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn define(&mut self, l: &ast::Let) {
        let value = self.resolve(&l.value);
        let name = &l.name.node;
        if let Some(prev) = self.lets.get(name) {
            let prev_span = prev.name_span;
            self.error(
                Diagnostic::error(
                    "pol::redefined",
                    l.name.span,
                    format!("`{name}` is already defined"),
                )
                .with_label("defined again here")
                .with_related(prev_span, "first defined here")
                .with_help(
                    "each name is defined once; pick another name or remove one of the `let`s",
                ),
            );
            return;
        }
        self.let_order.push(name.clone());
        self.lets.insert(
            name.clone(),
            Binding {
                value,
                name_span: l.name.span,
                used: false,
            },
        );
    }

    /// `target X`: first, and the same as the target compiled for.
    fn declared(&mut self, d: &ast::TargetDecl, first: bool) {
        if !first {
            self.error(
                Diagnostic::error(
                    "pol::target",
                    d.span,
                    "`target` must be the first statement of the file",
                )
                .with_label("after other statements")
                .with_help("move it to the top, before every `let` and rule"),
            );
        }
        if d.target.node != self.target {
            self.error(
                Diagnostic::error(
                    "pol::target",
                    d.target.span,
                    format!(
                        "this policy is written for {}, but it is being compiled for {}",
                        d.target.node.name(),
                        self.target.name()
                    ),
                )
                .with_label("declared here")
                .with_help(format!(
                    "compile it with `--target {}` (or without `--target`: the file's own target is used)",
                    d.target.node.name()
                )),
            );
        }
    }

    fn warn_unused_lets(&mut self) {
        let mut unused: Vec<(String, Span)> = self
            .lets
            .iter()
            .filter(|(_, b)| !b.used)
            .map(|(n, b)| (n.clone(), b.name_span))
            .collect();
        unused.sort_by_key(|(_, s)| s.start);
        for (name, span) in unused {
            self.diags.push(
                Diagnostic::warning("pol::unused", span, format!("`{name}` is never used"))
                    .with_label("defined here")
                    .with_help(format!("refer to it as `${name}`, or remove the `let`")),
            );
        }
    }

    /// Resolves `$name`s in a value. `None` after reporting an error.
    fn resolve(&mut self, v: &Spanned<Value>) -> Option<Resolved> {
        match &v.node {
            Value::Bare(s) | Value::Quoted(s) => {
                self.lint_text(s, v);
                Some(Resolved::Str(self.intern(s)))
            }
            Value::Number(n) => Some(Resolved::Num(*n)),
            Value::Bool(b) => Some(Resolved::Bool(*b)),
            Value::Var(name) => match self.lets.get_mut(name) {
                Some(b) => {
                    b.used = true;
                    b.value.clone()
                }
                None => {
                    let help = if self.let_order.is_empty() {
                        format!("define it before its first use: let {name} = ...")
                    } else if let Some(s) = suggest(name, self.let_order.iter().map(String::as_str))
                    {
                        format!("did you mean `${s}`?")
                    } else {
                        format!(
                            "defined names are: {}",
                            self.let_order
                                .iter()
                                .map(|n| format!("${n}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.error(
                        Diagnostic::error(
                            "pol::undefined",
                            v.span,
                            format!("`${name}` is not defined"),
                        )
                        .with_label("not defined (a `let` must come before its use)")
                        .with_help(help),
                    );
                    None
                }
            },
            Value::Cond(e) => {
                let c = self.expr(e)?;
                let (size, depth) = cond_measure(&c);
                if depth > crate::parse::MAX_NESTING {
                    self.error(
                        Diagnostic::error(
                            "pol::too-large",
                            v.span,
                            format!(
                                "named conditions nested more than {} deep",
                                crate::parse::MAX_NESTING
                            ),
                        )
                        .with_label("too deep")
                        .with_help("simplify: refer to fewer named conditions inside each other"),
                    );
                    return None;
                }
                Some(Resolved::Cond(Rc::new(c), size))
            }
            Value::List(items) => {
                let mut out: Vec<(Resolved, Span)> = Vec::new();
                let mut seen: HashSet<ItemKey> = HashSet::new();
                let mut ok = true;
                for item in items {
                    match self.resolve(item) {
                        // A list variable inside a list is spliced in.
                        Some(Resolved::List(inner)) if matches!(item.node, Value::Var(_)) => {
                            if !self.charge(inner.len(), 0, item.span) {
                                return None;
                            }
                            for (r, span) in inner.iter() {
                                if seen.insert(item_key(r)) {
                                    out.push((r.clone(), *span));
                                }
                            }
                        }
                        Some(Resolved::List(_)) => {
                            self.error(
                                Diagnostic::error(
                                    "pol::type",
                                    item.span,
                                    "lists cannot contain lists",
                                )
                                .with_label("nested list")
                                .with_help(
                                    "write the items of the inner list directly in the outer one",
                                ),
                            );
                            ok = false;
                        }
                        Some(r) => {
                            if !self.charge(1, 0, item.span) {
                                return None;
                            }
                            if seen.insert(item_key(&r)) {
                                out.push((r, item.span));
                            }
                        }
                        None => ok = false,
                    }
                }
                ok.then(|| Resolved::List(out.into()))
            }
        }
    }

    fn type_error(&mut self, span: Span, message: String, label: String, help: impl Into<String>) {
        self.error(
            Diagnostic::error("pol::type", span, message)
                .with_label(label)
                .with_help(help),
        );
    }

    /// `$name` in a rule's operations: a `let` holding operation words
    /// (`[write, rename]`, `writes`, `any`).
    fn op_set(&mut self, name: &Spanned<String>) -> Option<OpSet> {
        let v = Spanned::new(
            Value::Var(name.node.clone()),
            Span::new(name.span.start.saturating_sub(1), name.span.end),
        );
        let items: Vec<(Resolved, Span)> = match self.resolve(&v)? {
            Resolved::List(items) => items.iter().cloned().collect(),
            single => vec![(single, v.span)],
        };
        let mut set = OpSet::EMPTY;
        let mut ok = true;
        for (item, span) in items {
            let op = match &item {
                Resolved::Str(s) if s.eq_ignore_ascii_case("any") => Some(OpSet::ALL),
                Resolved::Str(s) => fltpolicy_core::event::Op::from_name(&s.to_ascii_lowercase())
                    .map(|op| OpSet::EMPTY.with(op)),
                _ => None,
            };
            match op {
                Some(o) => set = set.union(o),
                None => {
                    self.type_error(
                        span,
                        format!(
                            "`${}` is used as operations, but this item is not an operation",
                            name.node
                        ),
                        "not an operation".into(),
                        format!(
                            "operations are: {}, or `any`",
                            crate::parse::OP_WORDS.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(set)
    }

    /// A single string for a path position (`under`, `from image`).
    fn path_value(&mut self, v: &Spanned<Value>, what: &str) -> Option<Rc<str>> {
        match self.resolve(v)? {
            Resolved::Str(s) => Some(s),
            Resolved::Num(n) => {
                self.type_error(
                    v.span,
                    format!("{what} must be a path, found a number"),
                    "a number".into(),
                    format!("quote it if it really is a path: \"{n}\""),
                );
                None
            }
            other => {
                self.type_error(
                    v.span,
                    format!("{what} must be a path, found {}", other.kind()),
                    other.kind().into(),
                    "write one path, bare (C:\\Data) or quoted (\"C:\\Program Files\")",
                );
                None
            }
        }
    }

    fn rule(&mut self, r: &ast::Rule, index: u32) -> Option<ir::Rule> {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let ops = match &r.ops.node {
            Ops::Any => OpSet::ALL,
            Ops::List(list) => {
                let mut set = OpSet::EMPTY;
                for op in list {
                    if set.contains(op.node) {
                        self.diags.push(
                            Diagnostic::warning(
                                "pol::duplicate-op",
                                op.span,
                                format!("`{}` is listed twice", op.node.name()),
                            )
                            .with_label("repeated")
                            .with_help("remove the repetition"),
                        );
                    }
                    set = set.with(op.node);
                }
                set
            }
        };
        let mut ops = ops;
        for name in &r.op_refs {
            ops = ops.union(self.op_set(name)?);
        }
        let under = match &r.under {
            Some(v) => self
                .path_value(v, "`under`")
                .and_then(|p| Some((self.norm(&p, PathNorm::Full, v.span)?, p)))
                .map(|(n, p)| {
                self.lint_posix(&p, v.span);
                if !is_absolute(&n, self.target) {
                    let example = match self.target {
                        Target::Windows => "C:\\Data",
                        Target::Linux => "/srv/data",
                    };
                    self.diags.push(
                        Diagnostic::warning(
                            "pol::relative-path",
                            v.span,
                            format!("`{p}` is not an absolute {} path; events carry full paths, so this rule never matches", self.target.name()),
                        )
                        .with_label("relative path")
                        .with_help(format!("write the full path, e.g. `under {example}`")),
                    );
                }
                n
            }),
            None => None,
        };
        let mut parts = Vec::new();
        if let Some(from) = &r.from {
            if let Some(c) = self.who(from) {
                parts.push(c);
            }
        }
        if let Some(w) = &r.where_ {
            if let Some(c) = self.expr(w) {
                parts.push(c);
            }
        }
        if let Some(u) = &r.unless {
            if let Some(c) = self.expr(u) {
                parts.push(Cond::Not(Box::new(c)));
            }
        }
        let errors_after = self.diags.iter().filter(|d| d.is_error()).count();
        if errors_after > errors_before {
            return None;
        }
        let cond = and_all(parts);
        Some(ir::Rule {
            index,
            line: r.line,
            span: r.span,
            action: r.action.node.action(),
            ops,
            under,
            cond,
            tag: r
                .tag
                .as_ref()
                .map(|t| {
                    let as_value = Spanned::new(Value::Quoted(t.node.clone()), t.span);
                    self.lint_text(&t.node, &as_value);
                    t.node.clone()
                })
                .unwrap_or_default(),
        })
    }

    fn who(&mut self, w: &Spanned<Who>) -> Option<Cond> {
        let test = match &w.node {
            Who::Pid(v) => match self.resolve(v)? {
                Resolved::Num(n) => Test::Num {
                    field: NumField::Pid,
                    op: NumOp::Eq,
                    value: n,
                },
                Resolved::List(items) => Test::NumIn {
                    field: NumField::Pid,
                    values: self.num_list(items, "pid", v.span)?,
                },
                other => {
                    self.type_error(
                        v.span,
                        format!("`from pid` takes a number, found {}", other.kind()),
                        other.kind().into(),
                        "write the process id as digits: from pid 1234",
                    );
                    return None;
                }
            },
            Who::Image(v) => match self.resolve(v)? {
                Resolved::List(items) => Test::StrIn {
                    field: StrField::Image,
                    values: self.str_list(items, StrField::Image, PathNorm::Full, v.span)?,
                },
                _ => {
                    let p = self.path_value(v, "`from image`")?;
                    Test::StrEq {
                        field: StrField::Image,
                        value: self.norm(&p, PathNorm::Full, v.span)?,
                        negate: false,
                    }
                }
            },
            Who::Process(v) => match self.resolve(v)? {
                Resolved::Str(s) => Test::StrEq {
                    field: StrField::Process,
                    value: self.norm(&s, PathNorm::None, v.span)?,
                    negate: false,
                },
                Resolved::List(items) => Test::StrIn {
                    field: StrField::Process,
                    values: self.str_list(items, StrField::Process, PathNorm::None, v.span)?,
                },
                other => {
                    self.type_error(
                        v.span,
                        format!(
                            "`from process` takes an image file name, found {}",
                            other.kind()
                        ),
                        other.kind().into(),
                        "write the file name of the program: from process backup.exe",
                    );
                    return None;
                }
            },
        };
        Some(Cond::Test(test))
    }

    fn num_list(
        &mut self,
        items: Rc<[(Resolved, Span)]>,
        field: &str,
        at: Span,
    ) -> Option<Vec<u64>> {
        if !self.charge(items.len(), 0, at) {
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (r, span) in items.iter() {
            let span = *span;
            match r {
                Resolved::Num(n) => out.push(*n),
                other => {
                    self.type_error(
                        span,
                        format!(
                            "`{field}` is a number, but this list item is {}",
                            other.kind()
                        ),
                        other.kind().into(),
                        "a list compared with a number field holds numbers only",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn str_list(
        &mut self,
        items: Rc<[(Resolved, Span)]>,
        field: StrField,
        norm: PathNorm,
        at: Span,
    ) -> Option<Vec<String>> {
        if !self.charge(items.len(), 0, at) {
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (r, span) in items.iter() {
            let span = *span;
            match r {
                Resolved::Str(s) => {
                    // Charged before the lint and the copy: both read it whole.
                    let n = self.norm(s, norm, at)?;
                    self.lint_equal(field, s, span);
                    if is_path_field(field) && norm == PathNorm::Full {
                        self.lint_posix(s, span);
                    }
                    out.push(n)
                }
                other => {
                    self.type_error(
                        span,
                        format!(
                            "`{}` is a string, but this list item is {}",
                            str_field_name(field),
                            other.kind()
                        ),
                        other.kind().into(),
                        "quote it to compare it as text",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A condition. `None` after reporting at least one error.
    fn expr(&mut self, e: &Spanned<Expr>) -> Option<Cond> {
        match &e.node {
            Expr::And(a, b) => {
                let (a, b) = (self.expr(a), self.expr(b));
                Some(and_all(vec![a?, b?]).unwrap_or(Cond::And(Vec::new())))
            }
            Expr::Or(a, b) => {
                let (a, b) = (self.expr(a), self.expr(b));
                let mut v = Vec::new();
                for c in [a?, b?] {
                    match c {
                        Cond::Or(inner) => v.extend(inner),
                        c => v.push(c),
                    }
                }
                Some(Cond::Or(v))
            }
            Expr::Not(a) => Some(Cond::Not(Box::new(self.expr(a)?))),
            Expr::Paren(a) => self.expr(a),
            Expr::Ref(n) => {
                let r = self.resolve(&Spanned::new(Value::Var(n.node.clone()), e.span))?;
                match r {
                    Resolved::Cond(c, size) => {
                        if !self.charge(size, 0, e.span) {
                            return None;
                        }
                        Some((*c).clone())
                    }
                    other => {
                        self.type_error(
                            e.span,
                            format!("`${}` is {}, not a condition", n.node, other.kind()),
                            other.kind().into(),
                            format!(
                                "compare a field with it (`name == ${0}`), or define a condition: let {0} = FIELD OP VALUE ...",
                                n.node
                            ),
                        );
                        None
                    }
                }
            }
            Expr::Flag(f) => {
                let ty = self.field(f)?;
                match ty {
                    FieldTy::Paging => Some(Cond::Test(Test::Paging { value: true })),
                    FieldTy::Str(_) | FieldTy::Num(_) => {
                        self.error(
                            Diagnostic::error(
                                "pol::type",
                                f.span,
                                format!("`{}` is not a boolean field", f.node),
                            )
                            .with_label("needs a comparison")
                            .with_help(format!(
                                "only `paging` stands alone; compare this field, e.g. `{} == ...`",
                                f.node
                            )),
                        );
                        None
                    }
                }
            }
            Expr::Compare { field, op, value } => {
                let ty = self.field(field);
                let v = self.resolve(value);
                let (ty, v) = (ty?, v?);
                self.compare_any(ty, op, value.span, v)
            }
        }
    }

    fn field(&mut self, f: &Spanned<String>) -> Option<FieldTy> {
        if let Some(t) = field_of(&f.node) {
            return Some(t);
        }
        let help = match suggest(&f.node, FIELD_WORDS) {
            Some(s) => format!("did you mean `{s}`? fields are: {}", FIELD_WORDS.join(", ")),
            None => format!("fields are: {}", FIELD_WORDS.join(", ")),
        };
        self.error(
            Diagnostic::error(
                "pol::unknown-field",
                f.span,
                format!("unknown field `{}`", f.node),
            )
            .with_label("not a field")
            .with_help(help),
        );
        None
    }

    /// A comparison, where a word operator with a list (`name endswith
    /// [".a", ".b"]`, `path under [$a, $b]`, `any` optional) is true when
    /// it holds for any item: an `or` of one test per item.
    fn compare_any(
        &mut self,
        ty: FieldTy,
        op: &Spanned<CmpOp>,
        vspan: Span,
        v: Resolved,
    ) -> Option<Cond> {
        let word_op = matches!(
            op.node,
            CmpOp::Under | CmpOp::StartsWith | CmpOp::EndsWith | CmpOp::Contains | CmpOp::Matches
        );
        let Resolved::List(items) = v else {
            return self.compare(ty, op, vspan, v).map(Cond::Test);
        };
        let under_non_path =
            matches!(ty, FieldTy::Str(f) if op.node == CmpOp::Under && !is_path_field(f));
        if !(word_op && matches!(ty, FieldTy::Str(_))) || under_non_path {
            return self
                .compare(ty, op, vspan, Resolved::List(items))
                .map(Cond::Test);
        }
        if !self.charge(items.len(), 0, vspan) {
            return None;
        }
        if items.is_empty() {
            self.diags.push(
                Diagnostic::warning(
                    "pol::always-false",
                    vspan,
                    format!(
                        "`{}` any of an empty list is always false",
                        op.node.keyword()
                    ),
                )
                .with_label("empty list")
                .with_help("add items to the list, or remove the comparison"),
            );
        }
        let mut tests = Vec::new();
        let mut ok = true;
        for (item, span) in items.iter() {
            match self.compare(ty, op, *span, item.clone()) {
                Some(t) => tests.push(Cond::Test(t)),
                None => ok = false,
            }
        }
        ok.then_some(Cond::Or(tests))
    }

    fn compare(
        &mut self,
        ty: FieldTy,
        op: &Spanned<CmpOp>,
        vspan: Span,
        v: Resolved,
    ) -> Option<Test> {
        let opkw = op.node.keyword();
        match ty {
            FieldTy::Paging => {
                let negate = match op.node {
                    CmpOp::Eq => false,
                    CmpOp::Ne => true,
                    _ => {
                        self.type_error(
                            op.span,
                            format!("`{opkw}` does not apply to `paging`"),
                            "not a boolean comparison".into(),
                            "`paging` is a boolean: write `paging`, `not paging`, `paging == true` or `paging != true`",
                        );
                        return None;
                    }
                };
                match v {
                    Resolved::Bool(b) => Some(Test::Paging { value: b != negate }),
                    other => {
                        self.type_error(
                            vspan,
                            format!("`paging` is a boolean, found {}", other.kind()),
                            other.kind().into(),
                            "compare it with `true` or `false`",
                        );
                        None
                    }
                }
            }
            FieldTy::Num(nf) => {
                let name = num_field_name(nf);
                let num_op = match op.node {
                    CmpOp::Eq => NumOp::Eq,
                    CmpOp::Ne => NumOp::Ne,
                    CmpOp::Lt => NumOp::Lt,
                    CmpOp::Le => NumOp::Le,
                    CmpOp::Gt => NumOp::Gt,
                    CmpOp::Ge => NumOp::Ge,
                    CmpOp::In => {
                        return match v {
                            Resolved::List(items) => Some(Test::NumIn {
                                field: nf,
                                values: self.num_list(items, name, vspan)?,
                            }),
                            other => {
                                self.type_error(
                                    vspan,
                                    format!("`in` needs a list, found {}", other.kind()),
                                    other.kind().into(),
                                    format!("write a list: {name} in [4, 8]"),
                                );
                                None
                            }
                        };
                    }
                    _ => {
                        self.type_error(
                            op.span,
                            format!("`{opkw}` compares text, but `{name}` is a number"),
                            "a string operator".into(),
                            "numbers compare with == != < <= > >= and `in [..]`",
                        );
                        return None;
                    }
                };
                match v {
                    Resolved::Num(n) => Some(Test::Num {
                        field: nf,
                        op: num_op,
                        value: n,
                    }),
                    Resolved::List(_) if matches!(op.node, CmpOp::Eq) => {
                        self.type_error(
                            vspan,
                            format!("`{name}` is a number, found a list"),
                            "a list".into(),
                            format!("to test membership write `{name} in [...]`"),
                        );
                        None
                    }
                    other => {
                        self.type_error(
                            vspan,
                            format!("`{name}` is a number, found {}", other.kind()),
                            other.kind().into(),
                            format!("compare `{name}` with digits, e.g. `{name} {opkw} 1234`"),
                        );
                        None
                    }
                }
            }
            FieldTy::Str(sf) => {
                let name = str_field_name(sf);
                let path = is_path_field(sf);
                if op.node == CmpOp::In {
                    return match v {
                        Resolved::List(items) => {
                            let norm = if path { PathNorm::Full } else { PathNorm::None };
                            let values = self.str_list(items, sf, norm, vspan)?;
                            if values.is_empty() {
                                self.diags.push(
                                    Diagnostic::warning(
                                        "pol::always-false",
                                        vspan,
                                        "`in` an empty list is always false",
                                    )
                                    .with_label("empty list")
                                    .with_help("add items to the list, or remove the comparison"),
                                );
                            }
                            Some(Test::StrIn { field: sf, values })
                        }
                        other => {
                            self.type_error(
                                vspan,
                                format!("`in` needs a list, found {}", other.kind()),
                                other.kind().into(),
                                format!(
                                    "write a list: {name} in [\"a\", \"b\"], or compare with `==`"
                                ),
                            );
                            None
                        }
                    };
                }
                if matches!(op.node, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge) {
                    self.type_error(
                        op.span,
                        format!("`{opkw}` compares numbers, but `{name}` is a string"),
                        "a number operator".into(),
                        "strings compare with == != under startswith endswith contains in matches",
                    );
                    return None;
                }
                if op.node == CmpOp::Under && !path {
                    self.type_error(
                        op.span,
                        format!("`under` compares paths, but `{name}` is not a path"),
                        "needs a path field".into(),
                        "use `under` with path, dir or image; use `==`, `startswith` or `matches` here",
                    );
                    return None;
                }
                let s = match v {
                    Resolved::Str(s) => s,
                    Resolved::List(_) => {
                        self.type_error(
                            vspan,
                            format!("`{opkw}` takes one value, found a list"),
                            "a list".into(),
                            format!("to test membership write `{name} in [...]`; `startswith`, `endswith`, `contains`, `matches` and `under` take a list too (any item)"),
                        );
                        return None;
                    }
                    Resolved::Num(n) => {
                        self.type_error(
                            vspan,
                            format!("`{name}` is a string, found a number"),
                            "a number".into(),
                            format!("quote it to compare it as text: \"{n}\""),
                        );
                        return None;
                    }
                    Resolved::Bool(b) => {
                        self.type_error(
                            vspan,
                            format!("`{name}` is a string, found a boolean"),
                            "a boolean".into(),
                            format!("quote it to compare it as text: \"{b}\""),
                        );
                        return None;
                    }
                    Resolved::Cond(..) => {
                        self.type_error(
                            vspan,
                            format!("`{name}` is a string, found a condition"),
                            "a named condition".into(),
                            "use a named condition where a condition goes: `where $name`, `unless $name`",
                        );
                        return None;
                    }
                };
                match op.node {
                    CmpOp::Eq | CmpOp::Ne => {
                        self.lint_equal(sf, &s, vspan);
                        if path {
                            self.lint_posix(&s, vspan);
                        }
                    }
                    CmpOp::Under => self.lint_posix(&s, vspan),
                    CmpOp::Matches => self.lint_glob(sf, &s, vspan),
                    _ => {}
                }
                let full = if path { PathNorm::Full } else { PathNorm::None };
                let partial = if path {
                    PathNorm::Separators
                } else {
                    PathNorm::None
                };
                let how = match op.node {
                    CmpOp::Eq | CmpOp::Ne => full,
                    CmpOp::Under => PathNorm::Full,
                    _ => partial,
                };
                let value = self.norm(&s, how, vspan)?;
                Some(match op.node {
                    CmpOp::Eq | CmpOp::Ne => Test::StrEq {
                        field: sf,
                        value,
                        negate: op.node == CmpOp::Ne,
                    },
                    CmpOp::Under => Test::Under { field: sf, value },
                    CmpOp::StartsWith => Test::StartsWith { field: sf, value },
                    CmpOp::EndsWith => Test::EndsWith { field: sf, value },
                    CmpOp::Contains => Test::Contains { field: sf, value },
                    CmpOp::Matches => Test::Matches {
                        field: sf,
                        pattern: value,
                    },
                    // Handled above.
                    CmpOp::In | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => return None,
                })
            }
        }
    }

    /// Warns about characters in a value that a reader cannot see or would
    /// misread: invisible and bidirectional-control characters anywhere,
    /// and words that mix Latin letters with look-alike letters of another
    /// script (Cyrillic `а` in `pаyroll`). The warning names the code points.
    fn lint_text(&mut self, s: &str, v: &Spanned<Value>) {
        if s.is_ascii() {
            return;
        }
        // Source offset of byte `i` of the value (`""` in a quoted string
        // stands for one `"`).
        let at = |i: usize| -> usize {
            match &v.node {
                Value::Quoted(_) => v.span.start + 1 + i + s[..i].matches('"').count(),
                _ => v.span.start + i,
            }
        };
        let mut invisible = Vec::new();
        let mut bidi = Vec::new();
        for (i, c) in s.char_indices() {
            match char_class(c) {
                CharClass::Bidi => bidi.push((i, c)),
                CharClass::Invisible => invisible.push((i, c)),
                CharClass::Visible => {}
            }
        }
        for (list, what, help) in [
            (
                bidi,
                "bidirectional control characters, which reorder how the text is displayed",
                "retype the value; what an editor shows is not the text the rule compares",
            ),
            (
                invisible,
                "invisible characters",
                "retype the value without them, or write them on purpose in a `let` with a comment",
            ),
        ] {
            if let Some(&(i, c)) = list.first() {
                let end = at(i) + c.len_utf8();
                self.diags.push(
                    Diagnostic::warning(
                        "pol::confusable",
                        Span::new(at(i), end),
                        format!(
                            "this value contains {what}: {}",
                            code_points(list.iter().map(|&(_, c)| c))
                        ),
                    )
                    .with_label(format!("U+{:04X} here", c as u32))
                    .with_help(help),
                );
            }
        }
        // Mixed scripts, word by word; one warning per value.
        let mut mixed: Vec<(usize, char, Script)> = Vec::new();
        let mut first_word = "";
        let mut word_start = 0;
        for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
            if c.is_alphanumeric() {
                continue;
            }
            let word = &s[word_start..i];
            let base = word_start;
            word_start = i + c.len_utf8();
            if !word.chars().any(|c| script(c) == Script::Latin) {
                continue;
            }
            let before = mixed.len();
            mixed.extend(
                word.char_indices()
                    .map(|(k, c)| (base + k, c, script(c)))
                    .filter(|&(_, _, sc)| !matches!(sc, Script::Latin | Script::Other)),
            );
            if before == 0 && !mixed.is_empty() {
                first_word = word;
            }
        }
        if let Some(&(i, c, sc)) = mixed.first() {
            let mut scripts: Vec<&str> = Vec::new();
            for &(_, _, sc) in &mixed {
                if !scripts.contains(&sc.name()) {
                    scripts.push(sc.name());
                }
            }
            self.diags.push(
                Diagnostic::warning(
                    "pol::confusable",
                    Span::new(at(i), at(i) + c.len_utf8()),
                    format!(
                        "`{first_word}` mixes Latin letters with {} letters that look like Latin ones: {}",
                        scripts.join(" and "),
                        code_points(mixed.iter().map(|&(_, c, _)| c))
                    ),
                )
                .with_label(format!("U+{:04X} is {}", c as u32, sc.name()))
                .with_help("retype the value in one script; a look-alike letter never matches the Latin one"),
            );
        }
    }

    /// On the Windows target, a POSIX absolute path (`/etc/shadow`) never
    /// matches: events carry drive-letter or UNC paths (the mirror of the
    /// relative-path warning `C:\x` gets on Linux).
    fn lint_posix(&mut self, raw: &str, span: Span) {
        if self.target == Target::Windows && raw.starts_with('/') && !raw.starts_with("//") {
            self.diags.push(
                Diagnostic::warning(
                    "pol::relative-path",
                    span,
                    format!("`{raw}` is a POSIX path; Windows events carry drive-letter or UNC paths (C:\\..., \\\\server\\share), so this never matches"),
                )
                .with_label("POSIX path on the Windows target")
                .with_help("write the Windows path (C:\\Data), or compile for Linux: `target linux` / `--target linux`"),
            );
        }
    }

    /// Warns about whole-value comparisons that can never be true because
    /// of what the field holds.
    fn lint_equal(&mut self, field: StrField, value: &str, span: Span) {
        let single = matches!(field, StrField::Name | StrField::Ext | StrField::Process);
        let has_sep =
            value.contains('/') || (self.target == Target::Windows && value.contains('\\'));
        if field == StrField::Ext && !value.is_empty() && !value.starts_with('.') && !has_sep {
            self.diags.push(
                Diagnostic::warning(
                    "pol::never-matches",
                    span,
                    format!("`ext` includes the dot, so it never equals `{value}`"),
                )
                .with_label("no leading dot")
                .with_help(format!("did you mean \".{value}\"?")),
            );
        } else if single && has_sep {
            let name = str_field_name(field);
            self.diags.push(
                Diagnostic::warning(
                    "pol::never-matches",
                    span,
                    format!("`{name}` is a single path component and never contains a separator"),
                )
                .with_label("contains a separator")
                .with_help("compare `path` or `image` for full paths, or use `under`"),
            );
        }
    }

    /// Warns about glob patterns that do not do what they seem to.
    fn lint_glob(&mut self, field: StrField, pattern: &str, span: Span) {
        let seps: &[char] = match self.target {
            Target::Windows => &['\\', '/'],
            Target::Linux => &['/'],
        };
        let sep = self.target.separator() as char;
        if pattern.split(seps).any(|c| c.contains("**") && c != "**") {
            self.diags.push(
                Diagnostic::warning(
                    "pol::glob",
                    span,
                    "`**` spans components only when it is a whole component; inside a name it acts like `*`",
                )
                .with_label("`**` inside a component")
                .with_help(format!("write `**` between separators: C:{sep}Users{sep}**{sep}*.key")),
            );
        }
        if is_path_field(field)
            && !pattern.starts_with("**")
            && !is_absolute(
                &normalize(pattern, self.target, PathNorm::Separators),
                self.target,
            )
        {
            let name = str_field_name(field);
            self.diags.push(
                Diagnostic::warning(
                    "pol::glob",
                    span,
                    format!("`{name}` holds a full path, and `matches` compares the whole of it"),
                )
                .with_label("relative pattern")
                .with_help(format!(
                    "start the pattern with `**{sep}` to match at any depth, or match `name` instead"
                )),
            );
        }
    }

    /// Warns about rules no event can reach: an earlier rule without a
    /// condition covers all their operations and their whole path.
    ///
    /// Indexed by path so a 10,000-rule policy checks in linear time: each
    /// rule looks up only its own path's ancestors.
    fn warn_shadowed(&mut self, rules: &[ir::Rule]) {
        // Unconditional rules seen so far: (index into `rules`, ops), the
        // earliest per distinct op set, without a path and by `under` path.
        let mut pre = Prefixes::new(self.target);
        let mut anywhere: Vec<(usize, OpSet)> = Vec::new();
        let mut seen: HashMap<u32, Vec<(usize, OpSet)>> = HashMap::new();
        for (k, r) in rules.iter().enumerate() {
            let covering = |list: Option<&Vec<(usize, OpSet)>>| {
                list.into_iter()
                    .flatten()
                    .filter(|(_, ops)| ops.union(r.ops) == *ops)
                    .map(|&(i, _)| i)
                    .min()
            };
            let mut first = covering(Some(&anywhere));
            let mut own = None;
            if let Some(u) = &r.under {
                let anc = pre.ancestors(u);
                for a in &anc {
                    first = first.into_iter().chain(covering(seen.get(a))).min();
                }
                own = anc.last().copied();
            }
            if let Some(e) = first.and_then(|i| rules.get(i)) {
                self.diags.push(
                    Diagnostic::warning(
                        "pol::unreachable",
                        r.span,
                        format!(
                            "unreachable rule, shadowed by rule {} at line {}",
                            e.index, e.line
                        ),
                    )
                    .with_label("never decides anything")
                    .with_related(e.span, "this earlier rule matches every event this one could")
                    .with_help("rules are tried in order and the first match decides; move the more specific rule first"),
                );
            }
            if r.cond.is_none() {
                let list = match own {
                    None => &mut anywhere,
                    Some(id) => seen.entry(id).or_default(),
                };
                if !list.iter().any(|(_, ops)| *ops == r.ops) {
                    list.push((k, r.ops));
                }
            }
        }
    }

    /// Warns about `allow` rules that change nothing: an event they match
    /// would otherwise fall through to a later rule, and if no later rule
    /// can match any of the same operations and paths, it falls through to
    /// "no match", which lets it through and records nothing anyway.
    /// Conditions are ignored (a later rule with a condition counts as one
    /// that may match), so the warning is never wrong, only sometimes silent.
    ///
    /// One backward pass with path indexes, linear in the total length of
    /// the rules' paths.
    fn warn_pointless_allows(&mut self, rules: &[ir::Rule]) {
        // Operations of the later rules: with no path, with any path, with
        // exactly this path, and at or below this path.
        let mut pre = Prefixes::new(self.target);
        let mut no_path = OpSet::EMPTY;
        let mut all = OpSet::EMPTY;
        let mut at: HashMap<u32, OpSet> = HashMap::new();
        let mut below: HashMap<u32, OpSet> = HashMap::new();
        for r in rules.iter().rev() {
            let anc = r.under.as_deref().map(|u| pre.ancestors(u));
            if r.action == Action::Allow {
                let reach = match &anc {
                    None => all,
                    Some(anc) => {
                        let mut reach = no_path;
                        for a in anc {
                            reach = reach.union(at.get(a).copied().unwrap_or_default());
                        }
                        let own = anc.last().and_then(|id| below.get(id)).copied();
                        reach.union(own.unwrap_or_default())
                    }
                };
                if OpSet(reach.0 & r.ops.0).is_empty() {
                    self.diags.push(
                        Diagnostic::warning(
                            "pol::no-effect",
                            r.span,
                            "this `allow` has no effect: no later rule could match the same events",
                        )
                        .with_label("changes nothing")
                        .with_help("events no rule matches are let through unrecorded anyway; `allow` matters only before a `log` or `deny` rule it should exempt events from"),
                    );
                }
            }
            all = all.union(r.ops);
            match &anc {
                None => no_path = no_path.union(r.ops),
                Some(anc) => {
                    if let Some(&own) = anc.last() {
                        let e = at.entry(own).or_default();
                        *e = e.union(r.ops);
                    }
                    for &a in anc {
                        let e = below.entry(a).or_default();
                        *e = e.union(r.ops);
                    }
                }
            }
        }
    }
}

/// Path prefixes cut at separator boundaries, each named by a small id, so
/// that listing a path's ancestors costs `O(len)` (hashing each component
/// once) instead of hashing every prefix (`O(len²)` for a deep path).
struct Prefixes<'a> {
    sep: u8,
    /// (parent prefix, next token) → prefix; a token is a separator or a
    /// run of non-separators, so a prefix's id names its text exactly.
    ids: HashMap<(u32, &'a str), u32>,
}

impl<'a> Prefixes<'a> {
    /// The id of the empty prefix.
    const ROOT: u32 = 0;

    fn new(target: Target) -> Self {
        Prefixes {
            sep: target.separator(),
            ids: HashMap::new(),
        }
    }

    /// Ids of `p` and of every path it is under (the strings [`ancestors`]
    /// lists, tested against it); `p`'s own id is last.
    fn ancestors(&mut self, p: &'a str) -> Vec<u32> {
        let b = p.as_bytes();
        let mut out = Vec::new();
        if b.first().is_none_or(|&c| c == self.sep) {
            out.push(Self::ROOT);
        }
        let (mut cur, mut i) = (Self::ROOT, 0);
        while i < b.len() {
            let j = if b[i] == self.sep {
                i + 1
            } else {
                b[i..]
                    .iter()
                    .position(|&c| c == self.sep)
                    .map_or(b.len(), |n| i + n)
            };
            // `sep` is ASCII, so every cut is on a character boundary.
            let next = u32::try_from(self.ids.len() + 1).unwrap_or(u32::MAX);
            cur = *self.ids.entry((cur, &p[i..j])).or_insert(next);
            out.push(cur);
            i = j;
        }
        out
    }
}

/// `p` and every path it is under (see `path_under` in the tests): each prefix that ends just
/// before or just after a separator. Exactly the `outer`s for which
/// `path_under(p, outer)` holds (tested against it). The checker uses
/// [`Prefixes::ancestors`], which names the same prefixes by id.
#[cfg(test)]
fn ancestors(p: &str, target: Target) -> Vec<&str> {
    let sep = target.separator();
    let mut out = vec![p];
    for (i, b) in p.bytes().enumerate().rev() {
        if b == sep {
            // `sep` is ASCII, so both cuts are on character boundaries.
            out.push(&p[..=i]);
            out.push(&p[..i]);
        }
    }
    out.dedup();
    out
}

/// How a character shows in a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CharClass {
    Visible,
    /// Shows as nothing (or as a blank that is not a space).
    Invisible,
    /// Reorders the display of the text around it (Trojan Source).
    Bidi,
}

fn char_class(c: char) -> CharClass {
    match c as u32 {
        0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069 | 0x061C => CharClass::Bidi,
        0x0000..=0x001F
        | 0x007F..=0x009F
        | 0x00AD
        | 0x034F
        | 0x115F
        | 0x1160
        | 0x17B4
        | 0x17B5
        | 0x180B..=0x180F
        | 0x200B..=0x200D
        | 0x2060..=0x2064
        | 0x3164
        | 0xFE00..=0xFE0F
        | 0xFEFF
        | 0xFFA0
        | 0xE0000..=0xE007F
        | 0xE0100..=0xE01EF => CharClass::Invisible,
        _ => CharClass::Visible,
    }
}

/// The scripts whose letters are confused with Latin ones.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Cherokee,
    /// Fullwidth Latin (U+FF21..): looks like Latin, compares differently.
    Fullwidth,
    Other,
}

impl Script {
    fn name(self) -> &'static str {
        match self {
            Script::Latin => "Latin",
            Script::Greek => "Greek",
            Script::Cyrillic => "Cyrillic",
            Script::Armenian => "Armenian",
            Script::Cherokee => "Cherokee",
            Script::Fullwidth => "fullwidth",
            Script::Other => "other",
        }
    }
}

fn script(c: char) -> Script {
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x24F | 0x1E00..=0x1EFF => {
            Script::Latin
        }
        0x370..=0x3FF | 0x1F00..=0x1FFF => Script::Greek,
        0x400..=0x52F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x531..=0x58F => Script::Armenian,
        0x13A0..=0x13FF | 0xAB70..=0xABBF => Script::Cherokee,
        0xFF21..=0xFF3A | 0xFF41..=0xFF5A => Script::Fullwidth,
        _ => Script::Other,
    }
}

/// `U+0430 U+0435`, each code point once, at most eight.
fn code_points(chars: impl Iterator<Item = char>) -> String {
    let mut seen: Vec<char> = Vec::new();
    for c in chars {
        if !seen.contains(&c) {
            seen.push(c);
            if seen.len() > 8 {
                break;
            }
        }
    }
    let mut out: Vec<String> = seen
        .iter()
        .take(8)
        .map(|&c| format!("U+{:04X}", c as u32))
        .collect();
    if seen.len() > 8 {
        out.push("and more".to_string());
    }
    out.join(" ")
}

/// Nodes and depth of a condition (each named condition is measured once,
/// when defined, and its depth is bounded then, so this recursion is too).
fn cond_measure(c: &Cond) -> (usize, usize) {
    match c {
        Cond::Test(_) => (1, 1),
        Cond::Not(inner) => {
            let (n, d) = cond_measure(inner);
            (n + 1, d + 1)
        }
        Cond::And(cs) | Cond::Or(cs) => cs
            .iter()
            .map(cond_measure)
            .fold((1, 1), |(n, d), (cn, cd)| (n + cn, d.max(cd + 1))),
    }
}

/// `and` of `parts`, flattened; `None` for no parts.
fn and_all(parts: Vec<Cond>) -> Option<Cond> {
    let mut v = Vec::new();
    for c in parts {
        match c {
            Cond::And(inner) => v.extend(inner),
            c => v.push(c),
        }
    }
    match v.len() {
        0 => None,
        1 => v.pop(),
        _ => Some(Cond::And(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_normalize() {
        let w = Target::Windows;
        assert_eq!(normalize("c:/Data//x\\", w, PathNorm::Full), "C:\\DATA\\X");
        assert_eq!(normalize("c:\\", w, PathNorm::Full), "C:\\");
        assert_eq!(
            normalize("\\\\srv\\share\\", w, PathNorm::Full),
            "\\\\SRV\\SHARE"
        );
        assert_eq!(normalize("C:\\Tmp\\", w, PathNorm::Separators), "C:\\TMP\\");
        assert_eq!(normalize("a/b", w, PathNorm::None), "A/B");
    }

    #[test]
    fn linux_paths_normalize() {
        let l = Target::Linux;
        assert_eq!(normalize("//srv//Data/", l, PathNorm::Full), "/srv/Data");
        assert_eq!(normalize("/", l, PathNorm::Full), "/");
        assert_eq!(normalize("a\\b", l, PathNorm::Full), "a\\b");
    }

    /// The definitions, quadratic and obvious, for the indexed passes.
    fn naive_warnings(rules: &[ir::Rule], target: Target) -> Vec<(&'static str, u32)> {
        let mut out = Vec::new();
        for (k, r) in rules.iter().enumerate() {
            let shadowed = rules[..k].iter().any(|e| {
                e.cond.is_none()
                    && e.ops.union(r.ops) == e.ops
                    && match (&e.under, &r.under) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(eu), Some(ru)) => path_under(ru, eu, target),
                    }
            });
            if shadowed {
                out.push(("pol::unreachable", r.index));
            }
            let overlap = |a: &Option<String>, b: &Option<String>| match (a, b) {
                (Some(a), Some(b)) => path_under(a, b, target) || path_under(b, a, target),
                _ => true,
            };
            let later = rules[k + 1..]
                .iter()
                .any(|l| l.ops.0 & r.ops.0 != 0 && overlap(&l.under, &r.under));
            if r.action == Action::Allow && !later {
                out.push(("pol::no-effect", r.index));
            }
        }
        out.sort();
        out
    }

    proptest::proptest! {
        #[test]
        fn indexed_rule_warnings_match_their_definition(
            spec in proptest::collection::vec(
                (0u8..3, 1u8..=255, 0usize..8, proptest::bool::ANY),
                0..24,
            ),
            linux in proptest::bool::ANY,
        ) {
            let target = if linux { Target::Linux } else { Target::Windows };
            let paths: [Option<&str>; 8] = if linux {
                [None, Some("/"), Some("/a"), Some("/a/b"), Some("/ab"), Some("/a/b/c"), Some(""), Some("/b")]
            } else {
                [None, Some("C:\\"), Some("C:\\A"), Some("C:\\A\\B"), Some("C:\\AB"), Some("\\"), Some("D:\\A"), Some("C:\\A\\B\\C")]
            };
            let rules: Vec<ir::Rule> = spec
                .iter()
                .enumerate()
                .map(|(k, &(action, ops, path, cond))| ir::Rule {
                    index: k as u32 + 1,
                    line: k as u32 + 1,
                    span: Span::new(k, k + 1),
                    action: [Action::Allow, Action::Log, Action::Deny][action as usize],
                    ops: OpSet(ops),
                    under: paths[path].map(str::to_string),
                    cond: cond.then_some(Cond::Test(Test::Paging { value: true })),
                    tag: String::new(),
                })
                .collect();
            let mut cx = Checker::new(target);
            cx.warn_shadowed(&rules);
            cx.warn_pointless_allows(&rules);
            let mut got: Vec<(&'static str, u32)> = cx
                .diags
                .iter()
                .map(|d| (d.code, d.span.start as u32 + 1))
                .collect();
            got.sort();
            proptest::prop_assert_eq!(got, naive_warnings(&rules, target));
        }
    }

    #[test]
    fn ancestors_are_exactly_the_paths_under_holds_for() {
        for (target, paths) in [
            (
                Target::Windows,
                vec![
                    "C:\\A\\B", "C:\\", "C:\\A", "\\\\S\\x", "\\", "", "C:\\AB", "C:",
                ],
            ),
            (Target::Linux, vec!["/a/b", "/", "/a", "a", "", "/ab", "//"]),
        ] {
            for inner in &paths {
                let anc = ancestors(inner, target);
                // every prefix of inner is a candidate outer
                for cut in 0..=inner.len() {
                    let outer = &inner[..cut];
                    assert_eq!(
                        anc.contains(&outer),
                        path_under(inner, outer, target),
                        "{inner:?} under {outer:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn prefix_ids_name_exactly_the_ancestors() {
        for (target, paths) in [
            (
                Target::Windows,
                vec![
                    "C:\\A\\B", "C:\\", "C:\\A", "\\\\S\\x", "\\", "", "C:\\AB", "C:", "C:\\A\\",
                ],
            ),
            (
                Target::Linux,
                vec!["/a/b", "/", "/a", "a", "", "/ab", "//", "/a/", "a//b"],
            ),
        ] {
            let mut pre = Prefixes::new(target);
            for p in &paths {
                let mut got = pre.ancestors(p);
                let mut want: Vec<u32> = ancestors(p, target)
                    .into_iter()
                    .map(|a| *pre.ancestors(a).last().unwrap())
                    .collect();
                got.sort();
                got.dedup();
                want.sort();
                want.dedup();
                assert_eq!(got, want, "{p:?}");
            }
        }
    }

    #[test]
    fn under_is_at_component_boundary() {
        let w = Target::Windows;
        assert!(path_under("C:\\DATA\\X", "C:\\DATA", w));
        assert!(path_under("C:\\DATA", "C:\\DATA", w));
        assert!(!path_under("C:\\DATABASE", "C:\\DATA", w));
        assert!(path_under("C:\\X", "C:\\", w));
    }
}
