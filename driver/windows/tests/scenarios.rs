//! End-to-end scenarios on the simulated Filter Manager: policy load
//! through the control device, callbacks driven by simulated I/O, records
//! written by the real flush thread, leak checks at unload.

mod common;

use common::*;
use fltpolicy_core::event::{Action, Op};
use fltpolicy_driver::kernel::status::STATUS_ACCESS_DENIED;
use fltpolicy_driver::kernel::{APC_LEVEL, DISPATCH_LEVEL, PASSIVE_LEVEL};
use fltpolicy_driver::sim::{access, Io, Sim};

const MISSION: &str = r"log writes under C:\Data from pid 1234";

#[test]
fn mission_rule_logs_writes_under_data_from_pid_1234_only() {
    let mut sim = started(MISSION);
    let a = sim
        .open(1234, r"C:\Data\report.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    assert_eq!(sim.write(a, 100, Io::from(1234)), 0);
    assert_eq!(sim.write(a, 50, Io::from(1234)), 0);
    // Same directory, other process: not logged.
    let b = sim
        .open(999, r"C:\Data\report.txt", access::WRITE, access::OPEN)
        .unwrap();
    assert_eq!(sim.write(b, 10, Io::from(999)), 0);
    // Same process, outside C:\Data (prefix look-alike too): not logged.
    let c = sim
        .open(1234, r"C:\Database\x.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    assert_eq!(sim.write(c, 10, Io::from(1234)), 0);
    // Reads under C:\Data by 1234: not logged (the rule is about writes).
    assert_eq!(sim.read(a, 10, Io::from(1234)), 0);
    assert_eq!(sim.unload(), 0);
    let recs = log_records(&sim);
    let ev = events(&recs);
    assert_eq!(ev.len(), 2, "{recs:#?}");
    for (r, size) in ev.iter().zip([100u64, 50]) {
        let Rec::Event {
            op,
            action,
            path,
            pid,
            image,
            status,
            paging,
            ..
        } = r
        else {
            unreachable!()
        };
        assert_eq!(*op, Some(Op::Write));
        assert_eq!(*action, Some(Action::Log));
        assert_eq!(path, r"C:\Data\report.txt");
        assert_eq!(*pid, 1234);
        assert_eq!(image, r"C:\Tools\writer.exe");
        assert_eq!(*status, Some(0), "post-op status carried into the record");
        assert!(!paging);
        let _ = size;
    }
    assert!(
        matches!(recs.last(), Some(Rec::End { .. })),
        "clean shutdown ends the file"
    );
}

#[test]
fn paging_write_at_dispatch_is_logged_from_the_cached_name() {
    let mut sim = started(r"log write under C:\Data where paging as mapped");
    let h = sim
        .open(1234, r"C:\Data\mapped.bin", access::WRITE, access::OPEN_IF)
        .unwrap();
    // The modified page writer flushes a mapped view: paging I/O, pre-op at
    // APC_LEVEL, completion at DISPATCH_LEVEL. A name query there would be a
    // verifier violation; the driver must use the stream-handle context.
    assert_eq!(sim.write(h, 4096, Io::paging_at_dispatch()), 0);
    // A non-paging write does not match `where paging`.
    assert_eq!(sim.write(h, 10, Io::from(1234)), 0);
    // Paging write whose pre-op runs at APC_LEVEL (the highest IRQL a
    // pre-operation callback sees) and whose completion is at DISPATCH.
    let io = Io {
        pid: 4,
        irql: APC_LEVEL,
        post_irql: DISPATCH_LEVEL,
        paging: true,
    };
    assert_eq!(sim.write(h, 8192, io), 0);
    sim.unload();
    let recs = log_records(&sim);
    let ev = events(&recs);
    assert_eq!(ev.len(), 2, "{recs:#?}");
    for r in ev {
        let Rec::Event {
            paging,
            path,
            tag,
            pid,
            ..
        } = r
        else {
            unreachable!()
        };
        assert!(*paging);
        assert_eq!(path, r"C:\Data\mapped.bin");
        assert_eq!(tag, "mapped");
        assert_eq!(*pid, 4);
    }
}

#[test]
fn deny_delete_and_rename_unless_robocopy() {
    let mut sim = started(
        r#"deny delete, rename under "C:\Finance" unless image == "C:\Windows\System32\robocopy.exe""#,
    );
    let h = sim
        .open(
            999,
            r"C:\Finance\ledger.xlsx",
            access::WRITE,
            access::OPEN_IF,
        )
        .unwrap();
    // Set-information delete (FileDispositionInformation): denied.
    assert_eq!(sim.delete(h, 999), STATUS_ACCESS_DENIED);
    assert!(
        sim.file_contents(r"C:\Finance\ledger.xlsx").is_some(),
        "file still there"
    );
    // Rename: denied, file keeps its name.
    assert_eq!(
        sim.rename(h, 999, r"C:\Finance\gone.xlsx"),
        STATUS_ACCESS_DENIED
    );
    assert!(sim.file_contents(r"C:\Finance\gone.xlsx").is_none());
    // Open with DELETE access is refused at create (the rule covers it).
    assert_eq!(
        sim.open(999, r"C:\Finance\ledger.xlsx", access::DELETE, access::OPEN),
        Err(STATUS_ACCESS_DENIED)
    );
    // Writes are not covered: allowed.
    assert_eq!(sim.write(h, 10, Io::from(999)), 0);
    // robocopy may rename.
    let r = sim
        .open(77, r"C:\Finance\ledger.xlsx", access::DELETE, access::OPEN)
        .unwrap();
    assert_eq!(sim.rename(r, 77, r"C:\Finance\ledger-2026.xlsx"), 0);
    assert!(sim.file_contents(r"C:\Finance\ledger-2026.xlsx").is_some());
    let s = status(&sim);
    assert_eq!(s.denied, 3);
    sim.unload();
    let recs = log_records(&sim);
    let denies: Vec<_> = events(&recs)
        .into_iter()
        .filter_map(|r| match r {
            Rec::Event {
                op,
                action: Some(Action::Deny),
                status,
                ..
            } => Some((*op, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        denies,
        vec![
            (Some(Op::Delete), Some(STATUS_ACCESS_DENIED)),
            (Some(Op::Rename), Some(STATUS_ACCESS_DENIED)),
            (Some(Op::Delete), Some(STATUS_ACCESS_DENIED)),
        ]
    );
}

#[test]
fn deny_write_fails_an_open_for_writing_but_not_for_reading() {
    let mut sim = started(r"deny write under C:\Locked");
    assert_eq!(
        sim.open(999, r"C:\Locked\a.txt", access::WRITE, access::OPEN_IF),
        Err(STATUS_ACCESS_DENIED)
    );
    assert!(
        sim.file_contents(r"C:\Locked\a.txt").is_none(),
        "denied before the file system created it"
    );
    let r = sim
        .open(999, r"C:\Locked\b.txt", access::READ, access::OPEN_IF)
        .unwrap();
    assert_eq!(sim.read(r, 1, Io::from(999)), 0);
    assert_eq!(sim.unload(), 0);
}

#[test]
fn volumes_attach_only_to_local_disk_file_systems() {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    assert_eq!(
        sim.attached(),
        vec![
            r"\Device\HarddiskVolume3".to_string(),
            r"\Device\HarddiskVolume4".to_string()
        ]
    );
    load_policy(&sim, r"log write under E:\");
    sim.process_start(5, 1, r"C:\x.exe");
    let h = sim
        .open(5, r"E:\stick\f.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(h, 3, Io::from(5));
    sim.unload();
    let recs = log_records(&sim);
    let ev = events(&recs);
    assert_eq!(ev.len(), 1);
    assert!(
        matches!(ev[0], Rec::Event { path, .. } if path == r"E:\stick\f.txt"),
        "FAT volume named by its DOS prefix"
    );
}

#[test]
fn queue_overflow_is_recorded_as_a_drop_record() {
    let mut sim = started(r"log write under C:\Data");
    sim.pause_flush(true);
    let h = sim
        .open(1234, r"C:\Data\flood.bin", access::WRITE, access::OPEN_IF)
        .unwrap();
    let n = 3000;
    for _ in 0..n {
        sim.write(h, 1, Io::from(1234));
    }
    let s = status(&sim);
    assert!(
        s.dropped > 0,
        "a 32 KiB ring cannot hold {n} records: {s:?}"
    );
    sim.pause_flush(false);
    assert_eq!(sim.unload(), 0);
    let recs = log_records(&sim);
    let written = events(&recs).len() as u64;
    let dropped: u64 = recs
        .iter()
        .filter_map(|r| match r {
            Rec::Dropped {
                count,
                reason: fltpolicy_core::record::DropReason::QueueFull,
                ..
            } => Some(*count),
            _ => None,
        })
        .sum();
    assert!(
        dropped > 0,
        "drop record present: {:?}",
        &recs[recs.len().saturating_sub(3)..]
    );
    assert_eq!(
        written + dropped,
        n,
        "every event is either in the log or counted as dropped"
    );
    // Sequence numbers are dense.
    let seqs: Vec<u64> = recs
        .iter()
        .map(|r| match r {
            Rec::Event { seq, .. } | Rec::Dropped { seq, .. } | Rec::End { seq } => *seq,
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "dense sequence");
}

#[test]
fn unload_writes_every_pending_record() {
    let mut sim = started(r"log write under C:\Data");
    sim.pause_flush(true);
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    for _ in 0..100 {
        sim.write(h, 7, Io::from(1234));
    }
    assert_eq!(status(&sim).logged, 0, "nothing flushed while paused");
    assert_eq!(sim.unload(), 0);
    let recs = log_records(&sim);
    assert_eq!(events(&recs).len(), 100);
    assert!(matches!(recs.last(), Some(Rec::End { .. })));
}

#[test]
fn counters_and_policy_identity_in_status() {
    let mut sim = started(MISSION);
    let s0 = status(&sim);
    assert_eq!(s0.generation, 1);
    assert_eq!(s0.policy_loaded, 1);
    assert_eq!(s0.rule_count, 1);
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(h, 1, Io::from(1234));
    sim.write(h, 1, Io::from(1234));
    let g = sim
        .open(999, r"C:\Data\a.txt", access::WRITE, access::OPEN)
        .unwrap();
    sim.write(g, 1, Io::from(999));
    let s = status(&sim);
    assert_eq!(s.matched, 2);
    assert_eq!(s.denied, 0);
    // Two opens and three writes: each operation seen once.
    assert_eq!(s.events_seen, 5, "{s:?}");
    eventually("the flush thread writes both records", || {
        status(&sim).logged == 2
    });
    let second = load_policy(&sim, r"log read under C:\Data");
    assert_eq!(second.generation, 2);
    let s2 = status(&sim);
    assert_eq!(s2.generation, 2);
    assert_ne!(s2.policy_hash, s0.policy_hash);
    sim.unload();
}

#[test]
fn log_path_can_be_changed_and_the_old_log_is_ended() {
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(h, 1, Io::from(1234));
    eventually("first record", || status(&sim).logged == 1);
    let req = fltpolicy_core::control::request(
        fltpolicy_core::control::Kind::SetLogPath,
        br"E:\logs\audit.log",
    );
    let (st, _) = sim.ioctl(fltpolicy_core::control::IOCTL_SET_LOG_PATH, &req, 0);
    assert_eq!(st, 0);
    eventually("new log opened", || {
        sim.file_contents(r"E:\logs\audit.log").is_some()
    });
    sim.write(h, 2, Io::from(1234));
    sim.unload();
    let old = log_records(&sim);
    assert_eq!(events(&old).len(), 1);
    assert!(matches!(old.last(), Some(Rec::End { .. })));
    let new = records_of(&sim.file_contents(r"E:\logs\audit.log").unwrap());
    assert_eq!(events(&new).len(), 1);
}

#[test]
fn the_filters_own_log_io_is_never_seen_by_its_callbacks() {
    // A policy that logs every write anywhere on C: would log the log's own
    // writes if they went through the top of the stack.
    let mut sim = started(r"log write under C:\");
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    for _ in 0..10 {
        sim.write(h, 1, Io::from(1234));
    }
    sim.unload();
    let recs = log_records(&sim);
    assert_eq!(events(&recs).len(), 10);
    assert!(events(&recs)
        .iter()
        .all(|r| matches!(r, Rec::Event { path, .. } if !path.contains(r"fltpolicy\audit"))));
}

#[test]
fn an_existing_log_is_moved_aside_not_overwritten() {
    // Start once, write, unload: a log exists. Start again: the old one is
    // moved aside, not overwritten.
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(h, 1, Io::from(1234));
    sim.unload();
    assert_eq!(sim.load(), 0);
    load_policy(&sim, r"log write under C:\Data");
    eventually("fresh log", || {
        log_records(&sim).is_empty() || events(&log_records(&sim)).is_empty()
    });
    sim.unload();
    let kept = sim.files_under(r"C:\ProgramData\");
    let old: Vec<_> = kept.iter().filter(|f| f.ends_with(".OLD")).collect();
    assert_eq!(old.len(), 1, "{kept:?}");
    // The kept log still holds the first session's record.
    let dos = old[0].replace(r"\DEVICE\HARDDISKVOLUME3", "C:");
    assert_eq!(
        events(&records_of(&sim.file_contents(&dos).unwrap())).len(),
        1
    );
}

#[test]
fn a_failing_driver_entry_undoes_exactly_what_succeeded() {
    // Process notify refused (an image without /INTEGRITYCHECK): DriverEntry
    // fails and nothing is left behind (checked by the simulation).
    {
        let mut sim = Sim::new();
        sim.fail_process_notify();
        assert_ne!(sim.load(), 0);
    }
    // Out of pool at every step of start-up.
    for n in 0..3 {
        let mut sim = Sim::new();
        sim.fail_allocations_after(n);
        assert_ne!(
            sim.load(),
            0,
            "allocation {n} failing must fail DriverEntry"
        );
        assert_eq!(sim.pool_blocks(), 0);
    }
}

#[test]
fn operations_at_passive_and_apc_both_evaluate() {
    let mut sim = started(r"log read under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\r.txt", access::READ, access::OPEN_IF)
        .unwrap();
    sim.read(
        h,
        1,
        Io {
            pid: 1234,
            irql: APC_LEVEL,
            post_irql: APC_LEVEL,
            paging: false,
        },
    );
    sim.read(
        h,
        1,
        Io {
            pid: 1234,
            irql: PASSIVE_LEVEL,
            post_irql: DISPATCH_LEVEL,
            paging: false,
        },
    );
    sim.unload();
    assert_eq!(events(&log_records(&sim)).len(), 2);
}

#[test]
fn a_failure_at_each_driver_entry_step_undoes_the_steps_before_it() {
    use fltpolicy_driver::sim::Step;
    // Each failure happens after the previous steps succeeded; the
    // simulation checks after the failed DriverEntry that the filter is
    // unregistered, the notify routine removed, the device deleted, the
    // thread joined and every pool block freed.
    for step in [
        Step::RegisterFilter,
        Step::ControlDevice,
        Step::SystemThread,
        Step::ThreadReference,
        Step::StartFiltering,
    ] {
        let mut sim = Sim::new();
        sim.fail_step(step);
        assert_ne!(sim.load(), 0, "{step:?}");
        assert_eq!(sim.threads(), 0, "{step:?}: flush thread joined");
        assert_eq!(sim.pool_blocks(), 0, "{step:?}");
    }
}

#[test]
fn the_log_rotates_by_size_and_the_chain_verifies_across_files() {
    let mut sim = started(r"log write under C:\Data");
    sim.set_rotation_limit(8 * 1024);
    // A new log session picks up the limit.
    let req = fltpolicy_core::control::request(
        fltpolicy_core::control::Kind::SetLogPath,
        br"E:\rot\audit.log",
    );
    assert_eq!(
        sim.ioctl(fltpolicy_core::control::IOCTL_SET_LOG_PATH, &req, 0)
            .0,
        0
    );
    eventually("rotating log opened", || {
        sim.file_contents(r"E:\rot\audit.log").is_some()
    });
    let h = sim
        .open(
            1234,
            r"C:\Data\rotate-me-with-a-longish-name.txt",
            access::WRITE,
            access::OPEN_IF,
        )
        .unwrap();
    let n = 400;
    for i in 0..n {
        sim.write(h, i + 1, Io::from(1234));
        if i % 100 == 99 {
            // Let the flush thread keep up so nothing is dropped.
            eventually("flushed", || status(&sim).logged >= u64::from(i + 1));
        }
    }
    assert_eq!(sim.unload(), 0);
    let files = sim.files_under(r"E:\rot\");
    assert!(files.len() >= 3, "rotated into several files: {files:?}");
    // Hand the files to the audit reader, which checks frames, sequence and
    // the hash chain across the rotation.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0.. {
        let name = if i == 0 {
            r"E:\rot\audit.log".to_string()
        } else {
            format!(r"E:\rot\audit.log.{i}")
        };
        let Some(bytes) = sim.file_contents(&name) else {
            break;
        };
        let p = dir.path().join(if i == 0 {
            "audit.log".to_string()
        } else {
            format!("audit.log.{i}")
        });
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    let report = fltpolicy_audit::verify::verify(&paths, Default::default()).unwrap();
    assert!(report.ok(), "{:?}", report.first_error());
    assert_eq!(report.events, u64::from(n));
    assert_eq!(report.dropped, 0);
}

#[test]
fn exited_processes_lose_their_image_and_a_reused_pid_gets_the_new_one() {
    let mut sim = started(
        r#"deny delete under "C:\Finance" unless image == "C:\Windows\System32\robocopy.exe""#,
    );
    let h = sim
        .open(77, r"C:\Finance\a.xlsx", access::WRITE, access::OPEN_IF)
        .unwrap();
    // pid 77 is robocopy: allowed.
    let d = sim
        .open(77, r"C:\Finance\a.xlsx", access::DELETE, access::OPEN)
        .unwrap();
    sim.close(d);
    // robocopy exits and the pid is reused by another program: denied.
    sim.process_exit(77);
    sim.process_start(77, 1, r"C:\Users\x\evil.exe");
    assert_eq!(
        sim.open(77, r"C:\Finance\a.xlsx", access::DELETE, access::OPEN),
        Err(STATUS_ACCESS_DENIED)
    );
    // An exited pid that nobody reuses has no image: still denied.
    sim.process_exit(77);
    assert_eq!(sim.delete(h, 77), STATUS_ACCESS_DENIED);
    sim.unload();
    let recs = log_records(&sim);
    let images: Vec<_> = events(&recs)
        .into_iter()
        .filter_map(|r| match r {
            Rec::Event { image, .. } => Some(image.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        images,
        vec![r"C:\Users\x\evil.exe".to_string(), String::new()]
    );
}

#[test]
fn paths_compare_case_insensitively_and_keep_unicode() {
    let mut sim = started(r#"log write under C:\Data where ext == ".txt""#);
    // Different case in the drive, directory and extension; non-ASCII name.
    let h = sim
        .open(
            1234,
            r"c:\DATA\Ünïcødé Ström.TXT",
            access::WRITE,
            access::OPEN_IF,
        )
        .unwrap();
    sim.write(h, 1, Io::from(1234));
    let o = sim
        .open(1234, r"C:\data\other.bin", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(o, 1, Io::from(1234));
    sim.unload();
    let recs = log_records(&sim);
    let ev = events(&recs);
    assert_eq!(ev.len(), 1, "{recs:#?}");
    let Rec::Event { path, .. } = ev[0] else {
        unreachable!()
    };
    assert_eq!(
        path, r"C:\DATA\Ünïcødé Ström.TXT",
        "the DOS prefix comes from the volume; the rest as the file system names it"
    );
}

#[test]
fn records_wait_in_the_queue_while_no_log_can_be_opened() {
    use fltpolicy_core::control::{request, Kind, IOCTL_SET_LOG_PATH};
    let mut sim = started(r"log write under C:\Data");
    // D: is the CD-ROM: the filter has no instance there, so the flush
    // thread cannot open a log on it (FltGetVolumeInstanceFromName fails).
    let (st, _) = sim.ioctl(
        IOCTL_SET_LOG_PATH,
        &request(Kind::SetLogPath, br"D:\audit.log"),
        0,
    );
    assert_eq!(
        st, 0,
        "the path is valid; opening it is the flush thread's business"
    );
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    for _ in 0..20 {
        sim.write(h, 1, Io::from(1234));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(status(&sim).logged, 0);
    assert!(sim.file_contents(r"D:\audit.log").is_none());
    // A writable volume: the queued records arrive, none lost.
    let (st, _) = sim.ioctl(
        IOCTL_SET_LOG_PATH,
        &request(Kind::SetLogPath, br"E:\later.log"),
        0,
    );
    assert_eq!(st, 0);
    eventually("queued records written", || status(&sim).logged == 20);
    assert_eq!(sim.unload(), 0);
    let recs = records_of(&sim.file_contents(r"E:\later.log").unwrap());
    assert_eq!(events(&recs).len(), 20);
    assert!(!recs.iter().any(|r| matches!(r, Rec::Dropped { .. })));
}

/// Paging I/O is never failed, even under `deny write`: it carries data the
/// cache already accepted. A paging write with its pre-op at APC_LEVEL and
/// one at DISPATCH_LEVEL both succeed and their bytes reach the file, while
/// an ordinary write on the same handle is denied.
#[test]
fn paging_writes_under_deny_write_succeed_and_land_their_data() {
    // The file is opened for write first (a mapped view's writes come from
    // an open made earlier), then `deny write` is loaded.
    let mut sim = started(r"log create under C:\Data");
    let path = r"C:\Data\mapped.bin";
    let h = sim
        .open(1234, path, access::WRITE, access::OPEN_IF)
        .unwrap();
    load_policy(&sim, r"deny write under C:\Data");
    let len = |sim: &Sim| sim.file_contents(path).map_or(0, |b| b.len());
    assert_eq!(len(&sim), 0);
    // An ordinary write is denied (0xC0000022, STATUS_ACCESS_DENIED in
    // ntstatus.h) and writes nothing.
    assert_eq!(sim.write(h, 10, Io::from(1234)) as u32, 0xC000_0022);
    assert_eq!(len(&sim), 0);
    let at_apc = Io {
        pid: 4,
        irql: APC_LEVEL,
        post_irql: DISPATCH_LEVEL,
        paging: true,
    };
    assert_eq!(sim.write(h, 4096, at_apc), 0, "paging write at APC_LEVEL");
    assert_eq!(len(&sim), 4096);
    assert_eq!(
        sim.write(h, 8192, Io::paging_at_dispatch()),
        0,
        "paging write at DISPATCH_LEVEL"
    );
    assert_eq!(len(&sim), 4096 + 8192);
    assert_eq!(sim.unload(), 0);
}
