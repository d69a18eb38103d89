//! Cost of the per-callback work the driver does on a read/write, measured
//! on the host with the real driver code (the kernel calls themselves are
//! not part of it): hold the active policy, copy the process image out of
//! the pid table, evaluate, and queue a record. Reported as criterion
//! medians; the ratios between the rows are what carries over to the
//! kernel. Run: `cargo bench -p fltpolicy-driver`.

use std::hint::black_box;

#[path = "old_pid_table.rs"]
mod old_pid_table;

use criterion::{criterion_group, criterion_main, Criterion};
use fltpolicy_core::event::{EventView, Op, Target};
use fltpolicy_core::record::{EventData, PolicyId};
use fltpolicy_driver::policy::{PolicyBlock, PolicySlot};
use fltpolicy_driver::process::{ProcessInfo, ProcessTable};
use fltpolicy_driver::sim::Sim;

fn policy(src: &str) -> Vec<u8> {
    fltpolicy_compiler::compile(src, "bench.pol", Target::Windows)
        .expect("compiles")
        .image
}

/// A policy of `n` rules: the mission's rule last, `n - 1` others before it
/// on other directories.
fn rules(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n.saturating_sub(1) {
        s.push_str(&format!(
            "log write under C:\\Other{i} from pid {}\n",
            10_000 + i
        ));
    }
    s.push_str("log writes under C:\\Data from pid 1234\n");
    s
}

fn hot_path(c: &mut Criterion) {
    // The pool allocations of PolicyBlock go through the simulated kernel.
    let _sim = Sim::new();
    let table = ProcessTable::new_boxed();
    for pid in (8..4000).step_by(4) {
        table.insert(pid, 4, r"C:\Windows\System32\svchost.exe");
    }
    table.insert(1234, 4, r"C:\Tools\writer.exe");

    let mut g = c.benchmark_group("hot_path");
    for n in [1usize, 100] {
        let slot = PolicySlot::new();
        let block = PolicyBlock::create(&policy(&rules(n)), 1).expect("verifies");
        // SAFETY: a fresh block, ownership passes to the slot.
        unsafe { slot.install(block) };
        g.bench_function(format!("read+lookup+evaluate/{n}_rules"), |b| {
            b.iter(|| {
                let guard = slot.read().expect("policy");
                let mut proc = ProcessInfo::unknown();
                table.lookup(black_box(1234), &mut proc);
                let ev = EventView {
                    op: Some(Op::Write),
                    path: black_box(r"C:\Data\reports\q3.xlsx"),
                    pid: 1234,
                    ppid: proc.ppid,
                    image: proc.image(),
                    user: "",
                    size: 4096,
                    paging: false,
                };
                black_box(guard.evaluate(&ev).action)
            })
        });
        slot.clear();
    }
    g.bench_function("pid_lookup", |b| {
        let mut proc = ProcessInfo::unknown();
        b.iter(|| table.lookup(black_box(1234), &mut proc))
    });
    g.bench_function("slot_read", |b| {
        let slot = PolicySlot::new();
        let block = PolicyBlock::create(&policy(&rules(1)), 1).expect("verifies");
        // SAFETY: as above.
        unsafe { slot.install(block) };
        b.iter(|| black_box(slot.read().is_some()));
        slot.clear();
    });
    g.bench_function("record_push_pop", |b| {
        let words: Vec<fltpolicy_core::sync::AtomicU64> = (0..fltpolicy_driver::audit::RINGS
            * fltpolicy_driver::audit::RING_WORDS)
            .map(|_| Default::default())
            .collect();
        let q = fltpolicy_driver::audit::AuditQueue::new(&*Box::leak(words.into_boxed_slice()))
            .expect("queue");
        let mut consumer = q.consumer().expect("consumer");
        let mut out = vec![0u8; fltpolicy_core::queue::MAX_ENTRY_BYTES + 8];
        let ev = EventView {
            op: Some(Op::Write),
            path: r"C:\Data\reports\q3.xlsx",
            pid: 1234,
            image: r"C:\Tools\writer.exe",
            size: 4096,
            ..EventView::default()
        };
        let v = fltpolicy_core::event::Verdict {
            action: fltpolicy_core::event::Action::Log,
            rule: Some(1),
            line: 1,
            tag: "",
        };
        b.iter(|| {
            let data = EventData::from_view(&ev, &v, PolicyId::new(&[7; 32], 1), 1, Some(0));
            q.push(0, black_box(&data)).expect("room");
            consumer.pop(0, &mut out).expect("entry").expect("intact")
        })
    });
    g.finish();
}

/// Process starts (each with an exit once 300 are alive) the pid tables
/// see before they are measured: a long-running machine.
const STARTS: u64 = 100_000;

/// The pid table before issue 9 (tombstones, 1,024 slots) and now
/// (backward shift, seqlock), each after `STARTS` process starts with
/// exits: a hit (a live process) and a miss (a pid not in the table, like
/// pid 4's paging writes before the fill at load).
fn pid_tables(c: &mut Criterion) {
    let _sim = Sim::new();
    let image = r"C:\Windows\System32\svchost.exe";
    let old = old_pid_table::ProcessTable::new_boxed();
    let new = ProcessTable::new_boxed();
    let mut live = std::collections::VecDeque::new();
    for i in 0..STARTS {
        let pid = 10_000 + 4 * (i % 5_000);
        old.insert(pid, 4, image);
        new.insert(pid, 4, image);
        live.push_back(pid);
        if live.len() > 300 {
            let gone = live.pop_front().unwrap();
            old.remove(gone);
            new.remove(gone);
        }
    }
    let hit = *live.back().unwrap();
    let miss = 4;
    println!(
        "after {STARTS} starts: new table probes {} words for a miss, {} for the hit",
        new.probe_len(miss),
        new.probe_len(hit)
    );
    let mut g = c.benchmark_group("pid_table_after_100k_starts");
    g.bench_function("old/hit", |b| {
        let mut out = old_pid_table::ProcessInfo::unknown();
        b.iter(|| old.lookup(black_box(hit), &mut out))
    });
    g.bench_function("new/hit", |b| {
        let mut out = ProcessInfo::unknown();
        b.iter(|| new.lookup(black_box(hit), &mut out))
    });
    g.bench_function("old/miss", |b| {
        let mut out = old_pid_table::ProcessInfo::unknown();
        b.iter(|| old.lookup(black_box(miss), &mut out))
    });
    g.bench_function("new/miss", |b| {
        let mut out = ProcessInfo::unknown();
        b.iter(|| new.lookup(black_box(miss), &mut out))
    });
    g.finish();
}

criterion_group!(benches, hot_path, pid_tables);
criterion_main!(benches);
