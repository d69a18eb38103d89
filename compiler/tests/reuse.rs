//! Issue 12, "Reuse": named operation sets (`let edits = [write, rename,
//! delete]`, used as `log $edits under ...`) and `disabled` rules (checked,
//! not compiled in).
use fltpolicy_compiler::parse::parse;
use fltpolicy_compiler::{compile, CompileError};
use fltpolicy_core::event::{Action, EventView, Op, OpSet, Target};
use fltpolicy_core::image::Policy;

fn errors(src: &str) -> Vec<&'static str> {
    match compile(src, "r.pol", Target::Linux) {
        Err(CompileError::Source(d)) => d
            .items
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect(),
        other => panic!("expected errors: {other:?}"),
    }
}

#[test]
fn named_operation_sets() {
    let src = "let edits = [write, renames, delete]\nlog $edits, create under /srv\nallow $edits under /tmp\nlog read under /tmp\n";
    let c = compile(src, "r.pol", Target::Linux).expect("compiles");
    let want = OpSet::EMPTY
        .with(Op::Write)
        .with(Op::Rename)
        .with(Op::Delete)
        .with(Op::Create);
    assert_eq!(c.policy.rules[0].ops, want);
    let img = Policy::from_bytes(&c.image).unwrap();
    assert_eq!(
        img.evaluate(&EventView::new(Op::Rename, "/srv/a")).action,
        Action::Log
    );
    assert_eq!(
        img.evaluate(&EventView::new(Op::Read, "/srv/a")).action,
        Action::None
    );
    let any = compile(
        "let all = any\nlog $all under /srv\n",
        "r.pol",
        Target::Linux,
    )
    .unwrap();
    assert_eq!(any.policy.rules[0].ops, OpSet::ALL);
    // fmt keeps the reference.
    let out = fltpolicy_compiler::fmt::format(&parse(src).unwrap());
    assert!(out.contains("log create, $edits under /srv\n"), "{out}");
    assert_eq!(errors("let e = [write, paint]\nlog $e\n"), ["pol::type"]);
    assert_eq!(errors("log $nope\n"), ["pol::undefined"]);
}

#[test]
fn disabled_rules_are_checked_but_not_compiled() {
    let src = "log write under /srv disabled\nlog read under /srv\n";
    let c = compile(src, "r.pol", Target::Linux).expect("compiles");
    assert_eq!(c.policy.rules.len(), 1);
    assert_eq!(c.policy.rules[0].index, 1);
    assert_eq!(c.policy.rules[0].line, 2);
    let img = Policy::from_bytes(&c.image).unwrap();
    assert_eq!(
        img.evaluate(&EventView::new(Op::Write, "/srv/a")).action,
        Action::None
    );
    // Still checked.
    assert_eq!(
        errors("log write where nme == 1 disabled\n"),
        ["pol::unknown-field"]
    );
    // Round trip.
    let out = fltpolicy_compiler::fmt::format(
        &parse("log write  under /srv DISABLED as \"t\"\n").unwrap(),
    );
    assert_eq!(out, "log write under /srv as \"t\" disabled\n");
}
