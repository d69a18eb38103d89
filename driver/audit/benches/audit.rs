//! Audit pipeline benchmarks (criterion), measured side by side in one run:
//!
//! * `push/uncontended` — one producer, cost of one `Queue::push` of a
//!   typical event (encoding into the ring included);
//! * `push/all_cores` — every core pushing at once while the consumer
//!   drains, per push;
//! * `end_to_end` — records per second through queue, flush thread and
//!   writer into a real file, all cores producing (target ≥ 1,000,000/s).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fltpolicy_audit::writer::{new_queue, FileSink, FlushConfig, FlushThread, HOST_RINGS};
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::queue::MAX_ENTRY_WORDS;
use fltpolicy_core::record::{EventData, PolicyId};

fn event(path: &str, i: u64) -> EventData<'_> {
    EventData {
        time_ns: 1_700_000_000_000_000_000 + i,
        op: Some(Op::Write),
        action: Action::Log.into(),
        pid: 4242,
        ppid: 1,
        size: 4096,
        rule: Some(3),
        line: 7,
        policy: PolicyId::new(&[0x5a; 32], 1),
        path,
        image: "/usr/lib/postgresql/16/bin/postgres",
        user: "postgres",
        tag: "db-writes",
        ..Default::default()
    }
}

const PATH: &str = "/var/lib/postgresql/16/main/base/16384/2619_fsm";

fn push(c: &mut Criterion) {
    let mut g = c.benchmark_group("push");
    g.throughput(Throughput::Elements(1));
    let q = new_queue(1 << 16).unwrap();
    g.bench_function("uncontended", |b| {
        b.iter_custom(|iters| {
            let mut cons = q.consumer().unwrap();
            let mut buf = vec![0u8; MAX_ENTRY_WORDS * 8];
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(4_000);
                let ev = event(PATH, n);
                let t = Instant::now();
                for _ in 0..n {
                    let _ = std::hint::black_box(q.push(0, std::hint::black_box(&ev)));
                }
                total += t.elapsed();
                while cons.pop(0, &mut buf).is_some() {}
                left -= n;
            }
            total
        })
    });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    g.bench_function(format!("all_cores_{threads}"), |b| {
        b.iter_custom(|iters| {
            let q = Arc::new(new_queue(1 << 16).unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let consumer = {
                let q = Arc::clone(&q);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut c = q.consumer().unwrap();
                    let mut buf = vec![0u8; MAX_ENTRY_WORDS * 8];
                    while !stop.load(Ordering::Acquire) {
                        for r in 0..HOST_RINGS {
                            while c.pop(r, &mut buf).is_some() {}
                        }
                    }
                })
            };
            let per = iters.div_ceil(threads as u64);
            let start = Instant::now();
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let q = Arc::clone(&q);
                    std::thread::spawn(move || {
                        let ev = event(PATH, t as u64);
                        for _ in 0..per {
                            let _ = std::hint::black_box(q.push(t, &ev));
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            // Cost of one push as one producer sees it: the wall time is
            // spent by `threads` producers in parallel, each doing `per`.
            let total = per * threads as u64;
            let elapsed = start
                .elapsed()
                .mul_f64(threads as f64 * iters as f64 / total.max(1) as f64);
            stop.store(true, Ordering::Release);
            consumer.join().unwrap();
            elapsed
        })
    });
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    const RECORDS: u64 = 400_000;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut g = c.benchmark_group("end_to_end");
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(10);
    g.bench_function(format!("queue_writer_file_{threads}_producers"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let ft = FlushThread::start(
                    FileSink::create(dir.path().join("bench.fplog")).unwrap(),
                    FlushConfig {
                        interval: Duration::from_millis(10),
                        ..FlushConfig::default()
                    },
                )
                .unwrap();
                let start = Instant::now();
                let hs: Vec<_> = (0..threads as u64)
                    .map(|t| {
                        let q = ft.producer();
                        std::thread::spawn(move || {
                            for i in 0..RECORDS / threads as u64 {
                                let _ = q.push_waiting(&event(PATH, i + t));
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                let (_, stats) = ft.shutdown().unwrap();
                total += start.elapsed();
                assert_eq!(
                    stats.events_written,
                    RECORDS / threads as u64 * threads as u64
                );
            }
            total
        })
    });
    g.finish();
}

/// The flush side alone: a queue pre-filled with `N` events drained by the
/// writer into a file (frame, CRC32C, SHA-256 chain, 1 MiB pwrites) on one
/// thread — the pipeline's capacity when producers are not the limit.
fn writer(c: &mut Criterion) {
    use fltpolicy_core::record::writer::{LogWriter, WriterConfig};
    const N: u64 = 2_000;
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(N * HOST_RINGS as u64));
    g.bench_function("drain_to_file", |b| {
        let dir = tempfile::tempdir().unwrap();
        let q = new_queue(1 << 16).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let cfg = WriterConfig {
            host: "bench",
            boot_id: [0; 16],
            session_id: [1; 16],
            key: None,
            max_file_bytes: 1 << 40,
            first_seq: 1,
        };
        let sink = FileSink::create(dir.path().join("w.fplog")).unwrap();
        let mut w = LogWriter::new(sink, &mut buf, &cfg, 0)
            .map_err(|e| e.0)
            .unwrap();
        let mut cons = q.consumer().unwrap();
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for r in 0..HOST_RINGS {
                    let ev = event(PATH, r as u64);
                    for _ in 0..N {
                        q.push(r, &ev).unwrap();
                    }
                }
                let t = Instant::now();
                w.drain(&mut cons, 1);
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, push, writer, end_to_end);
criterion_main!(benches);
