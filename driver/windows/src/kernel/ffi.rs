//! The real kernel: FFI into fltmgr.sys and ntoskrnl.exe (feature `kernel`).
//!
//! Most declarations come from windows-sys (Microsoft's metadata), linked
//! through `raw-dylib` with `+verbatim` library names (`fltmgr.sys`,
//! `ntoskrnl.exe`). The [`nt`] block below declares, from `ntoskrnl.exe`,
//! the exports windows-sys maps to the user-mode `ntdll.dll` (Zw*, Rtl*)
//! or declares with a wrong signature (`PsCreateSystemThread`'s start
//! routine lacks its context parameter in the metadata), plus the C
//! runtime routines the compiler emits calls to (`memcpy`, `memset`,
//! `memmove`, `memcmp`), which ntoskrnl exports. The image test
//! (`tests/image.rs`) fails if any user-mode DLL is imported.
//!
//! Each function's IRQL contract is the one stated on the simulation's
//! implementation (`sim/kernel.rs`); the `// SAFETY:` comments here name the
//! IRQL the caller guarantees.

use core::ffi::c_void;

use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IRP, KEVENT, OBJECT_ATTRIBUTES,
    SECURITY_SUBJECT_CONTEXT,
};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;
use windows_sys::Wdk::Storage::FileSystem::{FileEndOfFileInformation, FileRenameInformation};
use windows_sys::Wdk::Storage::FileSystem::{
    ObOpenObjectByPointer, PsLookupProcessByProcessId, SeTokenIsAdmin,
};
use windows_sys::Wdk::System::SystemServices::{
    ExAllocatePoolWithTag, ExFreePool, ExFreePoolWithTag, Executive, IoCreateDevice,
    IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink, IoVolumeDeviceToDosName,
    IofCompleteRequest, KeDelayExecutionThread, KeGetCurrentProcessorNumberEx, KeInitializeEvent,
    KeQuerySystemTimePrecise, KeSetEvent, KeWaitForSingleObject, ObReferenceObjectByHandle,
    ObfDereferenceObject, PsSetCreateProcessNotifyRoutineEx, PsTerminateSystemThread,
    SeCaptureSubjectContext, SeReleaseSubjectContext,
};
use windows_sys::Wdk::System::SystemServices::{
    KeAcquireInStackQueuedSpinLock, KeReleaseInStackQueuedSpinLock, KLOCK_QUEUE_HANDLE,
};
use windows_sys::Wdk::System::SystemServices::{MmGetSystemRoutineAddress, ObCloseHandle};
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};
use windows_sys::Win32::System::Kernel::SynchronizationEvent;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use super::status::*;
use super::{CreateMode, Irql, OwnFile, SpinLock, ThreadObject, POOL_TAG};
use crate::abi;

/// ntoskrnl.exe exports that windows-sys declares with another signature
/// (`PsCreateSystemThread`, whose start routine lacks its context in the
/// metadata) or not at all (`KeBugCheckEx` without extra features, the
/// C runtime routines). Reviewed against the WDK headers (`wdm.h`,
/// `ntifs.h`): every function here is documented for kernel-mode callers.
///
/// The exports windows-sys maps to ntdll.dll (Zw*, Rtl*) cannot be declared
/// here under their own names: a raw-dylib import symbol (`__imp_ZwClose`)
/// is global, windows-sys's ntdll declaration of the same name wins at link
/// time, and the image would import user-mode ntdll.dll (the image test
/// caught exactly that). So ZwClose is replaced by ObCloseHandle, the Rtl*
/// security builders by [`crate::sddl::Dacl::to_self_relative`], and the
/// three remaining Zw* routines are looked up in ntoskrnl by name with
/// MmGetSystemRoutineAddress at DriverEntry ([`init`]).
mod nt {
    use core::ffi::c_void;

    use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
    use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};

    pub type ZwOpenSymbolicLinkObject =
        unsafe extern "system" fn(*mut HANDLE, u32, *const OBJECT_ATTRIBUTES) -> NTSTATUS;
    pub type ZwQuerySymbolicLinkObject =
        unsafe extern "system" fn(HANDLE, *mut UNICODE_STRING, *mut u32) -> NTSTATUS;
    pub type ZwSetSecurityObject =
        unsafe extern "system" fn(HANDLE, u32, *const c_void) -> NTSTATUS;
    pub type ZwWaitForSingleObject = unsafe extern "system" fn(HANDLE, u8, *const i64) -> NTSTATUS;

    /// `ZwQuerySystemInformation` (ntoskrnl; windows-sys maps it to ntdll).
    pub type ZwQuerySystemInformation =
        unsafe extern "system" fn(u32, *mut c_void, u32, *mut u32) -> NTSTATUS;
    /// `ExAllocatePool2` (Windows 10 2004+): flags, size, tag.
    pub type ExAllocatePool2 = unsafe extern "system" fn(u64, usize, u32) -> *mut c_void;
    /// `FltFlushBuffers2` (Windows 10 1903+): instance, file object, flush
    /// type, optional callback data.
    pub type FltFlushBuffers2 =
        unsafe extern "system" fn(isize, *const c_void, u32, *const c_void) -> NTSTATUS;

    /// `SeLocateProcessImageName` (its DDI page names no first version).
    pub type SeLocateProcessImageName =
        unsafe extern "system" fn(isize, *mut *mut UNICODE_STRING) -> NTSTATUS;
    /// `PsGetProcessExitStatus` (documented from Windows 10 1703).
    pub type PsGetProcessExitStatus = unsafe extern "system" fn(isize) -> NTSTATUS;

    /// `KSTART_ROUTINE`: `VOID (PVOID StartContext)`.
    pub type StartRoutine = unsafe extern "system" fn(*mut c_void);

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    extern "system" {
        pub fn PsCreateSystemThread(
            handle: *mut HANDLE,
            access: u32,
            attributes: *const OBJECT_ATTRIBUTES,
            process: HANDLE,
            client_id: *mut c_void,
            start: StartRoutine,
            context: *mut c_void,
        ) -> NTSTATUS;
        pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    }

    // The compiler lowers copies and fills to these C runtime symbols;
    // ntoskrnl exports them, so no CRT is linked (/NODEFAULTLIB).
    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    extern "C" {
        pub fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
        pub fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
        pub fn memset(dst: *mut c_void, c: i32, n: usize) -> *mut c_void;
        pub fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> i32;
    }
    // Deliberately not declared: `__chkstk`, the stack probe the compiler
    // emits for a frame over one page. No frame may be that large (1 KiB
    // budget, tests/stack.rs), and without the declaration such a frame
    // fails the link instead of reaching a kernel stack.
}

/// Keeps the CRT imports referenced so the linker resolves compiler-emitted
/// calls against them (they are otherwise only named by codegen).
#[used]
static CRT: [unsafe extern "C" fn(); 4] = [
    // SAFETY: only the addresses are taken; never called through these
    // pointers with this signature.
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void,
            unsafe extern "C" fn(),
        >(nt::memcpy)
    },
    // SAFETY: as above.
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *mut c_void,
            unsafe extern "C" fn(),
        >(nt::memmove)
    },
    // SAFETY: as above.
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*mut c_void, i32, usize) -> *mut c_void,
            unsafe extern "C" fn(),
        >(nt::memset)
    },
    // SAFETY: as above.
    unsafe {
        core::mem::transmute::<
            unsafe extern "C" fn(*const c_void, *const c_void, usize) -> i32,
            unsafe extern "C" fn(),
        >(nt::memcmp)
    },
];

