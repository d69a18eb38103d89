//! The writer and reader together: round trips, rotation, damage of every
//! kind, write failures, keyed sealing.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64 as StdU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fltpolicy_audit::reader::{LogReader, ReadError, ReadOptions, RecordBody};
use fltpolicy_audit::verify::verify;
use fltpolicy_audit::writer::{new_queue, rotated_files, FileSink, FlushConfig, FlushThread};
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::queue::MIN_RING_WORDS;
use fltpolicy_core::record::writer::{LogWriter, Sink, WriterConfig, MIN_FILE_BYTES};
use fltpolicy_core::record::{DropReason, EventData, PolicyId};

fn event(pid: u64, i: u64, path: &str) -> EventData<'_> {
    EventData {
        time_ns: 1_700_000_000_000_000_000 + i,
        op: Some(Op::Write),
        action: Action::Log.into(),
        pid,
        ppid: 1,
        size: i,
        rule: Some(1),
        line: 3,
        policy: PolicyId::new(&[7; 32], 1),
        path,
        image: "/usr/bin/stress",
        user: "root",
        tag: "t",
        ..Default::default()
    }
}

fn cfg(max_file_bytes: u64) -> FlushConfig {
    FlushConfig {
        max_file_bytes,
        interval: Duration::from_millis(5),
        ring_words: MIN_RING_WORDS,
        ..FlushConfig::default()
    }
}

struct Outcome {
    produced: u64,
    written: u64,
    dropped: u64,
}

/// Writes `threads * per` events through the real flush thread.
fn write_log(base: &Path, threads: u64, per: u64, max_file_bytes: u64) -> Outcome {
    let ft = FlushThread::start(FileSink::create(base).unwrap(), cfg(max_file_bytes)).unwrap();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let p = ft.producer();
            std::thread::spawn(move || {
                let path = format!("/srv/data/t{t}/file.txt");
                for i in 0..per {
                    let _ = p.push(&event(t, i, &path));
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let (_, stats) = ft.shutdown().unwrap();
    Outcome {
        produced: threads * per,
        written: stats.events_written,
        dropped: stats.drops_recorded.iter().sum(),
    }
}

fn read_all(paths: &[PathBuf]) -> (Vec<fltpolicy_audit::DecodedRecord>, Vec<ReadError>) {
    let mut ok = Vec::new();
    let mut errs = Vec::new();
    for item in LogReader::open(paths).unwrap() {
        match item {
            Ok(r) => ok.push(r),
            Err(e) => errs.push(e),
        }
    }
    (ok, errs)
}

#[test]
fn round_trip_with_rotation_accounts_for_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("audit.fplog");
    let out = write_log(&base, 4, 5_000, MIN_FILE_BYTES * 4);
    let files = rotated_files(&base);
    assert!(files.len() > 3, "rotation happened: {} files", files.len());
    let (recs, errs) = read_all(&files);
    assert!(errs.is_empty(), "{errs:?}");
    // Dense sequence numbers across files.
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
    }
    let events: Vec<_> = recs.iter().filter_map(|r| r.event()).collect();
    let dropped: u64 = recs
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Dropped(d) => Some(d.count),
            _ => None,
        })
        .sum();
    assert_eq!(events.len() as u64, out.written);
    assert_eq!(dropped, out.dropped);
    assert_eq!(out.written + out.dropped, out.produced);
    // Per producer, no duplicates; ordered by event time, the push order.
    // (A producer whose ring was full spills into another ring, so the
    // log's order across rings is the flush order; the time says when.)
    for t in 0..4 {
        let mut mine: Vec<(u64, u64)> = recs
            .iter()
            .filter_map(|r| {
                r.event()
                    .filter(|e| e.pid == t)
                    .map(|e| (r.time_ns, e.size))
            })
            .collect();
        mine.sort();
        assert!(
            mine.windows(2).all(|w| w[0].1 < w[1].1),
            "producer {t} order"
        );
    }
    let rep = verify(&files, ReadOptions::default()).unwrap();
    assert!(rep.ok(), "{:?}", rep.errors);
    assert!(rep.notes.is_empty(), "{:?}", rep.notes);
    // Given in any order, files are put back in chain order.
    let mut shuffled = files.clone();
    shuffled.reverse();
    assert!(verify(&shuffled, ReadOptions::default()).unwrap().ok());
}

