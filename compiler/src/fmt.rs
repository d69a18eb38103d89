//! Canonical layout of a policy (`fltpolicy fmt`).
//!
//! The layout, decided once so that diffs between policies show meaning and
//! not whitespace:
//! * one statement per line, single spaces between tokens, keywords and
//!   actions in lower case, clauses in the grammar's order
//!   (`under`, `from`, `where`, `unless`, `as`);
//! * operations by their singular keyword, comma and space separated
//!   (`log writes` becomes `log write`), `any` kept;
//! * values exactly as written: bare stays bare, quoted stays quoted (the
//!   author's quoting is part of the value's syntax), field names as
//!   written; lists as `[a, b]`; tags always quoted;
//! * parentheses as written; they are added only where a tree that did not
//!   come from the parser would otherwise read back differently;
//! * comments kept where they were: a comment after code stays at the end of
//!   that line (two spaces before `#`), a comment on its own line stays on
//!   its own line; comments inside a statement that spanned several lines
//!   move to their own lines just before it;
//! * runs of blank lines become one blank line; none at the start or end.
//!
//! Guarantees (tested in `tests/fmt.rs`): `parse(format(f))` equals `f`
//! except for spans and line starts, and `format` is idempotent.

use crate::ast::{self, Expr, Item, Ops, Span, Spanned, Value, Who};

/// Formats a parsed file in canonical layout.
pub fn format(file: &ast::File) -> String {
    let mut out = String::new();
    let mut comments = file.comments.iter().peekable();
    // Line (0-based) of the last thing emitted, for blank-line detection.
    let mut last_line: Option<usize> = None;
    let mut emitted_any = false;

    for item in &file.items {
        let span = item_span(item);
        // Comments before this statement.
        while let Some(c) = comments.next_if(|c| c.span.start < span.start) {
            let line = file.line_index(c.span.start);
            blank_before(&mut out, line, last_line, emitted_any);
            out.push_str(&c.node);
            out.push('\n');
            last_line = line;
            emitted_any = true;
        }
        let start_line = file.line_index(span.start);
        blank_before(&mut out, start_line, last_line, emitted_any);
        // Comments inside a statement that spanned several lines.
        while let Some(c) = comments.next_if(|c| c.span.start < span.end) {
            out.push_str(&c.node);
            out.push('\n');
        }
        match item {
            Item::Let(l) => {
                out.push_str("let ");
                out.push_str(&l.name.node);
                out.push_str(" = ");
                value(&mut out, &l.value.node);
            }
            Item::Rule(r) => rule(&mut out, r),
            Item::Target(t) => {
                out.push_str("target ");
                out.push_str(t.target.node.name());
            }
        }
        let end_line = file.line_index(span.end.saturating_sub(1).max(span.start));
        // A comment on the line where the statement ends trails it.
        if let Some(c) =
            comments.next_if(|c| end_line.is_some() && file.line_index(c.span.start) == end_line)
        {
            out.push_str("  ");
            out.push_str(&c.node);
        }
        out.push('\n');
        last_line = end_line;
        emitted_any = true;
    }
    for c in comments {
        let line = file.line_index(c.span.start);
        blank_before(&mut out, line, last_line, emitted_any);
        out.push_str(&c.node);
        out.push('\n');
        last_line = line;
        emitted_any = true;
    }
    out
}

/// Formats a lone condition (the filter syntax).
pub fn format_condition(e: &Spanned<Expr>) -> String {
    let mut out = String::new();
    expr(&mut out, &e.node);
    out
}

/// One blank line if `line` is more than one line after `last`.
fn blank_before(out: &mut String, line: Option<usize>, last: Option<usize>, any: bool) {
    if let (Some(l), Some(p)) = (line, last) {
        if any && l > p + 1 {
            out.push('\n');
        }
    }
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Let(l) => l.span,
        Item::Rule(r) => r.span,
        Item::Target(t) => t.span,
    }
}

fn rule(out: &mut String, r: &ast::Rule) {
    out.push_str(match r.action.node {
        ast::ActionKw::Log => "log",
        ast::ActionKw::Deny => "deny",
        ast::ActionKw::Allow => "allow",
    });
    out.push(' ');
    match &r.ops.node {
        Ops::Any => out.push_str("any"),
        Ops::List(ops) => {
            let names = ops.iter().map(|op| op.node.name().to_string());
            let refs = r.op_refs.iter().map(|n| format!("${}", n.node));
            out.push_str(&names.chain(refs).collect::<Vec<_>>().join(", "));
        }
    }
    if let Some(u) = &r.under {
        out.push_str(" under ");
        value(out, &u.node);
    }
    if let Some(w) = &r.from {
        out.push_str(" from ");
        let (kw, v) = match &w.node {
            Who::Pid(v) => ("pid ", v),
            Who::Image(v) => ("image ", v),
            Who::Process(v) => ("process ", v),
        };
        out.push_str(kw);
        value(out, &v.node);
    }
    if let Some(e) = &r.where_ {
        out.push_str(" where ");
        expr(out, &e.node);
    }
    if let Some(e) = &r.unless {
        out.push_str(" unless ");
        expr(out, &e.node);
    }
    if let Some(t) = &r.tag {
        out.push_str(" as \"");
        out.push_str(&t.node.replace('"', "\"\""));
        out.push('"');
    }
    if r.disabled.is_some() {
        out.push_str(" disabled");
    }
}

fn value(out: &mut String, v: &Value) {
    match v {
        Value::Bare(s) => out.push_str(s),
        Value::Quoted(s) => {
            out.push('"');
            out.push_str(&s.replace('"', "\"\""));
            out.push('"');
        }
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Var(n) => {
            out.push('$');
            out.push_str(n);
        }
        Value::Cond(e) => expr(out, &e.node),
        Value::List(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                value(out, &item.node);
            }
            out.push(']');
        }
    }
}

/// Binding strength: `or` < `and` < `not` < atoms.
fn prec(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 0,
        Expr::And(..) => 1,
        Expr::Not(_) => 2,
        Expr::Paren(_) | Expr::Compare { .. } | Expr::Flag(_) | Expr::Ref(_) => 3,
    }
}

/// Writes `e`, in parentheses if it binds looser than `min`.
fn operand(out: &mut String, e: &Expr, min: u8) {
    if prec(e) < min {
        out.push('(');
        expr(out, e);
        out.push(')');
    } else {
        expr(out, e);
    }
}

fn expr(out: &mut String, e: &Expr) {
    match e {
        // Chains are left-nested when parsed, so a right operand of the
        // same operator needs parentheses to keep its shape.
        Expr::Or(a, b) => {
            operand(out, &a.node, 0);
            out.push_str(" or ");
            operand(out, &b.node, 1);
        }
        Expr::And(a, b) => {
            operand(out, &a.node, 1);
            out.push_str(" and ");
            operand(out, &b.node, 2);
        }
        Expr::Not(a) => {
            out.push_str("not ");
            operand(out, &a.node, 2);
        }
        Expr::Paren(a) => {
            out.push('(');
            expr(out, &a.node);
            out.push(')');
        }
        Expr::Compare {
            field,
            op,
            value: v,
        } => {
            out.push_str(&field.node);
            out.push(' ');
            out.push_str(op.node.keyword());
            out.push(' ');
            value(out, &v.node);
        }
        Expr::Flag(f) => out.push_str(&f.node),
        Expr::Ref(n) => {
            out.push('$');
            out.push_str(&n.node);
        }
    }
}
