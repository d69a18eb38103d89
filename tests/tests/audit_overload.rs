//! Queue overload: producers far outpace a deliberately slow flush thread;
//! every event is either written or counted in a drop record — exactly.
use std::time::Duration;

use fltpolicy_audit::reader::{LogReader, RecordBody};
use fltpolicy_audit::writer::{rotated_files, FileSink, FlushConfig, FlushThread};
use fltpolicy_core::event::Op;
use fltpolicy_core::queue::MIN_RING_WORDS;
use fltpolicy_core::record::{DropReason, EventData};

#[test]
fn produced_equals_written_plus_counted_drops() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("overload.fplog");
    let ft = FlushThread::start(
        FileSink::create(&base).unwrap(),
        FlushConfig {
            ring_words: MIN_RING_WORDS, // 8 KiB per ring: overflows quickly
            interval: Duration::from_millis(20),
            ..FlushConfig::default()
        },
    )
    .unwrap();
    const THREADS: u64 = 6;
    const PER: u64 = 30_000;
    let mut refused = 0;
    let hs: Vec<_> = (0..THREADS)
        .map(|t| {
            let q = ft.producer();
            std::thread::spawn(move || {
                let mut refused = 0u64;
                let path = format!("/data/{t}/some/longer/path/name.bin");
                for i in 0..PER {
                    let ev = EventData {
                        op: Some(Op::Read),
                        pid: t,
                        size: i,
                        path: &path,
                        ..Default::default()
                    };
                    if q.push(&ev).is_err() {
                        refused += 1;
                    }
                }
                refused
            })
        })
        .collect();
    for h in hs {
        refused += h.join().unwrap();
    }
    let (_, stats) = ft.shutdown().unwrap();
    let files = rotated_files(&base);
    let mut written = 0u64;
    let mut dropped = 0u64;
    for r in LogReader::open(&files).unwrap() {
        match r.unwrap().body {
            RecordBody::Event(_) => written += 1,
            RecordBody::Dropped(d) => {
                assert!(matches!(
                    d.reason,
                    DropReason::QueueFull | DropReason::QueueBusy
                ));
                dropped += d.count;
            }
            RecordBody::End(_) => {}
        }
    }
    eprintln!(
        "produced {} written {written} dropped {dropped}",
        THREADS * PER
    );
    assert!(dropped > 0, "the test must actually overload the queue");
    assert_eq!(dropped, refused, "every refused push is in a drop record");
    assert_eq!(written + dropped, THREADS * PER);
    assert_eq!(stats.events_written, written);
}