fn small_log() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("a.fplog");
    let out = write_log(&base, 1, 20, 1 << 30);
    assert_eq!(out.written, 20);
    let bytes = std::fs::read(&base).unwrap();
    (dir, base, bytes)
}

#[test]
fn every_flipped_byte_fails_verification() {
    let (_d, base, bytes) = small_log();
    assert!(verify(&[&base], ReadOptions::default()).unwrap().ok());
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01 << (i % 8);
        std::fs::write(&base, &b).unwrap();
        let rep = verify(&[&base], ReadOptions::default()).unwrap();
        assert!(!rep.ok(), "flip at byte {i} went unnoticed");
    }
}

/// Frame boundaries of a single file.
fn frames(bytes: &[u8]) -> (usize, Vec<(usize, usize)>) {
    let (_, hlen) = fltpolicy_core::record::frame::decode_header(bytes).unwrap();
    let mut at = hlen;
    let mut out = Vec::new();
    while at < bytes.len() {
        let fltpolicy_core::record::frame::FrameParse::Frame(f) =
            fltpolicy_core::record::frame::parse_frame(&bytes[at..])
        else {
            panic!("bad frame")
        };
        out.push((at, at + f.total));
        at += f.total;
    }
    (hlen, out)
}

#[test]
fn removed_or_reordered_records_fail_verification() {
    let (_d, base, bytes) = small_log();
    let (hlen, fr) = frames(&bytes);
    for k in 0..fr.len() {
        let mut b = bytes[..fr[k].0].to_vec();
        b.extend_from_slice(&bytes[fr[k].1..]);
        std::fs::write(&base, &b).unwrap();
        let rep = verify(&[&base], ReadOptions::default()).unwrap();
        if k + 1 == fr.len() {
            // Removing the final End record is a truncation at a frame
            // boundary: noted, and visible as a missing end.
            assert!(rep.notes.iter().any(|n| n.contains("no end record")));
        } else {
            assert!(!rep.ok(), "removal of record {k} unnoticed");
        }
    }
    for k in 0..fr.len() - 1 {
        let mut b = bytes[..hlen].to_vec();
        for (j, _) in fr.iter().enumerate() {
            let idx = if j == k {
                k + 1
            } else if j == k + 1 {
                k
            } else {
                j
            };
            b.extend_from_slice(&bytes[fr[idx].0..fr[idx].1]);
        }
        std::fs::write(&base, &b).unwrap();
        let rep = verify(&[&base], ReadOptions::default()).unwrap();
        assert!(!rep.ok(), "swap of {k} and {} unnoticed", k + 1);
        assert!(matches!(
            rep.first_error(),
            Some(ReadError::ChainBroken { .. })
        ));
    }
}

#[test]
fn truncated_tail_is_torn_and_earlier_records_survive() {
    let (_d, base, bytes) = small_log();
    let (hlen, fr) = frames(&bytes);
    for cut in hlen..bytes.len() {
        std::fs::write(&base, &bytes[..cut]).unwrap();
        let (recs, errs) = read_all(std::slice::from_ref(&base));
        let complete = fr.iter().filter(|(_, end)| *end <= cut).count();
        assert_eq!(recs.len(), complete, "cut at {cut}");
        let at_boundary = fr.iter().any(|(s, _)| *s == cut);
        if at_boundary {
            assert!(errs.is_empty());
        } else {
            assert_eq!(errs.len(), 1, "cut at {cut}: {errs:?}");
            assert!(errs[0].is_torn_tail());
            let rep = verify(&[&base], ReadOptions::default()).unwrap();
            assert!(!rep.ok() && rep.torn_tail().is_some());
        }
    }
}

/// An in-memory sink whose writes fail while `fail` is set.
#[derive(Clone, Default)]
struct FlakySink {
    files: Arc<Mutex<Vec<Vec<u8>>>>,
    fail: Arc<AtomicBool>,
    partial: bool,
}