/// ntoskrnl routines resolved by name at DriverEntry (see the [`nt`] docs
/// for why they are not imported).
struct Zw {
    open_link: nt::ZwOpenSymbolicLinkObject,
    query_link: nt::ZwQuerySymbolicLinkObject,
    set_security: nt::ZwSetSecurityObject,
    wait: nt::ZwWaitForSingleObject,
}

/// Written once by [`init`] (DriverEntry, PASSIVE_LEVEL, before anything
/// that uses them can run); read-only afterwards.
static ZW: [core::sync::atomic::AtomicUsize; 4] =
    [const { core::sync::atomic::AtomicUsize::new(0) }; 4];

fn zw() -> Zw {
    use core::sync::atomic::Ordering::Acquire;
    // Each `init` stored the non-null address of exactly this ntoskrnl
    // routine (DriverEntry fails otherwise, and nothing calls zw() then);
    // the function types match the documented prototypes.
    let open_link =
        // SAFETY: see above.
        unsafe { core::mem::transmute::<usize, nt::ZwOpenSymbolicLinkObject>(ZW[0].load(Acquire)) };
    // SAFETY: as above.
    let query_link = unsafe {
        core::mem::transmute::<usize, nt::ZwQuerySymbolicLinkObject>(ZW[1].load(Acquire))
    };
    // SAFETY: as above.
    let set_security =
        unsafe { core::mem::transmute::<usize, nt::ZwSetSecurityObject>(ZW[2].load(Acquire)) };
    // SAFETY: as above.
    let wait =
        unsafe { core::mem::transmute::<usize, nt::ZwWaitForSingleObject>(ZW[3].load(Acquire)) };
    Zw {
        open_link,
        query_link,
        set_security,
        wait,
    }
}

/// Resolves the routines of [`Zw`]. PASSIVE_LEVEL (DriverEntry).
pub fn init() -> NTSTATUS {
    const NAMES: [&str; 4] = [
        "ZwOpenSymbolicLinkObject",
        "ZwQuerySymbolicLinkObject",
        "ZwSetSecurityObject",
        "ZwWaitForSingleObject",
    ];
    for (slot, name) in ZW.iter().zip(NAMES) {
        let (w, n) = wide::<32>(name);
        let us = unicode(&w[..n]);
        // SAFETY: PASSIVE_LEVEL; looks up an ntoskrnl export by name.
        let p = unsafe { MmGetSystemRoutineAddress(&us) };
        if p.is_null() {
            return STATUS_PROCEDURE_NOT_FOUND;
        }
        slot.store(p as usize, core::sync::atomic::Ordering::Release);
    }
    // Optional: null selects the fallback (see `Later`).
    for (slot, name) in [
        (&LATER.query_system_information, "ZwQuerySystemInformation"),
        (&LATER.pool2, "ExAllocatePool2"),
        (&LATER.locate_image, "SeLocateProcessImageName"),
        (&LATER.exit_status, "PsGetProcessExitStatus"),
        (&LATER.query_security, "ZwQuerySecurityObject"),
    ] {
        let (w, n) = wide::<32>(name);
        // SAFETY: PASSIVE_LEVEL; looks up an ntoskrnl export by name.
        let p = unsafe { MmGetSystemRoutineAddress(&unicode(&w[..n])) };
        slot.store(p as usize, Release);
    }
    // SAFETY: PASSIVE_LEVEL; looks up a fltmgr export by its ANSI name.
    let p = unsafe { FltGetRoutineAddress(c"FltFlushBuffers2".as_ptr().cast()) };
    LATER.flush2.store(p as usize, Release);
    STATUS_SUCCESS
}

/// Routines newer than the oldest supported Windows (10 1607 / Server
/// 2016), or mapped to ntdll by windows-sys, resolved by name at
/// DriverEntry instead of imported, so the image loads where they are
/// missing. Zero = missing: use the documented fallback.
///
/// | routine | first in | fallback |
/// |---|---|---|
/// | `ExAllocatePool2` | Windows 10 2004 | `ExAllocatePoolWithTag(NonPagedPoolNx)` + zeroing |
/// | `FltFlushBuffers2` | Windows 10 1903 | `FltFlushBuffers` (the same flush: type 0) |
/// | `ZwQuerySystemInformation` | all (ntdll mapping, see [`nt`]) | none: no pre-existing processes in the pid table |
/// | `SeLocateProcessImageName` | (page names no version) | pre-existing processes get an empty image |
/// | `ZwQuerySecurityObject` | all (ntdll mapping, see [`nt`]) | a pre-existing default log directory's owner is not checked |
/// | `PsGetProcessExitStatus` | Windows 10 1703 (documented) | a process exiting during the fill may keep its entry until its pid is reused |
struct Later {
    pool2: core::sync::atomic::AtomicUsize,
    flush2: core::sync::atomic::AtomicUsize,
    query_system_information: core::sync::atomic::AtomicUsize,
    locate_image: core::sync::atomic::AtomicUsize,
    exit_status: core::sync::atomic::AtomicUsize,
    query_security: core::sync::atomic::AtomicUsize,
}

/// Written once by [`init`] (DriverEntry, before any use); read-only after.
static LATER: Later = Later {
    pool2: core::sync::atomic::AtomicUsize::new(0),
    flush2: core::sync::atomic::AtomicUsize::new(0),
    query_system_information: core::sync::atomic::AtomicUsize::new(0),
    locate_image: core::sync::atomic::AtomicUsize::new(0),
    exit_status: core::sync::atomic::AtomicUsize::new(0),
    query_security: core::sync::atomic::AtomicUsize::new(0),
};

/// `STATUS_PROCEDURE_NOT_FOUND`.
const STATUS_PROCEDURE_NOT_FOUND: NTSTATUS = 0xC000_007A_u32 as i32;

use core::sync::atomic::Ordering::{Acquire, Release};

const KERNEL_MODE: i8 = 0;
const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
const OBJ_CASE_INSENSITIVE: u32 = 0x40;
const OBJ_KERNEL_HANDLE: u32 = 0x200;
const STATUS_TIMEOUT: NTSTATUS = 0x102;
const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;
const DO_DEVICE_INITIALIZING: u32 = 0x80;
const WRITE_DAC: u32 = 0x0004_0000;
const DACL_SECURITY_INFORMATION: u32 = 0x4;
const GENERIC_READ: u32 = 0x8000_0000;
const SYNCHRONIZE: u32 = 0x0010_0000;
const DELETE: u32 = 0x0001_0000;
const FILE_WRITE_DATA: u32 = 0x2;
const FILE_READ_ATTRIBUTES: u32 = 0x80;
const FILE_WRITE_ATTRIBUTES: u32 = 0x100;
const FILE_SHARE_READ: u32 = 0x1;
const FILE_SHARE_WRITE: u32 = 0x2;
const FILE_OPEN: u32 = 1;
const FILE_CREATE: u32 = 2;
const FILE_OPEN_IF: u32 = 3;
const FILE_CREATED: usize = 2;
const FILE_DIRECTORY_FILE: u32 = 0x1;
const FILE_SYNCHRONOUS_IO_NONALERT: u32 = 0x20;
const FILE_NON_DIRECTORY_FILE: u32 = 0x40;
const FILE_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
const FILE_LIST_DIRECTORY: u32 = 0x1;
const FILE_ADD_FILE: u32 = 0x2;
const FILE_TRAVERSE: u32 = 0x20;
/// `FileAttributeTagInformation` (FILE_INFORMATION_CLASS 35).
const FILE_ATTRIBUTE_TAG_INFORMATION: i32 = crate::wdk::FILE_ATTRIBUTE_TAG_INFORMATION_CLASS;
/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const EPOCH_DIFF_100NS: i64 = 116_444_736_000_000_000;

