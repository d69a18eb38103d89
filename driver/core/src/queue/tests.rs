//! Unit tests of the queue (also run under Miri: scripts/miri.sh).
use std::sync::atomic::AtomicU64 as StdU64;
use std::sync::Arc;
use std::vec::Vec;

use super::*;
use crate::event::Op;
use crate::record::{flags, PolicyId};

fn storage(words: usize) -> Vec<AtomicU64> {
    (0..words).map(|_| AtomicU64::new(0)).collect()
}

fn event(path: &str, pid: u64) -> EventData<'_> {
    EventData {
        time_ns: pid,
        op: Some(Op::Write),
        pid,
        path,
        policy: PolicyId::new(&[9; 32], 1),
        ..Default::default()
    }
}

fn pop_all<W: AsRef<[AtomicU64]>, const R: usize>(q: &Queue<W, R>) -> Vec<Vec<u8>> {
    let mut c = q.consumer().unwrap();
    let mut buf = [0u8; MAX_ENTRY_WORDS * 8];
    let mut out = Vec::new();
    for r in 0..R {
        while let Some(res) = c.pop(r, &mut buf) {
            let n = res.unwrap();
            out.push(buf[..n].to_vec());
        }
    }
    out
}

#[test]
fn storage_is_validated() {
    assert!(Queue::<_, 2>::new(storage(MIN_RING_WORDS * 2)).is_ok());
    assert_eq!(
        Queue::<_, 2>::new(storage(MIN_RING_WORDS * 2 + 2)).unwrap_err(),
        StorageError::BadLength {
            words: MIN_RING_WORDS * 2 + 2
        }
    );
    assert!(Queue::<_, 1>::new(storage(MIN_RING_WORDS / 2)).is_err());
    assert!(Queue::<_, 0>::new(storage(64)).is_err());
}

#[test]
fn an_unattached_queue_drops_everything_until_attached() {
    let mut q = Queue::<Vec<AtomicU64>, 2>::unattached(Vec::new());
    assert_eq!(q.push(0, &event("a", 1)), Err(DropReason::QueueFull));
    assert!(pop_all(&q).is_empty());
    assert!(q.is_empty());
    // attach checks storage like `new`, then the queue works and starts
    // from zero (the drop above and the consumer taken are forgotten).
    assert_eq!(
        q.attach(storage(3)),
        Err(StorageError::BadLength { words: 3 })
    );
    q.attach(storage(MIN_RING_WORDS * 2)).unwrap();
    assert_eq!(q.drop_totals(), [0; DropReason::COUNT]);
    q.push(1, &event("b", 2)).unwrap();
    let got = pop_all(&q);
    assert_eq!(got.len(), 1);
    assert_eq!(
        postcard::from_bytes::<EventData<'_>>(&got[0]).unwrap(),
        event("b", 2)
    );
}

#[test]
fn entries_round_trip_in_order_with_wraparound() {
    let q = Queue::<_, 1>::new(storage(MIN_RING_WORDS)).unwrap();
    let mut c = q.consumer().unwrap();
    let mut buf = [0u8; MAX_ENTRY_WORDS * 8];
    // Enough pushes of varying sizes to wrap the ring many times.
    for round in 0..200u64 {
        let path = "p".repeat((round as usize * 37) % 700);
        let ev = event(&path, round);
        q.push(0, &ev).unwrap();
        let n = c.pop(0, &mut buf).unwrap().unwrap();
        let back: EventData<'_> = postcard::from_bytes(&buf[..n]).unwrap();
        assert_eq!(back, ev);
        assert!(c.pop(0, &mut buf).is_none());
    }
}