impl Sink for FlakySink {
    type Error = ();
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ()> {
        let mut files = self.files.lock().unwrap();
        if files.is_empty() {
            files.push(Vec::new());
        }
        let f = files.last_mut().unwrap();
        let off = offset as usize;
        let n = if self.fail.load(Ordering::Relaxed) {
            if !self.partial {
                return Err(());
            }
            bytes.len() / 2 // a torn, partial write before the error
        } else {
            bytes.len()
        };
        if f.len() < off + n {
            f.resize(off + n, 0);
        }
        f[off..off + n].copy_from_slice(&bytes[..n]);
        if n < bytes.len() {
            return Err(());
        }
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> Result<(), ()> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(());
        }
        let mut files = self.files.lock().unwrap();
        if let Some(f) = files.last_mut() {
            f.truncate(len as usize);
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<(), ()> {
        Ok(())
    }
    fn rotate(&mut self, _index: u32) -> Result<(), ()> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(());
        }
        self.files.lock().unwrap().push(Vec::new());
        Ok(())
    }
}

fn write_files(dir: &Path, files: &[Vec<u8>]) -> Vec<PathBuf> {
    files
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let p = dir.join(format!("m{i}.fplog"));
            std::fs::write(&p, b).unwrap();
            p
        })
        .collect()
}