fn unicode(s: &[u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: (s.len() * 2) as u16,
        MaximumLength: (s.len() * 2) as u16,
        Buffer: s.as_ptr().cast_mut(),
    }
}

fn attributes(name: &UNICODE_STRING) -> OBJECT_ATTRIBUTES {
    OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: core::ptr::null_mut(),
        ObjectName: name,
        Attributes: (OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE) as _,
        SecurityDescriptor: core::ptr::null(),
        SecurityQualityOfService: core::ptr::null(),
    }
}

pub fn current_irql() -> Irql {
    // KeGetCurrentIrql is an inline function on x64 (not an export): the
    // IRQL is the task-priority register CR8.
    let irql: u64;
    // SAFETY: reading CR8 is allowed in kernel mode at any IRQL and has no
    // side effects.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) irql, options(nomem, nostack, preserves_flags))
    };
    irql as Irql
}

pub fn current_processor() -> usize {
    // SAFETY: callable at any IRQL; a null out-parameter is allowed.
    unsafe { KeGetCurrentProcessorNumberEx(core::ptr::null_mut()) as usize }
}

/// Zeroed non-paged, no-execute pool: `ExAllocatePool2` where it exists
/// (Windows 10 2004+), else `ExAllocatePoolWithTag(NonPagedPoolNx)` and
/// zeroing (Microsoft's documented replacement pair, in reverse).
pub fn alloc_nonpaged(size: usize) -> *mut u8 {
    let pool2 = LATER.pool2.load(Acquire);
    if pool2 != 0 {
        // SAFETY: `init` stored the address of ntoskrnl's ExAllocatePool2,
        // whose prototype nt::ExAllocatePool2 is.
        let f = unsafe { core::mem::transmute::<usize, nt::ExAllocatePool2>(pool2) };
        // SAFETY: non-paged allocation is valid at IRQL <= DISPATCH_LEVEL,
        // which every caller guarantees; ExAllocatePool2 zeroes the block.
        return unsafe { f(POOL_FLAG_NON_PAGED, size, POOL_TAG).cast() };
    }
    // SAFETY: IRQL <= DISPATCH_LEVEL (every caller); NonPagedPoolNx exists
    // since Windows 8.
    let p: *mut u8 = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size, POOL_TAG).cast() };
    if !p.is_null() {
        // SAFETY: `p` is a fresh block of `size` bytes.
        unsafe { core::ptr::write_bytes(p, 0, size) };
    }
    p
}

/// `NonPagedPoolNx` (POOL_TYPE).
const NON_PAGED_POOL_NX: i32 = 512;

/// # Safety
/// `p` came from `alloc_nonpaged` and is not used afterwards; IRQL <= DISPATCH_LEVEL.
pub unsafe fn free_pool(p: *mut u8) {
    // SAFETY: `p` came from alloc_nonpaged with POOL_TAG; IRQL <= DISPATCH.
    unsafe { ExFreePoolWithTag(p.cast(), POOL_TAG) }
}

pub fn yield_passive() {
    let interval: i64 = -10_000; // 1 ms, relative
                                 // SAFETY: callers run at PASSIVE_LEVEL (control path, unload).
    unsafe { KeDelayExecutionThread(KERNEL_MODE, false, &interval) };
}

pub fn system_time_ns() -> u64 {
    let mut t: i64 = 0;
    // SAFETY: any IRQL; writes one i64.
    unsafe { KeQuerySystemTimePrecise(&mut t) };
    (t.saturating_sub(EPOCH_DIFF_100NS).max(0) as u64).saturating_mul(100)
}

/// # Safety
/// `driver` is this driver's object during DriverEntry; PASSIVE_LEVEL.
pub unsafe fn register_filter(
    driver: *mut DRIVER_OBJECT,
    reg: &'static FLT_REGISTRATION,
) -> Result<PFLT_FILTER, NTSTATUS> {
    let mut f: PFLT_FILTER = 0;
    // SAFETY: DriverEntry, PASSIVE_LEVEL; the registration is static.
    let st = unsafe { FltRegisterFilter(driver, reg, &mut f) };
    if nt_success(st) {
        Ok(f)
    } else {
        Err(st)
    }
}

/// # Safety
/// `filter` is the registered filter; PASSIVE_LEVEL.
pub unsafe fn start_filtering(filter: PFLT_FILTER) -> NTSTATUS {
    // SAFETY: PASSIVE_LEVEL, registered filter.
    unsafe { FltStartFiltering(filter) }
}

/// # Safety
/// `filter` is the registered filter, unregistered once; PASSIVE_LEVEL, not from a callback.
pub unsafe fn unregister_filter(filter: PFLT_FILTER) {
    // SAFETY: PASSIVE_LEVEL, registered filter (unload).
    unsafe { FltUnregisterFilter(filter) }
}

/// # Safety
/// `filter` is the registered filter and `ctype`/`size` match its context registration; IRQL <= DISPATCH_LEVEL.
pub unsafe fn allocate_context(
    filter: PFLT_FILTER,
    ctype: u16,
    size: usize,
) -> Result<PFLT_CONTEXT, NTSTATUS> {
    let mut c: PFLT_CONTEXT = core::ptr::null_mut();
    // SAFETY: NonPagedPoolNx (512) at IRQL <= DISPATCH_LEVEL.
    let st = unsafe { FltAllocateContext(filter, ctype, size, 512, &mut c) };
    if nt_success(st) {
        Ok(c)
    } else {
        Err(st)
    }
}

/// # Safety
/// the caller owns one reference on `ctx`, which it gives up; IRQL <= DISPATCH_LEVEL.
pub unsafe fn release_context(ctx: PFLT_CONTEXT) {
    // SAFETY: IRQL <= DISPATCH_LEVEL; the caller owns one reference.
    unsafe { FltReleaseContext(ctx) }
}

/// # Safety
/// `instance` is one of this filter's instances and `ctx` a context of the instance type; IRQL <= APC_LEVEL.
pub unsafe fn set_instance_context(instance: PFLT_INSTANCE, ctx: PFLT_CONTEXT) -> NTSTATUS {
    // SAFETY: IRQL <= APC_LEVEL (InstanceSetup).
    unsafe {
        FltSetInstanceContext(
            instance,
            FLT_SET_CONTEXT_KEEP_IF_EXISTS,
            ctx,
            core::ptr::null_mut(),
        )
    }
}

/// # Safety
/// `instance` is one of this filter's instances; IRQL <= DISPATCH_LEVEL. The returned reference must be released.
pub unsafe fn get_instance_context(instance: PFLT_INSTANCE) -> Result<PFLT_CONTEXT, NTSTATUS> {
    let mut c: PFLT_CONTEXT = core::ptr::null_mut();
    // SAFETY: IRQL <= DISPATCH_LEVEL.
    let st = unsafe { FltGetInstanceContext(instance, &mut c) };
    if nt_success(st) {
        Ok(c)
    } else {
        Err(st)
    }
}

/// # Safety
/// `instance` and `fo` belong to the current (completed) create; `ctx` is a stream-handle context; IRQL <= APC_LEVEL.
pub unsafe fn set_stream_handle_context(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
    ctx: PFLT_CONTEXT,
) -> NTSTATUS {
    // SAFETY: IRQL <= APC_LEVEL (post-create runs at PASSIVE_LEVEL).
    unsafe {
        FltSetStreamHandleContext(
            instance,
            fo,
            FLT_SET_CONTEXT_KEEP_IF_EXISTS,
            ctx,
            core::ptr::null_mut(),
        )
    }
}

