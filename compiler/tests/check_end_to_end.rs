//! The checker's normalization, seen through the evaluators: what the
//! language description promises about case, separators, drive letters and
//! `under` boundaries holds for compiled images (the VM) and for the
//! reference interpreter alike.

use fltpolicy_compiler::{compile, oracle};
use fltpolicy_core::event::{Action, EventView, Op, Target};
use fltpolicy_core::image::Policy;

/// The action the VM and the oracle take for `ev`; they must agree.
fn decide(src: &str, target: Target, ev: &EventView<'_>) -> Action {
    let compiled = compile(src, "t.pol", target).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let image = Policy::from_bytes(&compiled.image).unwrap();
    let vm = image.evaluate(ev).action;
    let reference = oracle::evaluate(&compiled.policy, ev).action;
    assert_eq!(vm, reference, "{src}: VM and oracle disagree on {ev:?}");
    vm
}

fn write(path: &str) -> EventView<'_> {
    EventView::new(Op::Write, path)
}

#[test]
fn mission_sentence_on_windows() {
    let src = r"log writes under C:\Data from pid 1234";
    let ev = |path, pid| EventView { pid, ..write(path) };
    assert_eq!(
        decide(src, Target::Windows, &ev(r"C:\Data\a.txt", 1234)),
        Action::Log
    );
    assert_eq!(
        decide(src, Target::Windows, &ev(r"C:\Data", 1234)),
        Action::Log
    );
    assert_eq!(
        decide(src, Target::Windows, &ev(r"c:\data\SUB\a.txt", 1234)),
        Action::Log
    );
    assert_eq!(
        decide(src, Target::Windows, &ev(r"C:\Database\a.txt", 1234)),
        Action::None
    );
    assert_eq!(
        decide(src, Target::Windows, &ev(r"C:\Data\a.txt", 99)),
        Action::None
    );
    let read = EventView {
        pid: 1234,
        ..EventView::new(Op::Read, r"C:\Data\a.txt")
    };
    assert_eq!(decide(src, Target::Windows, &read), Action::None);
}

#[test]
fn policy_spelling_does_not_matter_on_windows() {
    // slashes, doubled and trailing separators, lower-case drive letters
    for under in [r"c:/data/", r"C:\\Data\\", r"C:\DATA", r#""c:\data""#] {
        let src = format!("deny delete under {under}");
        assert_eq!(
            decide(
                &src,
                Target::Windows,
                &EventView::new(Op::Delete, r"C:\Data\x")
            ),
            Action::Deny,
            "{src}"
        );
    }
    let src =
        r#"log write where name == "REPORT.docx" and ext in [".DOCX"] and process == Word.exe"#;
    let ev = EventView {
        image: r"C:\Office\WINWORD.EXE",
        ..write(r"C:\x\report.DOCX")
    };
    assert_eq!(
        decide(src, Target::Windows, &ev),
        Action::None,
        "process is Winword, not Word"
    );
    let src =
        r#"log write where name == "REPORT.docx" and ext in [".DOCX"] and process == winword.exe"#;
    assert_eq!(decide(src, Target::Windows, &ev), Action::Log);
}

#[test]
fn linux_is_exact_but_tidies_separators() {
    let src = "log write under //srv//data/";
    assert_eq!(
        decide(src, Target::Linux, &write("/srv/data/x")),
        Action::Log
    );
    assert_eq!(
        decide(src, Target::Linux, &write("/srv/Data/x")),
        Action::None
    );
    assert_eq!(
        decide(src, Target::Linux, &write("/srv/database")),
        Action::None
    );
    let src = "log write where path startswith /srv/a/";
    assert_eq!(decide(src, Target::Linux, &write("/srv/a/x")), Action::Log);
    assert_eq!(decide(src, Target::Linux, &write("/srv/ab")), Action::None);
}

#[test]
fn from_where_unless_and_first_match() {
    let src = "allow any under C:\\Data\\Tmp\n\
               deny delete, rename under C:\\Data unless image == \"C:\\Windows\\System32\\robocopy.exe\"\n\
               log any under C:\\Data where size >= 10 and not paging as \"big\"\n";
    let ev = |op, path, image, size| EventView {
        image,
        size,
        ..EventView::new(op, path)
    };
    let w = Target::Windows;
    assert_eq!(
        decide(src, w, &ev(Op::Delete, r"C:\Data\Tmp\x", "", 0)),
        Action::Allow
    );
    assert_eq!(
        decide(
            src,
            w,
            &ev(Op::Delete, r"C:\Data\x", r"C:\Tools\del.exe", 0)
        ),
        Action::Deny
    );
    assert_eq!(
        decide(
            src,
            w,
            &ev(
                Op::Delete,
                r"C:\Data\x",
                r"c:\windows\system32\ROBOCOPY.EXE",
                0
            )
        ),
        Action::None
    );
    assert_eq!(
        decide(src, w, &ev(Op::Write, r"C:\Data\x", "", 10)),
        Action::Log
    );
    assert_eq!(
        decide(src, w, &ev(Op::Write, r"C:\Data\x", "", 9)),
        Action::None
    );
    let paging = EventView {
        paging: true,
        ..ev(Op::Write, r"C:\Data\x", "", 10)
    };
    assert_eq!(decide(src, w, &paging), Action::None);
}

#[test]
fn globs_and_not_in() {
    let src = r#"let office = [".docx", ".xlsx"]
log read where path matches "C:\Users\*\Documents\**\*.key" or (ext not in $office and name startswith secret)"#;
    let w = Target::Windows;
    let read = |p| EventView::new(Op::Read, p);
    assert_eq!(
        decide(src, w, &read(r"C:\Users\ann\Documents\a\b\id.key")),
        Action::Log
    );
    assert_eq!(
        decide(src, w, &read(r"C:\Users\ann\Documents\id.KEY")),
        Action::Log
    );
    assert_eq!(
        decide(src, w, &read(r"C:\Users\ann\Desktop\id.key")),
        Action::None
    );
    assert_eq!(decide(src, w, &read(r"C:\x\Secret.txt")), Action::Log);
    assert_eq!(decide(src, w, &read(r"C:\x\secret.docx")), Action::None);
}
