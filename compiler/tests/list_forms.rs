//! Issue 12, "List forms": `startswith`, `endswith`, `contains`, `matches`
//! and `under` take a list (with an optional `any`) and hold when any item
//! does; `not` negates the whole ("none of"). Each case is decided by the
//! VM and by the reference interpreter, and both must give the expected
//! verdict.
use fltpolicy_compiler::{compile, oracle, CompileError};
use fltpolicy_core::event::{Action, EventView, Op, Target};
use fltpolicy_core::image::Policy;

fn decide(src: &str, target: Target, op: Op, path: &str, image: &str) -> Action {
    let c = compile(src, "l.pol", target).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let view = EventView {
        image,
        ..EventView::new(op, path)
    };
    let vm = Policy::from_bytes(&c.image).unwrap().evaluate(&view).action;
    let reference = oracle::evaluate(&c.policy, &view).action;
    assert_eq!(vm, reference, "{src} on {path}");
    vm
}

#[test]
fn string_operators_take_any_of_a_list() {
    let w = Target::Windows;
    for src in [
        "log write where name endswith any [\".tmp\", \".bak\"]\n",
        "log write where name endswith [\".tmp\", \".bak\"]\n",
        "let junk = [\".tmp\", \".bak\"]\nlog write where name endswith any $junk\n",
    ] {
        assert_eq!(decide(src, w, Op::Write, "C:\\x\\A.TMP", ""), Action::Log);
        assert_eq!(decide(src, w, Op::Write, "C:\\x\\a.bak", ""), Action::Log);
        assert_eq!(decide(src, w, Op::Write, "C:\\x\\a.txt", ""), Action::None);
    }
    let src = "deny write where name not startswith any [\"~$\", \".#\"]\n";
    assert_eq!(
        decide(src, w, Op::Write, "C:\\x\\~$doc.docx", ""),
        Action::None
    );
    assert_eq!(
        decide(src, w, Op::Write, "C:\\x\\doc.docx", ""),
        Action::Deny
    );
    let src = "log read where image contains [\"\\Temp\\\", \"\\Downloads\\\"]\n";
    assert_eq!(
        decide(src, w, Op::Read, "C:\\a", "C:\\Users\\u\\Downloads\\x.exe"),
        Action::Log
    );
    assert_eq!(
        decide(src, w, Op::Read, "C:\\a", "C:\\Windows\\x.exe"),
        Action::None
    );
    let src = "log read where path matches any [\"/srv/**/*.key\", \"/etc/*.pem\"]\n";
    let l = Target::Linux;
    assert_eq!(decide(src, l, Op::Read, "/srv/a/b/k.key", ""), Action::Log);
    assert_eq!(decide(src, l, Op::Read, "/etc/x.pem", ""), Action::Log);
    assert_eq!(decide(src, l, Op::Read, "/etc/a/x.pem", ""), Action::None);
}

#[test]
fn under_takes_a_list() {
    let src = "let roots = [/srv/data, /home]\ndeny delete where path under $roots\nlog any where image under any [/usr/bin, /bin]\n";
    let l = Target::Linux;
    assert_eq!(decide(src, l, Op::Delete, "/srv/data/x", ""), Action::Deny);
    assert_eq!(decide(src, l, Op::Delete, "/home", ""), Action::Deny);
    assert_eq!(decide(src, l, Op::Delete, "/homework/x", ""), Action::None);
    assert_eq!(decide(src, l, Op::Read, "/x", "/usr/bin/cat"), Action::Log);
}

#[test]
fn a_value_named_any_is_still_a_value_and_errors_are_reported_once() {
    let l = Target::Linux;
    assert_eq!(
        decide("log read where name == any\n", l, Op::Read, "/x/any", ""),
        Action::Log
    );
    assert_eq!(
        decide(
            "log read where name startswith any\n",
            l,
            Op::Read,
            "/x/anything",
            ""
        ),
        Action::Log
    );
    let Err(CompileError::Source(d)) = compile("log read where name under [a, b]\n", "l.pol", l)
    else {
        panic!("`under` on a name field is an error")
    };
    assert_eq!(d.error_count(), 1, "{}", d.render());
    let c = compile("log read where name endswith []\n", "l.pol", l).unwrap();
    assert!(c
        .warnings
        .items
        .iter()
        .any(|w| w.code == "pol::always-false"));
}