/// # Safety
/// `instance` and `fo` are the current operation's; IRQL <= DISPATCH_LEVEL. The returned reference must be released.
pub unsafe fn get_stream_handle_context(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
) -> Result<PFLT_CONTEXT, NTSTATUS> {
    let mut c: PFLT_CONTEXT = core::ptr::null_mut();
    // SAFETY: IRQL <= DISPATCH_LEVEL.
    let st = unsafe { FltGetStreamHandleContext(instance, fo, &mut c) };
    if nt_success(st) {
        Ok(c)
    } else {
        Err(st)
    }
}

/// # Safety
/// `data` is the current operation's callback data; IRQL <= APC_LEVEL. The returned block must be released with `release_file_name`.
pub unsafe fn get_file_name(
    data: *mut FLT_CALLBACK_DATA,
    flags: u32,
) -> Result<*mut FLT_FILE_NAME_INFORMATION, NTSTATUS> {
    let mut info: *mut FLT_FILE_NAME_INFORMATION = core::ptr::null_mut();
    // SAFETY: IRQL <= APC_LEVEL (create path only).
    let st = unsafe { FltGetFileNameInformation(data, flags, &mut info) };
    if !nt_success(st) {
        return Err(st);
    }
    // SAFETY: `info` is a valid name block we own.
    let st = unsafe { FltParseFileNameInformation(info) };
    if !nt_success(st) {
        // SAFETY: as above.
        unsafe { FltReleaseFileNameInformation(info) };
        return Err(st);
    }
    Ok(info)
}

/// # Safety
/// `info` came from `get_file_name` and is not used afterwards; IRQL <= APC_LEVEL.
pub unsafe fn release_file_name(info: *mut FLT_FILE_NAME_INFORMATION) {
    // SAFETY: IRQL <= APC_LEVEL; we own the reference.
    unsafe { FltReleaseFileNameInformation(info) }
}

/// FltGetDestinationFileNameInformation + FltParseFileNameInformation.
///
/// # Safety
/// `instance` and `fo` are the current rename/link request's; `root` and
/// `name` come from its buffer; IRQL <= APC_LEVEL. The returned block must
/// be released with `release_file_name`.
pub unsafe fn get_destination_name(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
    root: HANDLE,
    name: &[u16],
    flags: u32,
) -> Result<*mut FLT_FILE_NAME_INFORMATION, NTSTATUS> {
    let mut info: *mut FLT_FILE_NAME_INFORMATION = core::ptr::null_mut();
    // SAFETY: IRQL <= APC_LEVEL (set-information pre-op); `name` holds
    // `name.len()` UTF-16 units of the caller's buffer.
    let st = unsafe {
        FltGetDestinationFileNameInformation(
            instance,
            fo,
            root,
            name.as_ptr().cast_mut(),
            (name.len() * 2) as u32,
            flags,
            &mut info,
        )
    };
    if !nt_success(st) {
        return Err(st);
    }
    // SAFETY: `info` is a valid name block we own.
    let st = unsafe { FltParseFileNameInformation(info) };
    if !nt_success(st) {
        // SAFETY: as above.
        unsafe { FltReleaseFileNameInformation(info) };
        return Err(st);
    }
    Ok(info)
}

/// FltCancelFileOpen: PASSIVE_LEVEL, from post-create only.
///
/// # Safety
/// `instance` and `fo` are a successful create's, in its post-create,
/// before any handle exists; PASSIVE_LEVEL.
pub unsafe fn cancel_file_open(instance: PFLT_INSTANCE, fo: *const FILE_OBJECT) {
    // SAFETY: per the caller.
    unsafe { FltCancelFileOpen(instance, fo) }
}

/// The binary SID of a create's requester, copied into `out`: the
/// effective token (`SeQuerySubjectContextToken`) of
/// `SecurityContext->AccessState->SubjectSecurityContext`, queried with
/// `SeQueryInformationToken(TokenUser)`, whose paged-pool result is freed
/// with `ExFreePool`. PASSIVE_LEVEL.
///
/// # Safety
/// `data` is a create's callback data, in pre- or post-create; PASSIVE_LEVEL.
pub unsafe fn requester_sid(
    data: *const FLT_CALLBACK_DATA,
    out: &mut [u8],
) -> Result<usize, NTSTATUS> {
    // An ntoskrnl export since Windows 2000: imported (the Wine harness
    // stands in for Wine's stub of it).
    use windows_sys::Wdk::Storage::FileSystem::SeQueryInformationToken;
    use windows_sys::Win32::Security::{TokenUser, TOKEN_USER};
    // SAFETY: per the caller.
    let ctx = unsafe { super::create_subject_context(data) }.ok_or(STATUS_UNSUCCESSFUL)?;
    // SAFETY: the create's subject context is valid during the create.
    let token = unsafe { super::subject_context_token(ctx) };
    if token.is_null() {
        return Err(STATUS_UNSUCCESSFUL);
    }
    let mut p: *mut c_void = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; a token of the live subject context.
    let st = unsafe { SeQueryInformationToken(token, TokenUser, &mut p) };
    if !nt_success(st) || p.is_null() {
        return Err(st);
    }
    // SAFETY: SeQueryInformationToken(TokenUser) returns a TOKEN_USER whose
    // SID lies in the same allocation.
    let sid = unsafe { (*p.cast::<TOKEN_USER>()).User.Sid };
    // SAFETY: a valid SID per the above.
    let n = unsafe { super::copy_sid(sid.cast(), out) };
    // SAFETY: the buffer SeQueryInformationToken allocated, freed once.
    unsafe { ExFreePool(p) };
    n.ok_or(STATUS_BUFFER_OVERFLOW)
}

/// # Safety
/// `data` is the current operation's callback data; IRQL <= DISPATCH_LEVEL.
pub unsafe fn requestor_pid(data: *const FLT_CALLBACK_DATA) -> u64 {
    // SAFETY: IRQL <= DISPATCH_LEVEL.
    u64::from(unsafe { FltGetRequestorProcessId(data) })
}

/// # Safety
/// `volume` is valid (InstanceSetup); PASSIVE_LEVEL.
pub unsafe fn volume_dos_name(volume: PFLT_VOLUME, out: &mut [u16]) -> Result<usize, NTSTATUS> {
    let mut disk: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL (InstanceSetup); the volume is valid.
    let st = unsafe { FltGetDiskDeviceObject(volume, &mut disk) };
    if !nt_success(st) {
        return Err(st);
    }
    let mut name = UNICODE_STRING {
        Length: 0,
        MaximumLength: 0,
        Buffer: core::ptr::null_mut(),
    };
    // SAFETY: PASSIVE_LEVEL; `disk` is referenced.
    let st = unsafe { IoVolumeDeviceToDosName(disk.cast(), &mut name) };
    // SAFETY: drop the reference FltGetDiskDeviceObject took.
    unsafe { ObfDereferenceObject(disk.cast()) };
    if !nt_success(st) {
        return Err(st);
    }
    // SAFETY: the I/O manager allocated Length bytes of UTF-16.
    let units = unsafe { crate::names::units(&name) };
    let r = if units.len() <= out.len() {
        out[..units.len()].copy_from_slice(units);
        Ok(units.len())
    } else {
        Err(STATUS_BUFFER_OVERFLOW)
    };
    // SAFETY: IoVolumeDeviceToDosName's buffer is freed with ExFreePool.
    unsafe { ExFreePool(name.Buffer.cast()) };
    r
}

