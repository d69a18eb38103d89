//! The Linux engine against ground truth: real workloads run under
//! `strace -f` (an independent tracer following fork, exec, cwd and every
//! descriptor) while `fltpolicy run` logs them; the operations the trace
//! shows under the policy's tree are compared record by record with the
//! log (missed, extra, mispathed, wrong process, drop records). See
//! `fltpolicy_tests::groundtruth` for how operations are derived.
//!
//! CI runs the smoke sizes; `scripts/groundtruth-linux.sh` (GT_FULL=1)
//! runs the sizes of issue 10 (5,000-file tar, 1,000 touch processes, a
//! cargo build). Needs root (fanotify) and strace; each test prints its
//! comparison table (`--nocapture` to see it).
#![cfg(target_os = "linux")]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fltpolicy_audit::reader::{LogReader, RecordBody};
use fltpolicy_audit::writer::rotated_files;
use fltpolicy_tests::groundtruth::{self, Got, Report};
use fltpolicy_tests::Scratch;

const PATIENCE: Duration = Duration::from_secs(120);

fn full() -> bool {
    std::env::var_os("GT_FULL").is_some_and(|v| v != "0")
}

/// `n` in a full run, `smoke` otherwise.
fn size(n: usize, smoke: usize) -> usize {
    if full() {
        n
    } else {
        smoke
    }
}

fn fltpolicy() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let bin = profile_dir.join("fltpolicy");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "fltpolicy", "--bin", "fltpolicy"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            build.env("CARGO_TARGET_DIR", target_dir);
        }
        let st = build.status().expect("cargo build -p fltpolicy");
        assert!(st.success(), "building the fltpolicy binary failed");
        bin
    })
    .clone()
}

/// Only one engine at a time: every test marks its own tmpfs, but the
/// process connector and the CPU are shared, and the figures are clearer
/// one run at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Engine {
    child: Child,
    lines: Vec<String>,
    log: PathBuf,
}

impl Engine {
    fn start(policy: &str, s: &Scratch) -> Engine {
        let pol = PathBuf::from(format!("{}.pol", s.dir.display()));
        std::fs::write(&pol, policy).unwrap();
        let log = PathBuf::from(format!("{}.fplog", s.dir.display()));
        for f in rotated_files(&log) {
            let _ = std::fs::remove_file(f);
        }
        let mut child = Command::new(fltpolicy())
            .arg("run")
            .arg(&pol)
            .arg("--log")
            .arg(&log)
            .arg("--watch")
            .arg(&s.dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while !lines
            .iter()
            .any(|l: &String| l.contains("running; stop with"))
        {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => lines.push(l),
                Err(_) => panic!("engine did not start:\n{}", lines.join("\n")),
            }
        }
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Engine { child, lines, log }
    }

    /// SIGTERM (the engine drains everything queued), then the log's
    /// event records and drop records.
    fn stop(mut self) -> (Vec<Got>, Vec<(String, u64)>) {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "engine exit {status:?}: {:?}", self.lines);
        let mut got = Vec::new();
        let mut drops: Vec<(String, u64)> = Vec::new();
        for r in LogReader::open(&rotated_files(&self.log)).unwrap() {
            match r.unwrap().body {
                RecordBody::Event(e) => got.push(Got {
                    op: e.op_name().to_string(),
                    path: e.path.clone(),
                    target: target_of(&e),
                    pid: e.pid as u32,
                    image: e.image.clone(),
                }),
                RecordBody::Dropped(d) => {
                    let name = format!("{:?}", d.reason);
                    match drops.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, c)) => *c += d.count,
                        None => drops.push((name, d.count)),
                    }
                }
                RecordBody::End(_) => {}
            }
        }
        for f in rotated_files(&self.log) {
            let _ = std::fs::remove_file(f);
        }
        (got, drops)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rename destination a record carries.
fn target_of(e: &fltpolicy_audit::EventEntry) -> Option<String> {
    (!e.target_path.is_empty()).then(|| e.target_path.clone())
}

