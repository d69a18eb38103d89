//! Issue 12: what the CLI does with files that are not what they should be.
//! `compile` never overwrites its input and enforces the Windows driver's
//! load limit; `eval`, `load` and `run` refuse an empty or non-image file
//! (they used to evaluate it as an empty policy: everything let through,
//! nothing recorded).
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fltpolicy"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fltpolicy-inputs-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn compile_refuses_to_overwrite_its_input() {
    let d = scratch("overwrite");
    let src = b"log write under C:\\Data\n";
    let pol = write(&d, "x.pol", src);
    for out in [pol.clone(), d.join(".").join("x.pol")] {
        let o = bin()
            .arg("compile")
            .arg(&pol)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("refusing to overwrite the input"),
            "{}",
            text(&o)
        );
        assert_eq!(std::fs::read(&pol).unwrap(), src);
    }
    // An image given as the input with the default output (same name).
    let fpi = write(&d, "y.fpi", src);
    let o = bin().arg("compile").arg(&fpi).output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&fpi).unwrap(), src);
    let o = bin()
        .arg("compile")
        .arg(&pol)
        .arg("-o")
        .arg(d.join("x.fpi"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn eval_refuses_empty_and_non_image_files() {
    let d = scratch("eval");
    let ev = r#"{"op":"write","path":"C:\\Data\\a"}"#;
    for (name, bytes, says) in [
        ("empty.fpi", &b""[..], "empty file"),
        ("empty.pol", &b""[..], "empty file"),
        ("blank.pol", &b"\n  \n"[..], "empty file"),
        ("notes.fpi", &b"log write\n"[..], "not a policy image"),
        ("binary.bin", &b"\x7fELF\x00\x01"[..], "not a policy image"),
        (
            "comments.pol",
            &b"# nothing yet\nlet a = 1\n"[..],
            "no rules",
        ),
    ] {
        let p = write(&d, name, bytes);
        let o = bin()
            .arg("eval")
            .arg(&p)
            .arg("--event")
            .arg(ev)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{name}: {}", text(&o));
        assert!(text(&o).contains(says), "{name}: {}", text(&o));
        assert!(
            !text(&o).contains("\"action\""),
            "{name}: evaluated: {}",
            text(&o)
        );
    }
}

#[test]
fn load_and_run_refuse_an_empty_file_before_anything_else() {
    let d = scratch("load");
    let p = write(&d, "empty.fpi", b"");
    let o = bin()
        .arg("load")
        .arg(&p)
        .arg("--control")
        .arg(d.join("no-such.sock"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("empty file"), "{}", text(&o));
    let o = bin()
        .arg("run")
        .arg(&p)
        .arg("--log")
        .arg(d.join("x.fplog"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("empty file"), "{}", text(&o));
    assert!(!d.join("x.fplog").exists());
}

#[test]
fn compile_for_windows_enforces_the_drivers_load_limit() {
    let d = scratch("limit");
    // ~6,000 rules with distinct 60-byte paths (about 200 image bytes each): an image over 1 MiB.
    let mut src = String::new();
    for i in 0..6_000 {
        src.push_str(&format!("log write under C:\\d{i}\\{}\n", "p".repeat(60)));
    }
    let pol = write(&d, "big.pol", src.as_bytes());
    let out = d.join("big.fpi");
    let o = bin()
        .arg("compile")
        .arg(&pol)
        .arg("-o")
        .arg(&out)
        .arg("--target")
        .arg("windows")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("the Windows driver loads at most 1048576 bytes"),
        "{}",
        text(&o)
    );
    assert!(!out.exists(), "nothing written");
    let o = bin()
        .arg("compile")
        .arg(&pol)
        .arg("-o")
        .arg(&out)
        .arg("--target")
        .arg("linux")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.exists(), "the Linux engine has no such limit");
}

#[test]
fn the_files_target_statement_is_used_and_must_agree_with_target() {
    let d = scratch("target");
    let pol = write(&d, "l.pol", b"target linux\nlog write under /srv\n");
    let out = d.join("l.fpi");
    let o = bin()
        .arg("compile")
        .arg(&pol)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("target linux"), "{}", text(&o));
    let o = bin()
        .arg("compile")
        .arg(&pol)
        .arg("-o")
        .arg(&out)
        .arg("--target")
        .arg("windows")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("written for linux"), "{}", text(&o));
    let o = bin()
        .arg("eval")
        .arg(&pol)
        .arg("--event")
        .arg(r#"{"op":"write","path":"/srv/a"}"#)
        .output()
        .unwrap();
    assert!(text(&o).contains("\"action\":\"log\""), "{}", text(&o));
}