#[test]
fn maximal_entry_fits_an_empty_minimal_ring() {
    let q = Queue::<_, 1>::new(storage(MIN_RING_WORDS)).unwrap();
    let long = "x".repeat(10_000);
    let mut ev = event(&long, 1);
    ev.image = &long;
    ev.user = &long;
    ev.tag = &long;
    ev.time_ns = u64::MAX;
    ev.size = u64::MAX;
    ev.ppid = u64::MAX;
    ev.pid = u64::MAX;
    let ev = ev.clamped();
    assert_ne!(ev.flags & flags::PATH_TRUNCATED, 0);
    q.push(0, &ev).unwrap();
    let got = pop_all(&q);
    assert_eq!(got.len(), 1);
    assert_eq!(postcard::from_bytes::<EventData<'_>>(&got[0]).unwrap(), ev);
}

#[test]
fn full_ring_counts_drops_exactly() {
    let q = Queue::<_, 1>::with_small_rings(storage(16)).unwrap();
    let mut ok = 0;
    let mut dropped = 0;
    for _ in 0..10 {
        // 12 bytes -> 2 payload words + header = 3 words; 5 fit in 16.
        match q.push_bytes(0, &[7u8; 12]) {
            Ok(_) => ok += 1,
            Err(DropReason::QueueFull) => dropped += 1,
            Err(r) => panic!("unexpected {r:?}"),
        }
    }
    assert_eq!((ok, dropped), (5, 5));
    assert_eq!(q.drop_totals()[DropReason::QueueFull as usize], 5);
    assert_eq!(pop_all(&q).len(), 5);
    // Space is reusable after the drain.
    assert!(q.push_bytes(0, &[1u8; 12]).is_ok());
}

#[test]
fn a_full_ring_spills_into_the_others_before_dropping() {
    // Two rings of 16 words; one producer (hint 0): 5 entries fit in each.
    let q = Queue::<_, 2>::with_small_rings(storage(32)).unwrap();
    let mut ok = 0;
    let mut spilled_wakes = 0;
    for k in 0..12 {
        match q.push_bytes(0, &[7u8; 12]) {
            Ok(p) => {
                ok += 1;
                if k >= 5 && p.wake_flusher {
                    spilled_wakes += 1;
                }
            }
            Err(DropReason::QueueFull) => {}
            Err(r) => panic!("unexpected {r:?}"),
        }
    }
    assert_eq!(ok, 10, "the idle ring took the overflow");
    assert_eq!(spilled_wakes, 5, "a spill wakes the flusher");
    assert_eq!(q.drop_totals()[DropReason::QueueFull as usize], 2);
    assert_eq!(q.rings[1].tail.load(Ordering::Relaxed), 15);
    assert_eq!(pop_all(&q).len(), 10);
}

#[test]
fn high_water_is_signalled() {
    let q = Queue::<_, 1>::with_small_rings(storage(16)).unwrap();
    assert!(!q.push_bytes(0, &[0u8; 8]).unwrap().wake_flusher); // 2/16
    assert!(!q.push_bytes(0, &[0u8; 8]).unwrap().wake_flusher); // 4/16
    assert!(!q.push_bytes(0, &[0u8; 8]).unwrap().wake_flusher); // 6/16
    assert!(!q.push_bytes(0, &[0u8; 8]).unwrap().wake_flusher); // 8/16
    assert!(q.push_bytes(0, &[0u8; 8]).unwrap().wake_flusher); // 10/16
}

#[test]
fn only_one_consumer_at_a_time() {
    let q = Queue::<_, 2>::with_small_rings(storage(8)).unwrap();
    let c = q.consumer().unwrap();
    assert!(q.consumer().is_none());
    drop(c);
    assert!(q.consumer().is_some());
}

#[test]
fn external_drops_are_counted() {
    let q = Queue::<_, 1>::with_small_rings(storage(8)).unwrap();
    q.count_external_drop(DropReason::KernelOverflow, 3);
    assert_eq!(q.drop_totals()[DropReason::KernelOverflow as usize], 3);
}

#[test]
fn busy_rings_fall_over_then_drop() {
    // Claim every ring by hand (as preempted producers would) and check a
    // push neither waits nor succeeds, and counts QueueBusy.
    let q = Queue::<_, 2>::with_small_rings(storage(16)).unwrap();
    for r in &q.rings {
        r.claimed.store(true, Ordering::Relaxed);
    }
    assert_eq!(q.push_bytes(0, &[1]), Err(DropReason::QueueBusy));
    q.rings[1].claimed.store(false, Ordering::Relaxed);
    assert!(q.push_bytes(0, &[1]).is_ok(), "falls over to ring 1");
    assert_eq!(q.drop_totals()[DropReason::QueueBusy as usize], 1);
    assert_eq!(q.rings[1].tail.load(Ordering::Relaxed), 2);
}

#[test]
fn concurrent_producers_lose_nothing_uncounted() {
    const THREADS: usize = 4;
    let per = if cfg!(miri) { 50 } else { 20_000 };
    let q = Arc::new(Queue::<_, 2>::with_small_rings(storage(2 * 256)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let q = Arc::clone(&q);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut c = q.consumer().unwrap();
            let mut buf = [0u8; MAX_ENTRY_WORDS * 8];
            let mut seen = vec![Vec::new(); THREADS];
            loop {
                let done = stop.load(Ordering::Acquire);
                let mut any = false;
                for r in 0..2 {
                    while let Some(res) = c.pop(r, &mut buf) {
                        let n = res.unwrap();
                        let e: EventData<'_> = postcard::from_bytes(&buf[..n]).unwrap();
                        assert_eq!(e.path, "/t");
                        seen[e.pid as usize].push(e.time_ns);
                        any = true;
                    }
                }
                if done && !any {
                    return seen;
                }
            }
        })
    };
    let pushed_ok = Arc::new(StdU64::new(0));
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let q = Arc::clone(&q);
            let ok = Arc::clone(&pushed_ok);
            std::thread::spawn(move || {
                for i in 0..per {
                    let mut e = event("/t", t as u64);
                    e.time_ns = i as u64;
                    if q.push(t, &e).is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    let seen = consumer.join().unwrap();
    let drops: u64 = q.drop_totals().iter().sum();
    let popped: usize = seen.iter().map(Vec::len).sum();
    assert_eq!(popped as u64, pushed_ok.load(Ordering::Relaxed));
    assert_eq!(popped as u64 + drops, (THREADS * per) as u64);
    // Each producer's events stay in order when it keeps to one ring
    // (no fall-over happened unless a QueueBusy drop or skip occurred):
    // check every producer's sequence is at least duplicate-free.
    for s in &seen {
        let mut sorted = s.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), s.len());
    }
}

#[test]
fn every_length_and_alignment_round_trips() {
    let q = Queue::<_, 1>::with_small_rings(storage(64)).unwrap();
    let mut c = q.consumer().unwrap();
    let mut buf = [0u8; 256];
    let data: Vec<u8> = (0..=255u8).collect();
    for len in 0..100usize {
        for skew in 0..8usize {
            let payload = &data[skew..skew + len];
            q.push_bytes(0, payload).unwrap();
            let n = c.pop(0, &mut buf).unwrap().unwrap();
            assert_eq!(&buf[..n], payload, "len {len} skew {skew}");
        }
    }
}
