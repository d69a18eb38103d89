//! Every example of the language description parses and checks as written.

use fltpolicy_compiler::ast::{ActionKw, CmpOp, Expr, Item, Ops, Value, Who};
use fltpolicy_compiler::check::check;
use fltpolicy_compiler::ir::{Cond, NumField, NumOp, StrField, Test};
use fltpolicy_compiler::parse::{parse, parse_condition};
use fltpolicy_core::event::{Action, Op, OpSet, Target};

const ISSUE_EXAMPLE: &str = r#"# comment to the end of the line
let data   = C:\Data                       # named value: path, string, number or [list]
let office = [".docx", ".xlsx", ".pdf"]

log writes under C:\Data from pid 1234      # the mission's own sentence must compile as written
log write, rename, delete under $data where process == "backup.exe"
deny delete, rename under "C:\Finance" unless image == "C:\Windows\System32\robocopy.exe"
allow any under C:\Windows\Temp
log create under "C:\Program Files\App" where ext in $office as "app-docs"
log read where name startswith "secret" or path matches "C:\Users\*\Documents\**\*.key"
"#;

#[test]
fn mission_sentence_parses_as_written() {
    let f = parse(r"log writes under C:\Data from pid 1234").unwrap();
    assert_eq!(f.items.len(), 1);
    let Item::Rule(r) = &f.items[0] else {
        panic!("not a rule")
    };
    assert_eq!(r.action.node, ActionKw::Log);
    assert_eq!(r.line, 1);
    match &r.ops.node {
        Ops::List(ops) => {
            assert_eq!(ops.len(), 1);
            assert_eq!(ops[0].node, Op::Write);
            assert_eq!((ops[0].span.start, ops[0].span.end), (4, 10));
        }
        Ops::Any => panic!("expected a list"),
    }
    let under = r.under.as_ref().unwrap();
    assert_eq!(under.node, Value::Bare(r"C:\Data".into()));
    assert_eq!((under.span.start, under.span.end), (17, 24));
    match &r.from.as_ref().unwrap().node {
        Who::Pid(v) => assert_eq!(v.node, Value::Number(1234)),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.span.end, 38);
}

#[test]
fn mission_sentence_checks() {
    let f = parse(r"log writes under C:\Data from pid 1234").unwrap();
    let (p, d) = check(&f, Target::Windows);
    assert!(d.is_empty(), "{d:?}");
    let p = p.unwrap();
    let r = &p.rules[0];
    assert_eq!(r.index, 1);
    assert_eq!(r.action, Action::Log);
    assert_eq!(r.ops, OpSet::single(Op::Write));
    assert_eq!(r.under.as_deref(), Some(r"C:\DATA"));
    assert_eq!(
        r.cond,
        Some(Cond::Test(Test::Num {
            field: NumField::Pid,
            op: NumOp::Eq,
            value: 1234
        }))
    );
}

#[test]
fn issue_example_parses_with_lines_and_comments() {
    let f = parse(ISSUE_EXAMPLE).unwrap();
    assert_eq!(f.items.len(), 8);
    assert_eq!(f.comments.len(), 3);
    assert_eq!(f.comments[0].node, "# comment to the end of the line");
    let lines: Vec<u32> = f
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Rule(r) => Some(r.line),
            Item::Let(_) | Item::Target(_) => None,
        })
        .collect();
    assert_eq!(lines, [5, 6, 7, 8, 9, 10]);
    let Item::Rule(r) = &f.items[4] else { panic!() };
    assert_eq!(
        r.under.as_ref().unwrap().node,
        Value::Quoted(r"C:\Finance".into())
    );
    let unless = r.unless.as_ref().unwrap();
    match &unless.node {
        Expr::Compare { field, op, value } => {
            assert_eq!(field.node, "image");
            assert_eq!(op.node, CmpOp::Eq);
            assert_eq!(
                value.node,
                Value::Quoted(r"C:\Windows\System32\robocopy.exe".into())
            );
        }
        other => panic!("{other:?}"),
    }
    let Item::Rule(r) = &f.items[6] else { panic!() };
    assert_eq!(r.tag.as_ref().unwrap().node, "app-docs");
}

#[test]
fn issue_example_checks_for_both_targets() {
    let f = parse(ISSUE_EXAMPLE).unwrap();
    for target in [Target::Windows, Target::Linux] {
        let (p, d) = check(&f, target);
        let errors: Vec<_> = d.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let p = p.unwrap();
        assert_eq!(p.rules.len(), 6);
        assert_eq!(
            p.rules.iter().map(|r| r.index).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
    }
    let (p, _) = check(&f, Target::Windows);
    let p = p.unwrap();
    // deny ... unless image == ...: Not(StrEq) with the folded image path.
    assert_eq!(
        p.rules[2].cond,
        Some(Cond::Not(Box::new(Cond::Test(Test::StrEq {
            field: StrField::Image,
            value: r"C:\WINDOWS\SYSTEM32\ROBOCOPY.EXE".into(),
            negate: false,
        }))))
    );
    assert_eq!(p.rules[3].ops, OpSet::ALL);
    assert_eq!(p.rules[4].tag, "app-docs");
    assert_eq!(
        p.rules[4].cond,
        Some(Cond::Test(Test::StrIn {
            field: StrField::Ext,
            values: vec![".DOCX".into(), ".XLSX".into(), ".PDF".into()],
        }))
    );
    assert_eq!(
        p.rules[5].cond,
        Some(Cond::Or(vec![
            Cond::Test(Test::StartsWith {
                field: StrField::Name,
                value: "SECRET".into()
            }),
            Cond::Test(Test::Matches {
                field: StrField::Path,
                pattern: r"C:\USERS\*\DOCUMENTS\**\*.KEY".into()
            }),
        ]))
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let e = parse_condition("a == 1 or b == 2 and c == 3").unwrap();
    let Expr::Or(_, rhs) = &e.node else {
        panic!("{e:?}")
    };
    assert!(matches!(rhs.node, Expr::And(..)));
    let e = parse_condition("(a == 1 or b == 2) and not paging").unwrap();
    let Expr::And(lhs, rhs) = &e.node else {
        panic!("{e:?}")
    };
    assert!(matches!(lhs.node, Expr::Paren(_)));
    let Expr::Not(inner) = &rhs.node else {
        panic!()
    };
    assert!(matches!(&inner.node, Expr::Flag(f) if f.node == "paging"));
}

#[test]
fn keywords_are_case_insensitive() {
    let f = parse(r"LOG Writes UNDER C:\Data WHERE Name STARTSWITH x AND NOT Paging").unwrap();
    let (p, d) = check(&f, Target::Windows);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(p.unwrap().rules[0].ops, OpSet::single(Op::Write));
}

#[test]
fn linux_paths_are_exact() {
    let f = parse("log write under /srv//Data/ where name == Report.TXT").unwrap();
    let (p, d) = check(&f, Target::Linux);
    assert!(d.is_empty(), "{d:?}");
    let r = &p.unwrap().rules[0];
    assert_eq!(r.under.as_deref(), Some("/srv/Data"));
    assert_eq!(
        r.cond,
        Some(Cond::Test(Test::StrEq {
            field: StrField::Name,
            value: "Report.TXT".into(),
            negate: false
        }))
    );
}
