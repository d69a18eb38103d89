//! SIGKILL the writer process at random points, many times: every complete
//! record on disk must read back intact and chained; the only damage ever
//! allowed is one torn record at the very end of the last file.
use std::process::Command;
use std::time::Duration;

use fltpolicy_audit::reader::{LogReader, ReadError, RecordBody};
use fltpolicy_audit::writer::rotated_files;

const BIN: &str = env!("CARGO_BIN_EXE_fltpolicy-audit-stress");

/// A file no longer than this holds at most its header (95 bytes today):
/// no record yet.
const HEADER_BYTES_AT_MOST: u64 = 256;

/// A small deterministic PRNG (xorshift) so failures replay by seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_at_random_points_never_loses_a_complete_record() {
    let runs = std::env::var("KILL_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
    let mut torn_seen = 0;
    let mut total_records = 0;
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("kill.fplog");
        // Small files so kills also land around rotations.
        let mut child = Command::new(BIN)
            .arg(&base)
            .arg("3")
            .arg("100000000")
            .arg("200000")
            .spawn()
            .unwrap();
        // Kill at a random point after the first batch reached the disk:
        // timing from spawn alone would, on a loaded machine, often kill
        // before the first write and check nothing.
        let started = std::time::Instant::now();
        while std::fs::metadata(&base).map_or(0, |m| m.len()) <= HEADER_BYTES_AT_MOST
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let wait_ms = next(&mut rng) % 200;
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let files = rotated_files(&base);
        assert!(!files.is_empty(), "run {run}: no log");
        let mut last_seq = 0;
        let mut next_i = [0u64; 3];
        let mut errors = Vec::new();
        for item in LogReader::open(&files).unwrap() {
            match item {
                Ok(r) => {
                    assert_eq!(r.seq, last_seq + 1, "run {run}: dense seq");
                    last_seq = r.seq;
                    if let RecordBody::Event(e) = &r.body {
                        let p = e.pid as usize;
                        assert_eq!(e.path, format!("/stress/p{p}/{}", e.size), "run {run}");
                        assert!(e.size >= next_i[p], "run {run}: producer {p} order");
                        next_i[p] = e.size + 1;
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        total_records += last_seq;
        match errors.as_slice() {
            [] => {}
            [ReadError::TornTail { path, .. }] => {
                assert_eq!(
                    path,
                    files.last().unwrap(),
                    "run {run}: torn only at the end"
                );
                torn_seen += 1;
            }
            other => panic!("run {run} (waited {wait_ms} ms): {other:?}"),
        }
    }
    eprintln!("{runs} kills, {total_records} records checked, {torn_seen} torn tails");
    assert!(
        total_records >= runs,
        "every run wrote at least one record before being killed"
    );
}
