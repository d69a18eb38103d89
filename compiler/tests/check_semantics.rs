//! The checker: names, fields, types, normalization, rule assembly and
//! warnings.

use fltpolicy_compiler::ast::Span;
use fltpolicy_compiler::check::{check, check_condition};
use fltpolicy_compiler::diag::{Diagnostic, Severity};
use fltpolicy_compiler::ir::{Cond, NumField, NumOp, Policy, StrField, Test};
use fltpolicy_compiler::parse::{parse, parse_condition};
use fltpolicy_core::event::{Action, Op, OpSet, Target};

fn checked(src: &str, target: Target) -> (Option<Policy>, Vec<Diagnostic>) {
    let file = parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    check(&file, target)
}

/// The policy, asserting there are no diagnostics at all.
fn clean(src: &str, target: Target) -> Policy {
    let (p, d) = checked(src, target);
    assert!(d.is_empty(), "{src}: {d:?}");
    p.unwrap()
}

/// The condition of the only rule of `src`.
fn cond(src: &str, target: Target) -> Cond {
    clean(src, target).rules[0].cond.clone().unwrap()
}

fn test(t: Test) -> Cond {
    Cond::Test(t)
}

fn codes(d: &[Diagnostic]) -> Vec<(&'static str, Severity)> {
    d.iter().map(|d| (d.code, d.severity)).collect()
}

fn errors_of(src: &str) -> Vec<&'static str> {
    let (p, d) = checked(src, Target::Windows);
    assert!(p.is_none(), "{src} should not check");
    d.iter().filter(|d| d.is_error()).map(|d| d.code).collect()
}

const W: Target = Target::Windows;
const L: Target = Target::Linux;

#[test]
fn rule_fields_are_assembled() {
    let p = clean(
        "# header\n\nlog write, rename under C:\\Data as \"t1\"\nallow reads, closes where paging\ndeny any\n",
        W,
    );
    assert_eq!(p.target, W);
    let r = &p.rules;
    assert_eq!(r.len(), 3);
    assert_eq!((r[0].index, r[0].line), (1, 3));
    assert_eq!(r[0].span, Span::new(10, 49));
    assert_eq!(r[0].action, Action::Log);
    assert_eq!(r[0].ops, OpSet::single(Op::Write).with(Op::Rename));
    assert_eq!(r[0].tag, "t1");
    assert_eq!(r[0].cond, None);
    assert_eq!((r[1].index, r[1].line, r[1].action), (2, 4, Action::Allow));
    assert_eq!(r[1].ops, OpSet::single(Op::Read).with(Op::Close));
    assert_eq!(r[1].cond, Some(Cond::Test(Test::Paging { value: true })));
    assert_eq!(
        (r[2].index, r[2].line, r[2].action, r[2].ops),
        (3, 5, Action::Deny, OpSet::ALL)
    );
    assert_eq!(r[2].under, None);
    assert_eq!(r[2].tag, "");
}

#[test]
fn from_where_unless_join_into_one_flat_and() {
    let c = cond(
        "log write from process Backup.exe where name == a and size > 10 unless user == admin",
        W,
    );
    assert_eq!(
        c,
        Cond::And(vec![
            test(Test::StrEq {
                field: StrField::Process,
                value: "BACKUP.EXE".into(),
                negate: false
            }),
            test(Test::StrEq {
                field: StrField::Name,
                value: "A".into(),
                negate: false
            }),
            test(Test::Num {
                field: NumField::Size,
                op: NumOp::Gt,
                value: 10
            }),
            Cond::Not(Box::new(test(Test::StrEq {
                field: StrField::User,
                value: "ADMIN".into(),
                negate: false
            }))),
        ])
    );
}

#[test]
fn from_forms() {
    assert_eq!(
        cond("log write from pid 4", W),
        test(Test::Num {
            field: NumField::Pid,
            op: NumOp::Eq,
            value: 4
        })
    );
    assert_eq!(
        cond("log write from pid [4, 8]", W),
        test(Test::NumIn {
            field: NumField::Pid,
            values: vec![4, 8]
        })
    );
    assert_eq!(
        cond("log write from image c:/windows//system32/Robocopy.exe", W),
        test(Test::StrEq {
            field: StrField::Image,
            value: "C:\\WINDOWS\\SYSTEM32\\ROBOCOPY.EXE".into(),
            negate: false
        })
    );
    assert_eq!(
        cond("log write from image /usr/bin//rsync", L),
        test(Test::StrEq {
            field: StrField::Image,
            value: "/usr/bin/rsync".into(),
            negate: false
        })
    );
    assert_eq!(
        cond("log write from process [rsync, Tar]", L),
        test(Test::StrIn {
            field: StrField::Process,
            values: vec!["rsync".into(), "Tar".into()]
        })
    );
}

