//! A burst of parallel producers against the real queue and flush thread:
//! how many records are dropped at a given queue size. Run by
//! `scripts/bench-queue-burst.sh`.
//!
//! `fltpolicy-audit-burst DIR THREADS PER_THREAD QUEUE_KIB RUNS`
//!
//! Each run starts a fresh log in DIR; THREADS threads wait on a barrier,
//! then each pushes PER_THREAD events (~130 bytes encoded) as fast as it
//! can with the dropping `push` an enforcement point uses. Prints, per run,
//! produced / written / dropped and the drop rate, then the median rate.
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use fltpolicy_audit::writer::{FileSink, FlushConfig, FlushThread, HOST_RINGS};
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::queue::MIN_RING_WORDS;
use fltpolicy_core::record::{EventData, PolicyId};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: {} DIR THREADS PER_THREAD QUEUE_KIB RUNS", args[0]);
        std::process::exit(2);
    }
    let dir = std::path::PathBuf::from(&args[1]);
    let num = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("{}: not a number", args[i]);
            std::process::exit(2)
        })
    };
    let (threads, per, queue_kib, runs) = (num(2), num(3), num(4), num(5));
    let ring_words = ((queue_kib as usize * 1024 / 8 / HOST_RINGS).max(1))
        .next_power_of_two()
        .max(MIN_RING_WORDS);
    let mut rates = Vec::new();
    for run in 0..runs {
        let base = dir.join(format!("burst-{}-{run}.fplog", std::process::id()));
        let ft = FlushThread::start(
            FileSink::create(&base).expect("create the log"),
            FlushConfig {
                ring_words,
                interval: Duration::from_millis(200),
                ..FlushConfig::default()
            },
        )
        .expect("start the flush thread");
        let barrier = Arc::new(Barrier::new(threads as usize));
        let started = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let q = ft.producer();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let path = format!("/srv/burst/thread-{t}/some/deeper/file-name.dat");
                    barrier.wait();
                    let mut dropped = 0u64;
                    for i in 0..per {
                        let ev = EventData {
                            time_ns: i,
                            op: Some(Op::Write),
                            action: Action::Log.into(),
                            pid: 1000 + t,
                            ppid: 1,
                            size: i,
                            rule: Some(1),
                            policy: PolicyId::new(&[1; 32], 1),
                            path: &path,
                            image: "/usr/bin/burst-writer",
                            user: "1000",
                            ..Default::default()
                        };
                        if q.push(&ev).is_err() {
                            dropped += 1;
                        }
                    }
                    dropped
                })
            })
            .collect();
        let dropped: u64 = hs.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        let push_time = started.elapsed();
        let (_, stats) = ft.shutdown().expect("the log is written");
        let produced = threads * per;
        let rate = dropped as f64 / produced as f64;
        println!(
            "run {run}: {produced} produced, {} written, {dropped} dropped ({:.2} %), pushes took {:.1} ms",
            stats.events_written,
            rate * 100.0,
            push_time.as_secs_f64() * 1e3
        );
        assert_eq!(stats.events_written + dropped, produced);
        rates.push(rate);
        let _ = std::fs::remove_file(&base);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median drop rate {:.2} % ({} threads x {} events, queue {} KiB = {} rings x {} KiB)",
        rates[rates.len() / 2] * 100.0,
        threads,
        per,
        ring_words * 8 * HOST_RINGS / 1024,
        HOST_RINGS,
        ring_words * 8 / 1024
    );
}
