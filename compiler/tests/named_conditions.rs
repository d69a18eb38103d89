//! Issue 12, "Reuse": named conditions. `let NAME = CONDITION` and `$NAME`
//! wherever a condition goes (`where`, `unless`, inside `and`/`or`/`not`).
//! Decisions are checked on the VM and the reference interpreter; the
//! expansion is charged like lists, so doubling chains are refused and deep
//! chains are bounded.
use fltpolicy_compiler::parse::parse;
use fltpolicy_compiler::{compile, oracle, CompileError};
use fltpolicy_core::event::{Action, EventView, Op, Target};
use fltpolicy_core::image::Policy;

fn decide(src: &str, op: Op, path: &str, image: &str) -> Action {
    let c = compile(src, "n.pol", Target::Windows).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let view = EventView {
        image,
        ..EventView::new(op, path)
    };
    let vm = Policy::from_bytes(&c.image).unwrap().evaluate(&view).action;
    assert_eq!(
        vm,
        oracle::evaluate(&c.policy, &view).action,
        "{path} {image}"
    );
    vm
}

fn error_codes(src: &str) -> Vec<&'static str> {
    match compile(src, "n.pol", Target::Windows) {
        Err(CompileError::Source(d)) => d
            .items
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect(),
        other => panic!("expected errors: {other:?}"),
    }
}

const ISSUE: &str = "let updaters = [updater.exe, gup.exe]
let noisy = image under \"C:\\Program Files\\Updater\" or process in $updaters
log write under C:\\Data unless $noisy
";

#[test]
fn the_issues_example_works() {
    let d = |image| decide(ISSUE, Op::Write, "C:\\Data\\a.txt", image);
    assert_eq!(d("C:\\Program Files\\Updater\\u.exe"), Action::None);
    assert_eq!(d("C:\\Tools\\GUP.EXE"), Action::None);
    assert_eq!(d("C:\\Windows\\notepad.exe"), Action::Log);
}

#[test]
fn named_conditions_nest_and_combine() {
    let src = "let a = name == x.txt\nlet b = $a or name == y.txt\nlet c = not ($b)\nlog read where $c and path under C:\\D\nlog write where $a\n";
    assert_eq!(decide(src, Op::Read, "C:\\D\\x.txt", ""), Action::None);
    assert_eq!(decide(src, Op::Read, "C:\\D\\z.txt", ""), Action::Log);
    assert_eq!(decide(src, Op::Write, "C:\\E\\X.TXT", ""), Action::Log);
    // fmt keeps them.
    let out = fltpolicy_compiler::fmt::format(&parse(src).unwrap());
    assert!(out.contains("let b = $a or name == y.txt"), "{out}");
    assert!(
        out.contains("log read where $c and path under C:\\D"),
        "{out}"
    );
}

#[test]
fn misuse_is_located() {
    assert_eq!(
        error_codes("let l = [a, b]\nlog read where $l\n"),
        ["pol::type"]
    );
    assert_eq!(error_codes("log read where $nope\n"), ["pol::undefined"]);
    assert_eq!(
        error_codes("let c = name == a\nlog read where name == $c\n"),
        ["pol::type"]
    );
    // A value is still a value.
    assert!(compile(
        "let d = C:\\Data\nlog read under $d\n",
        "n.pol",
        Target::Windows
    )
    .is_ok());
}

#[test]
fn doubling_named_conditions_are_refused_not_expanded() {
    let mut src = String::from("let c0 = name == a\n");
    for i in 1..40 {
        src.push_str(&format!("let c{i} = $c{} or $c{}\n", i - 1, i - 1));
    }
    src.push_str("log read where $c39\n");
    assert!(error_codes(&src).contains(&"pol::too-large"));
}

#[test]
fn deep_chains_of_named_conditions_are_bounded() {
    let mut src = String::from("let c0 = name == a\n");
    for i in 1..200 {
        src.push_str(&format!("let c{i} = not $c{}\n", i - 1));
    }
    src.push_str("log read where $c199\n");
    let codes = error_codes(&src);
    assert!(codes.contains(&"pol::too-large"), "{codes:?}");
}