/// # Safety
/// PASSIVE_LEVEL, outside any filter callback.
pub unsafe fn resolve_symbolic_link(name: &[u16], out: &mut [u16]) -> Result<usize, NTSTATUS> {
    let us = unicode(name);
    let oa = attributes(&us);
    let mut h: HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL (flush thread); kernel handle.
    let st = unsafe { (zw().open_link)(&mut h, GENERIC_READ, &oa) };
    if !nt_success(st) {
        return Err(st);
    }
    let mut target = UNICODE_STRING {
        Length: 0,
        MaximumLength: (out.len().min(32767) * 2) as u16,
        Buffer: out.as_mut_ptr(),
    };
    // SAFETY: `target` describes `out`; PASSIVE_LEVEL.
    let st = unsafe { (zw().query_link)(h, &mut target, core::ptr::null_mut()) };
    // SAFETY: our kernel handle.
    unsafe { ObCloseHandle(h, KERNEL_MODE) };
    if nt_success(st) {
        Ok(usize::from(target.Length) / 2)
    } else {
        Err(st)
    }
}

/// # Safety
/// `filter` is the registered filter; PASSIVE_LEVEL. The returned instance is referenced: release it with `object_dereference`.
pub unsafe fn volume_instance_by_name(
    filter: PFLT_FILTER,
    device: &[u16],
) -> Result<PFLT_INSTANCE, NTSTATUS> {
    let us = unicode(device);
    let mut vol: PFLT_VOLUME = 0;
    // SAFETY: PASSIVE_LEVEL; registered filter.
    let st = unsafe { FltGetVolumeFromName(filter, &us, &mut vol) };
    if !nt_success(st) {
        return Err(st);
    }
    let mut inst: PFLT_INSTANCE = 0;
    // SAFETY: PASSIVE_LEVEL; a null instance name selects this filter's
    // highest instance on the volume.
    let st = unsafe { FltGetVolumeInstanceFromName(filter, vol, core::ptr::null(), &mut inst) };
    // SAFETY: release the volume reference FltGetVolumeFromName took.
    unsafe { FltObjectDereference(vol as *mut c_void) };
    if nt_success(st) {
        Ok(inst)
    } else {
        Err(st)
    }
}

/// # Safety
/// the caller owns one reference on `obj`; IRQL <= DISPATCH_LEVEL.
pub unsafe fn object_dereference(obj: *mut c_void) {
    // SAFETY: IRQL <= DISPATCH_LEVEL; the caller owns the reference.
    unsafe { FltObjectDereference(obj) }
}

/// # Safety
/// `filter` is registered and `instance` is its instance on the file's
/// volume; `root` is null (then `path` is a full NT path) or a directory
/// handle from `create_file` (then `path` is a name in it); PASSIVE_LEVEL,
/// never from a callback.
pub unsafe fn create_file(
    filter: PFLT_FILTER,
    instance: PFLT_INSTANCE,
    root: HANDLE,
    path: &[u16],
    mode: CreateMode,
    sd: &crate::sddl::SdBuf,
) -> Result<super::Opened, NTSTATUS> {
    let us = unicode(path);
    let mut oa = attributes(&us);
    oa.RootDirectory = root;
    // Applied only when the object is created (FILE_CREATED).
    oa.SecurityDescriptor = sd.0.as_ptr().cast();
    let mut handle: HANDLE = core::ptr::null_mut();
    let mut fo: *mut FILE_OBJECT = core::ptr::null_mut();
    // SAFETY: all-zero is a valid IO_STATUS_BLOCK.
    let mut iosb: IO_STATUS_BLOCK = unsafe { core::mem::zeroed() };
    let (access, share, disposition, options) = match mode {
        CreateMode::New | CreateMode::Existing => (
            FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | DELETE | SYNCHRONIZE,
            FILE_SHARE_READ,
            if mode == CreateMode::New {
                FILE_CREATE
            } else {
                FILE_OPEN
            },
            FILE_NON_DIRECTORY_FILE,
        ),
        // Kept open while the log is in it: without FILE_SHARE_DELETE
        // nobody can rename or delete the directory meanwhile.
        CreateMode::Directory => (
            FILE_LIST_DIRECTORY
                | FILE_ADD_FILE
                | FILE_TRAVERSE
                | FILE_READ_ATTRIBUTES
                | SYNCHRONIZE,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            FILE_OPEN_IF,
            FILE_DIRECTORY_FILE,
        ),
    };
    // SAFETY: PASSIVE_LEVEL on the flush thread; the instance is this
    // filter's on the file's volume, so the create goes below the filter;
    // the descriptor is 4-byte aligned (SdBuf) and self-relative.
    let st = unsafe {
        FltCreateFileEx2(
            filter,
            instance,
            &mut handle,
            &mut fo,
            access,
            &oa,
            &mut iosb,
            core::ptr::null(),
            0,
            share,
            disposition,
            options | FILE_OPEN_REPARSE_POINT | FILE_SYNCHRONOUS_IO_NONALERT,
            core::ptr::null(),
            0,
            0,
            core::ptr::null(),
        )
    };
    if nt_success(st) {
        Ok(super::Opened {
            file: OwnFile {
                handle,
                file_object: fo,
            },
            created: iosb.Information == FILE_CREATED,
        })
    } else {
        Err(st)
    }
}

/// The owner SID of an own file or directory, as a self-relative
/// descriptor holding only the owner (ZwQuerySecurityObject,
/// OWNER_SECURITY_INFORMATION) in `out`; returns its length.
/// `STATUS_NOT_IMPLEMENTED` if the routine could not be resolved.
///
/// # Safety
/// `handle` came from `create_file`; PASSIVE_LEVEL.
pub unsafe fn query_owner(handle: HANDLE, out: &mut crate::sddl::SdBuf) -> Result<usize, NTSTATUS> {
    type ZwQuerySecurityObject =
        unsafe extern "system" fn(HANDLE, u32, *mut c_void, u32, *mut u32) -> NTSTATUS;
    let p = LATER.query_security.load(Acquire);
    if p == 0 {
        return Err(STATUS_NOT_IMPLEMENTED);
    }
    // SAFETY: `init` stored the non-null address of this ntoskrnl routine,
    // whose prototype this is.
    let f = unsafe { core::mem::transmute::<usize, ZwQuerySecurityObject>(p) };
    let mut needed = 0u32;
    // SAFETY: PASSIVE_LEVEL; our kernel handle; an 8-byte aligned buffer of
    // its stated length.
    let st = unsafe {
        f(
            handle,
            OWNER_SECURITY_INFORMATION,
            out.0.as_mut_ptr().cast(),
            out.0.len() as u32,
            &mut needed,
        )
    };
    if nt_success(st) {
        Ok(needed as usize)
    } else {
        Err(st)
    }
}

const OWNER_SECURITY_INFORMATION: u32 = 0x1;
/// `STATUS_NOT_IMPLEMENTED`.
const STATUS_NOT_IMPLEMENTED: NTSTATUS = 0xC000_0002_u32 as i32;

/// `FileAttributes` of an own file (FltQueryInformationFile,
/// FileAttributeTagInformation).
///
/// # Safety
/// `fo` was opened by `create_file` with `instance`; PASSIVE_LEVEL.
pub unsafe fn query_attributes(
    instance: PFLT_INSTANCE,
    fo: *mut FILE_OBJECT,
) -> Result<u32, NTSTATUS> {
    // FILE_ATTRIBUTE_TAG_INFORMATION: FileAttributes, ReparseTag.
    let mut info = [0u32; 2];
    let mut got = 0u32;
    // SAFETY: PASSIVE_LEVEL; our own file object; an 8-byte, 4-aligned buffer.
    let st = unsafe {
        FltQueryInformationFile(
            instance,
            fo,
            info.as_mut_ptr().cast(),
            8,
            FILE_ATTRIBUTE_TAG_INFORMATION,
            &mut got,
        )
    };
    if nt_success(st) {
        Ok(info[0])
    } else {
        Err(st)
    }
}