/// Runs `script` with `sh -c` under strace in `cwd`, with the engine
/// logging `policy`, and compares. `root` is the policy's tree.
fn run_case(
    name: &str,
    s: &Scratch,
    policy: &str,
    root: &Path,
    cwd: &Path,
    script: &str,
    ops: &[&'static str],
) -> Report {
    let seeded: HashSet<Vec<u8>> = groundtruth::snapshot(&s.dir);
    let engine = Engine::start(policy, s);
    let trace = PathBuf::from(format!("{}.strace", s.dir.display()));
    let st = Command::new("strace")
        .args(groundtruth::STRACE_ARGS)
        .arg("-o")
        .arg(&trace)
        .args(["--", "/bin/sh", "-c", script])
        .current_dir(cwd)
        .stdout(Stdio::null())
        .status()
        .expect("strace (apt install strace)");
    assert!(st.success(), "{name}: workload failed: {script}");
    let (got, drops) = engine.stop();
    let text = std::fs::read(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    let text = String::from_utf8_lossy(&text);
    let expected = groundtruth::derive(
        &text,
        root.as_os_str().as_bytes(),
        seeded,
        cwd.as_os_str().as_bytes(),
    );
    let mut rep = groundtruth::compare(&expected, &got, root.as_os_str().as_bytes(), ops);
    rep.drops = drops;
    println!("== {name}\n{rep}");
    rep
}

const ALL_OPS: &[&str] = &["create", "delete", "rename", "write", "setinfo"];

fn log_all(root: &Path) -> String {
    format!(
        "log create, delete, rename, write, setinfo under {} as \"gt\"\n",
        root.display()
    )
}

fn assert_exact(name: &str, rep: &Report) {
    assert!(rep.exact(), "{name}: the log differs from the trace\n{rep}");
}

#[test]
fn tar_cp_mv_rm_match_the_trace() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "tar");
    let n = size(5000, 600);
    // The archive is made before the engine starts, outside the tree.
    let src = s.path("make");
    for d in 0..(n / 100).max(1) {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("f{f}.txt")), format!("{d}/{f}\n")).unwrap();
        }
    }
    let tar = s.path("a.tar");
    assert!(Command::new("tar")
        .arg("cf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap()
        .success());
    std::fs::remove_dir_all(&src).unwrap();
    let w = s.path("w");
    std::fs::create_dir_all(&w).unwrap();
    let script = format!(
        "set -e; mkdir x; tar xf {tar} -C x; cp -a x y; mv x x2; mv y/d0 y/d0moved; rm -r x2; rm -r y",
        tar = tar.display()
    );
    let rep = run_case("tar+cp+mv+rm", &s, &log_all(&w), &w, &w, &script, ALL_OPS);
    assert_exact("tar+cp+mv+rm", &rep);
}

#[test]
fn rm_after_an_unrelated_directory_rename_logs_every_delete() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "rmren");
    let w = s.path("w");
    for d in 0..20 {
        let dir = w.join(format!("t/d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            std::fs::write(dir.join(format!("f{f}")), b"x").unwrap();
        }
    }
    std::fs::create_dir_all(s.path("o")).unwrap();
    let script = "set -e; mkdir ../o/other; mv ../o/other ../o/other2; rm -r t";
    let rep = run_case(
        "rm after rename",
        &s,
        &log_all(&w),
        &w,
        &w,
        script,
        &["delete"],
    );
    assert_eq!(rep.total().expected, 1021);
    assert_exact("rm after rename", &rep);
}

#[test]
fn created_then_moved_out_is_logged_where_it_was_and_the_reverse_not_at_all() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "moveout");
    let w = s.path("w");
    std::fs::create_dir_all(&w).unwrap();
    std::fs::create_dir_all(s.path("o")).unwrap();
    let n = size(100, 100);
    let script = format!(
        "set -e; i=0; while [ $i -lt {n} ]; do mkdir w/d$i; echo > w/d$i/f; mv w/d$i o/; \
         mkdir o/r$i; echo > o/r$i/f; mv o/r$i w/; i=$((i+1)); done"
    );
    let rep = run_case(
        "create then move out / in",
        &s,
        &log_all(&w),
        &w,
        &s.dir,
        &script,
        &["create", "rename", "write"],
    );
    assert_exact("create then move out / in", &rep);
}

#[test]
fn mv_a_b_records_both_paths() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "mvab");
    let w = s.path("w");
    std::fs::create_dir_all(&w).unwrap();
    std::fs::create_dir_all(s.path("o")).unwrap();
    std::fs::write(w.join("a"), b"a").unwrap();
    std::fs::write(s.path("o/in"), b"i").unwrap();
    std::fs::write(w.join("out"), b"o").unwrap();
    let script = "set -e; mv w/a w/b; mv o/in w/in; mv w/out o/out";
    let rep = run_case("mv a b", &s, &log_all(&w), &w, &s.dir, script, &["rename"]);
    assert_eq!(rep.total().expected, 3);
    assert_exact("mv a b", &rep);
}

