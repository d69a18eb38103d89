//! End to end through the libraries: compile a policy, verify the image,
//! evaluate recorded events, queue the decided ones, write them with the
//! flush thread, read them back — and compare with what the policy says
//! the log must contain.
use std::time::Duration;

use fltpolicy_audit::reader::{LogReader, RecordBody};
use fltpolicy_audit::verify::verify;
use fltpolicy_audit::writer::{rotated_files, FileSink, FlushConfig, FlushThread};
use fltpolicy_audit::ReadOptions;
use fltpolicy_core::event::{Action, EventView, Op, Target};
use fltpolicy_core::image::Policy;
use fltpolicy_core::record::{flags, EventData, PolicyId, MAX_PATH_BYTES};

const POLICY: &str = r#"
log writes under /srv as "srv-writes"
deny delete under /srv/finance unless process == "robocopy"
"#;

#[test]
fn replayed_events_come_back_exactly_as_the_policy_decided() {
    let compiled = fltpolicy_compiler::compile(POLICY, "t.pol", Target::Linux).unwrap();
    let policy = Policy::from_bytes(&compiled.image).unwrap();
    let long = format!("/srv/{}", "x".repeat(MAX_PATH_BYTES + 100));
    let events: Vec<EventView<'_>> = vec![
        EventView {
            pid: 10,
            image: "/usr/bin/cat",
            user: "alice",
            ..EventView::new(Op::Write, "/srv/a.txt")
        },
        EventView {
            pid: 10,
            image: "/usr/bin/cat",
            ..EventView::new(Op::Read, "/srv/a.txt")
        },
        EventView {
            pid: 11,
            ppid: 1,
            image: "/usr/bin/rm",
            user: "bob",
            ..EventView::new(Op::Delete, "/srv/finance/q1.xls")
        },
        EventView {
            pid: 12,
            image: "/usr/bin/robocopy",
            ..EventView::new(Op::Delete, "/srv/finance/q2.xls")
        },
        EventView {
            pid: 13,
            image: "/usr/bin/dd",
            size: 4096,
            ..EventView::new(Op::Write, &long)
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("replay.fplog");
    let ft = FlushThread::start(
        FileSink::create(&base).unwrap(),
        FlushConfig {
            interval: Duration::from_millis(5),
            ..FlushConfig::default()
        },
    )
    .unwrap();
    let q = ft.producer();
    let id = PolicyId::new(&policy.hash(), 3);
    let mut expected = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        let v = policy.evaluate(ev);
        if v.action.records() {
            let data = EventData::from_view(ev, &v, id, 1_000 + i as u64, None);
            q.push_waiting(&data).unwrap();
            expected.push((ev.pid, v.action, v.rule, v.tag.to_owned()));
        }
    }
    ft.shutdown().unwrap();

    // Events 0 (log, rule 1), 2 (deny, rule 2) and 4 (log, rule 1).
    assert_eq!(
        expected.iter().map(|e| (e.0, e.1, e.2)).collect::<Vec<_>>(),
        vec![
            (10, Action::Log, Some(1)),
            (11, Action::Deny, Some(2)),
            (13, Action::Log, Some(1))
        ]
    );
    let files = rotated_files(&base);
    let recs: Vec<_> = LogReader::open(&files)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let got: Vec<_> = recs
        .iter()
        .filter_map(|r| r.event().map(|e| (r, e)))
        .collect();
    assert_eq!(got.len(), 3);
    for ((rec, e), (pid, action, rule, tag)) in got.iter().zip(&expected) {
        assert_eq!(e.pid, *pid);
        assert_eq!(e.action.action(), Some(*action));
        assert_eq!(e.rule, *rule);
        assert_eq!(&e.tag, tag);
        assert_eq!(e.policy, id);
        assert!(rec.time_ns >= 1_000);
    }
    let (_, big) = got[2];
    assert_eq!(big.flags & flags::PATH_TRUNCATED, flags::PATH_TRUNCATED);
    assert_eq!(big.path.len(), MAX_PATH_BYTES);
    assert!(long.starts_with(&big.path));
    assert_eq!(got[0].1.user, "alice");
    assert_eq!(got[1].1.path, "/srv/finance/q1.xls");
    assert!(matches!(recs.last().unwrap().body, RecordBody::End(_)));
    assert!(verify(&files, ReadOptions::default()).unwrap().ok());
}