/// # Safety
/// `fo` was opened by `create_file` with `instance`; PASSIVE_LEVEL, never from a callback.
pub unsafe fn write_file(
    instance: PFLT_INSTANCE,
    fo: *mut FILE_OBJECT,
    offset: u64,
    bytes: &[u8],
) -> Result<(), NTSTATUS> {
    let mut at = 0usize;
    while at < bytes.len() {
        let chunk = (bytes.len() - at).min(u32::MAX as usize & !0xFFF) as u32;
        let off = (offset + at as u64) as i64;
        let mut written = 0u32;
        // SAFETY: PASSIVE_LEVEL on the flush thread, our own file object;
        // synchronous (no completion routine).
        let st = unsafe {
            FltWriteFile(
                instance,
                fo,
                &off,
                chunk,
                bytes[at..].as_ptr().cast(),
                0,
                &mut written,
                None,
                core::ptr::null(),
            )
        };
        if !nt_success(st) {
            return Err(st);
        }
        if written == 0 {
            return Err(STATUS_UNSUCCESSFUL);
        }
        at += written as usize;
    }
    Ok(())
}

/// # Safety
/// as for `write_file`.
pub unsafe fn set_file_size(instance: PFLT_INSTANCE, fo: *mut FILE_OBJECT, len: u64) -> NTSTATUS {
    let eof: i64 = len as i64;
    // SAFETY: PASSIVE_LEVEL; FILE_END_OF_FILE_INFORMATION is one LARGE_INTEGER.
    unsafe {
        FltSetInformationFile(
            instance,
            fo,
            (&eof as *const i64).cast(),
            8,
            FileEndOfFileInformation,
        )
    }
}

/// # Safety
/// as for `write_file`.
pub unsafe fn flush_file(instance: PFLT_INSTANCE, fo: *mut FILE_OBJECT) -> NTSTATUS {
    let flush2 = LATER.flush2.load(Acquire);
    if flush2 != 0 {
        // SAFETY: `init` stored fltmgr's FltFlushBuffers2, whose prototype
        // nt::FltFlushBuffers2 is.
        let f = unsafe { core::mem::transmute::<usize, nt::FltFlushBuffers2>(flush2) };
        // SAFETY: PASSIVE_LEVEL; flush type 0 = flush data and metadata.
        return unsafe { f(instance, fo.cast(), 0, core::ptr::null()) };
    }
    // SAFETY: PASSIVE_LEVEL; the same flush as type 0 of FltFlushBuffers2.
    unsafe { FltFlushBuffers(instance, fo) }
}

/// `FILE_RENAME_INFORMATION` header size on x64: flags (4) + padding (4) +
/// RootDirectory (8) + FileNameLength (4).
const RENAME_HEADER: usize = crate::wdk::RENAME_FILE_NAME;

/// # Safety
/// as for `write_file`; `root` is the directory handle `new_name` is
/// relative to (a name in it).
pub unsafe fn rename_file(
    instance: PFLT_INSTANCE,
    fo: *mut FILE_OBJECT,
    root: HANDLE,
    new_name: &[u16],
) -> NTSTATUS {
    let bytes = new_name.len() * 2;
    let total = RENAME_HEADER + bytes;
    let buf = alloc_nonpaged(total + 8);
    if buf.is_null() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: `buf` holds total + 8 zeroed bytes: ReplaceIfExists = TRUE at
    // 0, RootDirectory at 8, FileNameLength at 16, the name at 20.
    unsafe {
        buf.write(1);
    }
    // SAFETY: as above, in bounds and 8-aligned (pool alignment 16).
    unsafe {
        buf.wrapping_add(crate::wdk::RENAME_ROOT_DIRECTORY)
            .cast::<HANDLE>()
            .write(root);
    }
    // SAFETY: as above, in bounds and 4-aligned.
    unsafe {
        buf.wrapping_add(crate::wdk::RENAME_FILE_NAME_LENGTH)
            .cast::<u32>()
            .write(bytes as u32);
    }
    // SAFETY: as above; the name fits at offset 20.
    unsafe {
        core::ptr::copy_nonoverlapping(
            new_name.as_ptr().cast::<u8>(),
            buf.wrapping_add(RENAME_HEADER),
            bytes,
        );
    }
    // SAFETY: PASSIVE_LEVEL; our own file object opened with DELETE access.
    let st = unsafe {
        FltSetInformationFile(
            instance,
            fo,
            buf.cast(),
            total as u32,
            FileRenameInformation,
        )
    };
    // SAFETY: allocated above.
    unsafe { free_pool(buf) };
    st
}

/// # Safety
/// `file` came from `create_file` and is not used afterwards; PASSIVE_LEVEL.
pub unsafe fn close_file(file: OwnFile) {
    // SAFETY: drop the reference FltCreateFileEx2 returned; PASSIVE_LEVEL.
    unsafe { ObfDereferenceObject(file.file_object.cast()) };
    // SAFETY: our kernel handle from FltCreateFileEx2.
    unsafe { FltClose(file.handle) };
}

/// # Safety
/// `e` points to a KEVENT in non-paged memory that outlives its use.
pub unsafe fn event_init(e: *mut KEVENT) {
    // SAFETY: the event is in non-paged memory owned by the caller.
    unsafe { KeInitializeEvent(e, SynchronizationEvent, false) }
}

/// # Safety
/// `e` was initialised by `event_init`; IRQL <= DISPATCH_LEVEL.
pub unsafe fn event_set(e: *mut KEVENT) {
    // SAFETY: IRQL <= DISPATCH_LEVEL with Wait = FALSE.
    unsafe { KeSetEvent(e, 0, false) };
}

/// # Safety
/// `e` was initialised by `event_init`; IRQL <= APC_LEVEL, never from a callback.
pub unsafe fn event_wait(e: *mut KEVENT, timeout_ms: u32) -> bool {
    let timeout: i64 = -(i64::from(timeout_ms) * 10_000);
    // SAFETY: PASSIVE_LEVEL (flush thread), bounded wait.
    let st = unsafe { KeWaitForSingleObject(e.cast(), Executive, KERNEL_MODE, false, &timeout) };
    st != STATUS_TIMEOUT && nt_success(st)
}

/// # Safety
/// `ctx` stays valid until the thread is joined; PASSIVE_LEVEL.
pub unsafe fn start_system_thread(
    routine: abi::ThreadStart,
    abandon: unsafe fn(*mut c_void),
    ctx: *mut c_void,
) -> Result<ThreadObject, NTSTATUS> {
    let mut h: HANDLE = core::ptr::null_mut();
    let oa = OBJECT_ATTRIBUTES {
        Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
        RootDirectory: core::ptr::null_mut(),
        ObjectName: core::ptr::null(),
        Attributes: OBJ_KERNEL_HANDLE as _,
        SecurityDescriptor: core::ptr::null(),
        SecurityQualityOfService: core::ptr::null(),
    };
    // SAFETY: PASSIVE_LEVEL (DriverEntry); a system thread in the System
    // process (null process handle).
    let st = unsafe {
        nt::PsCreateSystemThread(
            &mut h,
            0,
            &oa,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            routine,
            ctx,
        )
    };
    if !nt_success(st) {
        return Err(st);
    }
    let mut obj: *mut c_void = core::ptr::null_mut();
    // SAFETY: our kernel handle; kernel-mode access needs no type check.
    let st = unsafe {
        ObReferenceObjectByHandle(
            h,
            SYNCHRONIZE,
            0,
            KERNEL_MODE,
            &mut obj,
            core::ptr::null_mut(),
        )
    };
    if !nt_success(st) {
        // The thread runs but cannot be joined through an object: it must
        // not outlive `ctx`, which the failing caller frees. Tell it to
        // return and wait for it on the handle we still hold.
        // SAFETY: `ctx` is still valid; `abandon` makes the thread return.
        unsafe { abandon(ctx) };
        // SAFETY: PASSIVE_LEVEL; our kernel handle; no timeout (the thread
        // returns at once once abandoned).
        unsafe { (zw().wait)(h, 0, core::ptr::null()) };
        // SAFETY: our kernel handle.
        unsafe { ObCloseHandle(h, KERNEL_MODE) };
        return Err(st);
    }
    // SAFETY: the handle is no longer needed (the reference keeps the
    // thread object alive).
    unsafe { ObCloseHandle(h, KERNEL_MODE) };
    Ok(ThreadObject(obj))
}