#[test]
fn write_failures_become_drop_records_and_the_chain_survives() {
    for partial in [false, true] {
        let sink = FlakySink {
            partial,
            ..FlakySink::default()
        };
        let q = new_queue(MIN_RING_WORDS).unwrap();
        let mut buf = vec![0u8; 256 << 10];
        let wcfg = WriterConfig {
            host: "h",
            boot_id: [0; 16],
            session_id: [1; 16],
            key: None,
            max_file_bytes: MIN_FILE_BYTES * 3,
            first_seq: 1,
        };
        let mut w = LogWriter::new(sink.clone(), &mut buf, &wcfg, 1)
            .map_err(|e| e.0)
            .unwrap();
        let mut c = q.consumer().unwrap();
        let produced = StdU64::new(0);
        for round in 0..40u64 {
            // Fail every third round: disk full for a while.
            sink.fail.store(round % 3 == 1, Ordering::Relaxed);
            for i in 0..50 {
                produced.fetch_add(1, Ordering::Relaxed);
                let _ = q.push(0, &event(round, i, "/data/x"));
            }
            w.drain(&mut c, 10 + round);
        }
        sink.fail.store(false, Ordering::Relaxed);
        let (_, stats) = w.finish(&mut c, 1_000).map_err(|e| e.2).unwrap();
        let dropped: u64 = stats.drops_recorded.iter().sum();
        assert!(stats.write_failures > 0);
        assert!(stats.drops_recorded[DropReason::WriteFailed as usize] > 0);
        assert_eq!(
            stats.events_written + dropped,
            produced.load(Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let paths = write_files(dir.path(), &sink.files.lock().unwrap());
        let rep = verify(&paths, ReadOptions::default()).unwrap();
        assert!(rep.ok(), "partial={partial}: {:?}", rep.errors);
        assert_eq!(rep.events, stats.events_written);
        assert_eq!(rep.dropped, dropped);
    }
}

/// Two (and three) failing writes in a row: the second failed batch carries
/// the drop record made for the first; its count must be carried forward
/// again, not lost with the batch.
#[test]
fn consecutive_write_failures_keep_every_drop_counted() {
    for partial in [false, true] {
        let sink = FlakySink {
            partial,
            ..FlakySink::default()
        };
        let q = new_queue(MIN_RING_WORDS).unwrap();
        let mut buf = vec![0u8; 256 << 10];
        let wcfg = WriterConfig {
            host: "h",
            boot_id: [0; 16],
            session_id: [1; 16],
            key: None,
            max_file_bytes: MIN_FILE_BYTES * 3,
            first_seq: 1,
        };
        let mut w = LogWriter::new(sink.clone(), &mut buf, &wcfg, 1)
            .map_err(|e| e.0)
            .unwrap();
        let mut c = q.consumer().unwrap();
        let mut produced = 0u64;
        for round in 0..10u64 {
            sink.fail
                .store(matches!(round, 1 | 2 | 5 | 6 | 7), Ordering::Relaxed);
            for i in 0..20 {
                produced += 1;
                let _ = q.push(0, &event(round, i, "/data/x"));
            }
            w.drain(&mut c, 10 + round);
        }
        sink.fail.store(false, Ordering::Relaxed);
        let (_, stats) = w.finish(&mut c, 1_000).map_err(|e| e.2).unwrap();
        let dropped: u64 = stats.drops_recorded.iter().sum();
        assert!(stats.write_failures >= 5, "{stats:?}");
        assert_eq!(
            stats.events_written + dropped,
            produced,
            "partial={partial}: {stats:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let paths = write_files(dir.path(), &sink.files.lock().unwrap());
        let rep = verify(&paths, ReadOptions::default()).unwrap();
        assert!(rep.ok(), "partial={partial}: {:?}", rep.errors);
        assert_eq!(rep.events + rep.dropped, produced);
    }
}

#[test]
fn keyed_chain_needs_the_key_and_catches_a_recomputed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("k.fplog");
    let key = [42u8; 32];
    let ft = FlushThread::start(
        FileSink::create(&base).unwrap(),
        FlushConfig {
            key: Some(key),
            ..cfg(1 << 30)
        },
    )
    .unwrap();
    let p = ft.producer();
    for i in 0..10 {
        p.push(&event(1, i, "/k")).unwrap();
    }
    ft.shutdown().unwrap();
    let with_key = ReadOptions {
        key: Some(key),
        ..Default::default()
    };
    assert!(verify(&[&base], with_key.clone()).unwrap().ok());
    let no_key = verify(&[&base], ReadOptions::default()).unwrap();
    assert!(!no_key.ok() && no_key.unchecked.len() == 1);
    let wrong = verify(
        &[&base],
        ReadOptions {
            key: Some([1; 32]),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!wrong.ok());

    // An attacker edits a path and recomputes the chain without the key
    // (as an unkeyed chain): verification with the key fails.
    let bytes = std::fs::read(&base).unwrap();
    let (h, hlen) = fltpolicy_core::record::frame::decode_header(&bytes).unwrap();
    let mut chain = fltpolicy_core::record::chain::Chain::start(&bytes[..hlen], None);
    assert!(matches!(
        h.sealing,
        fltpolicy_core::record::chain::Sealing::HmacSha256 { .. }
    ));
    let (_, fr) = frames(&bytes);
    let mut forged = bytes[..hlen].to_vec();
    for (s, e) in fr {
        let f = &bytes[s..e];
        let body = &f[4..f.len() - 20];
        let mut rec = fltpolicy_core::record::frame::decode_body(body).unwrap();
        if let fltpolicy_core::record::Record::Event(ev) = &mut rec {
            ev.data.path = "/innocent";
        }
        let mut out = vec![0u8; 8192];
        let n = fltpolicy_core::record::frame::encode_frame(&rec, &mut chain, &mut out).unwrap();
        forged.extend_from_slice(&out[..n]);
    }
    std::fs::write(&base, &forged).unwrap();
    let rep = verify(&[&base], with_key).unwrap();
    assert!(!rep.ok());
    assert!(matches!(
        rep.first_error(),
        Some(ReadError::ChainBroken { .. })
    ));
}

#[test]
fn shutdown_drains_rings_holding_more_than_one_drain_pass() {
    // Tiny entries: a ring of 64 Ki words holds ~32 Ki of them, more than
    // one drain pass takes; shutdown must still write every one.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("big.fplog");
    let q = new_queue(1 << 16).unwrap();
    let mut pushed = 0u64;
    while q.push_bytes(0, &[0u8; 8]).is_ok() {
        pushed += 1;
    }
    assert!(pushed > 20_000, "{pushed}");
    let mut buf = vec![0u8; 1 << 20];
    let wcfg = WriterConfig {
        host: "h",
        boot_id: [0; 16],
        session_id: [2; 16],
        key: None,
        max_file_bytes: 1 << 30,
        first_seq: 1,
    };
    let w = LogWriter::new(FileSink::create(&base).unwrap(), &mut buf, &wcfg, 1)
        .map_err(|e| e.0)
        .unwrap();
    let mut c = q.consumer().unwrap();
    let (_, stats) = w.finish(&mut c, 2).map_err(|e| e.2).unwrap();
    assert_eq!(stats.events_written, pushed);
    assert!(q.is_empty());
}

#[test]
fn follower_sees_every_record_of_a_live_rotating_log() {
    use fltpolicy_audit::reader::Follower;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("live.fplog");
    let ft = FlushThread::start(FileSink::create(&base).unwrap(), cfg(MIN_FILE_BYTES * 2)).unwrap();
    let mut f = Follower::open(&base, ReadOptions::default());
    let p = ft.producer();
    let mut seen = Vec::new();
    for i in 0..3_000u64 {
        p.push_waiting(&event(1, i, "/live/path")).unwrap();
        if i % 500 == 0 {
            for r in f.poll().unwrap() {
                seen.push(r.unwrap());
            }
        }
    }
    ft.shutdown().unwrap();
    for _ in 0..100 {
        for r in f.poll().unwrap() {
            seen.push(r.unwrap());
        }
        if matches!(seen.last().map(|r| &r.body), Some(RecordBody::End(e)) if e.reason == fltpolicy_core::record::EndReason::Shutdown)
        {
            break;
        }
    }
    let files = rotated_files(&base);
    assert!(files.len() > 2);
    let (all, errs) = read_all(&files);
    assert!(errs.is_empty());
    assert_eq!(seen.len(), all.len());
    for (a, b) in seen.iter().zip(&all) {
        assert_eq!((a.seq, &a.body), (b.seq, &b.body));
    }
}

#[test]
fn a_file_named_twice_is_read_once() {
    let (_d, base, _) = small_log();
    let twice = [base.clone(), base.clone()];
    let rep = verify(&twice, ReadOptions::default()).unwrap();
    assert!(rep.ok(), "{:?}", rep.errors);
    assert_eq!(rep.files.len(), 1);
    assert_eq!(rep.events, 20);
}

#[test]
fn an_anchor_catches_a_cut_log_and_a_recomputed_chain() {
    let (_d, base, bytes) = small_log();
    let rep = verify(&[&base], ReadOptions::default()).unwrap();
    let head = rep.head.expect("a verified log has a head");
    assert_eq!(head.seq, 21); // 20 events and the end record
    let anchored = |p: &Path| {
        verify(
            &[p],
            ReadOptions {
                anchor: Some(head),
                ..Default::default()
            },
        )
        .unwrap()
    };
    assert!(anchored(&base).ok());
    let parsed: fltpolicy_audit::reader::Anchor = head.to_string().parse().unwrap();
    assert_eq!(parsed, head);

    // Cut at a frame boundary: a valid prefix, but the anchor is gone.
    let (_, fr) = frames(&bytes);
    std::fs::write(&base, &bytes[..fr[15].0]).unwrap();
    let rep = anchored(&base);
    assert!(!rep.ok());
    assert!(matches!(
        rep.first_error(),
        Some(ReadError::AnchorNotReached { seq: 21, .. })
    ));

    // Rewritten with a recomputed (unkeyed) chain: internally consistent,
    // but it no longer reaches the anchor's value.
    let (_, hlen) = fltpolicy_core::record::frame::decode_header(&bytes).unwrap();
    let mut chain = fltpolicy_core::record::chain::Chain::start(&bytes[..hlen], None);
    let mut forged = bytes[..hlen].to_vec();
    for (s, e) in fr {
        let body = &bytes[s + 4..e - 20];
        let mut rec = fltpolicy_core::record::frame::decode_body(body).unwrap();
        if let fltpolicy_core::record::Record::Event(ev) = &mut rec {
            ev.data.pid += 1;
        }
        let mut out = vec![0u8; 8192];
        let n = fltpolicy_core::record::frame::encode_frame(&rec, &mut chain, &mut out).unwrap();
        forged.extend_from_slice(&out[..n]);
    }
    std::fs::write(&base, &forged).unwrap();
    assert!(
        verify(&[&base], ReadOptions::default()).unwrap().ok(),
        "self-consistent forgery"
    );
    let rep = anchored(&base);
    assert!(matches!(
        rep.first_error(),
        Some(ReadError::AnchorMismatch { seq: 21, .. })
    ));
}
