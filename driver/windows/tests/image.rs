//! Inspects the built kernel image (`cargo xtask driver` →
//! `target/driver/fltpolicy.sys`) with the `object` crate.
//!
//! The image must be a native-subsystem driver with FORCE_INTEGRITY (which
//! PsSetCreateProcessNotifyRoutineEx demands), enter at `DriverEntry`,
//! import only from kernel modules, and keep all code in resident
//! sections: a pageable (`PAGE*`) or discardable (`INIT`) code section
//! could hold a callback that runs at DISPATCH_LEVEL (kernel rule 1, seed
//! 002's DRIVER_IRQL_NOT_LESS_OR_EQUAL).
//!
//! A missing image is a failure, not a skip: `scripts/test.sh` builds it
//! before `cargo test`.

use std::path::PathBuf;

use object::pe::{
    IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY, IMAGE_FILE_MACHINE_AMD64, IMAGE_SCN_CNT_CODE,
    IMAGE_SCN_MEM_DISCARDABLE, IMAGE_SCN_MEM_EXECUTE, IMAGE_SUBSYSTEM_NATIVE,
};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::{Object, ObjectSection, SectionFlags};

/// Modules a kernel driver may import from. Anything else — above all
/// `ntdll.dll`, `kernel32.dll` or a CRT — cannot be resolved by the kernel
/// loader (or would be the wrong code: ntdll's Zw* are the user-mode stubs).
const KERNEL_MODULES: [&str; 3] = ["ntoskrnl.exe", "fltmgr.sys", "hal.dll"];

fn image_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/driver/fltpolicy.sys")
}

fn image() -> Vec<u8> {
    let p = image_path();
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Build it first with `cargo xtask driver` (scripts/test.sh does this before `cargo test`).",
            p.display()
        )
    })
}

/// Every (module, function) the image imports.
fn imports(data: &[u8]) -> Vec<(String, String)> {
    let file = object::File::parse(data).expect("the image parses as an object file");
    file.imports()
        .expect("import table present")
        .map(|i| i.expect("import table readable"))
        .map(|i| {
            (
                String::from_utf8_lossy(i.library()).into_owned(),
                match i.name() {
                    object::NameOrOrdinal::Name(n) => String::from_utf8_lossy(n).into_owned(),
                    object::NameOrOrdinal::Ordinal(o) => format!("#{o}"),
                },
            )
        })
        .collect()
}