#[test]
fn windows_normalization() {
    let under = |u: &str| {
        clean(&format!("log write under {u}"), W).rules[0]
            .under
            .clone()
            .unwrap()
    };
    assert_eq!(under("c:\\data\\"), "C:\\DATA");
    assert_eq!(under("C:/Data//Reports/"), "C:\\DATA\\REPORTS");
    assert_eq!(under("c:\\"), "C:\\");
    assert_eq!(under("C:/"), "C:\\");
    assert_eq!(under("\\\\server\\share\\dir\\"), "\\\\SERVER\\SHARE\\DIR");
    assert_eq!(
        under("\\Device\\HarddiskVolume1\\x"),
        "\\DEVICE\\HARDDISKVOLUME1\\X"
    );
    assert_eq!(
        under("\"C:\\Program Files\\App\""),
        "C:\\PROGRAM FILES\\APP"
    );
    // a prefix keeps its trailing separator; names are folded, not split
    assert_eq!(
        cond("log write where path startswith C:/Tmp/", W),
        test(Test::StartsWith {
            field: StrField::Path,
            value: "C:\\TMP\\".into()
        })
    );
    assert_eq!(
        cond("log write where name endswith .Tmp", W),
        test(Test::EndsWith {
            field: StrField::Name,
            value: ".TMP".into()
        })
    );
    assert_eq!(
        cond(
            "log write where dir == c:\\x\\ or path contains \\Temp\\",
            W
        ),
        Cond::Or(vec![
            test(Test::StrEq {
                field: StrField::Dir,
                value: "C:\\X".into(),
                negate: false
            }),
            test(Test::Contains {
                field: StrField::Path,
                value: "\\TEMP\\".into()
            }),
        ])
    );
    assert_eq!(
        cond("log write where path matches C:/Users/*/**/*.key", W),
        test(Test::Matches {
            field: StrField::Path,
            pattern: "C:\\USERS\\*\\**\\*.KEY".into()
        })
    );
    // non-ASCII folds with the simple mapping; ß has no 1:1 uppercase
    assert_eq!(
        cond("log write where name == \"straße.txt\" or user != änne", W),
        Cond::Or(vec![
            test(Test::StrEq {
                field: StrField::Name,
                value: "STRAßE.TXT".into(),
                negate: false
            }),
            test(Test::StrEq {
                field: StrField::User,
                value: "ÄNNE".into(),
                negate: true
            }),
        ])
    );
}

#[test]
fn linux_is_byte_exact() {
    let p = clean(
        "log write under //srv/Data// where path startswith /srv/A\\b/ and name == X",
        L,
    );
    assert_eq!(p.rules[0].under.as_deref(), Some("/srv/Data"));
    assert_eq!(
        p.rules[0].cond,
        Some(Cond::And(vec![
            test(Test::StartsWith {
                field: StrField::Path,
                value: "/srv/A\\b/".into()
            }),
            test(Test::StrEq {
                field: StrField::Name,
                value: "X".into(),
                negate: false
            }),
        ]))
    );
    assert_eq!(
        clean("log write under /", L).rules[0].under.as_deref(),
        Some("/")
    );
}

#[test]
fn numbers_and_flags() {
    for (op, nop) in [
        ("==", NumOp::Eq),
        ("!=", NumOp::Ne),
        ("<", NumOp::Lt),
        ("<=", NumOp::Le),
        (">", NumOp::Gt),
        (">=", NumOp::Ge),
    ] {
        assert_eq!(
            cond(&format!("log read where ppid {op} 7"), W),
            test(Test::Num {
                field: NumField::Ppid,
                op: nop,
                value: 7
            })
        );
    }
    assert_eq!(
        cond("log read where size in [1, 2]", W),
        test(Test::NumIn {
            field: NumField::Size,
            values: vec![1, 2]
        })
    );
    let paging = |src: &str| cond(&format!("log read where {src}"), W);
    assert_eq!(paging("paging"), test(Test::Paging { value: true }));
    assert_eq!(
        paging("PAGING == false"),
        test(Test::Paging { value: false })
    );
    assert_eq!(
        paging("paging != true"),
        test(Test::Paging { value: false })
    );
    assert_eq!(
        paging("not paging"),
        Cond::Not(Box::new(test(Test::Paging { value: true })))
    );
    assert_eq!(
        paging("(paging)"),
        test(Test::Paging { value: true }),
        "parentheses leave no trace in the IR"
    );
}

