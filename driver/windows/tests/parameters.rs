//! Requests laid out the way Filter Manager lays them out (fltkernel.h x64
//! offsets, written by the simulation at fixed byte positions — see
//! `sim::wire`) reach the driver's decisions intact.
//!
//! With windows-sys 0.61.2's `FLT_PARAMETERS` (which drops the
//! `POINTER_ALIGNMENT` of some members; microsoft/windows-rs#3525) the
//! driver read the set-information class at +4 instead of +8 and the
//! create's allocation size at +28 instead of +40: the first three tests
//! here failed — a SetInformation delete under `deny delete` went through,
//! a rename was recorded as `setinfo`, sizes were 0.

mod common;

use common::*;
use fltpolicy_core::event::{Action, Op};
use fltpolicy_driver::kernel::status::STATUS_ACCESS_DENIED;
use fltpolicy_driver::sim::{access, Io};

/// `FILE_DELETE_ON_CLOSE`.
const DELETE_ON_CLOSE: u32 = 0x1000;

#[test]
fn set_information_delete_is_denied_in_either_disposition_class() {
    let mut sim = started(
        r#"deny delete under "C:\Finance" unless image == "C:\Windows\System32\robocopy.exe""#,
    );
    let h = sim
        .open(999, r"C:\Finance\q3.xlsx", access::WRITE, access::OPEN_IF)
        .unwrap();
    // FileDispositionInformation { DeleteFile = TRUE }.
    assert_eq!(sim.delete(h, 999), STATUS_ACCESS_DENIED);
    // FileDispositionInformationEx { Flags = FILE_DISPOSITION_DELETE }.
    assert_eq!(sim.delete_ex(h, 999, 1), STATUS_ACCESS_DENIED);
    // Ex without the delete flag is a plain set-information: allowed.
    assert_eq!(sim.delete_ex(h, 999, 0), 0);
    assert!(sim.file_contents(r"C:\Finance\q3.xlsx").is_some());
    // robocopy may delete.
    let r = sim
        .open(77, r"C:\Finance\q3.xlsx", access::WRITE, access::OPEN)
        .unwrap();
    assert_eq!(sim.delete_ex(r, 77, 1), 0);
    assert!(sim.file_contents(r"C:\Finance\q3.xlsx").is_none());
    assert_eq!(status(&sim).denied, 2);
    sim.unload();
}

#[test]
fn set_information_rename_is_recorded_as_rename_with_its_status() {
    let mut sim = started(r"log rename, setinfo under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    assert_eq!(sim.rename(h, 1234, r"C:\Data\b.txt"), 0);
    assert_eq!(sim.set_end_of_file(h, 1234, 300), 0);
    assert_eq!(sim.unload(), 0);
    let recs = log_records(&sim);
    let ops: Vec<_> = events(&recs)
        .into_iter()
        .map(|r| match r {
            Rec::Event {
                op, action, status, ..
            } => (*op, *action, *status),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            (Some(Op::Rename), Some(Action::Log), Some(0)),
            (Some(Op::SetInfo), Some(Action::Log), Some(0)),
        ],
        "{recs:#?}"
    );
}

#[test]
fn sizes_come_from_the_create_allocation_and_the_end_of_file() {
    let mut sim = started(r"deny create, setinfo under C:\Big where size > 1000");
    // AllocationSize 4096 at +40 of the create parameters.
    assert_eq!(
        sim.open_with(
            1234,
            r"C:\Big\huge.bin",
            access::WRITE,
            access::CREATE,
            0,
            4096
        )
        .map(|_| ()),
        Err(STATUS_ACCESS_DENIED)
    );
    let h = sim
        .open_with(
            1234,
            r"C:\Big\small.bin",
            access::WRITE,
            access::CREATE,
            0,
            10,
        )
        .unwrap();
    // FileEndOfFileInformation: the new size is the event's size.
    assert_eq!(sim.set_end_of_file(h, 1234, 5000), STATUS_ACCESS_DENIED);
    assert_eq!(sim.set_end_of_file(h, 1234, 500), 0);
    assert_eq!(sim.write(h, 10, Io::from(1234)), 0);
    sim.unload();
}

#[test]
fn delete_on_close_in_the_create_options_is_a_delete() {
    let mut sim = started(r#"deny delete under "C:\Finance""#);
    assert_eq!(
        sim.open_with(
            999,
            r"C:\Finance\t.tmp",
            access::WRITE,
            access::OPEN_IF,
            DELETE_ON_CLOSE,
            0
        )
        .map(|_| ()),
        Err(STATUS_ACCESS_DENIED)
    );
    assert!(sim
        .open_with(
            999,
            r"C:\Finance\t.tmp",
            access::WRITE,
            access::OPEN_IF,
            0,
            0
        )
        .is_ok());
    sim.unload();
}
