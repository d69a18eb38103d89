//! `fltpolicy import sysmon` on excerpts of two public configurations
//! (attribution in the fixtures): the import checks clean (no errors, no
//! warnings), reports its exact / approximate / skipped counts, and the
//! imported policy decides the hand-written cases — what Sysmon's
//! documented semantics log — through both the VM and the reference
//! interpreter (`fltpolicy test`).
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

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysmon")
}

/// Imports `name`.xml, checks it, runs its cases; returns the summary line.
fn import_and_test(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("fltpolicy-import-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pol = dir.join(format!("{name}.pol"));
    let o = bin()
        .arg("import")
        .arg("sysmon")
        .arg(fixtures().join(format!("{name}.xml")))
        .arg("-o")
        .arg(&pol)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary = String::from_utf8_lossy(&o.stderr).into_owned();
    let o = bin()
        .arg("check")
        .arg(&pol)
        .arg("--deny-warnings")
        .output()
        .unwrap();
    assert!(
        o.status.success() && text(&o).contains("0 warnings"),
        "{}\n{}",
        text(&o),
        std::fs::read_to_string(&pol).unwrap()
    );
    std::fs::copy(
        fixtures().join(format!("{name}.cases.toml")),
        dir.join(format!("{name}.cases.toml")),
    )
    .unwrap();
    let o = bin().arg("test").arg(&pol).output().unwrap();
    assert!(
        o.status.success() && text(&o).contains(" 0 failed"),
        "{}\n{}",
        text(&o),
        std::fs::read_to_string(&pol).unwrap()
    );
    summary
}

#[test]
fn swiftonsecurity_excerpt_imports_and_decides_as_sysmon() {
    let s = import_and_test("sysmon-config-excerpt");
    assert!(s.contains("7 exact, 1 approximate, 0 skipped"), "{s}");
    assert!(s.contains("FileCreateStreamHash"), "{s}");
}

#[test]
fn sysmon_modular_excerpt_imports_and_decides_as_sysmon() {
    let s = import_and_test("sysmon-modular-excerpt");
    assert!(s.contains("10 exact, 0 approximate, 1 skipped"), "{s}");
    assert!(s.contains("skipped: field User"), "{s}");
}

#[test]
fn every_condition_operator_translates() {
    // One filter per Sysmon condition operator, on TargetFilename, plus
    // ProcessId numbers; none may be skipped except the lexical string
    // comparisons, which the language does not have.
    let ops = [
        "is",
        "is not",
        "is any",
        "contains",
        "contains any",
        "contains all",
        "excludes",
        "excludes any",
        "excludes all",
        "begin with",
        "not begin with",
        "end with",
        "not end with",
        "image",
    ];
    let mut xml = String::from("<Sysmon schemaversion=\"4.90\"><EventFiltering><RuleGroup groupRelation=\"or\"><FileCreate onmatch=\"include\">");
    for op in ops {
        xml.push_str(&format!(
            "<TargetFilename condition=\"{op}\">C:\\a;b</TargetFilename>"
        ));
    }
    xml.push_str("<ProcessId condition=\"is any\">4;8</ProcessId><ProcessId condition=\"less than\">100</ProcessId>");
    xml.push_str("<TargetFilename condition=\"less than\">m</TargetFilename>");
    xml.push_str("</FileCreate></RuleGroup></EventFiltering></Sysmon>");
    let dir = std::env::temp_dir().join(format!("fltpolicy-import-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("ops.xml");
    std::fs::write(&cfg, xml).unwrap();
    let pol = dir.join("ops.pol");
    let o = bin()
        .arg("import")
        .arg("sysmon")
        .arg(&cfg)
        .arg("-o")
        .arg(&pol)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("16 exact, 0 approximate, 1 skipped"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("lexical order is not supported"),
        "{}",
        text(&o)
    );
    let o = bin().arg("check").arg(&pol).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Decisions for a few of them, against Sysmon's definitions.
    let eval = |path: &str, pid: u32| {
        let o = bin()
            .arg("eval")
            .arg(&pol)
            .arg("--event")
            .arg(format!(
                r#"{{"op":"create","path":{},"pid":{pid}}}"#,
                serde_json::to_string(path).unwrap()
            ))
            .output()
            .unwrap();
        text(&o)
    };
    // "excludes any": true when one of the values is missing: `x` lacks both.
    assert!(eval("C:\\x", 1000).contains("\"log\""));
    // "is any": C:\a is one of the values.
    assert!(eval("C:\\A", 1000).contains("\"log\""));
    // pid 4 is in "4;8".
    assert!(eval("C:\\zz", 4).contains("\"log\""));
}

#[test]
fn non_sysmon_input_is_an_error() {
    let dir = std::env::temp_dir().join(format!("fltpolicy-import-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, body) in [("a.xml", "<Other/>"), ("b.xml", "not xml <"), ("c.xml", "")] {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let o = bin().arg("import").arg("sysmon").arg(&p).output().unwrap();
        assert!(!o.status.success(), "{name}: {}", text(&o));
        assert!(
            text(&o).contains("not a Sysmon configuration"),
            "{name}: {}",
            text(&o)
        );
    }
}
