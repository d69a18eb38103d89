//! Build tasks.
//!
//! `cargo xtask driver` builds the Windows minifilter on any host with the
//! pinned toolchain (rust-toolchain.toml installs the
//! `x86_64-pc-windows-msvc` target): no WDK, no Windows SDK, no MSVC. The
//! kernel imports are `raw-dylib` (rustc writes the import libraries
//! itself) and `rust-lld` links the image as a native driver. The result
//! is `target/driver/fltpolicy.sys` with its installation INF beside it.
//!
//! `cargo xtask driver --check` only verifies that the outputs exist.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The MSVC target the kernel image is built for.
const TARGET: &str = "x86_64-pc-windows-msvc";
/// Cargo profile with `panic = "abort"` and LTO (root Cargo.toml).
const PROFILE: &str = "driver";
/// Linker arguments of a kernel-mode driver image:
/// * `/DRIVER` — a kernel driver (no user-mode CRT semantics);
/// * `/SUBSYSTEM:NATIVE` — loaded by the kernel, not by a Win32 process;
/// * `/ENTRY:DriverEntry` — the I/O manager calls DriverEntry directly;
/// * `/NODEFAULTLIB` — no CRT: everything comes from kernel exports;
/// * `/INTEGRITYCHECK` — sets FORCE_INTEGRITY, which
///   PsSetCreateProcessNotifyRoutineEx requires of its caller's image;
/// * `/RELEASE` — writes the image checksum into the optional header
///   (the kernel loader requires a valid one for drivers; the image test
///   recomputes it).
const LINK_ARGS: [&str; 6] = [
    "/DRIVER",
    "/SUBSYSTEM:NATIVE",
    "/ENTRY:DriverEntry",
    "/NODEFAULTLIB",
    "/INTEGRITYCHECK",
    "/RELEASE",
];

/// Load-order altitude: in the "FSFilter Activity Monitor" range
/// (360000–389999). A production driver must use the altitude Microsoft
/// assigns to it (request one at https://aka.ms/fsfilteraltitude).
pub const ALTITUDE: &str = "385123";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("driver") => driver(args.iter().any(|a| a == "--check")),
        _ => {
            eprintln!("usage: cargo xtask driver [--check]\n\n  driver   build target/driver/fltpolicy.sys and fltpolicy.inf");
            bail!("unknown or missing task")
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root exists")
}

fn driver(check_only: bool) -> Result<()> {
    let root = workspace_root();
    let out_dir = root.join("target").join("driver");
    let sys = out_dir.join("fltpolicy.sys");
    let inf = out_dir.join("fltpolicy.inf");
    let map = out_dir.join("fltpolicy.map");
    if check_only {
        for p in [&sys, &inf, &map] {
            if !p.exists() {
                bail!("{} is missing: run `cargo xtask driver`", p.display());
            }
        }
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "rustc",
            "--locked",
            "-p",
            "fltpolicy-driver",
            "--features",
            "kernel",
            "--crate-type",
            "cdylib",
        ])
        .args(["--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir)
        .args([
            "--",
            "-C",
            "linker=rust-lld",
            "-C",
            "linker-flavor=lld-link",
        ]);
    for a in LINK_ARGS {
        cmd.arg("-C").arg(format!("link-arg={a}"));
    }
    // The link map: the address of every function, which the image test's
    // stack-budget analysis uses to name entry points and frames (the .sys
    // carries no symbols).
    std::fs::create_dir_all(&out_dir)?;
    cmd.arg("-C")
        .arg(format!("link-arg=/MAP:{}", map.display()));
    let status = cmd.status().with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("building the driver failed ({status})");
    }
    let built = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join("fltpolicy_driver.dll");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::copy(&built, &sys)
        .with_context(|| format!("copying {} to {}", built.display(), sys.display()))?;
    std::fs::write(&inf, inf_text()).with_context(|| format!("writing {}", inf.display()))?;
    println!("{}", sys.display());
    println!("{}", inf.display());
    println!("{}", map.display());
    Ok(())
}

