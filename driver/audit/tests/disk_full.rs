//! A real full disk: the log lives on a small private tmpfs. Writes fail
//! with ENOSPC; the writer rolls back, keeps counting, never blocks the
//! producers, and once space is freed writes a drop record for the loss.
//! Needs root (to mount); elsewhere it says so and checks nothing.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fltpolicy_audit::reader::{LogReader, RecordBody};
use fltpolicy_audit::verify::verify;
use fltpolicy_audit::writer::{FileSink, FlushConfig, FlushThread};
use fltpolicy_audit::ReadOptions;
use fltpolicy_core::event::Op;
use fltpolicy_core::record::{DropReason, EventData};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        let dir =
            std::env::temp_dir().join(format!("fltpolicy-diskfull-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            Some(Tmpfs(dir))
        } else {
            let _ = std::fs::remove_dir_all(&dir);
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn full_disk_losses_are_counted_and_reported_once_space_returns() {
    let Some(fs) = Tmpfs::mount("full", "256k") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but a precondition is missing: cannot mount a tmpfs (needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![0u8; 128 << 10]).unwrap();
    let base = fs.0.join("audit.fplog");
    let ft = FlushThread::start(
        FileSink::create(&base).unwrap(),
        FlushConfig {
            interval: Duration::from_millis(5),
            ..FlushConfig::default()
        },
    )
    .unwrap();
    let q = ft.producer();
    let path = "/data/some/reasonably/long/path/to/a/file/that/fills/the/disk.bin";
    let push = |n: u64, from: u64| {
        for i in from..from + n {
            let ev = EventData {
                op: Some(Op::Write),
                pid: 7,
                size: i,
                path,
                ..Default::default()
            };
            // Never blocks on the disk: the queue has room, the writer fails.
            q.push_waiting(&ev).unwrap();
        }
    };
    // ~650 KB of records onto ~120 KB of free space.
    push(5_000, 0);
    // Space returns once the writer has dealt with all of them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let h = q.writer_health();
        if h.events_written + h.write_failed_records >= 5_000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{h:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(&filler).unwrap();
    push(200, 5_000);
    let (_, stats) = ft.shutdown().expect("writing works again");

    let mut written = 0;
    let mut lost = 0;
    for r in LogReader::open(&[&base]).unwrap() {
        match r.unwrap().body {
            RecordBody::Event(_) => written += 1,
            RecordBody::Dropped(d) => {
                assert_eq!(d.reason, DropReason::WriteFailed);
                lost += d.count;
            }
            RecordBody::End(_) => {}
        }
    }
    eprintln!(
        "written {written}, lost to the full disk {lost}, write failures {}",
        stats.write_failures
    );
    assert!(
        stats.write_failures > 0 && lost > 0,
        "the disk really filled up"
    );
    assert_eq!(written + lost, 5_200);
    assert!(verify(&[&base], ReadOptions::default()).unwrap().ok());
}

/// The engine's case: a nearly full disk while the engine runs. The loss
/// is visible at once (live counters for `status`, one notice for the
/// episode), the log keeps every record that fits (the disk ends up full,
/// not 120 KB short because one 1 MiB batch was refused whole), and once
/// space returns the drop record follows and the log verifies.
#[test]
fn nearly_full_disk_keeps_what_fits_and_the_loss_is_visible_while_running() {
    let Some(fs) = Tmpfs::mount("nearly", "256k") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but a precondition is missing: cannot mount a tmpfs (needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![0u8; 128 << 10]).unwrap();
    let base = fs.0.join("audit.fplog");
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink_notices = std::sync::Arc::clone(&notices);
    let ft = FlushThread::start(
        FileSink::create(&base).unwrap(),
        FlushConfig {
            // Long enough that the first batch is large (most of the
            // records), as on a busy engine.
            interval: Duration::from_millis(300),
            notify: Some(fltpolicy_audit::writer::Notifier(std::sync::Arc::new(
                move |m| sink_notices.lock().unwrap().push(m.to_owned()),
            ))),
            ..FlushConfig::default()
        },
    )
    .unwrap();
    let q = ft.producer();
    let path = "/data/some/reasonably/long/path/to/a/file/that/fills/the/disk.bin";
    let push = |n: u64, from: u64| {
        for i in from..from + n {
            let ev = EventData {
                op: Some(Op::Write),
                pid: 7,
                size: i,
                path,
                ..Default::default()
            };
            q.push_waiting(&ev).unwrap();
        }
    };
    push(12_000, 0);
    // While running: the counters say so.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let health = loop {
        let h = q.writer_health();
        if h.events_written + h.write_failed_records >= 12_000 {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "{h:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(health.write_failed_records > 0 && health.write_failed_bytes > 0);
    assert!(health.events_written > 0, "{health:?}");
    // Every record that fit was kept: not one more page is free.
    let probe = fs.0.join("probe");
    let r = std::fs::write(&probe, vec![1u8; 8192]);
    let _ = std::fs::remove_file(&probe);
    assert!(
        r.is_err(),
        "8 KiB still fit after the writer gave up: it left space unused ({health:?})"
    );
    {
        let n = notices.lock().unwrap();
        let fails: Vec<_> = n.iter().filter(|m| m.contains("write failed")).collect();
        assert_eq!(fails.len(), 1, "one notice per episode: {n:?}");
    }
    std::fs::remove_file(&filler).unwrap();
    push(200, 12_000);
    let (_, stats) = ft.shutdown().expect("writing works again");
    assert!(
        notices
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("writing works again")),
        "{:?}",
        notices.lock().unwrap()
    );
    let mut written = 0;
    let mut lost = 0;
    for r in LogReader::open(&[&base]).unwrap() {
        match r.unwrap().body {
            RecordBody::Event(_) => written += 1,
            RecordBody::Dropped(d) => {
                assert_eq!(d.reason, DropReason::WriteFailed);
                lost += d.count;
            }
            RecordBody::End(_) => {}
        }
    }
    eprintln!(
        "written {written}, lost {lost}, live {health:?}, final write_failed {}",
        stats.write_failed_records
    );
    assert_eq!(written + lost, 12_200);
    assert_eq!(lost, stats.write_failed_records);
    assert!(verify(&[&base], ReadOptions::default()).unwrap().ok());
}
