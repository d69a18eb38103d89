//! Issue 12, "Target in the file": `target linux|windows` as the first
//! statement; compiling for the other target is an error; and a POSIX
//! absolute path on the Windows target warns like `C:\x` does on Linux.
use fltpolicy_compiler::check::declared_target;
use fltpolicy_compiler::parse::parse;
use fltpolicy_compiler::{compile, CompileError};
use fltpolicy_core::event::Target;

fn codes(src: &str, t: Target) -> Vec<&'static str> {
    match compile(src, "t.pol", t) {
        Ok(c) => c.warnings.items.iter().map(|d| d.code).collect(),
        Err(CompileError::Source(d)) => d.items.iter().map(|d| d.code).collect(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn declared_target_is_read_and_must_agree() {
    let src = "# for the build hosts\ntarget linux\nlog write under /srv\n";
    assert_eq!(declared_target(src), Some(Target::Linux));
    assert_eq!(
        declared_target("\u{feff}TARGET Windows\n"),
        Some(Target::Windows)
    );
    assert_eq!(declared_target("log write\ntarget linux\n"), None);
    assert!(compile(src, "t.pol", Target::Linux).is_ok());
    let Err(CompileError::Source(d)) = compile(src, "t.pol", Target::Windows) else {
        panic!("a linux policy compiled for windows")
    };
    assert_eq!(d.error_count(), 1);
    assert_eq!(d.items[0].code, "pol::target");
    assert!(
        d.items[0].message.contains("written for linux"),
        "{}",
        d.render()
    );
}

#[test]
fn target_must_come_first_and_be_known() {
    assert!(codes("log write\ntarget windows\n", Target::Windows).contains(&"pol::target"));
    let e = parse("target macos\n").unwrap_err();
    assert!(e[0].message.contains("`linux` or `windows`"), "{e:?}");
}

#[test]
fn fmt_keeps_the_target_statement() {
    let f = parse("Target  LINUX  # x\nlog write\n").unwrap();
    assert_eq!(
        fltpolicy_compiler::fmt::format(&f),
        "target linux  # x\nlog write\n"
    );
}

#[test]
fn posix_paths_never_match_on_windows() {
    for src in [
        "log read under /etc/shadow\n",
        "log read where path == /etc/shadow\n",
        "log read where path in [/etc/shadow, C:\\x]\n",
        "log read where image under /usr/bin\n",
    ] {
        assert!(
            codes(src, Target::Windows).contains(&"pol::relative-path"),
            "{src}"
        );
        assert!(
            !codes(src, Target::Linux).contains(&"pol::relative-path"),
            "{src}"
        );
    }
    // Forward slashes in a Windows path are fine (converted), and so is UNC.
    for src in [
        "log read under C:/Data\n",
        "log read under //server/share\n",
    ] {
        assert!(codes(src, Target::Windows).is_empty(), "{src}");
    }
}
