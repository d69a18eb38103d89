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

/// Every leaf of a JSON document as a dotted key (arrays are leaves).
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// ECS 8.11 fields (from the ECS field reference, ecs_flat.yml) that an
/// event of this log may carry, plus `labels.*` (ECS: custom keyword
/// labels) — anything else is not ECS.
const ECS_FIELDS: &[&str] = &[
    "@timestamp",
    "ecs.version",
    "event.kind",
    "event.category",
    "event.type",
    "event.action",
    "event.outcome",
    "event.sequence",
    "event.module",
    "event.dataset",
    "event.reason",
    "event.severity",
    "file.path",
    "file.name",
    "file.directory",
    "file.extension",
    "file.size",
    "process.pid",
    "process.executable",
    "process.name",
    "process.parent.pid",
    "user.name",
    "user.id",
    "rule.id",
    "rule.name",
    "rule.reference",
    "rule.ruleset",
    "rule.version",
    "error.code",
    "tags",
    "message",
    "host.hostname",
    "observer.vendor",
    "observer.product",
    "observer.type",
];
/// ECS allowed values (ECS "categorization fields").
const ECS_KINDS: &[&str] = &[
    "alert",
    "asset",
    "enrichment",
    "event",
    "metric",
    "state",
    "pipeline_error",
    "signal",
];
const ECS_FILE_TYPES: &[&str] = &[
    "access", "change", "creation", "deletion", "info", "allowed", "denied",
];

/// OCSF 1.1.0 File System Activity (class 1001) attributes and the
/// attributes of the objects used (actor, process, file, device, metadata,
/// product, policy, user); `unmapped.*` is OCSF's place for the rest.
const OCSF_FIELDS: &[&str] = &[
    "activity_id",
    "activity_name",
    "category_uid",
    "category_name",
    "class_uid",
    "class_name",
    "type_uid",
    "type_name",
    "time",
    "severity_id",
    "severity",
    "status_id",
    "status",
    "status_code",
    "status_detail",
    "disposition_id",
    "disposition",
    "message",
    "count",
    "metadata.version",
    "metadata.product.name",
    "metadata.product.vendor_name",
    "metadata.sequence",
    "metadata.log_name",
    "device.hostname",
    "device.type_id",
    "actor.process.pid",
    "actor.process.name",
    "actor.process.file.path",
    "actor.process.file.name",
    "actor.process.file.type_id",
    "actor.process.parent_process.pid",
    "actor.process.user.name",
    "actor.process.user.uid",
    "actor.user.name",
    "actor.user.uid",
    "file.path",
    "file.name",
    "file.parent_folder",
    "file.size",
    "file.type_id",
    "policy.uid",
    "policy.name",
    "policy.version",
];
/// OCSF attributes File System Activity requires.
const OCSF_REQUIRED: &[&str] = &[
    "activity_id",
    "category_uid",
    "class_uid",
    "type_uid",
    "time",
    "severity_id",
    "metadata.version",
    "metadata.product.name",
    "actor.process.pid",
    "file.name",
];
/// CEF extension keys used, from the ArcSight CEF dictionary.
const CEF_KEYS: &[&str] = &[
    "rt", "dvchost", "act", "outcome", "filePath", "fname", "fsize", "spid", "sproc", "suser",
    "suid", "cn1Label", "cn1", "cn2Label", "cn2", "cn3Label", "cn3", "cs1Label", "cs1", "cs2Label",
    "cs2", "cs3Label", "cs3", "cnt", "reason", "msg",
];

