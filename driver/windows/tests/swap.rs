//! Policy swaps while several simulated CPUs drive callbacks: every
//! evaluation sees one whole policy (never a mix), and the old policy's
//! memory is freed only after its last reader (the simulation's pool
//! tracking turns a premature free into a panic on the next access, and
//! the leak check at unload proves every block was freed exactly once).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use fltpolicy_driver::sim::{access, Io, Sim};

#[test]
fn policy_swaps_under_concurrent_callbacks_are_atomic() {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    sim.process_start(1234, 1, r"C:\Tools\writer.exe");
    // Policy A logs writes under C:\A only; policy B logs writes under C:\B
    // only. A torn read would log both or neither for a given generation.
    let a = r#"log write under C:\A as "A""#;
    let b = r#"log write under C:\B as "B""#;
    load_policy(&sim, a);
    let stop = AtomicBool::new(false);
    let swaps = 1000;
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|cpu| {
                let (sim, stop) = (&sim, &stop);
                scope.spawn(move || {
                    Sim::on_cpu(cpu, || {
                        let ha = sim
                            .open(
                                1234,
                                &format!(r"C:\A\f{cpu}.txt"),
                                access::WRITE,
                                access::OPEN_IF,
                            )
                            .unwrap();
                        let hb = sim
                            .open(
                                1234,
                                &format!(r"C:\B\f{cpu}.txt"),
                                access::WRITE,
                                access::OPEN_IF,
                            )
                            .unwrap();
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            sim.write(ha, 1, Io::from(1234));
                            sim.write(hb, 1, Io::paging_at_dispatch());
                            n += 2;
                        }
                        sim.close(ha);
                        sim.close(hb);
                        n
                    })
                })
            })
            .collect();
        for i in 0..swaps {
            load_policy(&sim, if i % 2 == 0 { b } else { a });
        }
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let st = status(&sim);
    assert_eq!(st.generation, swaps + 1);
    assert_eq!(sim.unload(), 0);
    let recs = log_records(&sim);
    let mut checked = 0;
    for r in events(&recs) {
        let Rec::Event {
            path,
            tag,
            generation,
            ..
        } = r
        else {
            unreachable!()
        };
        // Generation 1, 3, 5, ... is A; 2, 4, ... is B.
        let want = if generation % 2 == 1 { "A" } else { "B" };
        assert_eq!(
            tag, want,
            "record of generation {generation} tagged {tag}: torn policy"
        );
        assert!(
            path.starts_with(&format!(r"C:\{want}\")),
            "{path} under generation {generation}"
        );
        checked += 1;
    }
    assert!(
        total > 0 && checked > 0,
        "workers ran ({total} ops) and records were checked ({checked})"
    );
}
