//! The flush thread and its log file (issue 9: defects 4, 7, 9 and the
//! thread-start item of 11): switching files under a steady producer, the
//! log's volume going away and coming back, where the log lives and who may
//! read it, squatted paths, and a system thread DriverEntry cannot track.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fltpolicy_core::control::{request, Kind, LogState, IOCTL_SET_LOG_PATH};
use fltpolicy_core::record::DropReason;
use fltpolicy_driver::flush::{
    STATUS_FILE_IS_A_DIRECTORY, STATUS_INVALID_OWNER, STATUS_NOT_A_DIRECTORY,
    STATUS_REPARSE_POINT_ENCOUNTERED,
};
use fltpolicy_driver::sim::acl::{ADMINISTRATORS, SYSTEM};
use fltpolicy_driver::sim::{access, Io, Sim, Step};

const POLICY: &str = r"log write under C:\Data";

fn seq(r: &Rec) -> u64 {
    match r {
        Rec::Event { seq, .. } | Rec::Dropped { seq, .. } | Rec::End { seq } => *seq,
    }
}

fn dropped(recs: &[Rec], reason: DropReason) -> u64 {
    recs.iter()
        .filter_map(|r| match r {
            Rec::Dropped {
                count, reason: x, ..
            } if *x == reason => Some(*count),
            _ => None,
        })
        .sum()
}

fn all_dropped(recs: &[Rec]) -> u64 {
    recs.iter()
        .filter_map(|r| match r {
            Rec::Dropped { count, .. } => Some(*count),
            _ => None,
        })
        .sum()
}