#[test]
fn names_are_recorded_as_they_are() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "names");
    let w = s.path("w");
    std::fs::create_dir_all(&w).unwrap();
    // A directory really named "x (deleted)", a non-UTF-8 name, and a name
    // containing the escape character.
    let script = "set -e; mkdir 'x (deleted)'; echo > 'x (deleted)/f'; \
                  echo > \"$(printf 'bad\\377\\376name')\"; echo > 'back\\slash'; \
                  mkdir \"$(printf 'd\\377')\"; echo > \"$(printf 'd\\377/g')\"";
    let rep = run_case(
        "exact names",
        &s,
        &log_all(&w),
        &w,
        &w,
        script,
        &["create", "write"],
    );
    assert_exact("exact names", &rep);
}

#[test]
fn short_lived_processes_are_all_attributed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "touch");
    let w = s.path("w");
    std::fs::create_dir_all(&w).unwrap();
    let n = size(1000, 300);
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do touch f$i; mkdir d$i; cp f$i d$i/c; i=$((i+1)); done"
    );
    let rep = run_case(
        "touch/mkdir/cp processes",
        &s,
        &log_all(&w),
        &w,
        &w,
        &script,
        &["create"],
    );
    assert_exact("touch/mkdir/cp processes", &rep);
}

#[test]
fn activity_outside_the_policy_reports_no_loss() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "outside");
    let w = s.path("untouched");
    std::fs::create_dir_all(&w).unwrap();
    std::fs::create_dir_all(s.path("o")).unwrap();
    let script = "i=0; while [ $i -lt 50 ]; do mkdir -p o/a/b/c/d; touch o/a/b/c/d/f o/a/b/g; \
                  mv o/a o/a2; rm -rf o/a2; i=$((i+1)); done";
    let rep = run_case("outside", &s, &log_all(&w), &w, &s.dir, script, ALL_OPS);
    assert_eq!(rep.total().expected, 0);
    assert_exact("outside", &rep);
}

#[test]
fn git_clone_and_sqlite_wal_match_the_trace() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "git");
    let w = s.path("w");
    std::fs::create_dir_all(&w).unwrap();
    let repo = s.path("repo");
    let n = size(300, 60);
    let mk = format!(
        "set -e; git init -q {r}; cd {r}; for i in $(seq {n}); do mkdir -p d$((i%7)); echo $i > d$((i%7))/f$i; done; \
         git -c user.name=t -c user.email=t@t add -A; git -c user.name=t -c user.email=t@t commit -qm one",
        r = repo.display()
    );
    let have_git = Command::new("sh")
        .arg("-c")
        .arg(&mk)
        .status()
        .is_ok_and(|s| s.success());
    let have_sqlite = Command::new("sqlite3").arg("-version").output().is_ok();
    let mut script = String::from("set -e; ");
    if have_git {
        script.push_str(&format!(
            "git clone -q --no-hardlinks {} clone; ",
            repo.display()
        ));
    } else {
        eprintln!("git not available: clone skipped");
    }
    if have_sqlite {
        script.push_str(
            "sqlite3 db.sqlite 'PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1); \
             INSERT INTO t VALUES(2); PRAGMA wal_checkpoint(TRUNCATE);' > /dev/null; \
             sqlite3 db.sqlite 'INSERT INTO t VALUES(3);'; ",
        );
    } else {
        eprintln!("sqlite3 not available: WAL workload skipped");
    }
    if Command::new("rsync").arg("--version").output().is_ok() && have_git {
        script.push_str("rsync -a clone/ synced/; ");
    }
    script.push_str("true");
    let rep = run_case(
        "git clone + sqlite WAL",
        &s,
        &log_all(&w),
        &w,
        &w,
        &script,
        ALL_OPS,
    );
    assert_exact("git clone + sqlite WAL", &rep);
}

/// A cargo build (full runs only: it takes a while under strace).
#[test]
fn cargo_build_matches_the_trace() {
    if !full() {
        eprintln!("skipped outside full runs (GT_FULL=1)");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = Scratch::new("gt", "cargo");
    let w = s.path("w");
    std::fs::create_dir_all(w.join("p/src")).unwrap();
    std::fs::write(
        w.join("p/Cargo.toml"),
        "[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(w.join("p/src/main.rs"), "fn main() { println!(\"hi\"); }\n").unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let script = format!("cd p && {cargo} build -q --offline");
    let rep = run_case("cargo build", &s, &log_all(&w), &w, &w, &script, ALL_OPS);
    assert_exact("cargo build", &rep);
}
