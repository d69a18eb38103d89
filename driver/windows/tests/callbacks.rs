//! The callback defects of issue 9 (1, 2, 6, 10 and the create-path items
//! of 11), each with a test that fails on the code before the fix.

mod common;

use common::*;
use fltpolicy_core::event::{Action, Op};
use fltpolicy_driver::kernel::status::STATUS_ACCESS_DENIED;
use fltpolicy_driver::kernel::{self, DISPATCH_LEVEL};
use fltpolicy_driver::ops::UNNAMED_TAG;
use fltpolicy_driver::sim::{access, with_irql, Io, Open, Sim};

fn event_list(sim: &Sim) -> Vec<Rec> {
    events(&log_records(sim)).into_iter().cloned().collect()
}

// ---- defect 1: no context lookups above APC_LEVEL ----

#[test]
#[should_panic(expected = "DRIVER VERIFIER: FltGetStreamHandleContext called at IRQL 2")]
fn a_stream_handle_context_get_at_dispatch_is_a_violation() {
    let sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    let (inst, fo) = (sim.instance_of(r"C:\"), sim.file_object(h));
    // A post-operation callback at DISPATCH_LEVEL doing what post_io did.
    with_irql(DISPATCH_LEVEL, true, || {
        // SAFETY: test only; the IRQL check fires first.
        let _ = unsafe { kernel::get_stream_handle_context(inst, fo) };
    });
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: FltGetInstanceContext called at IRQL 2")]
fn an_instance_context_get_at_dispatch_is_a_violation() {
    let sim = started(r"log write under C:\Data");
    let inst = sim.instance_of(r"C:\");
    with_irql(DISPATCH_LEVEL, true, || {
        // SAFETY: test only; the IRQL check fires first.
        let _ = unsafe { kernel::get_instance_context(inst) };
    });
}

/// The old post_io took the context reference itself at completion — at
/// DISPATCH_LEVEL for a paging write completed in a DPC.
#[test]
fn paging_writes_completed_at_dispatch_are_recorded_from_the_pre_op_reference() {
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\mapped.bin", access::WRITE, access::OPEN_IF)
        .unwrap();
    for _ in 0..20 {
        assert_eq!(sim.write(h, 4096, Io::paging_at_dispatch()), 0);
    }
    assert_eq!(sim.unload(), 0, "no reference or completion block leaked");
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 20, "{ev:#?}");
    assert!(ev.iter().all(|r| matches!(
        r,
        Rec::Event {
            paging: true,
            status: Some(0),
            op: Some(Op::Write),
            ..
        }
    )));
}

#[test]
fn a_draining_post_op_still_releases_what_pre_op_took() {
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\d.bin", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.drain_next_post();
    assert_eq!(sim.write(h, 1, Io::paging_at_dispatch()), 0);
    assert_eq!(sim.write(h, 2, Io::from(1234)), 0);
    // Unload fails the test on a leaked context reference or block.
    assert_eq!(sim.unload(), 0);
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 1, "the drained write records nothing: {ev:#?}");
}

// ---- defect 2: carry the verdict; evaluate once ----

#[test]
fn a_log_decided_in_pre_op_is_recorded_although_the_policy_changed_before_completion() {
    let mut sim = started(r#"log write under C:\Data as "A""#);
    let h = sim
        .open(1234, r"C:\Data\s.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    let gen_a = status(&sim).generation;
    sim.between_pre_and_post(|s| {
        load_policy(s, r#"log read under C:\Other as "B""#);
    });
    assert_eq!(sim.write(h, 7, Io::paging_at_dispatch()), 0);
    assert_eq!(status(&sim).generation, gen_a + 1, "the swap happened");
    sim.unload();
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let Rec::Event {
        tag,
        generation,
        action,
        status,
        rule,
        ..
    } = &ev[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (tag.as_str(), *generation),
        ("A", gen_a),
        "recorded as decided"
    );
    assert_eq!(
        (*action, *status, *rule),
        (Some(Action::Log), Some(0), Some(1))
    );
}

#[test]
fn each_logged_operation_is_evaluated_once() {
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\e.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    for io in [Io::from(1234), Io::paging_at_dispatch()] {
        let before = Sim::evaluations();
        assert_eq!(sim.write(h, 3, io), 0);
        assert_eq!(Sim::evaluations() - before, 1, "{io:?}");
    }
    sim.unload();
    assert_eq!(event_list(&sim).len(), 2);
}

#[test]
fn with_every_completion_block_taken_the_verdict_is_still_recorded_and_counted() {
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\x.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    let taken = fltpolicy_driver::completion::claim_all_for_test();
    let missed = fltpolicy_driver::completion::exhausted();
    assert_eq!(sim.write(h, 5, Io::from(1234)), 0);
    assert_eq!(fltpolicy_driver::completion::exhausted(), missed + 1);
    fltpolicy_driver::completion::release_all_claimed_by_test(taken);
    sim.unload();
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 1);
    assert!(
        matches!(
            &ev[0],
            Rec::Event {
                status: None,
                op: Some(Op::Write),
                ..
            }
        ),
        "{ev:#?}"
    );
}

// ---- defect 6: decide on the normalized name; fail closed ----

#[test]
fn an_8_3_short_name_does_not_bypass_a_deny() {
    let mut sim = started(r"deny write under C:\Finance");
    sim.add_short_name(r"C:\Finance", "FINANC~1");
    assert_eq!(
        sim.open(
            1234,
            r"C:\FINANC~1\budget.xlsx",
            access::WRITE,
            access::OPEN_IF
        ),
        Err(STATUS_ACCESS_DENIED)
    );
    assert_eq!(
        sim.open(
            1234,
            r"C:\Finance\budget.xlsx",
            access::WRITE,
            access::OPEN_IF
        ),
        Err(STATUS_ACCESS_DENIED)
    );
    sim.unload();
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 2);
    assert!(
        ev.iter().all(|r| matches!(r,
        Rec::Event { path, action: Some(Action::Deny), .. } if path == r"C:\Finance\budget.xlsx")),
        "{ev:#?}"
    );
}

#[test]
fn a_handle_opened_by_short_name_caches_the_long_name() {
    let mut sim = started(r"log read under C:\Finance");
    sim.add_short_name(r"C:\Finance", "FINANC~1");
    let h = sim
        .open(
            1234,
            r"C:\FINANC~1\r.txt",
            access::READ | access::WRITE,
            access::OPEN_IF,
        )
        .unwrap();
    assert_eq!(sim.read(h, 10, Io::from(1234)), 0);
    sim.unload();
    let ev = event_list(&sim);
    assert!(
        matches!(ev.last(), Some(Rec::Event { path, op: Some(Op::Read), .. }) if path == r"C:\Finance\r.txt"),
        "{ev:#?}"
    );
}

#[test]
fn an_open_by_file_id_is_decided_on_the_opened_files_name() {
    let mut sim = started(r"deny read under C:\Finance");
    let h = sim
        .open(999, r"C:\Finance\f.txt", access::WRITE, access::CREATE)
        .unwrap();
    sim.close(h);
    // Pre-create cannot name it; post-create does, and cancels the open.
    assert_eq!(
        sim.open_by_id(1234, r"C:\Finance\f.txt", access::READ),
        Err(STATUS_ACCESS_DENIED)
    );
    // Not covered by the deny: opens, and is named for later operations.
    let h = sim
        .open_by_id(1234, r"C:\Finance\f.txt", access::WRITE)
        .unwrap();
    sim.close(h);
    sim.unload();
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert!(
        matches!(&ev[0], Rec::Event { path, op: Some(Op::Read), action: Some(Action::Deny), .. }
        if path == r"C:\Finance\f.txt")
    );
}

#[test]
fn without_a_name_a_create_a_deny_rule_could_cover_fails_closed() {
    let mut sim = started(r"deny read under C:\Finance");
    let h = sim
        .open(999, r"C:\Other\o.txt", access::WRITE, access::CREATE)
        .unwrap();
    sim.close(h);
    sim.fail_name_queries(true);
    // Read is covered by a deny rule: no name, no open — decided in
    // post-create (FILE_OPEN changes nothing before it) ...
    assert_eq!(
        sim.open(1234, r"C:\Other\o.txt", access::READ, access::OPEN),
        Err(STATUS_ACCESS_DENIED)
    );
    // ... or in pre-create when the create would change the file first.
    assert_eq!(
        sim.open(1234, r"C:\Other\o.txt", access::READ, access::OPEN_IF),
        Err(STATUS_ACCESS_DENIED)
    );
    // No deny rule covers write: the open goes through.
    let h = sim
        .open(1234, r"C:\Other\o.txt", access::WRITE, access::OPEN)
        .unwrap();
    sim.close(h);
    sim.fail_name_queries(false);
    sim.unload();
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 2, "{ev:#?}");
    assert!(ev.iter().all(|r| matches!(r,
        Rec::Event { path, tag, rule: None, action: Some(Action::Deny), .. } if path.is_empty() && tag == UNNAMED_TAG)));
}

#[test]
fn a_rename_into_a_denied_tree_is_denied() {
    let mut sim = started(r"deny create under C:\Finance");
    sim.add_short_name(r"C:\Finance", "FINANC~1");
    let h = sim
        .open(
            1234,
            r"C:\Work\a.txt",
            access::WRITE | access::DELETE,
            access::OPEN_IF,
        )
        .unwrap();
    assert_eq!(
        sim.rename(h, 1234, r"C:\Finance\a.txt"),
        STATUS_ACCESS_DENIED
    );
    assert_eq!(
        sim.rename_as(h, 1234, r"C:\Finance\a.txt", r"\??\C:\FINANC~1\a.txt"),
        STATUS_ACCESS_DENIED
    );
    assert!(
        sim.file_contents(r"C:\Work\a.txt").is_some(),
        "still where it was"
    );
    // Elsewhere is fine.
    assert_eq!(sim.rename(h, 1234, r"C:\Work\b.txt"), 0);
    sim.unload();
    let ev = event_list(&sim);
    assert_eq!(ev.len(), 2, "{ev:#?}");
    assert!(ev.iter().all(|r| matches!(r,
        Rec::Event { path, target, target_matched: true, op: Some(Op::Create), action: Some(Action::Deny), .. }
            if path == r"C:\Work\a.txt" && target == r"C:\Finance\a.txt")), "{ev:#?}");
}

#[test]
fn a_hard_link_into_a_denied_tree_is_denied() {
    let mut sim = started(r"deny create under C:\Finance");
    let h = sim
        .open(1234, r"C:\Work\l.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    assert_eq!(sim.link(h, 1234, r"C:\Finance\l.txt"), STATUS_ACCESS_DENIED);
    assert!(sim.file_contents(r"C:\Finance\l.txt").is_none());
    assert_eq!(sim.link(h, 1234, r"C:\Work\l2.txt"), 0);
    sim.unload();
}

#[test]
fn a_rename_destination_that_cannot_be_named_fails_closed() {
    let mut sim = started(r"deny rename under C:\Finance");
    let h = sim
        .open(
            1234,
            r"C:\Work\n.txt",
            access::WRITE | access::DELETE,
            access::OPEN_IF,
        )
        .unwrap();
    sim.fail_name_queries(true);
    assert_eq!(sim.rename(h, 1234, r"C:\Work\m.txt"), STATUS_ACCESS_DENIED);
    sim.fail_name_queries(false);
    assert_eq!(sim.rename(h, 1234, r"C:\Work\m.txt"), 0);
    sim.unload();
}

/// SL_OPEN_TARGET_DIRECTORY: the I/O manager opens the parent of a rename
/// target; the old pre-create evaluated it as an open/create of the target.
#[test]
fn a_rename_target_directory_open_is_not_an_open_of_the_target() {
    let mut sim = started(r"log create under C:\Data");
    assert_eq!(sim.open_target_directory(1234, r"C:\Data\new.txt"), 0);
    sim.unload();
    assert_eq!(event_list(&sim), vec![]);
}

// ---- defect 10: the requester's SID ----

const ALICE: &str = "S-1-5-21-1004367836-1177252483-682043010-1001";
const BOB: &str = "S-1-5-21-1004367836-1177252483-682043010-1002";

#[test]
fn records_carry_the_requesters_sid_and_user_rules_match_it() {
    let mut sim = started(&format!(
        "log write under C:\\Data\ndeny read under C:\\Data where user == \"{BOB}\""
    ));
    sim.set_user(1234, ALICE);
    sim.set_user(999, BOB);
    let h = sim
        .open(1234, r"C:\Data\u.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    assert_eq!(sim.write(h, 1, Io::paging_at_dispatch()), 0);
    assert_eq!(
        sim.open(999, r"C:\Data\u.txt", access::READ, access::OPEN),
        Err(STATUS_ACCESS_DENIED)
    );
    let h2 = sim
        .open(1234, r"C:\Data\u.txt", access::READ, access::OPEN)
        .unwrap();
    sim.close(h2);
    sim.unload();
    let ev = event_list(&sim);
    let users: Vec<(Option<Action>, &str)> = ev
        .iter()
        .map(|r| match r {
            Rec::Event { action, user, .. } => (*action, user.as_str()),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        users,
        vec![(Some(Action::Log), ALICE), (Some(Action::Deny), BOB)]
    );
}

#[test]
fn an_impersonating_thread_is_recorded_as_the_client() {
    let mut sim = started(r"log create under C:\Data");
    sim.set_user(1234, ALICE);
    let client = sim.token_for(BOB);
    let h = sim
        .open_how(
            1234,
            r"C:\Data\imp.txt",
            access::WRITE,
            access::CREATE,
            Open {
                impersonating: Some(client),
                ..Open::default()
            },
        )
        .unwrap();
    sim.close(h);
    sim.unload();
    let ev = event_list(&sim);
    assert!(
        matches!(&ev[..], [Rec::Event { user, .. }] if user == BOB),
        "{ev:#?}"
    );
}

#[test]
#[should_panic(expected = "simulation misuse: a pre-operation callback at IRQL 2")]
fn the_simulation_never_calls_a_pre_op_above_apc() {
    let sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\q.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    let io = Io {
        pid: 4,
        irql: DISPATCH_LEVEL,
        post_irql: DISPATCH_LEVEL,
        paging: true,
    };
    sim.write(h, 1, io);
}

// ---- issue 14: a record's time is when the operation happened ----

/// Event times of the default log, in file order.
fn event_times(sim: &Sim) -> Vec<u64> {
    use fltpolicy_core::record::frame::{decode_body, decode_header, parse_frame, FrameParse};
    use fltpolicy_core::record::Record;
    let bytes = sim.file_contents(LOG).unwrap_or_default();
    let (_h, mut off) = decode_header(&bytes).expect("log header decodes");
    let mut out = Vec::new();
    while off < bytes.len() {
        let FrameParse::Frame(f) = parse_frame(&bytes[off..]) else {
            panic!("bad frame at {off}")
        };
        if let Ok(Record::Event(e)) = decode_body(f.body) {
            out.push(e.data.time_ns);
        }
        off += f.total;
    }
    out
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn a_carried_record_is_timed_at_pre_op_not_at_completion() {
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\t.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    let pre_op_done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mark = pre_op_done.clone();
    // The I/O takes 200 ms between pre-op and completion.
    sim.between_pre_and_post(move |_| {
        mark.store(now_ns(), std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(200));
    });
    assert_eq!(sim.write(h, 7, Io::from(1234)), 0);
    sim.unload();
    let times = event_times(&sim);
    let t = *times.last().expect("the write was recorded");
    let pre = pre_op_done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(pre > 0, "the hook ran between pre- and post-op");
    assert!(
        t <= pre,
        "record time {t} is after pre-op ended ({pre}): timed at completion, {} ms late",
        (t - pre) / 1_000_000
    );
}
