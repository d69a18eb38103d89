//! The log file's life outside the writer's control: deleted or replaced
//! while the writer runs, and a writer restarted on an existing log (a
//! service restart, clean or after a crash). Real files, real unlink and
//! rename; the log must verify afterwards and say what was lost.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fltpolicy_audit::reader::{LogReader, RecordBody};
use fltpolicy_audit::verify::verify;
use fltpolicy_audit::writer::{
    rotated_files, AuditQueue, FileSink, FlushConfig, FlushThread, Notifier,
};
use fltpolicy_audit::ReadOptions;
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::record::{DropReason, EventData, PolicyId};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tmp(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("fltpolicy-life-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn push(q: &AuditQueue, from: u64, n: u64) {
    for i in from..from + n {
        q.push_waiting(&EventData {
            time_ns: 1_700_000_000_000_000_000 + i,
            op: Some(Op::Write),
            action: Action::Log.into(),
            pid: 9,
            size: i,
            rule: Some(1),
            policy: PolicyId::new(&[3; 32], 1),
            path: "/srv/x",
            ..Default::default()
        })
        .unwrap();
    }
}

fn wait_written(q: &AuditQueue, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while q.writer_health().events_written < n {
        assert!(Instant::now() < deadline, "{:?}", q.writer_health());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn cfg(notices: &Arc<Mutex<Vec<String>>>) -> FlushConfig {
    let n = Arc::clone(notices);
    FlushConfig {
        interval: Duration::from_millis(10),
        notify: Some(Notifier(Arc::new(move |m| {
            n.lock().unwrap().push(m.to_owned())
        }))),
        ..FlushConfig::default()
    }
}

/// (events, drop records by reason, sizes of the events in order)
fn read_all(files: &[PathBuf]) -> (Vec<u64>, Vec<(DropReason, u64, u64)>) {
    let mut sizes = Vec::new();
    let mut drops = Vec::new();
    for r in LogReader::open(files).unwrap() {
        match r.unwrap().body {
            RecordBody::Event(e) => sizes.push(e.size),
            RecordBody::Dropped(d) => drops.push((d.reason, d.after_seq, d.count)),
            RecordBody::End(_) => {}
        }
    }
    (sizes, drops)
}

fn assert_verifies(base: &Path) {
    let files = rotated_files(base);
    let rep = verify(&files, ReadOptions::default()).unwrap();
    assert!(
        rep.ok(),
        "verify over {files:?}: {:?} notes {:?}",
        rep.errors,
        rep.notes
    );
}

#[test]
fn deleting_the_log_while_running_starts_a_new_file_that_says_why() {
    let d = tmp("delete");
    let base = d.0.join("audit.fplog");
    let notices = Arc::new(Mutex::new(Vec::new()));
    let ft = FlushThread::start(FileSink::create(&base).unwrap(), cfg(&notices)).unwrap();
    let q = ft.producer();
    push(&q, 0, 100);
    wait_written(&q, 100);
    std::fs::remove_file(&base).unwrap();
    push(&q, 100, 50);
    wait_written(&q, 150);
    assert_eq!(q.writer_health().files_lost, 1);
    ft.shutdown().unwrap();
    let files = rotated_files(&base);
    assert_eq!(files, vec![d.0.join("audit.fplog.1")]);
    let (sizes, drops) = read_all(&files);
    assert_eq!(sizes, (100..150).collect::<Vec<_>>());
    // The first record of the new file: the 100 events of the deleted
    // file, after seq 0 (nothing before them).
    assert_eq!(drops, vec![(DropReason::LogLost, 0, 100)]);
    assert_verifies(&base);
    let n = notices.lock().unwrap();
    assert!(
        n.iter()
            .any(|m| m.contains("deleted, renamed or replaced") && m.contains("100 records")),
        "{n:?}"
    );
}

#[test]
fn a_file_replaced_under_the_log_is_not_written_into_and_the_chain_goes_on() {
    let d = tmp("replace");
    let base = d.0.join("audit.fplog");
    let notices = Arc::new(Mutex::new(Vec::new()));
    let ft = FlushThread::start(
        FileSink::create(&base).unwrap(),
        FlushConfig {
            // Rotate often: the replaced file is not the first one.
            max_file_bytes: fltpolicy_core::record::writer::MIN_FILE_BYTES.max(16 << 10),
            ..cfg(&notices)
        },
    )
    .unwrap();
    let q = ft.producer();
    push(&q, 0, 400);
    wait_written(&q, 400);
    let current = rotated_files(&base).pop().unwrap();
    assert_ne!(current, base, "rotated at least once");
    // Someone moves another file over the current one.
    let other = d.0.join("other");
    std::fs::write(&other, b"not a log").unwrap();
    std::fs::rename(&other, &current).unwrap();
    push(&q, 400, 100);
    wait_written(&q, 500);
    ft.shutdown().unwrap();
    assert_eq!(std::fs::read(&current).unwrap(), b"not a log");
    let files: Vec<PathBuf> = rotated_files(&base)
        .into_iter()
        .filter(|p| *p != current)
        .collect();
    let (sizes, drops) = read_all(&files);
    assert_eq!(drops.len(), 1, "{drops:?}");
    let (reason, _after, count) = drops[0];
    assert_eq!(reason, DropReason::LogLost);
    // The replaced file held only events (it began after a rotation).
    assert!(count > 0);
    assert_eq!(sizes.len() as u64 + count, 500, "{drops:?}");
    let n = notices.lock().unwrap();
    assert!(n.iter().any(|m| m.contains("replaced")), "{n:?}");
    let rep = verify(&files, ReadOptions::default()).unwrap();
    assert!(rep.ok(), "{:?} {:?}", rep.errors, rep.notes);
}

#[test]
fn restarting_on_an_existing_log_continues_its_chain() {
    let d = tmp("restart");
    let base = d.0.join("audit.fplog");
    let notices = Arc::new(Mutex::new(Vec::new()));
    // Three runs: clean stop, clean stop, then a crash that tears the
    // last record, then a fourth run on the torn log.
    for run in 0..3u64 {
        let (sink, cont) = FileSink::open_log(&base, None).unwrap();
        assert_eq!(cont.is_some(), run > 0);
        if let Some(c) = &cont {
            assert_eq!(c.previous_end, Some("shutdown"));
            assert_eq!(c.truncated, None);
        }
        let ft = FlushThread::start_at(sink, cfg(&notices), cont.as_ref()).unwrap();
        push(&ft.producer(), run * 10, 10);
        ft.shutdown().unwrap();
    }
    assert_eq!(rotated_files(&base).len(), 3);
    assert_verifies(&base);
    // A crash in the middle of writing: the last record is torn.
    let last = rotated_files(&base).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() - 5]).unwrap();
    let (sink, cont) = FileSink::open_log(&base, None).unwrap();
    let c = cont.clone().expect("continues");
    assert!(c.truncated.is_some(), "{c:?}");
    let ft = FlushThread::start_at(sink, cfg(&notices), cont.as_ref()).unwrap();
    push(&ft.producer(), 30, 10);
    ft.shutdown().unwrap();
    let files = rotated_files(&base);
    assert_eq!(files.len(), 4);
    let (sizes, drops) = read_all(&files);
    assert_eq!(sizes, (0..40).collect::<Vec<_>>());
    // The torn record was the third run's end record.
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0].0, DropReason::LogLost);
    assert_eq!(drops[0].2, 1);
    assert_verifies(&base);
    // Sequence numbers run on across the restarts.
    let seqs: Vec<u64> = LogReader::open(&files)
        .unwrap()
        .map(|r| r.unwrap().seq)
        .collect();
    let mut expect = seqs[0];
    for s in &seqs {
        assert!(*s == expect || *s == expect + 1, "{seqs:?}");
        expect = s + 1;
    }
    // Files given in any order are put back in chain order.
    let mut shuffled = files.clone();
    shuffled.reverse();
    let rep = verify(&shuffled, ReadOptions::default()).unwrap();
    assert!(rep.ok(), "{:?}", rep.errors);
    // A rewritten earlier file breaks the link to the restart after it.
    let first = std::fs::read(&files[0]).unwrap();
    let mut b = first.clone();
    let n = b.len();
    b[n - 30] ^= 1;
    std::fs::write(&files[0], &b).unwrap();
    assert!(!verify(&files, ReadOptions::default()).unwrap().ok());
    std::fs::write(&files[0], &first).unwrap();
}

