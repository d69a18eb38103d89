use fltpolicy_compiler::compile;
use fltpolicy_core::event::{Action, EventView, Op, Target};
use fltpolicy_core::image::Policy;

#[test]
fn mission_policy_compiles_and_evaluates() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/mission.pol"
    ))
    .unwrap();
    let c = compile(&src, "mission.pol", Target::Windows).unwrap_or_else(|e| panic!("{e:?}"));
    let p = Policy::from_bytes(&c.image).unwrap();
    let mut ev = EventView::new(Op::Write, "c:\\data\\x.txt");
    ev.pid = 1234;
    let v = p.evaluate(&ev);
    assert_eq!((v.action, v.rule, v.line), (Action::Log, Some(1), 5));
    ev.pid = 1;
    assert_eq!(p.evaluate(&ev).action, Action::None);
    ev.image = "C:\\bin\\Backup.exe";
    assert_eq!(p.evaluate(&ev).rule, Some(2));
    let mut del = EventView::new(Op::Delete, "C:\\Finance\\q3.xlsx");
    assert_eq!(p.evaluate(&del).action, Action::Deny);
    del.image = "c:\\windows\\system32\\ROBOCOPY.EXE";
    assert_eq!(p.evaluate(&del).action, Action::None);
    let cr = EventView::new(Op::Create, "C:\\Program Files\\App\\a.DOCX");
    let v = p.evaluate(&cr);
    assert_eq!((v.action, v.tag), (Action::Log, "app-docs"));
    let rd = EventView::new(Op::Read, "C:\\Users\\bob\\Documents\\x\\id.key");
    assert_eq!(p.evaluate(&rd).rule, Some(6));
    let rd = EventView::new(Op::Read, "C:\\tmp\\Secret-plans.txt");
    assert_eq!(p.evaluate(&rd).rule, Some(6));
    let t = EventView::new(Op::Delete, "C:\\Windows\\Temp\\x");
    assert_eq!(p.evaluate(&t).action, Action::Allow);
}
