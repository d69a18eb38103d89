//! `fltpolicy replay` then `log export|verify|stats`, as an operator runs
//! them: exact export output, verify's exit codes and messages on damage.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fltpolicy");

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("fltpolicy-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const POLICY: &str = "log writes under /srv as \"srv-writes\"\ndeny delete under /srv/finance unless process == \"robocopy\"\n";
const EVENTS: &str = r#"{"op":"write","path":"/srv/a.txt","pid":10,"image":"/usr/bin/cat","user":"alice"}
{"op":"read","path":"/srv/a.txt","pid":10,"image":"/usr/bin/cat"}
{"op":"delete","path":"/srv/finance/q1.xls","pid":11,"ppid":1,"image":"/usr/bin/rm","user":"bob"}
{"op":"delete","path":"/srv/finance/q2.xls","pid":12,"image":"/usr/bin/robocopy"}
{"op":"write","path":"/srv/b, \"quoted\".txt","pid":13,"image":"/usr/bin/dd","size":4096}
"#;

fn replay(d: &Path, repeat: &str, max_file: &str) -> PathBuf {
    std::fs::write(d.join("p.pol"), POLICY).unwrap();
    std::fs::write(d.join("ev.jsonl"), EVENTS).unwrap();
    let log = d.join("out.fplog");
    let o = run(&[
        "replay",
        s(&d.join("p.pol")),
        "--events",
        s(&d.join("ev.jsonl")),
        "--log",
        s(&log),
        "--target",
        "linux",
        "--repeat",
        repeat,
        "--max-file-bytes",
        max_file,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    log
}

fn strip_time(mut v: serde_json::Value) -> serde_json::Value {
    let o = v.as_object_mut().unwrap();
    assert!(o.remove("time").unwrap().as_str().unwrap().ends_with('Z'));
    o.remove("policy");
    v
}

#[test]
fn replay_then_export_gives_the_expected_records() {
    let d = tmp("export");
    let log = replay(&d.0, "1", "67108864");
    let o = run(&["log", "export", s(&log)]);
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| strip_time(serde_json::from_str(l).unwrap()))
        .collect();
    let expected: Vec<serde_json::Value> = [
        r#"{"type":"event","seq":1,"op":"write","path":"/srv/a.txt","pid":10,"ppid":0,"image":"/usr/bin/cat","process":"cat","user":"alice","size":0,"action":"log","rule":1,"line":1,"tag":"srv-writes","generation":1,"status":null,"flags":[]}"#,
        r#"{"type":"event","seq":2,"op":"delete","path":"/srv/finance/q1.xls","pid":11,"ppid":1,"image":"/usr/bin/rm","process":"rm","user":"bob","size":0,"action":"deny","rule":2,"line":2,"tag":"","generation":1,"status":null,"flags":[]}"#,
        r#"{"type":"event","seq":3,"op":"write","path":"/srv/b, \"quoted\".txt","pid":13,"ppid":0,"image":"/usr/bin/dd","process":"dd","user":"","size":4096,"action":"log","rule":1,"line":1,"tag":"srv-writes","generation":1,"status":null,"flags":[]}"#,
        r#"{"type":"end","seq":4,"reason":"shutdown"}"#,
    ]
    .iter()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(lines, expected);

    let o = run(&[
        "log",
        "export",
        s(&log),
        "--format",
        "csv",
        "--filter",
        "process == \"dd\"",
    ]);
    assert!(o.status.success());
    let csv = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}"); // header, the dd event, the end record
    assert!(rows[0].starts_with("type,seq,time,op,path,pid"));
    assert!(rows[1].starts_with("event,3,"));
    assert!(
        rows[1].contains(",\"/srv/b, \"\"quoted\"\".txt\",13,"),
        "{}",
        rows[1]
    );

    let o = run(&["log", "export", s(&log), "--filter", "process =="]);
    assert!(!o.status.success(), "a bad filter is an error");

    let o = run(&["log", "stats", s(&log)]);
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("records: 4 (3 events)"), "{out}");
    assert!(out.contains(" #1     2 \"srv-writes\""), "{out}");
    assert!(out.contains("drops: none"), "{out}");
}