#[test]
fn restart_after_a_kill_without_a_torn_tail() {
    let d = tmp("killed");
    let base = d.0.join("audit.fplog");
    let notices = Arc::new(Mutex::new(Vec::new()));
    let ft = FlushThread::start(FileSink::create(&base).unwrap(), cfg(&notices)).unwrap();
    push(&ft.producer(), 0, 20);
    ft.shutdown().unwrap();
    // Cut the end record off at its frame boundary: a kill between batches.
    let (_, drops) = read_all(std::slice::from_ref(&base));
    assert!(drops.is_empty());
    let mut last_off = 0;
    for r in LogReader::open(&[&base]).unwrap() {
        last_off = r.unwrap().offset;
    }
    let bytes = std::fs::read(&base).unwrap();
    std::fs::write(&base, &bytes[..last_off as usize]).unwrap();
    let (sink, cont) = FileSink::open_log(&base, None).unwrap();
    let c = cont.clone().unwrap();
    assert_eq!(c.previous_end, None);
    assert_eq!(c.truncated, None);
    let ft = FlushThread::start_at(sink, cfg(&notices), cont.as_ref()).unwrap();
    push(&ft.producer(), 20, 5);
    ft.shutdown().unwrap();
    let (sizes, _) = read_all(&rotated_files(&base));
    assert_eq!(sizes, (0..25).collect::<Vec<_>>());
    assert_verifies(&base);
}