/// # Safety
/// `t` came from `start_system_thread` and is joined once; PASSIVE_LEVEL.
pub unsafe fn join_system_thread(t: ThreadObject) {
    // SAFETY: PASSIVE_LEVEL (unload); unbounded wait for our own thread,
    // which exits after its final drain.
    unsafe { KeWaitForSingleObject(t.0, Executive, KERNEL_MODE, false, core::ptr::null()) };
    // SAFETY: the reference from start_system_thread.
    unsafe { ObfDereferenceObject(t.0) };
}

pub fn exit_system_thread() -> ! {
    // SAFETY: called on the flush thread itself at PASSIVE_LEVEL.
    unsafe { PsTerminateSystemThread(STATUS_SUCCESS) };
    // PsTerminateSystemThread does not return for a system thread.
    loop {
        core::hint::spin_loop();
    }
}

/// # Safety
/// `cb` stays valid until removed; register once, remove once; PASSIVE_LEVEL.
pub unsafe fn set_process_notify(cb: abi::ProcessNotify, remove: bool) -> NTSTATUS {
    // SAFETY: PASSIVE_LEVEL; requires an image linked with /INTEGRITYCHECK.
    unsafe { PsSetCreateProcessNotifyRoutineEx(Some(cb), remove) }
}

/// The control device's names as UTF-16, built once into buffers.
fn wide<const N: usize>(s: &str) -> ([u16; N], usize) {
    let mut b = [0u16; N];
    let n = crate::utf::utf8_to_utf16(s, &mut b).unwrap_or(0);
    (b, n)
}

/// # Safety
/// `driver` is this driver's object during DriverEntry; PASSIVE_LEVEL.
pub unsafe fn create_control_device(
    driver: *mut DRIVER_OBJECT,
    sd: &crate::sddl::SdBuf,
) -> Result<*mut DEVICE_OBJECT, NTSTATUS> {
    let (name, nn) = wide::<32>(fltpolicy_core::control::DEVICE_NT_NAME);
    let (link, ln) = wide::<32>(fltpolicy_core::control::DEVICE_DOS_LINK);
    let us_name = unicode(&name[..nn]);
    let us_link = unicode(&link[..ln]);
    let mut dev: *mut DEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL (DriverEntry).
    let st = unsafe {
        IoCreateDevice(
            driver,
            0,
            &us_name,
            fltpolicy_core::control::DEVICE_TYPE,
            FILE_DEVICE_SECURE_OPEN,
            false,
            &mut dev,
        )
    };
    if !nt_success(st) {
        return Err(st);
    }
    // SAFETY: `dev` was just created; PASSIVE_LEVEL.
    let st = unsafe { secure(dev, sd) };
    let st = if nt_success(st) {
        // SAFETY: PASSIVE_LEVEL.
        unsafe { IoCreateSymbolicLink(&us_link, &us_name) }
    } else {
        st
    };
    if !nt_success(st) {
        // SAFETY: undo IoCreateDevice.
        unsafe { IoDeleteDevice(dev) };
        return Err(st);
    }
    // SAFETY: our device; clearing DO_DEVICE_INITIALIZING lets opens in.
    unsafe { (*dev).Flags &= !DO_DEVICE_INITIALIZING };
    Ok(dev)
}