/// The installation INF: a file-system minifilter service in the
/// "FSFilter Activity Monitor" load order group with one default instance.
fn inf_text() -> String {
    format!(
        r#";;; fltpolicy minifilter installation file.
;;;
;;; Install:  right-click > Install, or
;;;           RUNDLL32.EXE SETUPAPI.DLL,InstallHinfSection DefaultInstall 132 fltpolicy.inf
;;; Load:     fltmc load fltpolicy
;;; Unload:   fltmc unload fltpolicy
;;; Remove:   RUNDLL32.EXE SETUPAPI.DLL,InstallHinfSection DefaultUninstall 132 fltpolicy.inf
;;;
;;; ALTITUDE: {altitude} lies in the FSFilter Activity Monitor range
;;; (360000-389999) for development and testing only. A production driver
;;; must use the altitude Microsoft assigns to it.

[Version]
Signature   = "$Windows NT$"
Class       = "ActivityMonitor"
ClassGuid   = {{b86dff51-a31e-4bac-b3cf-e8cfe75c9fc2}}
Provider    = %ManufacturerName%
DriverVer   = 11/21/2026,0.1.0.0
CatalogFile = fltpolicy.cat
PnpLockdown = 1

[DestinationDirs]
DefaultDestDir         = 12
MiniFilter.DriverFiles = 12

[DefaultInstall.NTamd64]
OptionDesc = %ServiceDescription%
CopyFiles  = MiniFilter.DriverFiles

[DefaultInstall.NTamd64.Services]
AddService = %ServiceName%,,MiniFilter.Service

[DefaultUninstall.NTamd64]
LegacyUninstall = 1
DelFiles        = MiniFilter.DriverFiles

[DefaultUninstall.NTamd64.Services]
DelService = %ServiceName%,0x200

[MiniFilter.Service]
DisplayName    = %ServiceName%
Description    = %ServiceDescription%
ServiceBinary  = %12%\%DriverName%.sys
Dependencies   = "FltMgr"
ServiceType    = 2
StartType      = 3
ErrorControl   = 1
LoadOrderGroup = "FSFilter Activity Monitor"
AddReg         = MiniFilter.AddRegistry

[MiniFilter.AddRegistry]
HKR,,"DebugFlags",0x00010001,0x0
HKR,,"SupportedFeatures",0x00010001,0x3
HKR,"Instances","DefaultInstance",0x00000000,%DefaultInstance%
HKR,"Instances\"%Instance1.Name%,"Altitude",0x00000000,%Instance1.Altitude%
HKR,"Instances\"%Instance1.Name%,"Flags",0x00010001,%Instance1.Flags%

[MiniFilter.DriverFiles]
%DriverName%.sys

[SourceDisksFiles]
fltpolicy.sys = 1,,

[SourceDisksNames]
1 = %DiskId1%,,,

[Strings]
ManufacturerName   = "fltpolicy"
ServiceDescription = "fltpolicy policy-driven file-system filter"
ServiceName        = "fltpolicy"
DriverName         = "fltpolicy"
DiskId1            = "fltpolicy Device Installation Disk"
DefaultInstance    = "fltpolicy Instance"
Instance1.Name     = "fltpolicy Instance"
Instance1.Altitude = "{altitude}"
Instance1.Flags    = 0x0
"#,
        altitude = ALTITUDE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn altitude_is_in_the_activity_monitor_range() {
        let a: u32 = ALTITUDE.parse().unwrap();
        assert!((360_000..=389_999).contains(&a));
    }

    #[test]
    fn inf_declares_service_group_altitude_and_default_instance() {
        let inf = inf_text();
        for needle in [
            r#"LoadOrderGroup = "FSFilter Activity Monitor""#,
            "ServiceType    = 2",
            r#"Dependencies   = "FltMgr""#,
            r#"HKR,"Instances","DefaultInstance",0x00000000,%DefaultInstance%"#,
            &format!(r#"Instance1.Altitude = "{ALTITUDE}""#),
            "ServiceBinary  = %12%\\%DriverName%.sys",
            "production driver",
        ] {
            assert!(inf.contains(needle), "INF lacks {needle}");
        }
        // Every %Name% used is defined in [Strings].
        let strings = &inf[inf.find("[Strings]").unwrap()..];
        for name in inf.split('%').skip(1).step_by(2) {
            if name.is_empty() || name.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            assert!(
                strings.contains(&format!("{name} ")),
                "undefined string %{name}%"
            );
        }
    }

    #[test]
    fn link_arguments_make_a_native_integrity_checked_driver() {
        for a in [
            "/DRIVER",
            "/SUBSYSTEM:NATIVE",
            "/ENTRY:DriverEntry",
            "/NODEFAULTLIB",
            "/INTEGRITYCHECK",
            "/RELEASE",
        ] {
            assert!(LINK_ARGS.contains(&a));
        }
    }
}
