//! The pid → image table under process churn (issue 9, defect 5), driven
//! through the simulated process manager: the notify routine on several
//! writer threads, lookups at DISPATCH_LEVEL on reader threads, and the
//! processes already running when the driver loads.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use fltpolicy_core::event::Op;
use fltpolicy_driver::kernel::DISPATCH_LEVEL;
use fltpolicy_driver::process::{Lookup, ProcessInfo, ProcessTable, MAX_PROBE};
use fltpolicy_driver::sim::{access, with_irql, Io, Sim};

/// Process starts (and as many exits) the churn tests drive.
const STARTS: u64 = 100_000;
/// Processes alive at once per writer thread.
const LIVE_PER_WRITER: usize = 300;

fn table() -> &'static ProcessTable {
    fltpolicy_driver::globals::get()
        .expect("driver loaded")
        .processes
}

fn image_of(pid: u64) -> String {
    format!(r"C:\Apps\p{pid}.exe")
}

/// Pids no process ever had in these tests (odd: Windows pids are
/// multiples of 4).
fn never_used(i: u64) -> u64 {
    4 * i + 1
}

/// `writers` threads start and stop `STARTS` processes in total (each keeps
/// `LIVE_PER_WRITER` alive, exiting the oldest first, pids never reused
/// while alive); returns the processes alive at the end.
fn churn(sim: &Sim, writers: u64) -> HashMap<u64, String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                s.spawn(move || {
                    let mut live = std::collections::VecDeque::new();
                    for i in 0..STARTS / writers {
                        // Pids cycle through a range, as Windows reuses them.
                        let pid = 10_000 + 4 * (w + writers * (i % 5_000));
                        sim.process_start(pid, 1, &image_of(pid));
                        live.push_back(pid);
                        if live.len() > LIVE_PER_WRITER {
                            sim.process_exit(live.pop_front().unwrap());
                        }
                    }
                    live.into_iter()
                        .map(|p| (p, image_of(p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
fn pid_table_misses_stay_short_after_100000_process_starts() {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    let model = churn(&sim, 1);
    let t = table();
    // A miss (pid 4's paging I/O, a process the table never saw) reads a
    // bounded number of index words; with tombstones it read every slot.
    let misses: Vec<usize> = (0..10_000).map(|i| t.probe_len(never_used(i))).collect();
    let worst = *misses.iter().max().unwrap();
    let mean = misses.iter().sum::<usize>() as f64 / misses.len() as f64;
    assert!(worst <= MAX_PROBE, "a miss read {worst} slots");
    assert!(mean < 4.0, "misses read {mean:.1} slots on average");
    // And the table still agrees with what is running.
    let mut info = ProcessInfo::unknown();
    for (pid, image) in &model {
        assert!(t.lookup(*pid, &mut info), "running pid {pid} missing");
        assert_eq!(info.image(), image);
        assert!(t.probe_len(*pid) <= MAX_PROBE);
    }
    assert_eq!(sim.unload(), 0);
}

#[test]
fn pid_table_churn_with_concurrent_dispatch_readers_matches_a_model() {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    // Processes alive throughout: a reader must never get a definite miss
    // for them, only (rarely) a give-up while writers keep the table busy.
    let stable: Vec<u64> = (0..64).map(|i| 4_000_000 + 4 * i).collect();
    for &p in &stable {
        sim.process_start(p, 2, &image_of(p));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (stop, stable) = (stop.clone(), stable.clone());
            std::thread::spawn(move || {
                let t = table();
                let mut info = ProcessInfo::unknown();
                let (mut found, mut contended, mut i) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let pid = stable[(i as usize + r) % stable.len()];
                    // Lookups run at DISPATCH_LEVEL, as in a paging-I/O
                    // completion: the simulation rejects anything else.
                    match with_irql(DISPATCH_LEVEL, true, || t.lookup_detailed(pid, &mut info)) {
                        Lookup::Found => {
                            assert_eq!(info.image(), image_of(pid), "torn or wrong image");
                            assert_eq!(info.ppid, 2);
                            found += 1;
                        }
                        Lookup::Contended => contended += 1,
                        Lookup::Absent => panic!("present pid {pid} reported absent"),
                    }
                    let miss = never_used(i % 100_000);
                    let r = with_irql(DISPATCH_LEVEL, true, || t.lookup_detailed(miss, &mut info));
                    assert_ne!(r, Lookup::Found, "pid {miss} was never started");
                }
                (found, contended)
            })
        })
        .collect();
    let model = churn(&sim, 2);
    stop.store(true, Ordering::Relaxed);
    let (mut found, mut contended) = (0, 0);
    for r in readers {
        let (f, c) = r.join().unwrap();
        found += f;
        contended += c;
    }
    println!("reader lookups of live pids: {found} found, {contended} gave up (contended)");
    assert!(found > 0);
    // Quiescent: the table is exactly the model (plus the stable processes
    // and System, which the fill at load found running).
    let t = table();
    let mut info = ProcessInfo::unknown();
    for (pid, image) in model.iter() {
        assert_eq!(t.lookup_detailed(*pid, &mut info), Lookup::Found, "{pid}");
        assert_eq!(info.image(), image);
    }
    for &p in &stable {
        assert_eq!(t.lookup_detailed(p, &mut info), Lookup::Found);
    }
    assert_eq!(t.lookup_detailed(4, &mut info), Lookup::Found, "System");
    assert_eq!(t.len(), model.len() + stable.len() + 1);
    // Every exited pid is gone.
    for w in 0..2u64 {
        for i in 0..5_000u64 {
            let pid = 10_000 + 4 * (w + 2 * i);
            if !model.contains_key(&pid) {
                assert_eq!(t.lookup_detailed(pid, &mut info), Lookup::Absent, "{pid}");
            }
        }
    }
    assert_eq!(t.overflow(), 0);
    assert_eq!(sim.unload(), 0);
}

#[test]
fn processes_running_before_load_are_recorded_with_their_image() {
    let mut sim = Sim::new();
    // Started before the driver: only the fill at load can know them.
    sim.process_start(500, 4, r"C:\Tools\old.exe");
    // Exits after DriverEntry's snapshot, before its image is read.
    sim.process_exits_during_load(600, 4, r"C:\Tools\gone.exe");
    assert_eq!(sim.load(), 0);
    load_policy(&sim, r"log writes under C:\Data");
    let mut info = ProcessInfo::unknown();
    assert_eq!(
        table().lookup_detailed(600, &mut info),
        Lookup::Absent,
        "a process that exited during the fill must not stay in the table"
    );
    assert_eq!(
        table().lookup_detailed(4, &mut info),
        Lookup::Found,
        "System"
    );
    let h = sim
        .open(500, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    assert_eq!(sim.write(h, 10, Io::from(500)), 0);
    sim.close(h);
    assert_eq!(sim.unload(), 0);
    let recs = log_records(&sim);
    let writes: Vec<(u64, String)> = events(&recs)
        .into_iter()
        .filter_map(|r| match r {
            Rec::Event {
                op: Some(Op::Write),
                pid,
                image,
                ..
            } => Some((*pid, image.clone())),
            _ => None,
        })
        .collect();
    assert!(!writes.is_empty(), "{recs:#?}");
    for w in &writes {
        assert_eq!(*w, (500, r"C:\Tools\old.exe".to_string()));
    }
}
