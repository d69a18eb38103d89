//! `fltpolicy log view` as a person uses it: the real binary in a real
//! terminal (tmux), driven with key presses, checked on the screen.
//!
//! The log comes from the real pipeline: producers push events into the
//! audit queue, the flush thread frames, chains and writes them to rotating
//! files, exactly as the Linux engine and `fltpolicy replay` do. While the
//! viewer runs, the test keeps writing to the same log to exercise follow
//! mode and rotation.
//!
//! Robust on a loaded machine: every check polls `capture-pane` until the
//! expected text appears (or a generous deadline passes, then the test
//! fails showing the last screen), and only a settled screen counts (two
//! captures in a row agree); no sleep is ever an assertion. Each test
//! uses its own tmux server socket, killed on drop.
//!
//! Needs `tmux` (CI installs it, see `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fltpolicy_audit::writer::{rotated_files, FileSink, FlushConfig, FlushThread};
use fltpolicy_audit::LogReader;
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::queue::MIN_RING_WORDS;
use fltpolicy_core::record::writer::MIN_FILE_BYTES;
use fltpolicy_core::record::{EventData, PolicyId};

/// How long a screen may take to show what is expected. Generous: CI runs
/// this on two shared cores while other tests build and run.
const SCREEN_DEADLINE: Duration = Duration::from_secs(60);
/// How often the screen is captured while waiting.
const CAPTURE_EVERY: Duration = Duration::from_millis(100);
/// Terminal size, as a person's window would be.
const COLS: u16 = 160;
const ROWS: u16 = 45;

/// A private tmux server with one session running the viewer.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        let t = Tmux {
            socket: format!("fltpolicy-view-{tag}-{}", std::process::id()),
        };
        let _ = t.tmux(&["kill-server"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux must be installed to run the viewer tests (apt-get install tmux)")
    }

    fn ok(&self, args: &[&str]) {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `argv` in a detached session; when it exits, its status is
    /// printed and the pane stays so the test can read it.
    fn start(&self, argv: &[String]) {
        let quoted: Vec<String> = argv
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let cmd = format!(
            "{}; echo \"viewer exited with $?\"; sleep 600",
            quoted.join(" ")
        );
        let (x, y) = (COLS.to_string(), ROWS.to_string());
        self.ok(&["new-session", "-d", "-s", "v", "-x", &x, "-y", &y, &cmd]);
    }

    /// Named keys (`Enter`, `Escape`, `Home`, `C-u`, ...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "v"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    /// Literal text, typed.
    fn typed(&self, text: &str) {
        self.ok(&["send-keys", "-t", "v", "-l", text]);
    }

    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "v"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.tmux(&args).stdout).into_owned()
    }

    /// Waits until the screen satisfies `pred` and is settled (two
    /// captures in a row agree, so a frame caught half-drawn never
    /// counts); returns that screen.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_DEADLINE;
        let mut prev = String::new();
        loop {
            let screen = self.capture(false);
            if pred(&screen) && screen == prev {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen was:\n{screen}");
            }
            prev = screen;
            std::thread::sleep(CAPTURE_EVERY);
        }
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait(&format!("{text:?}"), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fltpolicy-viewer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now_ns() -> u64 {
    fltpolicy_audit::writer::now_ns()
}

/// One event as the engine would push it.
fn event<'a>(
    op: Op,
    path: &'a str,
    image: &'a str,
    pid: u64,
    action: Action,
    rule: u32,
) -> EventData<'a> {
    EventData {
        time_ns: now_ns(),
        op: Some(op),
        action: action.into(),
        pid,
        ppid: 1,
        rule: Some(rule),
        line: rule * 2,
        policy: PolicyId::new(&[0x42; 32], 1),
        path,
        image,
        user: "1000",
        tag: if action == Action::Deny { "NO-ETC" } else { "" },
        ..Default::default()
    }
}

