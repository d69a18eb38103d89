//! Evaluation cost per event for 1, 100, 1,000 and 10,000 path rules, the
//! VM and the reference interpreter side by side on the same events.
//!
//! The policies have one `log write under C:\Data\dirN\... where process ==
//! "appN.exe"` rule per N (each anchored at its own directory), plus a
//! final catch-all `deny delete under C:\Finance`; the events are a fixed
//! mix of paths that hit a rule, paths under a directory no rule names,
//! paths outside the data tree, and deep paths. The ratio of the 1,000-rule
//! to the 1-rule median is the number the trie exists to keep small.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fltpolicy_compiler::{compile, oracle};
use fltpolicy_core::event::{EventView, Op, Target};
use fltpolicy_core::image::Policy;
use std::hint::black_box;

fn policy_source(rules: usize) -> String {
    let mut s = String::new();
    for i in 0..rules {
        s.push_str(&format!(
            "log write, rename under C:\\Data\\dir{i}\\Reports where process == \"app{}.exe\" as \"r{i}\"\n",
            i % 7
        ));
    }
    s.push_str(
        "deny delete under C:\\Finance unless image == \"C:\\Windows\\System32\\robocopy.exe\"\n",
    );
    s
}

struct Ev {
    op: Op,
    path: String,
    image: String,
}

fn events() -> Vec<Ev> {
    let mut v = Vec::new();
    for k in 0..64usize {
        let dir = (k * 37) % 1000;
        let (op, path) = match k % 4 {
            0 => (Op::Write, format!("C:\\Data\\dir{dir}\\Reports\\q{k}.xlsx")),
            1 => (Op::Write, format!("C:\\Data\\other{k}\\notes\\x.txt")),
            2 => (
                Op::Read,
                format!("C:\\Users\\bob\\AppData\\Local\\Temp\\f{k}.tmp"),
            ),
            _ => (
                Op::Delete,
                format!("C:\\Finance\\2026\\q{}\\deep\\deeper\\ledger{k}.csv", k % 4),
            ),
        };
        v.push(Ev {
            op,
            path,
            image: format!("C:\\Program Files\\App\\app{}.exe", k % 7),
        });
    }
    v
}

fn bench(c: &mut Criterion) {
    let evs = events();
    let views: Vec<EventView<'_>> = evs
        .iter()
        .map(|e| {
            let mut v = EventView::new(e.op, &e.path);
            v.image = &e.image;
            v.pid = 4242;
            v
        })
        .collect();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(views.len() as u64));
    for n in [1usize, 100, 1_000, 10_000] {
        let compiled = compile(&policy_source(n), "bench.pol", Target::Windows).expect("compiles");
        let policy = Policy::from_bytes(&compiled.image).expect("verifies");
        group.bench_with_input(BenchmarkId::new("vm", n), &n, |b, _| {
            b.iter(|| {
                for v in &views {
                    black_box(policy.evaluate(black_box(v)));
                }
            })
        });
        // The oracle is linear in the rule count: at 10,000 rules one pass
        // over the events takes a quarter of a second, so take fewer samples.
        if n >= 10_000 {
            group.sample_size(10);
        }
        {
            group.bench_with_input(BenchmarkId::new("reference", n), &n, |b, _| {
                b.iter(|| {
                    for v in &views {
                        black_box(oracle::evaluate(&compiled.policy, black_box(v)));
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
