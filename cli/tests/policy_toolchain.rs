//! The policy tool chain as a user drives it: every shipped policy passes
//! its cases with full coverage; `check` fails on errors with located
//! diagnostics; `compile` + `disasm` + `eval` agree; `fmt --check` holds for
//! the shipped policies; `bench --json` ends with `ns_per_event`.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fltpolicy"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("fltpolicy runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shipped_policies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pol"))
        .collect();
    v.sort();
    assert!(v.len() >= 3, "policies/ ships example policies");
    v
}

#[test]
fn every_shipped_policy_passes_its_cases_with_full_coverage() {
    for pol in shipped_policies() {
        let o = run(bin().arg("test").arg(&pol).arg("--require-coverage"));
        assert!(o.status.success(), "{}: {}", pol.display(), text(&o));
        assert!(text(&o).contains(" 0 failed"), "{}", text(&o));
    }
}

/// Shipped policies are in canonical layout, except mission.pol, which
/// keeps the specification's sentences exactly as written (`log writes`);
/// for it, the canonical form must be a fixed point of `fmt` and must still
/// pass the policy's cases (formatting never changes meaning).
#[test]
fn shipped_policies_are_in_canonical_layout() {
    for pol in shipped_policies() {
        if pol.ends_with("mission.pol") {
            continue;
        }
        let o = run(bin().arg("fmt").arg("--check").arg(&pol));
        assert!(o.status.success(), "{}: {}", pol.display(), text(&o));
    }
    let dir = tempdir();
    let pol = root().join("policies/mission.pol");
    let once = run(bin().arg("fmt").arg(&pol));
    assert!(once.status.success(), "{}", text(&once));
    let formatted = dir.join("mission.pol");
    std::fs::write(&formatted, &once.stdout).unwrap();
    let twice = run(bin().arg("fmt").arg(&formatted));
    assert_eq!(once.stdout, twice.stdout, "fmt is idempotent");
    let o = run(bin()
        .arg("test")
        .arg(&formatted)
        .arg("--cases")
        .arg(root().join("policies/mission.cases.toml")));
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn check_reports_located_errors_and_fails() {
    let dir = tempdir();
    let bad = dir.join("bad.pol");
    std::fs::write(
        &bad,
        "log writes under C:\\Data\nlog write where pid == \"twelve\"\n",
    )
    .unwrap();
    let o = run(bin().arg("check").arg(&bad));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("bad.pol:2:"), "{t}");
    assert!(t.contains('^'), "caret under the error: {t}");
    let good = dir.join("good.pol");
    std::fs::write(&good, "log writes under C:\\Data from pid 1234\n").unwrap();
    let o = run(bin().arg("check").arg(&good));
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn compile_disasm_and_eval_agree() {
    let dir = tempdir();
    let pol = root().join("policies/mission.pol");
    let img = dir.join("mission.fpi");
    let o = run(bin().arg("compile").arg(&pol).arg("-o").arg(&img));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(bin().arg("disasm").arg(&img));
    let listing = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success());
    assert!(
        listing.contains("rule 1 (line 5): log write anchor=C:\\DATA"),
        "{listing}"
    );
    assert!(listing.contains("eq       pid, #1234"), "{listing}");
    let events = dir.join("e.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"op":"write","path":"C:\\Data\\a.txt","pid":1234}"#,
            "\n",
            r#"{"op":"write","path":"C:\\Data\\a.txt","pid":1}"#,
            "\n",
            r#"{"op":"delete","path":"c:\\finance\\x"}"#,
            "\n"
        ),
    )
    .unwrap();
    let from_image = run(bin().arg("eval").arg(&img).arg("--events").arg(&events));
    let vm = run(bin().arg("eval").arg(&pol).arg("--events").arg(&events));
    let reference = run(bin()
        .arg("eval")
        .arg(&pol)
        .arg("--events")
        .arg(&events)
        .args(["--engine", "reference"]));
    assert!(
        vm.status.success() && reference.status.success(),
        "{}",
        text(&vm)
    );
    assert_eq!(vm.stdout, reference.stdout);
    assert_eq!(vm.stdout, from_image.stdout);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&vm.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["action"], "log");
    assert_eq!(lines[0]["rule"], 1);
    assert_eq!(lines[0]["line"], 5);
    assert_eq!(lines[1]["action"], "none");
    assert!(lines[1]["rule"].is_null());
    assert_eq!(lines[2]["action"], "deny");
    // The reference engine cannot run an image: a clear error, not a panic.
    let o = run(bin()
        .arg("eval")
        .arg(&img)
        .arg("--events")
        .arg(&events)
        .args(["--engine", "reference"]));
    assert!(!o.status.success());
    assert!(text(&o).contains("needs the policy source"), "{}", text(&o));
}

#[test]
fn bad_images_and_events_are_rejected_with_precise_errors() {
    let dir = tempdir();
    let img = dir.join("x.fpi");
    let mut bytes = b"FLTPOLIM".to_vec();
    bytes.resize(80, 0);
    std::fs::write(&img, &bytes).unwrap();
    let o = run(bin().arg("disasm").arg(&img));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("invalid policy image"), "{}", text(&o));
    let o = run(bin()
        .arg("eval")
        .arg(root().join("policies/mission.pol"))
        .args(["--event", r#"{"op":"explode","path":"x"}"#]));
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown operation"), "{}", text(&o));
    // Missing fields, op included, take neutral values: no rule matches.
    let o = run(bin()
        .arg("eval")
        .arg(root().join("policies/mission.pol"))
        .args(["--event", r#"{"path":"C:\\Data\\x"}"#]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(r#""action":"none""#));
}

#[test]
fn bench_reports_ns_per_event_as_json() {
    let dir = tempdir();
    let events = dir.join("e.jsonl");
    std::fs::write(
        &events,
        r#"{"op":"write","path":"C:\\Data\\a.txt","pid":1234}"#,
    )
    .unwrap();
    let o = run(bin()
        .arg("bench")
        .arg(root().join("policies/mission.pol"))
        .arg("--events")
        .arg(&events)
        .args(["--runs", "3", "--run-ms", "5", "--json"]));
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(last["ns_per_event"].as_f64().unwrap() > 0.0);
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "fltpolicy-cli-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn set_log_path_validates_before_talking_to_the_driver() {
    let o = run(bin().args(["set-log-path", "relative/x.log"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("not an absolute drive path"),
        "{}",
        text(&o)
    );
    let o = run(bin().args(["set-log-path", r"C:\ProgramData\..\x.log"]));
    assert_eq!(o.status.code(), Some(2));
    #[cfg(target_os = "linux")]
    {
        let o = run(bin().args(["set-log-path", r"C:\ProgramData\fltpolicy\audit.fplog"]));
        assert_eq!(o.status.code(), Some(2));
        assert!(
            text(&o).contains("fltpolicy run POLICY --log LOG"),
            "{}",
            text(&o)
        );
    }
}