/// Polls `f` for at most `secs` seconds.
fn within(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

fn set_log_path(sim: &Sim, path: &str) {
    let (st, _) = sim.ioctl(
        IOCTL_SET_LOG_PATH,
        &request(Kind::SetLogPath, path.as_bytes()),
        0,
    );
    assert_eq!(st, 0, "set-log-path {path}");
}

#[test]
fn set_log_path_completes_under_a_steady_producer_and_loses_nothing() {
    let mut sim = started(POLICY);
    let h = sim
        .open(1234, r"C:\Data\busy.bin", access::WRITE, access::OPEN_IF)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    // While each log write is in progress, other CPUs produce five more
    // records: the queue is never found empty by a drain.
    let simp = &sim as *const Sim as usize;
    let (st, wr) = (stop.clone(), written.clone());
    sim.on_log_write(Some(Box::new(move || {
        if st.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the test removes the hook before `sim` goes away.
        let sim = unsafe { &*(simp as *const Sim) };
        for _ in 0..5 {
            sim.write(h, 1, Io::from(1234));
            wr.fetch_add(1, Ordering::Relaxed);
        }
    })));
    sim.write(h, 1, Io::from(1234));
    written.fetch_add(1, Ordering::Relaxed);
    assert!(within(10, || status(&sim).logged > 0), "first records");
    set_log_path(&sim, r"E:\logs\audit.log");
    // The old writer drained "until empty", which never happens while
    // producers keep producing: the new file never appeared.
    let switched = within(5, || sim.file_contents(r"E:\logs\audit.log").is_some());
    // A little more into the new file, then the producers stop.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Release);
    sim.on_log_write(None);
    assert!(
        switched,
        "the new log was not opened within 5 s under a steady producer"
    );
    assert_eq!(sim.unload(), 0);
    let n = written.load(Ordering::Relaxed);
    let old = log_records(&sim);
    let new = records_of(&sim.file_contents(r"E:\logs\audit.log").unwrap());
    assert!(matches!(old.last(), Some(Rec::End { .. })), "old log ended");
    assert!(matches!(new.last(), Some(Rec::End { .. })), "new log ended");
    assert!(!events(&new).is_empty(), "records after the switch");
    // Nothing lost silently: every write is an event in one of the files or
    // counted in a drop record.
    let total = events(&old).len() as u64
        + events(&new).len() as u64
        + all_dropped(&old)
        + all_dropped(&new);
    assert_eq!(total, n, "events + drops == writes");
    // One sequence across both files.
    let seqs: Vec<u64> = old.iter().chain(new.iter()).map(seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence continues into the new file: {:?} .. {:?}",
        &seqs[old.len().saturating_sub(2)..old.len()],
        &seqs[old.len()..(old.len() + 2).min(seqs.len())]
    );
}

#[test]
fn the_logs_volume_can_be_dismounted_and_logging_resumes_when_it_is_back() {
    let mut sim = started(POLICY);
    set_log_path(&sim, r"E:\logs\audit.log");
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    for _ in 0..5 {
        sim.write(h, 1, Io::from(1234));
    }
    eventually("first records on E:", || status(&sim).logged == 5);
    // Dismount (or removal) of E:. The old filter had no teardown
    // callbacks and its flush thread kept the file and the instance: the
    // teardown waited forever (here: an error after 10 s).
    sim.dismount_volume("E:").expect("E: dismounts");
    let s = status(&sim);
    assert_eq!(LogState::from_u32(s.log_state), Some(LogState::NoVolume));
    // Records produced meanwhile wait in the queue.
    for _ in 0..7 {
        sim.write(h, 1, Io::from(1234));
    }
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(status(&sim).logged, 5);
    // E: is back: the log reopens (the previous file moved aside).
    sim.mount_volume("E:");
    eventually("log reopened after remount", || status(&sim).logged == 12);
    assert_eq!(
        LogState::from_u32(status(&sim).log_state),
        Some(LogState::Writing)
    );
    // A manual detach (`fltmc detach`) needs InstanceQueryTeardown.
    sim.detach_volume("E:").expect("E: detaches");
    assert_eq!(sim.unload(), 0);
    let files = sim.files_under(r"E:\logs");
    assert_eq!(files.len(), 2, "{files:?}");
    let recs: Vec<Vec<Rec>> = files
        .iter()
        .map(|f| {
            let b = fltpolicy_driver::sim::Sim::file_contents_device(&sim, f).unwrap();
            records_of(&b)
        })
        .collect();
    let total: usize = recs.iter().map(|r| events(r).len()).sum();
    assert_eq!(total, 12, "every record in one of the two files");
    assert!(recs
        .iter()
        .all(|r| matches!(r.last(), Some(Rec::End { .. }))));
}

#[test]
fn the_default_log_is_in_a_directory_only_system_and_administrators_can_open() {
    let mut sim = started(POLICY);
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(h, 1, Io::from(1234));
    eventually("record written", || status(&sim).logged == 1);
    assert!(sim.is_directory(r"C:\ProgramData\fltpolicy"));
    for path in [r"C:\ProgramData\fltpolicy", LOG] {
        let sd = sim
            .security_of(path)
            .unwrap_or_else(|| panic!("{path} created without a security descriptor"));
        assert!(sd.protected, "{path}: nothing inherited from ProgramData");
        let mut who = sd.granted();
        who.sort();
        assert_eq!(
            who,
            vec![SYSTEM.to_string(), ADMINISTRATORS.to_string()],
            "{path}"
        );
        // Inherited by what is created inside (rotated files, .old files).
        assert!(sd.dacl.iter().flatten().all(|a| a.flags == 3), "{path}");
    }
    let cs = sim.control_security().expect("control device");
    assert!(cs.protected);
    assert_eq!(cs.granted().len(), 2);
    sim.unload();
}

#[test]
fn a_directory_planted_with_the_logs_name_is_reported_and_its_losses_recorded() {
    let mut sim = Sim::new();
    // A standard user got there first: a directory named like the log.
    sim.plant_directory(LOG);
    assert_eq!(sim.load(), 0);
    load_policy(&sim, POLICY);
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    let n = 20_000u64;
    for _ in 0..n {
        sim.write(h, 1, Io::from(1234));
    }
    eventually("squat reported", || {
        LogState::from_u32(status(&sim).log_state) == Some(LogState::Squatted)
    });
    let s = status(&sim);
    assert_eq!(s.log_error, STATUS_FILE_IS_A_DIRECTORY);
    assert_eq!(s.logged, 0);
    assert!(s.dropped > 0, "the queue overflowed meanwhile: {s:?}");
    // An administrator removes it: logging starts, with the losses.
    sim.remove_path(LOG);
    eventually("logging works", || {
        LogState::from_u32(status(&sim).log_state) == Some(LogState::Writing)
            && status(&sim).logged > 0
    });
    assert_eq!(sim.unload(), 0);
    let recs = log_records(&sim);
    let lost = dropped(&recs, DropReason::QueueFull);
    assert!(lost > 0, "a drop record for what could not wait");
    assert_eq!(events(&recs).len() as u64 + lost, n);
}

#[test]
fn a_junction_or_a_file_as_the_log_directory_is_refused() {
    for (plant, expect) in [
        ("junction", STATUS_REPARSE_POINT_ENCOUNTERED),
        ("file", STATUS_NOT_A_DIRECTORY),
    ] {
        let mut sim = Sim::new();
        let dir = r"C:\ProgramData\fltpolicy";
        if plant == "junction" {
            // Where a user can read: the log must never go there.
            sim.plant_junction(dir, r"C:\Users\Public");
        } else {
            sim.plant_file(dir);
        }
        assert_eq!(sim.load(), 0);
        load_policy(&sim, POLICY);
        let h = sim
            .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
            .unwrap();
        sim.write(h, 1, Io::from(1234));
        eventually("squat reported", || {
            LogState::from_u32(status(&sim).log_state) == Some(LogState::Squatted)
        });
        assert_eq!(status(&sim).log_error, expect, "{plant}");
        assert!(
            sim.files_under(r"C:\Users\Public").is_empty(),
            "{plant}: nothing written through it"
        );
        assert_eq!(sim.unload(), 0);
    }
}

#[test]
fn a_default_directory_a_user_created_first_is_not_used() {
    // Users may create directories in C:\ProgramData, and own what they
    // create: a directory made before the driver's first start would let
    // its creator read and delete the logs.
    let mut sim = Sim::new();
    sim.plant_directory(r"C:\ProgramData\fltpolicy");
    assert_eq!(sim.load(), 0);
    load_policy(&sim, POLICY);
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(h, 1, Io::from(1234));
    eventually("squat reported", || {
        LogState::from_u32(status(&sim).log_state) == Some(LogState::Squatted)
    });
    assert_eq!(status(&sim).log_error, STATUS_INVALID_OWNER);
    assert!(sim.file_contents(LOG).is_none(), "no log in it");
    // The administrator removes it: the driver makes its own.
    sim.remove_path(r"C:\ProgramData\fltpolicy");
    eventually("record written", || status(&sim).logged == 1);
    assert_eq!(sim.unload(), 0);
    assert_eq!(events(&log_records(&sim)).len(), 1);
}

#[test]
fn a_thread_driver_entry_cannot_track_stops_before_its_state_is_freed() {
    // PsCreateSystemThread succeeds, ObReferenceObjectByHandle fails: the
    // old code returned the error and let the thread run on the Globals
    // that the failing DriverEntry then freed.
    let mut sim = Sim::new();
    sim.fail_step(Step::ThreadReference);
    assert_ne!(sim.load(), 0);
    assert_eq!(sim.threads(), 0);
    assert_eq!(sim.pool_blocks(), 0);
}
