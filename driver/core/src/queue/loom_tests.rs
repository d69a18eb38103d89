//! loom models of the queue: every interleaving of two producers and the
//! consumer on the real code (the atomics come from `crate::sync`).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p fltpolicy-core --release queue_loom`
use loom::sync::Arc;
use loom::thread;
use std::vec::Vec;

use super::*;

/// Counts model executions: a model that ran once explored nothing.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn explored() -> usize {
    RUNS.swap(0, std::sync::atomic::Ordering::Relaxed)
}

fn storage(words: usize) -> Vec<AtomicU64> {
    (0..words).map(|_| AtomicU64::new(0)).collect()
}

fn drain<W: AsRef<[AtomicU64]>, const R: usize>(
    c: &mut Consumer<'_, W, R>,
    got: &mut Vec<Vec<u8>>,
) {
    let mut buf = [0u8; 64];
    for r in 0..R {
        while let Some(res) = c.pop(r, &mut buf) {
            let n = res.expect("ring never corrupt");
            got.push(buf[..n].to_vec());
        }
    }
}

/// Like [`drain`], keeping which ring each entry came from.
fn drain_tagged<W: AsRef<[AtomicU64]>, const R: usize>(
    c: &mut Consumer<'_, W, R>,
    got: &mut Vec<(usize, Vec<u8>)>,
) {
    let mut buf = [0u8; 64];
    for r in 0..R {
        while let Some(res) = c.pop(r, &mut buf) {
            let n = res.expect("ring never corrupt");
            got.push((r, buf[..n].to_vec()));
        }
    }
}

/// Two producers share one ring (user-mode case: the claim flag arbitrates);
/// the consumer drains concurrently. Every entry pushed is popped intact,
/// exactly once, and pushes that failed were counted.
#[test]
fn queue_loom_two_producers_one_ring() {
    explored();
    loom::model(|| {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let q = Arc::new(Queue::<_, 1>::with_small_rings(storage(4)).unwrap());
        let handles: Vec<_> = (0..2u8)
            .map(|t| {
                let q = Arc::clone(&q);
                thread::spawn(move || q.push_bytes(0, &[t + 1; 3]).is_ok())
            })
            .collect();
        // The consumer runs in its own loom thread: loom explores the
        // interleavings of spawned threads with each other.
        let cons = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut c = q.consumer().unwrap();
                drain(&mut c, &mut got);
                got
            })
        };
        let ok = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|b| *b)
            .count();
        let mut got = cons.join().unwrap();
        let mut c = q.consumer().unwrap();
        drain(&mut c, &mut got);
        let drops: u64 = q.drop_totals().iter().sum();
        assert_eq!(got.len(), ok);
        assert_eq!(ok as u64 + drops, 2);
        for e in &got {
            assert!(e == &[1, 1, 1] || e == &[2, 2, 2], "torn entry {e:?}");
        }
    });
    let n = explored();
    std::eprintln!("queue_loom_two_producers_one_ring: {n} interleavings");
    assert!(n > 100, "loom explored only {n} executions");
}

/// One producer (driver case) with wrap-around: the consumer frees space
/// concurrently and the producer reuses it, or spills into the other ring
/// when its own is full.
#[test]
fn queue_loom_wraparound_reuse() {
    explored();
    loom::model(|| {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let q = Arc::new(Queue::<_, 2>::with_small_rings(storage(8)).unwrap());
        let p = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut ok = 0;
                for i in 0..3u8 {
                    if q.push_bytes(1, &[i; 9]).is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        };
        let cons = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut got = Vec::new();
                let mut c = q.consumer().unwrap();
                drain_tagged(&mut c, &mut got);
                got
            })
        };
        let ok = p.join().unwrap();
        let mut got = cons.join().unwrap();
        let mut c = q.consumer().unwrap();
        drain_tagged(&mut c, &mut got);
        let drops: u64 = q.drop_totals().iter().sum();
        assert_eq!(got.len(), ok);
        assert_eq!(ok as u64 + drops, 3);
        // A full ring spills into the other: order is kept within each
        // ring (across rings the log's order is the flush order).
        let mut last = [None; 2];
        for (r, e) in &got {
            assert_eq!(e.len(), 9);
            assert!(e.iter().all(|b| *b == e[0]), "torn entry {e:?}");
            assert!(last[*r] < Some(e[0]), "order kept within a ring");
            last[*r] = Some(e[0]);
        }
    });
    let n = explored();
    std::eprintln!("queue_loom_wraparound_reuse: {n} interleavings");
    assert!(n > 100, "loom explored only {n} executions");
}
