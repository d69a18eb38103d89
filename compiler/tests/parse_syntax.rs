//! The parser: spans, lines, every construct of the grammar, lexical
//! decisions and per-statement error recovery.

use fltpolicy_compiler::ast::{ActionKw, CmpOp, Expr, File, Item, Ops, Rule, Span, Value, Who};
use fltpolicy_compiler::diag::location;
use fltpolicy_compiler::parse::{parse, parse_condition};
use fltpolicy_core::event::Op;

fn rules(f: &File) -> Vec<&Rule> {
    f.items
        .iter()
        .filter_map(|i| match i {
            Item::Rule(r) => Some(r),
            Item::Let(_) | Item::Target(_) => None,
        })
        .collect()
}

fn one_rule(src: &str) -> Rule {
    let f = parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    rules(&f)[0].clone()
}

/// The source text a span covers.
fn text(src: &str, s: Span) -> &str {
    &src[s.start..s.end]
}

#[test]
fn spans_cover_exactly_their_tokens() {
    let src = r#"  deny delete, Renames under "C:\Finance" from image C:\x.exe where not (size >= 10 or paging) unless user in [a, "b c"] as "t""#;
    let r = one_rule(src);
    assert_eq!(text(src, r.span), src.trim_start());
    assert_eq!(text(src, r.action.span), "deny");
    assert_eq!(r.action.node, ActionKw::Deny);
    assert_eq!(text(src, r.ops.span), "delete, Renames");
    let Ops::List(ops) = &r.ops.node else {
        panic!()
    };
    assert_eq!(
        ops.iter().map(|o| o.node).collect::<Vec<_>>(),
        [Op::Delete, Op::Rename]
    );
    assert_eq!(text(src, ops[1].span), "Renames");
    let under = r.under.as_ref().unwrap();
    assert_eq!(text(src, under.span), r#""C:\Finance""#);
    let from = r.from.as_ref().unwrap();
    assert_eq!(text(src, from.span), r"image C:\x.exe");
    let Who::Image(img) = &from.node else {
        panic!()
    };
    assert_eq!(text(src, img.span), r"C:\x.exe");
    let w = r.where_.as_ref().unwrap();
    assert_eq!(text(src, w.span), "not (size >= 10 or paging)");
    let Expr::Not(inner) = &w.node else { panic!() };
    assert_eq!(text(src, inner.span), "(size >= 10 or paging)");
    let Expr::Paren(or) = &inner.node else {
        panic!()
    };
    let Expr::Or(a, b) = &or.node else { panic!() };
    assert_eq!(text(src, a.span), "size >= 10");
    assert_eq!(text(src, b.span), "paging");
    let Expr::Compare { field, op, value } = &a.node else {
        panic!()
    };
    assert_eq!(
        (
            text(src, field.span),
            text(src, op.span),
            text(src, value.span)
        ),
        ("size", ">=", "10")
    );
    assert_eq!(op.node, CmpOp::Ge);
    let u = r.unless.as_ref().unwrap();
    let Expr::Compare { value, .. } = &u.node else {
        panic!()
    };
    let Value::List(items) = &value.node else {
        panic!()
    };
    assert_eq!(text(src, items[1].span), r#""b c""#);
    let tag = r.tag.as_ref().unwrap();
    assert_eq!((tag.node.as_str(), text(src, tag.span)), ("t", r#""t""#));
}

#[test]
fn let_values_of_every_kind() {
    let src = "let a = C:\\Data\nlet b = \"x y\"\nlet c = 42\nlet d = TRUE\nlet e = [1, two, \"3\"]\nlet f = $a\nlet g = []\n";
    let f = parse(src).unwrap();
    let values: Vec<Value> = f
        .items
        .iter()
        .map(|i| match i {
            Item::Let(l) => l.value.node.clone(),
            Item::Rule(_) | Item::Target(_) => panic!(),
        })
        .collect();
    assert_eq!(values[0], Value::Bare("C:\\Data".into()));
    assert_eq!(values[1], Value::Quoted("x y".into()));
    assert_eq!(values[2], Value::Number(42));
    assert_eq!(values[3], Value::Bool(true));
    let Value::List(items) = &values[4] else {
        panic!()
    };
    assert_eq!(
        items.iter().map(|v| v.node.clone()).collect::<Vec<_>>(),
        [
            Value::Number(1),
            Value::Bare("two".into()),
            Value::Quoted("3".into())
        ]
    );
    assert_eq!(values[5], Value::Var("a".into()));
    assert_eq!(values[6], Value::List(vec![]));
    let Item::Let(l) = &f.items[0] else { panic!() };
    assert_eq!(text(src, l.span), "let a = C:\\Data");
    assert_eq!(text(src, l.name.span), "a");
}

#[test]
fn operations_any_plurals_and_case() {
    let ops = |src: &str| one_rule(src).ops.node;
    assert_eq!(ops("log any"), Ops::Any);
    assert_eq!(ops("log ANY under /x"), Ops::Any);
    let Ops::List(l) = ops("log creates,opens , reads,WRITES,renames,deletes,setinfos,closes")
    else {
        panic!()
    };
    assert_eq!(l.iter().map(|o| o.node).collect::<Vec<_>>(), Op::ALL);
}

#[test]
fn clauses_in_any_order() {
    let a = one_rule("log write as \"t\" where pid == 1 from process x under /a unless paging");
    let b = one_rule("log write under /a from process x where pid == 1 unless paging as \"t\"");
    assert_eq!(
        format!("{:?}", (a.under.map(|u| u.node), a.tag.map(|t| t.node))),
        format!("{:?}", (b.under.map(|u| u.node), b.tag.map(|t| t.node)))
    );
}

#[test]
fn backslashes_are_literal_and_strings_end_at_the_next_quote() {
    let r = one_rule(r#"log write under "C:\path\" where name == "a\""#);
    assert_eq!(r.under.unwrap().node, Value::Quoted(r"C:\path\".into()));
    let Expr::Compare { value, .. } = r.where_.unwrap().node else {
        panic!()
    };
    assert_eq!(value.node, Value::Quoted(r"a\".into()));
    let r = one_rule(r"log write under \\server\share\*");
    assert_eq!(
        r.under.unwrap().node,
        Value::Bare(r"\\server\share\*".into())
    );
}

#[test]
fn comments_everywhere() {
    let src = "# top\nlog write # trailing \"quoted\"\nlog read where name == \"#not a comment\" # real\n";
    let f = parse(src).unwrap();
    let c: Vec<&str> = f.comments.iter().map(|c| c.node.as_str()).collect();
    assert_eq!(c, ["# top", "# trailing \"quoted\"", "# real"]);
    assert_eq!(rules(&f).len(), 2);
    assert_eq!(text(src, f.comments[1].span), "# trailing \"quoted\"");
}

#[test]
fn rule_lines_count_from_one_and_skip_continuations() {
    let src = "\n# c\nlog write\nlet x = [\n  1,\n  2\n]\nlog read where pid in $x and\n    size > 3\nlog any\n";
    let f = parse(src).unwrap();
    let lines: Vec<u32> = rules(&f).iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 8, 10]);
    assert_eq!(f.line_index(0), Some(0));
    assert_eq!(f.line_index(src.len()), Some(src.matches('\n').count()));
}

#[test]
fn precedence_and_grouping() {
    let e = parse_condition("not a == 1 and b == 2 or c == 3 and not (d == 4 or e == 5)").unwrap();
    let Expr::Or(l, r) = &e.node else {
        panic!("{e:?}")
    };
    let Expr::And(ll, _) = &l.node else { panic!() };
    assert!(
        matches!(ll.node, Expr::Not(_)),
        "not binds tighter than and"
    );
    let Expr::And(_, rr) = &r.node else { panic!() };
    let Expr::Not(p) = &rr.node else { panic!() };
    assert!(matches!(p.node, Expr::Paren(_)));
    // chains are left-nested
    let e = parse_condition("a == 1 and b == 2 and c == 3").unwrap();
    let Expr::And(l, _) = &e.node else { panic!() };
    assert!(matches!(l.node, Expr::And(..)));
}

#[test]
fn every_comparison_operator() {
    for (kw, op) in [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<", CmpOp::Lt),
        ("<=", CmpOp::Le),
        (">", CmpOp::Gt),
        (">=", CmpOp::Ge),
        ("under", CmpOp::Under),
        ("startswith", CmpOp::StartsWith),
        ("EndsWith", CmpOp::EndsWith),
        ("contains", CmpOp::Contains),
        ("in", CmpOp::In),
        ("matches", CmpOp::Matches),
    ] {
        for src in [
            format!("f {kw} v"),
            format!("f{kw}v").replace("fin", "f in "),
        ] {
            let e = parse_condition(&src);
            if kw.starts_with(char::is_alphabetic) && !src.contains(' ') {
                continue;
            }
            let e = e.unwrap_or_else(|d| panic!("{src}: {d:?}"));
            let Expr::Compare { op: o, .. } = e.node else {
                panic!("{src}")
            };
            assert_eq!(o.node, op, "{src}");
        }
    }
    // symbols need no spaces
    assert!(parse_condition("size>=10").is_ok());
}

#[test]
fn not_before_a_word_operator() {
    let e = parse_condition("ext not in [\".a\"] and name NOT startswith x").unwrap();
    let Expr::And(a, b) = &e.node else { panic!() };
    for side in [a, b] {
        let Expr::Not(inner) = &side.node else {
            panic!("{side:?}")
        };
        assert!(matches!(inner.node, Expr::Compare { .. }));
    }
    let errs = parse_condition("size not > 3").unwrap_err();
    assert!(
        errs[0].message.contains("a word operator after `not`"),
        "{errs:?}"
    );
}

#[test]
fn a_field_alone_is_a_flag() {
    let e = parse_condition("paging").unwrap();
    assert!(matches!(e.node, Expr::Flag(ref f) if f.node == "paging"));
    let r = one_rule("log write where paging unless paging as \"x\"");
    assert!(matches!(r.where_.unwrap().node, Expr::Flag(_)));
    assert!(matches!(r.unless.unwrap().node, Expr::Flag(_)));
}

#[test]
fn condition_may_span_lines_and_hold_comments() {
    let e = parse_condition("name == a # first\n  or name == b\n").unwrap();
    assert!(matches!(e.node, Expr::Or(..)));
}

/// Each bad statement yields one error, at the right place, and the good
/// statements around it do not.
#[test]
fn recovery_reports_each_bad_statement_once() {
    let src = "log write\nlog wirte\nlog read under\nlet = 1\nlog any\nallow x y z\nlog write where (a == 1\n  and b == 2\nlog read as\n";
    let errs = parse(src).unwrap_err();
    let at: Vec<(usize, usize)> = errs
        .iter()
        .map(|e| {
            let l = location(src, e.span.start);
            (l.line, l.column)
        })
        .collect();
    // At the end of a statement the caret sits on its last character.
    assert_eq!(at, [(2, 5), (3, 14), (4, 5), (6, 7), (8, 12), (9, 11)]);
}

#[test]
fn syntax_errors_name_the_expected_tokens() {
    for (src, message) in [
        ("log", "expected an operation or `any`, found end of line"),
        ("log write,", "expected an operation, found end of line"),
        ("log write under", "expected a value, found end of line"),
        (
            "log write from",
            "expected `pid`, `image` or `process`, found end of line",
        ),
        (
            "log write from uid 3",
            "expected `pid`, `image` or `process`, found `uid`",
        ),
        (
            "log write where a ==",
            "expected a value, found end of line",
        ),
        (
            "log write where a == 1 and",
            "expected a field, `not` or `(`, found end of line",
        ),
        (
            "log write where a == 1 b",
            "expected `and`, `or`, `under`, `from`, `unless`, `as` or end of line, found `b`",
        ),
        (
            "log write where (a == 1))",
            "expected `and`, `or`, `under`, `from`, `unless`, `as` or end of line, found `)`",
        ),
        ("let x", "expected `=`, found end of line"),
        ("let x = 1 2", "expected end of line, found `2`"),
        ("let = 1", "expected a name, found `=`"),
        ("log write as", "expected a value, found end of line"),
        (
            "write under C:\\x",
            "expected `log`, `deny`, `allow` or `let`, found `write`",
        ),
        (
            "log write where x == [1, 2",
            "expected `,` or `]`, found end of line",
        ),
        ("log write where x == (1)", "expected a value, found `(`"),
    ] {
        let errs = parse(src).unwrap_err();
        assert_eq!(errs.len(), 1, "{src}: {errs:?}");
        assert_eq!(errs[0].message, message, "{src}");
        assert!(
            errs[0].help.is_some() || message.contains("end of line"),
            "{src}: no help"
        );
    }
}

#[test]
fn hints_for_habits_from_other_languages() {
    for (src, help) in [
        (
            "log write under C:\\Program Files\\App where x == 1",
            "paths with spaces must be quoted: under \"C:\\Program Files\\App\"",
        ),
        (
            "log write under C:\\Program Files (x86)\\App",
            "paths with spaces must be quoted: under \"C:\\Program Files (x86)\\App\"",
        ),
        (
            "log write from image C:\\Program Files\\x.exe as \"t\"",
            "paths with spaces must be quoted: from image \"C:\\Program Files\\x.exe\"",
        ),
        (
            "log write where a == 1 && b == 2",
            "write `and` instead of `&&`",
        ),
        (
            "log write where a == 1 || b == 2",
            "write `or` instead of `||`",
        ),
        ("log write where !paging", "write `not` instead of `!`"),
        (
            "log write where ext in .docx, .xlsx",
            "to compare with several values, write a list: ext in [\".docx\", \".xlsx\"]",
        ),
        ("log write where name = x", "compare with `==`: name == ..."),
        ("log wrte", "did you mean `write`?"),
        ("log writes, delets", "did you mean `delete`?"),
        ("log write wehre a == 1", "did you mean `where`?"),
        ("log write where a == 1 adn b == 2", "did you mean `and`?"),
        ("log write where name endwith x", "did you mean `endswith`?"),
        ("lgo write", "did you mean `log`?"),
    ] {
        let errs = parse(src).unwrap_err();
        assert_eq!(errs[0].help.as_deref(), Some(help), "{src}: {errs:?}");
    }
    // a quoted path followed by junk is not a spacing problem
    let errs = parse("log read under \"C:\\x\" y").unwrap_err();
    assert!(
        !errs[0].help.clone().unwrap_or_default().contains("quoted"),
        "{errs:?}"
    );
}