fn export_lines(log: &Path, format: &str) -> Vec<String> {
    let o = run(&["log", "export", s(log), "--format", format]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// CEF: the 7 header fields and the extension as (key, unescaped value).
fn parse_cef(line: &str) -> (Vec<String>, Vec<(String, String)>) {
    let body = line.strip_prefix("CEF:").expect("CEF prefix");
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while header.len() < 7 {
        match chars.next().expect("7 header fields") {
            '\\' => cur.push(chars.next().unwrap()),
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let ext: String = chars.collect();
    // key=value pairs; a key is [A-Za-z0-9]+ right before an unescaped '='.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let bytes: Vec<char> = ext.chars().collect();
    let mut i = 0;
    let mut key = String::new();
    let mut val = String::new();
    let mut in_key = true;
    while i < bytes.len() {
        let c = bytes[i];
        if in_key {
            if c == '=' {
                in_key = false;
            } else {
                key.push(c);
            }
        } else if c == '\\' {
            i += 1;
            val.push(match bytes[i] {
                'n' => '\n',
                'r' => '\r',
                c => c,
            });
        } else if c == ' ' {
            // A space followed by `key=` starts the next pair.
            let rest: String = bytes[i + 1..].iter().collect();
            let next_key = rest.split('=').next().unwrap_or("");
            if rest.contains('=')
                && !next_key.is_empty()
                && next_key.chars().all(|c| c.is_ascii_alphanumeric())
            {
                pairs.push((std::mem::take(&mut key), std::mem::take(&mut val)));
                in_key = true;
            } else {
                val.push(c);
            }
        } else {
            val.push(c);
        }
        i += 1;
    }
    pairs.push((key, val));
    (header, pairs)
}

#[test]
fn siem_exports_carry_every_field_under_the_schemas_names() {
    let d = tmp("siem");
    let log = replay_with(
        &d.0,
        "siem",
        POLICY,
        concat!(
            r#"{"op":"write","path":"/srv/a b=c|d.txt","pid":10,"ppid":2,"image":"/usr/bin/cat","user":"alice","size":12}"#,
            "\n",
            r#"{"op":"delete","path":"/srv/finance/q1.xls","pid":11,"ppid":1,"image":"/usr/bin/rm","user":"1001"}"#,
            "\n",
        ),
    );
    let json_lines = export_lines(&log, "jsonl");
    let plain: Vec<serde_json::Value> = json_lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "event")
        .collect();
    assert_eq!(plain.len(), 2);

    // ECS
    let ecs: Vec<serde_json::Value> = export_lines(&log, "ecs")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ecs.len(), 2, "end records are not exported to a SIEM");
    for (doc, p) in ecs.iter().zip(&plain) {
        let mut keys = Vec::new();
        flatten("", doc, &mut keys);
        for k in &keys {
            assert!(
                ECS_FIELDS.contains(&k.as_str()) || k.starts_with("labels."),
                "{k} is not an ECS field"
            );
        }
        assert!(ECS_KINDS.contains(&doc["event"]["kind"].as_str().unwrap()));
        for t in doc["event"]["type"].as_array().unwrap() {
            assert!(ECS_FILE_TYPES.contains(&t.as_str().unwrap()), "{t}");
        }
        assert_eq!(doc["event"]["category"], serde_json::json!(["file"]));
        assert_eq!(doc["@timestamp"], p["time"]);
        assert_eq!(doc["event"]["sequence"], p["seq"]);
        assert_eq!(doc["event"]["action"], p["op"]);
        assert_eq!(doc["file"]["path"], p["path"]);
        assert_eq!(doc["file"]["size"], p["size"]);
        assert_eq!(doc["process"]["pid"], p["pid"]);
        assert_eq!(doc["process"]["parent"]["pid"], p["ppid"]);
        assert_eq!(doc["process"]["executable"], p["image"]);
        assert_eq!(doc["process"]["name"], p["process"]);
        assert_eq!(doc["rule"]["id"], p["rule"].to_string());
        assert_eq!(doc["rule"]["ruleset"], p["policy"]);
        assert_eq!(doc["rule"]["version"], p["generation"].to_string());
        assert!(doc["host"]["hostname"].is_string());
    }
    assert_eq!(ecs[0]["user"]["name"], "alice");
    assert_eq!(ecs[0]["file"]["name"], "a b=c|d.txt");
    assert_eq!(ecs[0]["file"]["directory"], "/srv");
    assert_eq!(ecs[0]["file"]["extension"], "txt");
    assert_eq!(ecs[0]["event"]["outcome"], "success");
    assert_eq!(
        ecs[0]["event"]["type"],
        serde_json::json!(["change", "allowed"])
    );
    assert_eq!(ecs[0]["rule"]["name"], "srv-writes");
    assert_eq!(ecs[1]["user"]["id"], "1001", "a uid is user.id");
    assert_eq!(ecs[1]["event"]["outcome"], "failure");
    assert_eq!(
        ecs[1]["event"]["type"],
        serde_json::json!(["deletion", "denied"])
    );

    // OCSF
    let ocsf: Vec<serde_json::Value> = export_lines(&log, "ocsf")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ocsf.len(), 2);
    for (ev, p) in ocsf.iter().zip(&plain) {
        let mut keys = Vec::new();
        flatten("", ev, &mut keys);
        for k in &keys {
            assert!(
                OCSF_FIELDS.contains(&k.as_str()) || k.starts_with("unmapped."),
                "{k} is not an attribute of OCSF File System Activity"
            );
        }
        for r in OCSF_REQUIRED {
            assert!(keys.iter().any(|k| k == r), "required {r} missing: {ev}");
        }
        assert_eq!(ev["class_uid"], 1001);
        assert_eq!(ev["category_uid"], 1);
        let a = ev["activity_id"].as_u64().unwrap();
        assert_eq!(ev["type_uid"].as_u64().unwrap(), 100_100 + a);
        assert_eq!(ev["file"]["path"], p["path"]);
        assert_eq!(ev["actor"]["process"]["pid"], p["pid"]);
        assert_eq!(ev["actor"]["process"]["file"]["path"], p["image"]);
        assert_eq!(ev["metadata"]["sequence"], p["seq"]);
        // Milliseconds since the epoch: the same instant to the millisecond.
        let t = fltpolicy_audit::rfc3339(ev["time"].as_u64().unwrap() * 1_000_000);
        assert_eq!(t[..23], p["time"].as_str().unwrap()[..23], "{t}");
    }
    assert_eq!(ocsf[0]["activity_id"], 3, "write is Update");
    assert_eq!(ocsf[0]["disposition"], "Allowed");
    assert_eq!(ocsf[1]["activity_id"], 4, "delete is Delete");
    assert_eq!(ocsf[1]["disposition_id"], 2, "deny is Blocked");
    assert_eq!(ocsf[1]["actor"]["user"]["uid"], "1001");

    // CEF
    let cef = export_lines(&log, "cef");
    assert_eq!(cef.len(), 2);
    for (line, p) in cef.iter().zip(&plain) {
        let (h, ext) = parse_cef(line);
        assert_eq!(h[0], "0");
        assert_eq!(&h[1..3], ["fltpolicy", "fltpolicy"]);
        assert_eq!(h[4], format!("fltpolicy:{}", p["op"].as_str().unwrap()));
        let sev: u32 = h[6].parse().unwrap();
        assert!(sev <= 10);
        let get = |k: &str| {
            ext.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{k} missing in {line}"))
        };
        for (k, _) in &ext {
            assert!(
                CEF_KEYS.contains(&k.as_str()),
                "{k} is not a CEF key: {line}"
            );
        }
        assert_eq!(get("filePath"), p["path"].as_str().unwrap());
        assert_eq!(get("spid"), p["pid"].to_string());
        assert_eq!(get("sproc"), p["image"].as_str().unwrap());
        assert_eq!(get("act"), p["action"].as_str().unwrap());
        assert_eq!(get("cn1"), p["seq"].to_string());
        assert_eq!(get("cn1Label"), "seq");
    }
    let (_, ext) = parse_cef(&cef[0]);
    assert!(
        ext.iter().any(|(k, v)| k == "fname" && v == "a b=c|d.txt"),
        "{ext:?}"
    );
    assert!(ext.iter().any(|(k, v)| k == "suser" && v == "alice"));
}

/// Records can be written out of the order their operations happened in
/// (a producer that spilled into another queue ring); `--order time` puts
/// them back in time order, `log` (the default) keeps the written order.
#[test]
fn export_orders_by_event_time_on_request() {
    use fltpolicy_audit::writer::{FileSink, FlushConfig, FlushThread};
    use fltpolicy_core::event::Op;
    use fltpolicy_core::record::EventData;
    let d = tmp("order");
    let log = d.0.join("o.fplog");
    let ft = FlushThread::start(FileSink::create(&log).unwrap(), FlushConfig::default()).unwrap();
    let q = ft.producer();
    for (i, t) in [30u64, 10, 20].into_iter().enumerate() {
        q.push(&EventData {
            time_ns: 1_700_000_000_000_000_000 + t,
            op: Some(Op::Write),
            pid: i as u64,
            path: "/srv/x",
            ..Default::default()
        })
        .unwrap();
    }
    ft.shutdown().unwrap();
    let pids = |order: &str| -> Vec<u64> {
        let o = run(&["log", "export", s(&log), "--order", order]);
        assert!(o.status.success());
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "event")
            .map(|v| v["pid"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(pids("log"), [0, 1, 2]);
    assert_eq!(pids("time"), [1, 2, 0]);
}