#[test]
fn retention_removes_the_oldest_files_and_the_rest_still_verifies() {
    use fltpolicy_audit::writer::Retention;
    use fltpolicy_core::record::writer::MIN_FILE_BYTES;
    let d = tmp("retain");
    let base = d.0.join("audit.fplog");
    let file_bytes = MIN_FILE_BYTES.max(16 << 10);
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = FileSink::create(&base).unwrap().retain(Retention {
        max_bytes: 3 * file_bytes,
        max_age: None,
    });
    let ft = FlushThread::start(
        sink,
        FlushConfig {
            max_file_bytes: file_bytes,
            ..cfg(&notices)
        },
    )
    .unwrap();
    push(&ft.producer(), 0, 3000);
    let (sink, stats) = ft.shutdown().unwrap();
    assert!(stats.files > 5, "rotated {} times", stats.files);
    assert!(!sink.removed().is_empty());
    assert!(!base.exists(), "the oldest file went first");
    let files = rotated_files(&base);
    let total: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total <= 4 * file_bytes, "{total} bytes in {files:?}");
    let (sizes, drops) = read_all(&files);
    assert_eq!(*sizes.last().unwrap(), 2999, "the newest records are kept");
    assert!(sizes.windows(2).all(|w| w[1] == w[0] + 1), "no gap inside");
    // The removal is recorded in the chain: the retention records in the
    // kept files declare contiguous ranges ending right before the first
    // record still on disk.
    let declared: Vec<(u64, u64)> = drops
        .iter()
        .filter(|d| d.0 == DropReason::Retention)
        .map(|d| (d.1, d.2))
        .collect();
    assert!(!declared.is_empty(), "no retention record in {drops:?}");
    assert!(
        declared.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0),
        "contiguous: {declared:?}"
    );
    let first_kept = LogReader::open(&files)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .seq;
    let (after, count) = *declared.last().unwrap();
    assert_eq!(after + count + 1, first_kept, "{declared:?}");
    let rep = verify(&files, ReadOptions::default()).unwrap();
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(
        rep.notes
            .iter()
            .any(|n| n.contains("removed by the log's retention limit, as the writer declared")),
        "{:?}",
        rep.notes
    );
    assert!(
        !rep.notes
            .iter()
            .any(|n| n.contains("earlier files were not given")),
        "the gap is explained, not merely noted: {:?}",
        rep.notes
    );
    assert_eq!(rep.dropped, 0, "retention is not a loss of events");
    assert_eq!(rep.retired, declared.iter().map(|d| d.1).sum::<u64>());
}

/// A viewer (or forwarder) following the log keeps following it when the
/// service is restarted: the restarted writer's file is found by its
/// header (it continues the chain value and the sequence numbers).
#[test]
fn a_live_reader_follows_the_log_across_a_restart() {
    use fltpolicy_audit::reader::LogReader;
    let d = tmp("live-restart");
    let base = d.0.join("audit.fplog");
    let notices = Arc::new(Mutex::new(Vec::new()));
    let ft = FlushThread::start(FileSink::create(&base).unwrap(), cfg(&notices)).unwrap();
    push(&ft.producer(), 0, 5);
    ft.shutdown().unwrap();
    let mut live = LogReader::open_live(&[&base], ReadOptions::default()).unwrap();
    let first: Vec<_> = live.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(first.len(), 6, "5 events and the end record");
    assert!(live.next().is_none(), "nothing more yet");
    let (sink, cont) = FileSink::open_log(&base, None).unwrap();
    let ft = FlushThread::start_at(sink, cfg(&notices), cont.as_ref()).unwrap();
    push(&ft.producer(), 5, 3);
    ft.shutdown().unwrap();
    let more: Vec<_> = live.by_ref().collect::<Result<_, _>>().unwrap();
    let sizes: Vec<u64> = more
        .iter()
        .filter_map(|r| r.event().map(|e| e.size))
        .collect();
    assert_eq!(sizes, [5, 6, 7], "{more:?}");
    assert_eq!(live.files().len(), 2);
}