/// The modules of `imports` that are not kernel modules.
fn foreign_modules(imports: &[(String, String)]) -> Vec<String> {
    let mut bad: Vec<String> = imports
        .iter()
        .map(|(m, _)| m.to_ascii_lowercase())
        .filter(|m| !KERNEL_MODULES.contains(&m.as_str()))
        .collect();
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn driver_image_is_a_native_force_integrity_driver() {
    let data = image();
    let pe = PeFile64::parse(&*data).expect("a PE32+ image");
    let nt = pe.nt_headers();
    assert_eq!(
        nt.file_header().machine.get(object::LittleEndian),
        IMAGE_FILE_MACHINE_AMD64
    );
    let opt = nt.optional_header();
    assert_eq!(
        opt.subsystem(),
        IMAGE_SUBSYSTEM_NATIVE,
        "subsystem must be NATIVE (/SUBSYSTEM:NATIVE)"
    );
    assert_ne!(
        opt.dll_characteristics().0 & IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY.0,
        0,
        "FORCE_INTEGRITY must be set (/INTEGRITYCHECK): PsSetCreateProcessNotifyRoutineEx refuses images without it"
    );
}

#[test]
fn driver_image_enters_at_driver_entry() {
    let data = image();
    let file = object::File::parse(&*data).unwrap();
    let entry = file.entry();
    let de = file
        .exports()
        .expect("export table present")
        .map(|e| e.expect("export table readable"))
        .find(|e| e.name().name() == Some(&b"DriverEntry"[..]))
        .expect("DriverEntry is exported");
    let object::ExportTarget::Address { address } = de.target() else {
        panic!("DriverEntry is a code export")
    };
    assert_eq!(
        address, entry,
        "the entry point is DriverEntry (/ENTRY:DriverEntry)"
    );
}

#[test]
fn driver_image_imports_only_from_kernel_modules() {
    let data = image();
    let imports = imports(&data);
    assert!(!imports.is_empty());
    let bad = foreign_modules(&imports);
    assert!(
        bad.is_empty(),
        "user-mode or unknown modules imported: {bad:?}\nall imports: {imports:#?}"
    );
    // The filter cannot work without these.
    for f in [
        "FltRegisterFilter",
        "FltStartFiltering",
        "FltCreateFileEx2",
        "FltWriteFile",
        "FltGetVolumeFromName",
        "FltGetVolumeInstanceFromName",
    ] {
        assert!(
            imports
                .iter()
                .any(|(m, n)| m.eq_ignore_ascii_case("fltmgr.sys") && n == f),
            "{f} from fltmgr.sys"
        );
    }
    for f in [
        "PsSetCreateProcessNotifyRoutineEx",
        "ObCloseHandle",
        "MmGetSystemRoutineAddress",
        "PsCreateSystemThread",
    ] {
        assert!(
            imports
                .iter()
                .any(|(m, n)| m.eq_ignore_ascii_case("ntoskrnl.exe") && n == f),
            "{f} from ntoskrnl.exe"
        );
    }
    // Printed for the record (`cargo test -- --nocapture`).
    let mut by_module: Vec<_> = imports.iter().map(|(m, n)| format!("{m}!{n}")).collect();
    by_module.sort();
    println!("{} imports:\n{}", by_module.len(), by_module.join("\n"));
}

#[test]
fn import_check_rejects_user_mode_modules() {
    // The check above must be able to fail: a user-mode import is caught.
    let imports = vec![
        ("ntoskrnl.exe".to_string(), "ZwClose".to_string()),
        ("ntdll.dll".to_string(), "ZwClose".to_string()),
        ("KERNEL32.dll".to_string(), "Sleep".to_string()),
        ("FLTMGR.SYS".to_string(), "FltWriteFile".to_string()),
    ];
    assert_eq!(
        foreign_modules(&imports),
        vec!["kernel32.dll".to_string(), "ntdll.dll".to_string()]
    );
}

#[test]
fn driver_image_has_no_pageable_or_discardable_code() {
    let data = image();
    let file = object::File::parse(&*data).unwrap();
    let mut code_sections = 0;
    for s in file.sections() {
        let name = s.name().unwrap_or("?").to_string();
        let SectionFlags::Coff { characteristics } = s.flags() else {
            panic!("PE sections carry COFF flags")
        };
        let characteristics = characteristics.0;
        let code = characteristics & (IMAGE_SCN_CNT_CODE.0 | IMAGE_SCN_MEM_EXECUTE.0) != 0;
        assert!(
            !name.to_ascii_uppercase().starts_with("PAGE"),
            "pageable section {name}: code or data there faults at DISPATCH_LEVEL"
        );
        if code {
            code_sections += 1;
            assert!(
                !name.eq_ignore_ascii_case("INIT")
                    && characteristics & IMAGE_SCN_MEM_DISCARDABLE.0 == 0,
                "executable section {name} is discardable: callbacks would run freed code"
            );
        }
    }
    assert!(code_sections >= 1);
    // No TLS: the kernel loader does not support it.
    let pe = PeFile64::parse(&*data).unwrap();
    let tls = pe.data_directory(object::pe::IMAGE_DIRECTORY_ENTRY_TLS);
    assert!(
        tls.is_none_or(|d| d.virtual_address.get(object::LittleEndian) == 0),
        "TLS directory present"
    );
}

/// The PE image checksum (the algorithm of imagehlp's CheckSumMappedFile):
/// the file as little-endian 16-bit words, the 4-byte CheckSum field taken
/// as zero, summed with the carry folded back after every addition, plus
/// the file length.
fn pe_checksum(file: &[u8], checksum_field: usize) -> u32 {
    let mut sum: u32 = 0;
    for (i, pair) in file.chunks(2).enumerate() {
        let at = 2 * i;
        if at == checksum_field || at == checksum_field + 2 {
            continue;
        }
        let word = u32::from(pair[0]) | u32::from(pair.get(1).copied().unwrap_or(0)) << 8;
        sum += word;
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum.wrapping_add(file.len() as u32)
}

#[test]
fn pe_checksum_folds_carries_and_skips_its_own_field() {
    // 0xFFFF + 0x0002 = 0x1_0001 → folded 0x0002; bytes 4..8 (the field)
    // are skipped whatever they hold; the length (9) is added; the odd
    // last byte counts as a word of its own.
    let file = [0xFF, 0xFF, 0x02, 0x00, 0xDE, 0xAD, 0xBE, 0xEF, 0x05];
    assert_eq!(pe_checksum(&file, 4), 0x0002 + 0x0005 + 9);
}

#[test]
fn driver_image_carries_a_valid_checksum() {
    let data = image();
    let e_lfanew = u32::from_le_bytes(data[0x3C..0x40].try_into().unwrap()) as usize;
    // Signature (4) + IMAGE_FILE_HEADER (20) + CheckSum's offset in the
    // optional header (64).
    let field = e_lfanew + 4 + 20 + 64;
    let stored = u32::from_le_bytes(data[field..field + 4].try_into().unwrap());
    let pe = PeFile64::parse(&*data).unwrap();
    assert_eq!(
        stored,
        pe.nt_headers().optional_header().check_sum(),
        "CheckSum field located"
    );
    assert_ne!(
        stored, 0,
        "no checksum: link with /RELEASE (drivers must carry a valid one)"
    );
    assert_eq!(
        pe_checksum(&data, field),
        stored,
        "stored checksum does not match the image"
    );
}

/// Windows 10 1607 / Server 2016 (build 14393): the oldest release the
/// driver supports (docs/windows-driver.md, "Supported Windows versions").
const OLDEST_SUPPORTED_BUILD: u32 = 14393;

/// Every routine the image may import, with the first Windows release that
/// has it (its build number). Source: the "Requirements" table of each
/// routine's page in Microsoft's DDI reference
/// (`https://learn.microsoft.com/windows-hardware/drivers/ddi/<header>/nf-<header>-<name>`,
/// "Minimum supported client" / "Available starting with"). FltMgr routines
/// documented as "Windows 2000 Update Rollup 1 for SP4, Windows XP SP2,
/// Windows Server 2003 SP1, and later" are entered as XP (2600). The C
/// runtime routines have no DDI page: every x64 ntoskrnl.exe exports them
/// (the WDK's ntoskrnl.lib, which MSVC-built drivers link them from).
/// A routine not in this list fails the test: add it with its version and
/// the page it comes from, or resolve it at run time (`kernel/ffi.rs`,
/// `Later`) if it is newer than 1607.
const KNOWN_IMPORTS: &[(&str, &str, u32)] = &[
    // fltmgr.sys
    ("fltmgr.sys", "FltAllocateContext", 2600),
    ("fltmgr.sys", "FltCancelFileOpen", 2600),
    ("fltmgr.sys", "FltClose", 2600),
    ("fltmgr.sys", "FltCreateFileEx2", 6000), // Windows Vista
    ("fltmgr.sys", "FltDeleteContext", 2600),
    ("fltmgr.sys", "FltFlushBuffers", 2600),
    ("fltmgr.sys", "FltGetDestinationFileNameInformation", 2600),
    ("fltmgr.sys", "FltGetDiskDeviceObject", 2600),
    ("fltmgr.sys", "FltGetFileNameInformation", 2600),
    ("fltmgr.sys", "FltGetInstanceContext", 2600),
    ("fltmgr.sys", "FltGetRequestorProcessId", 2600),
    ("fltmgr.sys", "FltGetRoutineAddress", 2600),
    ("fltmgr.sys", "FltGetStreamHandleContext", 2600),
    ("fltmgr.sys", "FltGetVolumeFromName", 2600),
    ("fltmgr.sys", "FltGetVolumeInstanceFromName", 2600),
    ("fltmgr.sys", "FltObjectDereference", 2600),
    ("fltmgr.sys", "FltParseFileNameInformation", 2600),
    ("fltmgr.sys", "FltQueryInformationFile", 6000), // Windows Vista
    ("fltmgr.sys", "FltRegisterFilter", 2600),
    ("fltmgr.sys", "FltReleaseContext", 2600),
    ("fltmgr.sys", "FltReleaseFileNameInformation", 2600),
    ("fltmgr.sys", "FltSetCallbackDataDirty", 2600),
    ("fltmgr.sys", "FltSetInformationFile", 2600),
    ("fltmgr.sys", "FltSetInstanceContext", 2600),
    ("fltmgr.sys", "FltSetStreamHandleContext", 2600),
    ("fltmgr.sys", "FltStartFiltering", 2600),
    ("fltmgr.sys", "FltUnregisterFilter", 2600),
    ("fltmgr.sys", "FltWriteFile", 2600),
    // ntoskrnl.exe
    ("ntoskrnl.exe", "ExAcquireRundownProtection", 2600), // Windows XP
    ("ntoskrnl.exe", "ExAllocatePoolWithTag", 2195),      // Windows 2000
    ("ntoskrnl.exe", "ExFreePool", 2195),
    ("ntoskrnl.exe", "ExFreePoolWithTag", 2195),
    ("ntoskrnl.exe", "ExInitializeRundownProtection", 2600),
    ("ntoskrnl.exe", "ExReleaseRundownProtection", 2600),
    ("ntoskrnl.exe", "ExWaitForRundownProtectionRelease", 2600),
    ("ntoskrnl.exe", "IoCreateDevice", 2195),
    ("ntoskrnl.exe", "IoCreateSymbolicLink", 2195),
    ("ntoskrnl.exe", "IoDeleteDevice", 2195),
    ("ntoskrnl.exe", "IoDeleteSymbolicLink", 2195),
    ("ntoskrnl.exe", "IoVolumeDeviceToDosName", 2600), // Windows XP
    ("ntoskrnl.exe", "IofCompleteRequest", 2195),
    ("ntoskrnl.exe", "KeAcquireInStackQueuedSpinLock", 2600), // Windows XP
    ("ntoskrnl.exe", "KeBugCheckEx", 2195),
    ("ntoskrnl.exe", "KeDelayExecutionThread", 2195),
    ("ntoskrnl.exe", "KeGetCurrentProcessorNumberEx", 7600), // Windows 7
    ("ntoskrnl.exe", "KeInitializeEvent", 2195),
    ("ntoskrnl.exe", "KeQuerySystemTimePrecise", 9200), // Windows 8
    ("ntoskrnl.exe", "KeReleaseInStackQueuedSpinLock", 2600),
    ("ntoskrnl.exe", "KeSetEvent", 2195),
    ("ntoskrnl.exe", "KeWaitForSingleObject", 2195),
    ("ntoskrnl.exe", "MmGetSystemRoutineAddress", 2195),
    ("ntoskrnl.exe", "ObCloseHandle", 2195),
    ("ntoskrnl.exe", "ObOpenObjectByPointer", 2195),
    ("ntoskrnl.exe", "ObReferenceObjectByHandle", 2195),
    ("ntoskrnl.exe", "ObfDereferenceObject", 2195),
    ("ntoskrnl.exe", "ObfReferenceObject", 2195),
    ("ntoskrnl.exe", "PsCreateSystemThread", 2195),
    ("ntoskrnl.exe", "PsGetCurrentProcessId", 2195),
    ("ntoskrnl.exe", "PsLookupProcessByProcessId", 2195),
    ("ntoskrnl.exe", "PsSetCreateProcessNotifyRoutineEx", 6001), // Vista SP1
    ("ntoskrnl.exe", "PsTerminateSystemThread", 2195),
    ("ntoskrnl.exe", "SeCaptureSubjectContext", 2195),
    ("ntoskrnl.exe", "SeQueryInformationToken", 2195),
    ("ntoskrnl.exe", "SeReleaseSubjectContext", 2195),
    ("ntoskrnl.exe", "SeTokenIsAdmin", 2600), // Windows XP
    ("ntoskrnl.exe", "memcmp", 2195),
    ("ntoskrnl.exe", "memcpy", 2195),
    ("ntoskrnl.exe", "memmove", 2195),
    ("ntoskrnl.exe", "memset", 2195),
];

/// Routines newer than the oldest supported release, which the driver
/// must resolve at run time (and fall back from) instead of importing:
/// an import the loader cannot resolve fails the whole load.
const TOO_NEW_TO_IMPORT: &[(&str, &str)] = &[
    ("ExAllocatePool2", "Windows 10 2004"),
    ("ExAllocatePool3", "Windows 10 2004"),
    ("FltFlushBuffers2", "Windows 10 1903"),
    ("PsGetProcessExitStatus", "Windows 10 1703"),
];

/// The imports of `imports` not known to exist on the oldest supported
/// release: (module!name, why).
fn unsupported_imports(imports: &[(String, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (m, n) in imports {
        if let Some((_, since)) = TOO_NEW_TO_IMPORT.iter().find(|(t, _)| t == n) {
            bad.push(format!("{m}!{n}: first in {since}"));
            continue;
        }
        match KNOWN_IMPORTS
            .iter()
            .find(|(km, kn, _)| km.eq_ignore_ascii_case(m) && kn == n)
        {
            Some((_, _, build)) if *build <= OLDEST_SUPPORTED_BUILD => {}
            Some((_, _, build)) => bad.push(format!("{m}!{n}: first in build {build}")),
            None => bad.push(format!(
                "{m}!{n}: not in KNOWN_IMPORTS (add it with its first Windows version)"
            )),
        }
    }
    bad
}

#[test]
fn driver_image_imports_only_what_windows_10_1607_exports() {
    let data = image();
    let imports = imports(&data);
    let bad = unsupported_imports(&imports);
    assert!(
        bad.is_empty(),
        "imports the loader of Windows 10 1607 / Server 2016 cannot resolve: {bad:#?}"
    );
    // The newer routines are looked up by name instead (ExAllocatePool2,
    // PsGetProcessExitStatus, SeLocateProcessImageName with
    // MmGetSystemRoutineAddress; FltFlushBuffers2 with
    // FltGetRoutineAddress), and the fallbacks are imported.
    for (m, f) in [
        ("ntoskrnl.exe", "ExAllocatePoolWithTag"),
        ("fltmgr.sys", "FltFlushBuffers"),
        ("fltmgr.sys", "FltGetRoutineAddress"),
    ] {
        assert!(
            imports
                .iter()
                .any(|(im, n)| im.eq_ignore_ascii_case(m) && n == f),
            "{f} from {m} (the fallback)"
        );
    }
}

#[test]
fn version_check_rejects_newer_and_unknown_imports() {
    let imports = vec![
        ("ntoskrnl.exe".to_string(), "ExAllocatePool2".to_string()),
        ("FLTMGR.SYS".to_string(), "FltFlushBuffers2".to_string()),
        (
            "ntoskrnl.exe".to_string(),
            "KeQuerySystemTimePrecise".to_string(),
        ),
        ("ntoskrnl.exe".to_string(), "ZwMadeUp".to_string()),
    ];
    let bad = unsupported_imports(&imports);
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(bad[0].contains("ExAllocatePool2") && bad[0].contains("2004"));
    assert!(bad[1].contains("FltFlushBuffers2") && bad[1].contains("1903"));
    assert!(bad[2].contains("ZwMadeUp"));
}