#[test]
fn lets_resolve_chain_and_splice() {
    let src = "let a = C:\\Data\nlet b = $a\nlet docs = [\".docx\", \".xlsx\"]\nlet all = [$docs, \".pdf\"]\nlet n = 42\nlog write under $b where ext in $all and pid == $n\n";
    let p = clean(src, W);
    assert_eq!(p.rules[0].under.as_deref(), Some("C:\\DATA"));
    assert_eq!(
        p.rules[0].cond,
        Some(Cond::And(vec![
            test(Test::StrIn {
                field: StrField::Ext,
                values: vec![".DOCX".into(), ".XLSX".into(), ".PDF".into()]
            }),
            test(Test::Num {
                field: NumField::Pid,
                op: NumOp::Eq,
                value: 42
            }),
        ]))
    );
    assert_eq!(p.rules[0].index, 1, "lets are not rules");
}

#[test]
fn name_errors() {
    assert_eq!(errors_of("log write under $nope"), ["pol::undefined"]);
    // a let must come before its use
    assert_eq!(
        errors_of("log write under $late\nlet late = C:\\x"),
        ["pol::undefined"]
    );
    assert_eq!(
        errors_of("let a = 1\nlet a = 2\nlog write where pid == $a"),
        ["pol::redefined"]
    );
    assert_eq!(errors_of("let a = $a"), ["pol::undefined"]);
    assert_eq!(
        errors_of("let a = [[1]]\nlog read where pid in $a"),
        ["pol::type"]
    );
}

#[test]
fn field_and_type_errors() {
    for (src, code) in [
        ("log read where nmae == x", "pol::unknown-field"),
        ("log read where pid == \"twelve\"", "pol::type"),
        ("log read where pid == twelve", "pol::type"),
        ("log read where pid startswith 1", "pol::type"),
        ("log read where pid in 3", "pol::type"),
        ("log read where pid in [1, x]", "pol::type"),
        ("log read where pid == [1]", "pol::type"),
        ("log read where name < x", "pol::type"),
        ("log read where name == 3", "pol::type"),
        ("log read where name == true", "pol::type"),
        ("log read where name == [a]", "pol::type"),
        ("log read where ext in \".x\"", "pol::type"),
        ("log read where ext in [\".x\", 1]", "pol::type"),
        ("log read where user under C:\\x", "pol::type"),
        ("log read where paging == 1", "pol::type"),
        ("log read where paging > true", "pol::type"),
        ("log read where size", "pol::type"),
        ("log read under 42", "pol::type"),
        ("log read under [C:\\a]", "pol::type"),
        ("log read from pid x", "pol::type"),
        ("log read from process 3", "pol::type"),
        ("log read from image 3", "pol::type"),
    ] {
        assert_eq!(errors_of(src), [code], "{src}");
    }
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let errs = errors_of(
        "log read where nmae == x or pid == y\nlog write under $u where size < big\nlog any where paging == 3",
    );
    assert_eq!(
        errs,
        [
            "pol::unknown-field",
            "pol::type",
            "pol::undefined",
            "pol::type",
            "pol::type"
        ]
    );
}

#[test]
fn shadowed_rules_warn_with_both_spans() {
    let src = "log write, read under C:\\Data\nlog write under C:\\Data\\Reports\nlog write under C:\\Database\nlog delete under C:\\Data\\x\n";
    let (p, d) = checked(src, W);
    assert!(p.is_some());
    assert_eq!(codes(&d), [("pol::unreachable", Severity::Warning)]);
    assert_eq!(
        d[0].message,
        "unreachable rule, shadowed by rule 1 at line 1"
    );
    assert_eq!(d[0].span, Span::new(30, 61));
    assert_eq!(d[0].related[0].0, Span::new(0, 29));
}