/// Waits until the log's files hold at least `n` records.
fn wait_on_disk(base: &Path, n: usize) {
    let deadline = Instant::now() + SCREEN_DEADLINE;
    loop {
        let files = rotated_files(base);
        let count = LogReader::open(&files).map_or(0, |r| r.filter(Result::is_ok).count());
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {n} records reached {}",
            base.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The numbers in the table's title, `Records SHOWN/TOTAL`.
fn records_title(screen: &str) -> (usize, usize) {
    let at = screen.find("Records ").expect("table title") + "Records ".len();
    let rest = &screen[at..];
    let end = rest.find(' ').unwrap_or(rest.len());
    let (a, b) = rest[..end].split_once('/').expect("SHOWN/TOTAL");
    (a.parse().unwrap(), b.parse().unwrap())
}

fn bin() -> String {
    env!("CARGO_BIN_EXE_fltpolicy").to_owned()
}

/// Rows, filter, detail, drops, help, follow with rotation, quit: one
/// session, as an operator would go through it.
#[test]
fn viewer_in_a_terminal() {
    let dir = TempDir::new("main");
    let base = dir.0.join("audit.fplog");
    let cfg = FlushConfig {
        interval: Duration::from_millis(20),
        ring_words: MIN_RING_WORDS.max(1 << 14),
        // Small files so that follow mode sees a rotation.
        max_file_bytes: MIN_FILE_BYTES.max(32 << 10),
        ..FlushConfig::default()
    };
    let flush = FlushThread::start(FileSink::create(&base).unwrap(), cfg).unwrap();
    let q = flush.producer();

    // Phase 1: what happened before the operator looked.
    let cat_paths: Vec<String> = (0..12).map(|i| format!("/srv/data/f{i}")).collect();
    let vim_paths: Vec<String> = (0..6).map(|i| format!("/home/u/notes{i}")).collect();
    for p in &cat_paths {
        q.push(&event(Op::Read, p, "/usr/bin/cat", 4242, Action::Log, 1))
            .unwrap();
    }
    for p in &vim_paths {
        q.push(&event(Op::Write, p, "/usr/bin/vim", 777, Action::Log, 2))
            .unwrap();
    }
    q.push(&event(
        Op::Open,
        "/etc/shadow",
        "/usr/bin/cat",
        4243,
        Action::Deny,
        3,
    ))
    .unwrap();
    // The event source lost 7 events (a fanotify overflow).
    q.count_source_drop(7);
    wait_on_disk(&base, 20);

    let t = Tmux::new("main");
    t.start(&[
        bin(),
        "log".into(),
        "view".into(),
        base.display().to_string(),
    ]);

    // Rows shown, with every column.
    let s = t.wait_for("/home/u/notes5");
    for col in [
        "Time",
        "Process",
        "PID",
        "Operation",
        "Path",
        "Action",
        "Rule",
    ] {
        assert!(s.contains(col), "column {col}:\n{s}");
    }
    assert!(
        s.contains("/srv/data/f0") && s.contains("/srv/data/f11"),
        "{s}"
    );
    let deny = s
        .lines()
        .find(|l| l.contains("/etc/shadow"))
        .expect("deny row");
    assert!(
        deny.contains("deny") && deny.contains("3 NO-ETC") && deny.contains("4243"),
        "{deny}"
    );
    assert!(s.contains("Records 20/20"), "{s}");
    assert!(s.contains("chain ok") && s.contains("follow off"), "{s}");

    // The drop record is visible and drawn in its own colours.
    let drop_line = s
        .lines()
        .find(|l| l.contains("records dropped"))
        .expect("drop row");
    assert!(
        drop_line.contains("7 records dropped between seq")
            && drop_line.contains("kernel_overflow"),
        "{drop_line}"
    );
    assert!(s.contains("drops 1 (7 records)"), "{s}");
    let styled = t.capture(true);
    let drop_styled = styled
        .lines()
        .find(|l| l.contains("records dropped"))
        .unwrap();
    let event_styled = styled
        .lines()
        .find(|l| l.contains("/home/u/notes3"))
        .unwrap();
    assert!(
        ["43m", "103m", "48;5;3m", "48;5;11m"]
            .iter()
            .any(|c| drop_styled.contains(c)),
        "drop row has a yellow background: {drop_styled:?}"
    );
    assert!(
        !["43m", "103m", "48;5;3m", "48;5;11m"]
            .iter()
            .any(|c| event_styled.contains(c)),
        "event rows do not: {event_styled:?}"
    );

    // Detail pane follows the selection.
    t.keys(&["Home"]);
    t.wait(r"detail of /srv/data/f0", |s| {
        s.contains("│path /srv/data/f0 ")
    });
    t.keys(&["Down", "Down"]);
    let s = t.wait("detail of /srv/data/f2", |s| {
        s.contains("│path /srv/data/f2 ")
    });
    assert!(
        s.contains("image /usr/bin/cat") && s.contains("pid 4242") && s.contains("user 1000"),
        "{s}"
    );
    assert!(
        s.contains("policy 42424242424242424242424242424242") && s.contains("generation 1"),
        "{s}"
    );
    assert!(s.contains("seq 3"), "{s}");

    // The filter narrows the rows; drop rows stay.
    t.typed("f");
    t.wait_for("Enter apply");
    t.typed(r#"process == "cat" and path under /srv/data"#);
    t.keys(&["Enter"]);
    let s = t.wait_for("Records 13/20");
    assert!(!s.contains("/home/u/notes"), "vim rows filtered out:\n{s}");
    assert!(!s.contains("/etc/shadow"), "{s}");
    assert!(
        s.contains("/srv/data/f7") && s.contains("records dropped"),
        "{s}"
    );
    assert!(
        s.contains(r#"process == "cat" and path under /srv/data"#),
        "{s}"
    );
    assert!(s.contains("│path /srv/data/f2 "), "selection kept:\n{s}");

    // A bad expression: the error shows in the bar, the UI stays.
    t.typed("f");
    t.wait_for("Enter apply");
    t.keys(&["C-u"]);
    t.typed("process === 3");
    t.keys(&["Enter"]);
    let s = t.wait_for("error:");
    assert!(s.contains("Records 13/20") && s.contains("^"), "{s}");
    t.keys(&["Escape"]);
    let s = t.wait("the bar to close", |s| {
        !s.contains("error:") && s.contains("Filter (f to edit, / search)")
    });
    assert!(
        s.contains(r#"process == "cat" and path under /srv/data"#),
        "previous filter kept:\n{s}"
    );

    // Help, and any key closes it.
    t.typed("?");
    let s = t.wait_for("Help: fltpolicy log view");
    assert!(s.contains("follow mode") && s.contains("quit"), "{s}");
    t.typed("x");
    t.wait("help to close", |s| !s.contains("Help: fltpolicy log view"));

    // Follow mode: new records appear as the writer appends, across a
    // rotation to a new file.
    t.typed("F");
    t.wait_for("follow on");
    let pad = "x".repeat(200);
    let late: Vec<String> = (0..200)
        .map(|i| format!("/srv/data/late-{i:03}-{pad}"))
        .collect();
    for p in &late {
        q.push(&event(Op::Read, p, "/usr/bin/cat", 5000, Action::Log, 1))
            .unwrap();
    }
    let s = t.wait("the last appended record", |s| s.contains("late-199"));
    assert!(
        s.contains("audit.fplog,audit.fplog.1"),
        "rotation followed:\n{s}"
    );
    assert!(
        s.contains("│path /srv/data/late-199-xxx"),
        "follow keeps the newest selected:\n{s}"
    );
    // Every late record is counted and passes the filter (end-of-file
    // rows, one per rotation, pass too); the 7 non-matching ones stay out.
    let (shown, total) = records_title(&s);
    assert!(shown >= 213 && total == shown + 7, "{shown}/{total}:\n{s}");
    assert!(s.contains("chain ok"), "{s}");

    // q quits cleanly and restores the terminal.
    t.typed("q");
    let s = t.wait_for("viewer exited with 0");
    assert!(!s.contains("Records "), "alternate screen left:\n{s}");

    let (_, stats) = flush.shutdown().unwrap();
    assert_eq!(stats.events_written, 219);
    assert!(stats.files >= 2, "{stats:?}");
}

/// A log cut inside a frame (a crash, or a writer mid-write) viewed in
/// follow mode: every complete record shows, the torn tail is reported,
/// and when the rest of the bytes arrive the record appears and the
/// warning goes. Also: `--filter` on the command line, and the Windows
/// target inferred from the paths (case-insensitive comparisons).
#[test]
fn follow_a_torn_tail_until_it_completes() {
    let dir = TempDir::new("torn");
    let full = dir.0.join("full.fplog");
    let cfg = FlushConfig {
        interval: Duration::from_millis(20),
        ring_words: MIN_RING_WORDS.max(1 << 12),
        ..FlushConfig::default()
    };
    let flush = FlushThread::start(FileSink::create(&full).unwrap(), cfg).unwrap();
    let q = flush.producer();
    let paths: Vec<String> = (0..30)
        .map(|i| format!(r"C:\Data\Finance\q{i:02}.xlsx"))
        .collect();
    for (i, p) in paths.iter().enumerate() {
        let image = if i % 2 == 0 {
            r"C:\Windows\System32\Robocopy.exe"
        } else {
            r"C:\Windows\explorer.exe"
        };
        q.push(&event(
            Op::Delete,
            p,
            image,
            100 + i as u64,
            Action::Deny,
            1,
        ))
        .unwrap();
    }
    flush.shutdown().unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let records: Vec<_> = LogReader::open(&[&full])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 31, "30 events and the end record");
    // Cut 10 bytes into the frame of event 21 (q20).
    let torn_at = records[20].offset;
    let cut = torn_at as usize + 10;

    let live = dir.0.join("live.fplog");
    std::fs::write(&live, &bytes[..cut]).unwrap();
    let t = Tmux::new("torn");
    t.start(&[
        bin(),
        "log".into(),
        "view".into(),
        "--follow".into(),
        "--filter".into(),
        r#"process == "ROBOCOPY.EXE" and path under c:\data"#.into(),
        live.display().to_string(),
    ]);
    let s = t.wait_for(&format!("live.fplog at {torn_at}"));
    assert!(s.contains("⚠ torn tail in"), "{s}");
    assert!(s.contains(r"C:\Data\Finance\q18.xlsx"), "{s}");
    assert!(
        !s.contains(r"q19.xlsx") && !s.contains("q20.xlsx"),
        "explorer filtered, q20 not yet complete:\n{s}"
    );
    assert!(
        s.contains("Records 10/20") && s.contains("windows") && s.contains("follow on"),
        "{s}"
    );

    // The writer finishes the frame (and the rest of the file).
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    std::io::Write::write_all(&mut f, &bytes[cut..]).unwrap();
    drop(f);
    let s = t.wait("the completed records", |s| {
        s.contains("q28.xlsx") && !s.contains("torn tail")
    });
    assert!(
        s.contains("q20.xlsx") && s.contains("end of file (shutdown)"),
        "{s}"
    );
    assert!(s.contains("Records 16/31") && s.contains("chain ok"), "{s}");
    let deny = s.lines().find(|l| l.contains("q28.xlsx")).unwrap();
    assert!(
        deny.contains("Robocopy.exe") && deny.contains("delete") && deny.contains("deny"),
        "{deny}"
    );

    t.typed("q");
    t.wait_for("viewer exited with 0");
}

/// An operator tries a policy on a captured trace: `fltpolicy replay`
/// (compile, VM, queue, flush thread, keyed chain, rotation) writes the
/// log, `log view` shows it. The detail pane agrees with `log export` on
/// the selected record; the keyed chain is checked with the key and
/// reported unchecked without it.
#[test]
fn replayed_log_matches_export() {
    let dir = TempDir::new("replay");
    let d = &dir.0;
    let policy = d.join("p.pol");
    std::fs::write(
        &policy,
        "log writes under /srv as \"srv-writes\"\n\
         deny delete under /srv/finance unless process == \"robocopy\"\n",
    )
    .unwrap();
    let events = d.join("ev.jsonl");
    std::fs::write(
        &events,
        r#"{"op":"write","path":"/srv/a.txt","pid":10,"image":"/usr/bin/cat","user":"alice"}
{"op":"read","path":"/srv/a.txt","pid":10,"image":"/usr/bin/cat"}
{"op":"delete","path":"/srv/finance/q1.xls","pid":11,"ppid":1,"image":"/usr/bin/rm","user":"bob"}
{"op":"delete","path":"/srv/finance/q2.xls","pid":12,"image":"/usr/bin/robocopy"}
{"op":"write","path":"/srv/b.txt","pid":13,"image":"/usr/bin/dd","size":4096}
"#,
    )
    .unwrap();
    let key = d.join("k.hex");
    std::fs::write(&key, format!("{}\n", "5c".repeat(32))).unwrap();
    let log = d.join("out.fplog");
    let p = |p: &Path| p.display().to_string();
    let run = |args: &[String]| {
        let o = Command::new(bin()).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    run(&[
        "replay".into(),
        p(&policy),
        "--events".into(),
        p(&events),
        "--log".into(),
        p(&log),
        "--target".into(),
        "linux".into(),
        "--key-file".into(),
        p(&key),
        "--generation".into(),
        "7".into(),
        "--repeat".into(),
        "100".into(),
        "--max-file-bytes".into(),
        MIN_FILE_BYTES.max(16 << 10).to_string(),
    ]);
    let files = rotated_files(&log);
    assert!(files.len() >= 2, "rotated: {files:?}");
    // 300 recorded events (the read and robocopy's delete match no rule),
    // one end record per file.
    let total = 300 + files.len();
    let mut export_args = vec![
        "log".into(),
        "export".into(),
        "--format".into(),
        "jsonl".into(),
    ];
    export_args.extend(files.iter().map(|f| p(f)));
    export_args.extend(["--key-file".into(), p(&key)]);
    let exported = run(&export_args);
    let first_deny: serde_json::Value = exported
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["action"] == "deny")
        .unwrap();

    // Files given newest first, as a careless glob might.
    let mut argv = vec![
        bin(),
        "log".into(),
        "view".into(),
        "--key-file".into(),
        p(&key),
        "--filter".into(),
        "path under /srv/finance".into(),
    ];
    argv.extend(files.iter().rev().map(|f| p(f)));
    let t = Tmux::new("replay");
    t.start(&argv);
    let s = t.wait_for(&format!("Records {}/{total}", 100 + files.len()));
    assert!(
        s.contains("chain ok") && s.contains("drops 0 (0 records)"),
        "{s}"
    );
    let row = s
        .lines()
        .find(|l| l.contains("/srv/finance/q1.xls"))
        .expect("deny row");
    assert!(
        row.contains("rm") && row.contains("delete") && row.contains("deny") && row.contains(" 2 "),
        "{row}"
    );
    assert!(!s.contains("/srv/a.txt"), "{s}");

    // The first row is the first deny: the detail pane says what export says.
    t.keys(&["Home"]);
    let time = first_deny["time"].as_str().unwrap();
    let s = t.wait_for(&format!("time {time}"));
    for want in [
        format!("seq {}", first_deny["seq"]),
        format!("policy {}", first_deny["policy"].as_str().unwrap()),
        "generation 7".into(),
        "rule 2".into(),
        "line 2".into(),
        "user bob".into(),
        "ppid 1".into(),
        "│path /srv/finance/q1.xls".into(),
        "image /usr/bin/rm".into(),
    ] {
        assert!(s.contains(&want), "{want:?} in the detail pane:\n{s}");
    }
    t.typed("q");
    t.wait_for("viewer exited with 0");

    // Without the key the keyed chain cannot be checked, and says so.
    let t = Tmux::new("replay-nokey");
    let mut argv = vec![bin(), "log".into(), "view".into()];
    argv.extend(files.iter().map(|f| p(f)));
    t.start(&argv);
    let s = t.wait_for(&format!("Records {total}/{total}"));
    assert!(s.contains("chain unchecked"), "{s}");
    assert!(s.contains("/srv/a.txt") && s.contains("srv-writes"), "{s}");
    t.typed("q");
    t.wait_for("viewer exited with 0");
}

/// Without a terminal, or with a file that is not there, the viewer says
/// so and exits non-zero instead of drawing into a pipe.
#[test]
fn clear_errors_without_a_terminal_or_a_file() {
    let dir = TempDir::new("errors");
    let missing = dir.0.join("nope.fplog");
    let o = Command::new(bin())
        .args(["log", "view"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nope.fplog") && err.contains("No such file"),
        "{err}"
    );

    let log = dir.0.join("ok.fplog");
    let flush =
        FlushThread::start(FileSink::create(&log).unwrap(), FlushConfig::default()).unwrap();
    flush.shutdown().unwrap();
    let o = Command::new(bin())
        .args(["log", "view"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("log export"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "nothing drawn into the pipe");
}

/// A file named `new<LF>line` must not show as `new` (the line cut at the
/// newline) or `newline` (the newline dropped): both hide the real name.
/// Control and invisible characters appear as escapes in the table and in
/// the detail pane.
#[test]
fn control_characters_are_shown_escaped() {
    let dir = TempDir::new("escape");
    let base = dir.0.join("audit.fplog");
    let cfg = FlushConfig {
        interval: Duration::from_millis(20),
        ring_words: MIN_RING_WORDS.max(1 << 14),
        ..FlushConfig::default()
    };
    let flush = FlushThread::start(FileSink::create(&base).unwrap(), cfg).unwrap();
    let q = flush.producer();
    let nl = "/srv/new\nline";
    let tab = "/srv/tab\there";
    let bidi = "/srv/invoice\u{202e}fdp.exe";
    let esc = "/srv/esc\x1b[2Jhidden";
    for p in [nl, tab, bidi, esc] {
        q.push(&event(Op::Write, p, "/usr/bin/ev\til", 5, Action::Log, 1))
            .unwrap();
    }
    flush.shutdown().map_err(|(_, _, e)| e).unwrap();

    let t = Tmux::new("escape");
    t.start(&[
        bin(),
        "log".into(),
        "view".into(),
        base.display().to_string(),
    ]);
    let s = t.wait_for("Records 5/5");
    for shown in [
        r"/srv/new\nline",
        r"/srv/tab\there",
        "/srv/invoice<U+202E>fdp.exe",
        r"/srv/esc\x1b[2Jhidden",
    ] {
        assert!(
            s.lines().any(|l| l.contains("│") && l.contains(shown)),
            "table row with {shown}:\n{s}"
        );
    }
    assert!(s.contains(r"ev\til"), "process column: {s}");
    // The first row is selected: its detail pane.
    t.keys(&["Home"]);
    let s = t.wait("detail of the newline path", |s| {
        s.contains(r"│path /srv/new\nline ")
    });
    assert!(s.contains(r"image /usr/bin/ev\til"), "{s}");
    t.keys(&["Down"]);
    t.wait("detail of the tab path", |s| {
        s.contains(r"│path /srv/tab\there ")
    });
    t.keys(&["Down", "Down"]);
    t.wait("detail of the escape path", |s| {
        s.contains(r"│path /srv/esc\x1b[2Jhidden ")
    });
    t.keys(&["q"]);
    t.wait_for("viewer exited with 0");
}

/// The filter selects by record fields the policy language lacks
/// (operation, action, rule, tag, severity, time), together with a policy
/// condition; `/` searches as you type, `n`/`N` go on.
#[test]
fn filter_by_record_fields_and_search() {
    let dir = TempDir::new("fields");
    let base = dir.0.join("audit.fplog");
    let cfg = FlushConfig {
        interval: Duration::from_millis(20),
        ring_words: MIN_RING_WORDS.max(1 << 14),
        ..FlushConfig::default()
    };
    let flush = FlushThread::start(FileSink::create(&base).unwrap(), cfg).unwrap();
    let q = flush.producer();
    let paths: Vec<String> = (0..10).map(|i| format!("/srv/item{i}")).collect();
    for (i, p) in paths.iter().enumerate() {
        let (op, action, rule) = match i % 3 {
            0 => (Op::Write, Action::Log, 1),
            1 => (Op::Read, Action::Log, 2),
            _ => (Op::Open, Action::Deny, 3),
        };
        q.push(&event(op, p, "/usr/bin/cat", 100 + i as u64, action, rule))
            .unwrap();
    }
    flush.shutdown().map_err(|(_, _, e)| e).unwrap();

    let t = Tmux::new("fields");
    t.start(&[
        bin(),
        "log".into(),
        "view".into(),
        base.display().to_string(),
    ]);
    t.wait_for("Records 11/11");
    // Writes only: items 0, 3, 6, 9 (and the end row).
    t.typed("f");
    t.wait_for("Enter apply");
    t.typed(r#"op == write and process == "cat""#);
    t.keys(&["Enter"]);
    let s = t.wait_for("Records 5/11");
    assert!(
        s.contains("/srv/item9") && !s.contains("/srv/item1 "),
        "{s}"
    );
    // Denials of rule 3 with their tag, and a time range that holds them.
    t.typed("f");
    t.wait_for("Enter apply");
    t.keys(&["C-u"]);
    t.typed(r#"action == deny and rule == 3 and tag == "NO-ETC" and time >= "00:00""#);
    t.keys(&["Enter"]);
    let s = t.wait_for("Records 4/11");
    assert!(s.contains("/srv/item2") && s.contains("/srv/item8"), "{s}");
    // A time range that excludes everything.
    t.typed("f");
    t.wait_for("Enter apply");
    t.keys(&["C-u"]);
    t.typed(r#"time < "1970-01-02T00:00:00Z""#);
    t.keys(&["Enter"]);
    t.wait_for("Records 1/11");
    // A bad clause: located error, the previous filter stays.
    t.typed("f");
    t.wait_for("Enter apply");
    t.keys(&["C-u"]);
    t.typed("op == bogus");
    t.keys(&["Enter"]);
    let s = t.wait_for("unknown operation");
    assert!(s.contains("^"), "{s}");
    t.keys(&["Escape"]);
    // No filter; search.
    t.typed("f");
    t.wait_for("Enter apply");
    t.keys(&["C-u", "Enter"]);
    t.wait_for("Records 11/11");
    t.keys(&["Home"]);
    t.typed("/");
    t.wait_for("Search:");
    t.typed("item7");
    t.wait("the match selected", |s| s.contains("│path /srv/item7 "));
    t.keys(&["Enter"]);
    t.wait_for("search: item7 (n/N)");
    t.keys(&["Home"]);
    t.typed("/");
    t.typed("item");
    t.wait("first item", |s| s.contains("│path /srv/item0 "));
    t.keys(&["Enter"]);
    t.typed("n");
    t.wait("next match", |s| s.contains("│path /srv/item1 "));
    t.typed("N");
    t.wait("previous match", |s| s.contains("│path /srv/item0 "));
    // Jump to a time: a bad one is refused in the bar, a later one than
    // every record selects the last.
    t.typed("t");
    t.wait_for("Jump to time");
    t.typed("99:99");
    t.keys(&["Enter"]);
    t.wait_for("error: a time is");
    t.keys(&["C-u"]);
    for _ in 0..5 {
        t.keys(&["BSpace"]);
    }
    t.typed("2999-01-01T00:00:00Z");
    t.keys(&["Enter"]);
    t.wait("the last record", |s| {
        s.contains("end of file: the writer shut down")
    });
    t.typed("t");
    t.typed("00:00");
    t.keys(&["Enter"]);
    t.wait("the first record", |s| s.contains("│path /srv/item0 "));
    t.keys(&["q"]);
    t.wait_for("viewer exited with 0");
}