/// Applies the protected DACL to the device object.
///
/// # Safety
/// PASSIVE_LEVEL; `dev` is a device object this driver created.
unsafe fn secure(dev: *mut DEVICE_OBJECT, sd: &crate::sddl::SdBuf) -> NTSTATUS {
    let mut h: HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; kernel handle with WRITE_DAC on our device.
    let st = unsafe {
        ObOpenObjectByPointer(
            dev.cast(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null(),
            WRITE_DAC,
            0,
            KERNEL_MODE,
            &mut h,
        )
    };
    if !nt_success(st) {
        return st;
    }
    // SAFETY: a valid handle and a well-formed, 4-byte aligned
    // self-relative descriptor (checked byte for byte by the sddl tests).
    let st = unsafe { (zw().set_security)(h, DACL_SECURITY_INFORMATION, sd.0.as_ptr().cast()) };
    // SAFETY: our kernel handle.
    unsafe { ObCloseHandle(h, KERNEL_MODE) };
    st
}

/// # Safety
/// `dev` came from `create_control_device`, no request is running; PASSIVE_LEVEL.
pub unsafe fn delete_control_device(dev: *mut DEVICE_OBJECT) {
    let (link, ln) = wide::<32>(fltpolicy_core::control::DEVICE_DOS_LINK);
    let us_link = unicode(&link[..ln]);
    // SAFETY: PASSIVE_LEVEL (unload); link created in create_control_device.
    unsafe { IoDeleteSymbolicLink(&us_link) };
    // SAFETY: our device, no request running.
    unsafe { IoDeleteDevice(dev) };
}

/// # Safety
/// `irp` is an IRP dispatched to this driver, completed exactly once; IRQL <= DISPATCH_LEVEL.
pub unsafe fn complete_irp(irp: *mut IRP, status: NTSTATUS, info: usize) {
    // SAFETY: the IRP is being dispatched to us.
    let r = unsafe { &mut *irp };
    r.IoStatus.Anonymous.Status = status;
    r.IoStatus.Information = info;
    // SAFETY: IRQL <= DISPATCH_LEVEL; completed exactly once.
    unsafe { IofCompleteRequest(irp, 0) };
}

pub fn caller_is_admin() -> bool {
    // SAFETY: all-zero is a valid context to capture into.
    let mut ctx: SECURITY_SUBJECT_CONTEXT = unsafe { core::mem::zeroed() };
    // SAFETY: PASSIVE_LEVEL, in the requestor's thread (the control device
    // is opened directly, so its dispatch routines run in the caller's
    // context).
    unsafe { SeCaptureSubjectContext(&mut ctx) };
    // SAFETY: a context just captured (SeQuerySubjectContextToken).
    let token = unsafe { super::subject_context_token(&ctx) };
    // SAFETY: a token from the captured context; PASSIVE_LEVEL.
    let admin = unsafe { SeTokenIsAdmin(token) };
    // SAFETY: releases what SeCaptureSubjectContext captured.
    unsafe { SeReleaseSubjectContext(&mut ctx) };
    admin
}

/// Panics cannot unwind in the kernel: stop the machine with a code that
/// names this driver rather than continue with broken invariants.
pub fn bugcheck(line: u32) -> ! {
    // SAFETY: KeBugCheckEx never returns; any IRQL.
    unsafe { nt::KeBugCheckEx(0xF17E_0001, line as usize, 0, 0, 0) }
}

/// Runs `f` holding `lock` (a queued spin lock: raises to DISPATCH_LEVEL).
/// IRQL <= DISPATCH_LEVEL; `f` must be valid at DISPATCH_LEVEL.
pub fn with_spin_lock<R>(lock: &SpinLock, f: impl FnOnce() -> R) -> R {
    let mut handle = KLOCK_QUEUE_HANDLE::default();
    // SAFETY: IRQL <= DISPATCH_LEVEL (every caller); the lock is a
    // KSPIN_LOCK in non-paged memory used only with the in-stack queued
    // routines, and `handle` stays in place until the release below.
    unsafe { KeAcquireInStackQueuedSpinLock(lock.0.as_ptr(), &mut handle) };
    let r = f();
    // SAFETY: releases the acquisition above with its own handle; restores
    // the caller's IRQL.
    unsafe { KeReleaseInStackQueuedSpinLock(&handle) };
    r
}

/// `SystemProcessInformation`.
const SYSTEM_PROCESS_INFORMATION: u32 = 5;
/// Offsets in `SYSTEM_PROCESS_INFORMATION` on x64, checked against
/// mingw-w64's `winternl.h` (`offsetof` of `UniqueProcessId` and
/// `InheritedFromUniqueProcessId`) and Wine's (`UniqueProcessId`,
/// `ParentProcessId`, annotated 0x50/0x58): NextEntryOffset at 0.
const SPI_PID: usize = crate::wdk::SPI_UNIQUE_PROCESS_ID;
const SPI_PPID: usize = crate::wdk::SPI_INHERITED_FROM_UNIQUE_PROCESS_ID;
/// Bytes of an entry this code reads.
const SPI_READ: usize = 0x60;
const STATUS_INFO_LENGTH_MISMATCH: NTSTATUS = 0xC000_0004_u32 as i32;
/// A running process's exit status (STILL_ACTIVE).
const STATUS_PENDING: NTSTATUS = 0x103;
/// First snapshot buffer: ~150 processes with their threads fit in 256 KiB;
/// the query says how much it needs when that is too small.
const SNAPSHOT_FIRST: usize = 256 * 1024;
/// Largest snapshot buffer tried (a machine with ~10,000 processes).
const SNAPSHOT_MAX: usize = 64 * 1024 * 1024;

/// Lists the running processes: `found(pid, ppid, NT image path)` for each
/// (empty path when the kernel has none, e.g. System), then `exited(pid)`
/// for each whose exit status was set by the time `found` returned (its
/// exit notification may already have run). Returns how many it listed.
///
/// The snapshot is `ZwQuerySystemInformation(SystemProcessInformation)`
/// into a pool buffer (never the stack); each process is referenced with
/// `PsLookupProcessByProcessId` while it is looked at, so its pid cannot
/// be reused meanwhile.
///
/// # Safety
/// PASSIVE_LEVEL, outside any filter callback.
pub unsafe fn for_each_process(
    found: &mut dyn FnMut(u64, u64, &[u16]),
    exited: &mut dyn FnMut(u64),
) -> Result<usize, NTSTATUS> {
    let q = LATER.query_system_information.load(Acquire);
    if q == 0 {
        return Err(STATUS_PROCEDURE_NOT_FOUND);
    }
    // SAFETY: `init` stored ntoskrnl's ZwQuerySystemInformation, whose
    // prototype nt::ZwQuerySystemInformation is.
    let query = unsafe { core::mem::transmute::<usize, nt::ZwQuerySystemInformation>(q) };
    let mut size = SNAPSHOT_FIRST;
    let (buf, len) = loop {
        let buf = alloc_nonpaged(size);
        if buf.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let mut needed = 0u32;
        // SAFETY: PASSIVE_LEVEL; `buf` holds `size` bytes (< 4 GiB).
        let st = unsafe {
            query(
                SYSTEM_PROCESS_INFORMATION,
                buf.cast(),
                size as u32,
                &mut needed,
            )
        };
        if nt_success(st) {
            let len = if needed == 0 {
                size
            } else {
                (needed as usize).min(size)
            };
            break (buf, len);
        }
        // SAFETY: allocated above, not used afterwards.
        unsafe { free_pool(buf) };
        // Processes start between the two calls: ask for more than needed.
        let next = (needed as usize).max(size) + SNAPSHOT_FIRST;
        if st != STATUS_INFO_LENGTH_MISMATCH || next > SNAPSHOT_MAX {
            return Err(st);
        }
        size = next;
    };
    let mut listed = 0;
    let mut at = 0usize;
    while at.checked_add(SPI_READ).is_some_and(|end| end <= len) {
        let entry = buf.wrapping_add(at);
        // SAFETY: `at + SPI_READ <= len`, so each field lies inside the
        // bytes the query wrote; unaligned reads need no alignment.
        let next = unsafe { entry.cast::<u32>().read_unaligned() };
        // SAFETY: as above.
        let pid = unsafe { entry.wrapping_add(SPI_PID).cast::<usize>().read_unaligned() };
        // SAFETY: as above.
        let ppid = unsafe {
            entry
                .wrapping_add(SPI_PPID)
                .cast::<usize>()
                .read_unaligned()
        };
        if pid != 0 {
            // SAFETY: PASSIVE_LEVEL (the caller's contract).
            unsafe { one_process(pid, ppid, found, exited) };
            listed += 1;
        }
        if next == 0 {
            break;
        }
        at = at.saturating_add(next as usize);
    }
    // SAFETY: allocated in the loop above, not used afterwards.
    unsafe { free_pool(buf) };
    Ok(listed)
}

/// One process of [`for_each_process`].
///
/// # Safety
/// PASSIVE_LEVEL.
unsafe fn one_process(
    pid: usize,
    ppid: usize,
    found: &mut dyn FnMut(u64, u64, &[u16]),
    exited: &mut dyn FnMut(u64),
) {
    let mut process: windows_sys::Wdk::Foundation::PEPROCESS = 0;
    // SAFETY: IRQL <= APC_LEVEL; on success we own one reference.
    let st = unsafe { PsLookupProcessByProcessId(pid as HANDLE, &mut process) };
    if !nt_success(st) {
        return; // exited since the snapshot
    }
    let mut name: *mut UNICODE_STRING = core::ptr::null_mut();
    let locate = LATER.locate_image.load(Acquire);
    let st = if locate == 0 {
        STATUS_PROCEDURE_NOT_FOUND
    } else {
        // SAFETY: `init` stored ntoskrnl's SeLocateProcessImageName, whose
        // prototype nt::SeLocateProcessImageName is.
        let f = unsafe { core::mem::transmute::<usize, nt::SeLocateProcessImageName>(locate) };
        // SAFETY: PASSIVE_LEVEL; a referenced process; on success the
        // kernel allocates `name`, which we free with ExFreePool.
        unsafe { f(process, &mut name) }
    };
    let have = nt_success(st) && !name.is_null();
    let units = if have {
        // SAFETY: a valid UNICODE_STRING from the kernel until freed below.
        let us = unsafe { &*name };
        // SAFETY: as above: Buffer holds Length bytes of UTF-16.
        unsafe { crate::names::units(us) }
    } else {
        &[]
    };
    found(pid as u64, ppid as u64, units);
    if have {
        // SAFETY: SeLocateProcessImageName's buffer, freed once.
        unsafe { ExFreePool(name.cast()) };
    }
    // The exit status is set before the exit notification runs, and the
    // table's writers are serialised: if the notification removed this pid
    // before `found` inserted it, the status read here is already set.
    let exit_status = LATER.exit_status.load(Acquire);
    if exit_status != 0 {
        // SAFETY: `init` stored ntoskrnl's PsGetProcessExitStatus, whose
        // prototype nt::PsGetProcessExitStatus is.
        let f = unsafe { core::mem::transmute::<usize, nt::PsGetProcessExitStatus>(exit_status) };
        // SAFETY: IRQL <= APC_LEVEL; a referenced process.
        if unsafe { f(process) } != STATUS_PENDING {
            exited(pid as u64);
        }
    }
    // SAFETY: the reference PsLookupProcessByProcessId took.
    unsafe { ObfDereferenceObject(process as *const c_void) };
}