#[test]
fn shadowing_needs_an_unconditional_covering_rule() {
    for src in [
        // earlier rule has a condition
        "log write under C:\\Data where pid == 1\nlog write under C:\\Data\\x",
        // earlier rule covers fewer operations
        "log write under C:\\Data\nlog write, read under C:\\Data\\x",
        // earlier rule covers a narrower path
        "log write under C:\\Data\\x\nlog write under C:\\Data",
        // earlier rule has a path, later has none
        "log write under C:\\Data\nlog write",
    ] {
        let (p, d) = checked(src, W);
        assert!(p.is_some() && d.is_empty(), "{src}: {d:?}");
    }
    // an unconditional rule without a path covers everything after it
    let (_, d) = checked(
        "allow any\nlog write under C:\\x\ndeny read where pid == 4",
        W,
    );
    assert_eq!(d.len(), 2);
    // a root covers everything below it
    let (_, d) = checked("log any under C:\\\nlog write under c:\\x", W);
    assert_eq!(codes(&d), [("pol::unreachable", Severity::Warning)]);
    let (_, d) = checked("log any under /\nlog write under /x", L);
    assert_eq!(codes(&d), [("pol::unreachable", Severity::Warning)]);
}

#[test]
fn advisory_warnings() {
    let warns = |src: &str, target| {
        let (p, d) = checked(src, target);
        assert!(p.is_some(), "{src}: {d:?}");
        d.iter().map(|d| d.code).collect::<Vec<_>>()
    };
    assert_eq!(warns("let x = 1\nlog write", W), ["pol::unused"]);
    assert_eq!(warns("log write under Data", W), ["pol::relative-path"]);
    assert_eq!(warns("log write under data", L), ["pol::relative-path"]);
    assert_eq!(warns("log write, writes", W), ["pol::duplicate-op"]);
    assert_eq!(warns("log write where ext in []", W), ["pol::always-false"]);
    assert_eq!(
        warns("log write where ext == docx", W),
        ["pol::never-matches"]
    );
    assert_eq!(
        warns("log write where ext in [\".doc\", pdf]", W),
        ["pol::never-matches"]
    );
    assert_eq!(
        warns("log write where name == \"a\\b\"", W),
        ["pol::never-matches"]
    );
    assert_eq!(
        warns("log write where name == \"a\\b\"", L),
        Vec::<&str>::new()
    );
    assert_eq!(
        warns("log write where path matches \"C:\\a**\\x\"", W),
        ["pol::glob"]
    );
    assert_eq!(
        warns("log write where path matches \"*.key\"", W),
        ["pol::glob"]
    );
    assert_eq!(
        warns("log write where path matches \"**\\*.key\"", W),
        Vec::<&str>::new()
    );
    assert_eq!(
        warns("log write where name matches \"*.key\"", W),
        Vec::<&str>::new()
    );
}

#[test]
fn allow_matters_only_before_a_rule_it_exempts_from() {
    let warns = |src: &str| {
        let (_, d) = checked(src, W);
        d.iter().map(|d| d.code).collect::<Vec<_>>()
    };
    assert_eq!(warns("allow any under C:\\Temp"), ["pol::no-effect"]);
    assert_eq!(warns("allow write\nlog read"), ["pol::no-effect"]);
    assert_eq!(
        warns("allow write under C:\\A\nlog write under C:\\B"),
        ["pol::no-effect"]
    );
    assert_eq!(
        warns("log write under C:\\A where pid == 1\nallow write under C:\\A\\x"),
        ["pol::no-effect"]
    );
    // a later rule that may match the same events: the allow exempts them
    assert!(warns("allow write under C:\\A\\tmp\nlog write under C:\\A").is_empty());
    assert!(warns("allow write under C:\\A where name == y\nlog write under C:\\A\\x").is_empty());
    assert!(warns("allow write where pid == 4\nlog any").is_empty());
    assert!(warns("allow any under C:\\A\nlog read where name == x").is_empty());
}

#[test]
fn conditions_alone() {
    let e = parse_condition("Name startswith secret and not paging").unwrap();
    assert_eq!(
        check_condition(&e, W).unwrap(),
        Cond::And(vec![
            test(Test::StartsWith {
                field: StrField::Name,
                value: "SECRET".into()
            }),
            Cond::Not(Box::new(test(Test::Paging { value: true }))),
        ])
    );
    let e = parse_condition("path under $data or pid == x").unwrap();
    let errs = check_condition(&e, L).unwrap_err();
    assert_eq!(
        errs.iter().map(|d| d.code).collect::<Vec<_>>(),
        ["pol::undefined", "pol::type"]
    );
}