#[test]
fn verify_passes_then_names_the_first_bad_record() {
    let d = tmp("verify");
    let log = replay(&d.0, "400", "16384");
    let files: Vec<PathBuf> = (0..)
        .map(|i| {
            if i == 0 {
                log.clone()
            } else {
                PathBuf::from(format!("{}.{i}", s(&log)))
            }
        })
        .take_while(|p| p.exists())
        .collect();
    assert!(files.len() >= 3, "rotated into {} files", files.len());
    let mut args = vec!["log", "verify"];
    args.extend(files.iter().map(|p| s(p)));
    let o = run(&args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    let anchor = out
        .lines()
        .find_map(|l| l.strip_prefix("anchor: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("verify prints an anchor")
        .to_owned();
    let mut anchored = args.clone();
    anchored.extend(["--anchor", anchor.as_str()]);
    assert!(run(&anchored).status.success());
    // Without its last file the log no longer reaches the anchor.
    let mut cut = anchored.clone();
    cut.retain(|a| *a != s(files.last().unwrap()));
    let o = run(&cut);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("never reached"));

    // A flipped byte in the middle of the second file.
    let victim = &files[1];
    let original = std::fs::read(victim).unwrap();
    let mut b = original.clone();
    let at = b.len() / 2;
    b[at] ^= 0x40;
    std::fs::write(victim, &b).unwrap();
    let o = run(&args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("first bad record:") && out.contains(s(victim)),
        "{out}"
    );
    assert!(out.contains("offset"), "{out}");
    assert!(out.contains("tail: not torn"), "{out}");

    // Restore, then tear the last file's tail.
    std::fs::write(victim, &original).unwrap();
    let last = files.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    std::fs::write(last, &bytes[..bytes.len() - 7]).unwrap();
    let o = run(&args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("tail: torn"), "{out}");
    // Export still gives every complete record, and says what is wrong.
    let mut exp = vec!["log", "export"];
    exp.extend(files.iter().map(|p| s(p)));
    let o = run(&exp);
    assert_eq!(o.status.code(), Some(1));
    let n = String::from_utf8_lossy(&o.stdout).lines().count();
    assert_eq!(
        n,
        400 * 3 + files.len() - 1,
        "all events and rotation records, minus the torn end"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("torn tail"));
}

#[test]
fn sealed_log_verifies_only_with_its_key() {
    let d = tmp("sealed");
    std::fs::write(d.0.join("p.pol"), POLICY).unwrap();
    std::fs::write(d.0.join("ev.jsonl"), EVENTS).unwrap();
    let key = d.0.join("key.hex");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    let other = d.0.join("other.hex");
    std::fs::write(&other, [7u8; 32]).unwrap();
    let log = d.0.join("sealed.fplog");
    let o = run(&[
        "replay",
        s(&d.0.join("p.pol")),
        "--events",
        s(&d.0.join("ev.jsonl")),
        "--log",
        s(&log),
        "--target",
        "linux",
        "--key-file",
        s(&key),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["log", "verify", s(&log), "--key-file", s(&key)]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    assert!(out.contains("chain hmac-sha256"), "{out}");
    let o = run(&["log", "verify", s(&log)]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("give --key-file"), "{out}");
    let o = run(&["log", "verify", s(&log), "--key-file", s(&other)]);
    assert_eq!(o.status.code(), Some(1));
    // Export does not need the key.
    let o = run(&["log", "export", s(&log)]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);
}

/// A replayed log with `events` under `policy`, in its own directory.
fn replay_with(d: &Path, name: &str, policy: &str, events: &str) -> PathBuf {
    std::fs::write(d.join(format!("{name}.pol")), policy).unwrap();
    std::fs::write(d.join(format!("{name}.jsonl")), events).unwrap();
    let log = d.join(format!("{name}.fplog"));
    let o = run(&[
        "replay",
        s(&d.join(format!("{name}.pol"))),
        "--events",
        s(&d.join(format!("{name}.jsonl"))),
        "--log",
        s(&log),
        "--target",
        "linux",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    log
}

#[test]
fn csv_export_escapes_cells_a_spreadsheet_would_run() {
    let d = tmp("csv-formula");
    let log = replay_with(
        &d.0,
        "f",
        "log writes under /srv\n",
        concat!(
            r#"{"op":"write","path":"/srv/a","pid":1,"image":"/bin/x","user":"=HYPERLINK(\"http://evil\",\"x\")"}"#,
            "\n",
            r#"{"op":"write","path":"/srv/b","pid":2,"image":"/bin/x","user":"+1+2"}"#,
            "\n",
            r#"{"op":"write","path":"/srv/c","pid":3,"image":"/bin/x","user":"-3"}"#,
            "\n",
            r#"{"op":"write","path":"/srv/d","pid":4,"image":"/bin/x","user":"@SUM(A1)"}"#,
            "\n",
            r#"{"op":"write","path":"/srv/e","pid":5,"image":"/bin/x","user":"plain"}"#,
            "\n",
        ),
    );
    let o = run(&["log", "export", s(&log), "--format", "csv"]);
    assert!(o.status.success());
    let csv = String::from_utf8(o.stdout).unwrap();
    let user_col = 9;
    let users: Vec<String> = csv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("event,"))
        .map(|l| {
            // The user cell is the 10th; the first one is quoted (it has
            // commas and quotes), so split with a tiny CSV reader.
            let mut cells = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = l.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => cells.push(std::mem::take(&mut cur)),
                    (c, _) => cur.push(c),
                }
            }
            cells.push(cur);
            cells[user_col].clone()
        })
        .collect();
    assert_eq!(
        users,
        [
            r#"'=HYPERLINK("http://evil","x")"#,
            "'+1+2",
            "'-3",
            "'@SUM(A1)",
            "plain"
        ],
        "{csv}"
    );
    // Numbers stay numbers: pid 3 is not escaped.
    assert!(csv.contains(",3,0,/bin/x,x,"), "{csv}");
}

#[test]
fn stats_keeps_rules_of_different_policies_apart() {
    let d = tmp("stats-policies");
    let a = replay_with(
        &d.0,
        "a",
        "log writes under /srv as \"a-writes\"\n",
        "{\"op\":\"write\",\"path\":\"/srv/x\",\"pid\":1}\n{\"op\":\"write\",\"path\":\"/srv/y\",\"pid\":1}\n",
    );
    let b = replay_with(
        &d.0,
        "b",
        "log writes under /data as \"b-writes\"\n",
        "{\"op\":\"write\",\"path\":\"/data/x\",\"pid\":1}\n",
    );
    let o = run(&["log", "stats", s(&a), s(&b)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let rule_lines: Vec<&str> = out.lines().filter(|l| l.contains(" #1 ")).collect();
    assert_eq!(rule_lines.len(), 2, "one line per policy's rule #1:\n{out}");
    assert!(
        rule_lines.iter().any(|l| l.ends_with("2 \"a-writes\"")),
        "{out}"
    );
    assert!(
        rule_lines.iter().any(|l| l.ends_with("1 \"b-writes\"")),
        "{out}"
    );
}

#[test]
fn an_empty_log_is_an_empty_log_not_a_torn_tail() {
    let d = tmp("empty");
    let log = d.0.join("empty.fplog");
    std::fs::write(&log, b"").unwrap();
    for cmd in ["verify", "stats", "export"] {
        let o = run(&["log", cmd, s(&log)]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "log {cmd}: {all}");
        assert!(!all.contains("torn"), "log {cmd}: {all}");
        assert!(!all.contains("crash"), "log {cmd}: {all}");
        if cmd == "verify" {
            assert!(all.contains("empty log"), "{all}");
        }
    }
}

/// `fltpolicy log stats | head` and friends: the reader of stdout is
/// gone before the command writes. No panic, no error message.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let d = tmp("epipe");
    let log = replay(&d.0, "2000", "67108864");
    for args in [
        vec!["log", "stats", s(&log)],
        vec!["log", "verify", s(&log)],
        vec!["log", "export", s(&log)],
    ] {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let o = Command::new(BIN)
            .args(&args)
            .stdout(w)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
    // And through a real `| head -1`.
    for sub in ["stats", "verify", "export"] {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("'{BIN}' log {sub} '{}' | head -1", s(&log)))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{sub}: {err}");
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
    }
}
