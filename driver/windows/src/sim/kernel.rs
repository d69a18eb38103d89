//! The simulated kernel: the host implementation of [`crate::kernel`].
//!
//! Each function checks what Driver Verifier (or the documented contract)
//! would check before doing the work, and panics with a message starting
//! `DRIVER VERIFIER:` on a violation:
//!
//! | rule | check |
//! |---|---|
//! | IRQL ceilings | every function asserts the current simulated IRQL against its documented maximum |
//! | no I/O from callbacks (rule 2) | FltCreateFileEx2 / FltWriteFile / set-size / flush / rename / close panic inside a callback |
//! | own instance (rule 3) | the log must be created with this filter's instance on the file's volume |
//! | name queries (rule 6) | FltGetFileNameInformation above APC_LEVEL panics |
//! | waits (rule 1) | KeWaitForSingleObject / KeDelayExecutionThread above APC_LEVEL panic |
//! | pool | freeing an unknown block (double free) panics; leaks are reported at unload |
//! | contexts | reference counts are tracked; a release of a dead context panics; leaks at unload |
//! | IRPs | each IRP must be completed exactly once |
//! | spin locks | a queued spin lock is taken at ≤ DISPATCH_LEVEL and its section runs at DISPATCH_LEVEL, so every call inside is checked at that IRQL |
//! | running processes | the snapshot (ZwQuerySystemInformation) and SeLocateProcessImageName at PASSIVE_LEVEL outside callbacks, PsLookupProcessByProcessId ≤ APC_LEVEL; a process can exit between snapshot and lookup |

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, thread_local, vec};

use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IRP, KEVENT};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};

use super::{perturb, state, violation, with_state, CtxKey, OwnFileState, ThreadSlot, CURRENT};
use crate::kernel::status::*;
use crate::kernel::{
    CreateMode, Irql, OwnFile, ThreadObject, APC_LEVEL, DISPATCH_LEVEL, PASSIVE_LEVEL,
    STATUS_OBJECT_NAME_COLLISION,
};

/// Asserts the current IRQL is at most `max`.
pub(crate) fn check_irql(api: &str, max: Irql) {
    let irql = current_irql();
    if irql > max {
        violation(&format!(
            "{api} called at IRQL {irql}, above its limit {max}"
        ));
    }
}

/// Asserts we are not inside a pre/post callback (kernel rule 2).
fn check_not_in_callback(api: &str) {
    if CURRENT.with(|c| c.in_callback.get()) > 0 {
        violation(&format!(
            "{api} issued from inside a filter callback (synchronous I/O in the I/O path)"
        ));
    }
}

pub fn current_irql() -> Irql {
    CURRENT.with(|c| c.irql.get())
}

pub fn current_processor() -> usize {
    CURRENT.with(|c| c.cpu.get())
}

/// ExAllocatePool2(POOL_FLAG_NON_PAGED): IRQL <= DISPATCH_LEVEL. Zeroed.
pub fn alloc_nonpaged(size: usize) -> *mut u8 {
    check_irql("ExAllocatePool2(NonPaged)", DISPATCH_LEVEL);
    if with_state(|s| {
        s.fail_allocations_after
            .is_some_and(|n| s.allocations_made >= n)
    }) {
        return std::ptr::null_mut();
    }
    let layout = std::alloc::Layout::from_size_align(size.max(1), 16).expect("layout");
    // Special pool: own pages, a guard page after the block, freed pages
    // made inaccessible (see `special_pool`).
    let p = super::special_pool::alloc(size);
    if p.is_null() {
        return p;
    }
    with_state(|s| {
        s.allocations_made += 1;
        s.pool.insert(p as usize, layout);
    });
    p
}

/// Paged pool is never used by the driver; the simulation offers it only to
/// prove the IRQL check (PASSIVE/APC only).
pub fn alloc_paged(size: usize) -> *mut u8 {
    check_irql("ExAllocatePool2(Paged)", APC_LEVEL);
    alloc_nonpaged(size)
}

/// ExFreePoolWithTag: IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `p` came from `alloc_nonpaged` and is not used afterwards; IRQL <= DISPATCH_LEVEL.
pub unsafe fn free_pool(p: *mut u8) {
    check_irql("ExFreePoolWithTag", DISPATCH_LEVEL);
    let layout = with_state(|s| {
        // Drop events that lived inside the block.
        let layout = s.pool.remove(&(p as usize));
        if let Some(l) = layout {
            let lo = p as usize;
            s.events.retain(|&a, _| a < lo || a >= lo + l.size());
        }
        layout
    });
    let Some(layout) = layout else {
        violation(&format!(
            "ExFreePoolWithTag of {p:p}, which is not an allocated pool block (double free?)"
        ));
    };
    // Quarantine instead of freeing at once: the block's pages become
    // inaccessible, so a reader that still uses it (a use after free)
    // faults at once instead of reading memory quietly reused by the next
    // allocation.
    super::special_pool::retire(p, layout.size());
    let evicted = with_state(|s| {
        s.quarantine.push_back((p as usize, layout));
        if s.quarantine.len() > super::QUARANTINE {
            s.quarantine.pop_front()
        } else {
            None
        }
    });
    if let Some((old, layout)) = evicted {
        super::special_pool::release(old as *mut u8, layout.size());
    }
}

/// KeDelayExecutionThread: IRQL <= APC_LEVEL.
pub fn yield_passive() {
    check_irql("KeDelayExecutionThread", APC_LEVEL);
    perturb();
    std::thread::sleep(Duration::from_micros(200));
}

pub fn system_time_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// # Safety
/// `driver` is this driver's object during DriverEntry; PASSIVE_LEVEL.
pub unsafe fn register_filter(
    driver: *mut DRIVER_OBJECT,
    reg: &'static FLT_REGISTRATION,
) -> Result<PFLT_FILTER, NTSTATUS> {
    check_irql("FltRegisterFilter", PASSIVE_LEVEL);
    if super::failing(super::Step::RegisterFilter) {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    if reg.Size as usize != std::mem::size_of::<FLT_REGISTRATION>()
        || reg.Version as u32 != FLT_REGISTRATION_VERSION
    {
        return Err(STATUS_INVALID_PARAMETER_SIM);
    }
    with_state(|s| {
        if s.registration.is_some() {
            violation("FltRegisterFilter called twice");
        }
        s.registration = Some(reg as *const _ as usize);
        s.driver = driver as usize;
    });
    Ok(super::FILTER)
}

const STATUS_INVALID_PARAMETER_SIM: NTSTATUS = 0xC000_000D_u32 as i32;

/// # Safety
/// `filter` is the registered filter; PASSIVE_LEVEL.
pub unsafe fn start_filtering(filter: PFLT_FILTER) -> NTSTATUS {
    check_irql("FltStartFiltering", PASSIVE_LEVEL);
    if filter != super::FILTER || with_state(|s| s.registration.is_none()) {
        violation("FltStartFiltering without a registered filter");
    }
    if super::failing(super::Step::StartFiltering) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    with_state(|s| s.filtering = true);
    super::attach_all();
    STATUS_SUCCESS
}

/// # Safety
/// `filter` is the registered filter, unregistered once; PASSIVE_LEVEL, not from a callback.
pub unsafe fn unregister_filter(filter: PFLT_FILTER) {
    check_irql("FltUnregisterFilter", PASSIVE_LEVEL);
    check_not_in_callback("FltUnregisterFilter");
    if filter != super::FILTER {
        violation("FltUnregisterFilter with a foreign filter handle");
    }
    super::teardown_instances();
    with_state(|s| {
        s.registration = None;
        s.filtering = false;
    });
}

/// FltAllocateContext: IRQL <= APC_LEVEL (fltkernel.h documentation page).
///
/// # Safety
/// `filter` is the registered filter and `ctype`/`size` match its context registration; IRQL <= APC_LEVEL.
pub unsafe fn allocate_context(
    filter: PFLT_FILTER,
    ctype: u16,
    size: usize,
) -> Result<PFLT_CONTEXT, NTSTATUS> {
    check_irql("FltAllocateContext(NonPagedPoolNx)", APC_LEVEL);
    if filter != super::FILTER {
        violation("FltAllocateContext with a foreign filter handle");
    }
    if !super::context_registered(ctype, size) {
        violation(&format!(
            "FltAllocateContext of type {ctype:#x} size {size} not matching the registration"
        ));
    }
    let layout = std::alloc::Layout::from_size_align(size.max(1), 16).expect("layout");
    // SAFETY: non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    with_state(|s| {
        s.contexts.insert(
            p as usize,
            super::CtxInfo {
                ctype,
                layout,
                refs: 1,
            },
        )
    });
    Ok(p.cast())
}

/// # Safety
/// the caller owns one reference on `ctx`, which it gives up; IRQL <= DISPATCH_LEVEL.
pub unsafe fn release_context(ctx: PFLT_CONTEXT) {
    check_irql("FltReleaseContext", DISPATCH_LEVEL);
    super::context_release(ctx as usize, "FltReleaseContext");
}

/// # Safety
/// `instance` is one of this filter's instances and `ctx` a context of the instance type; IRQL <= APC_LEVEL.
pub unsafe fn set_instance_context(instance: PFLT_INSTANCE, ctx: PFLT_CONTEXT) -> NTSTATUS {
    check_irql("FltSetInstanceContext", APC_LEVEL);
    super::context_attach(
        CtxKey::Instance(instance),
        ctx as usize,
        FLT_INSTANCE_CONTEXT as u16,
    )
}

/// FltGetInstanceContext: IRQL <= APC_LEVEL (documentation page).
///
/// # Safety
/// `instance` is one of this filter's instances; IRQL <= APC_LEVEL. The returned reference must be released.
pub unsafe fn get_instance_context(instance: PFLT_INSTANCE) -> Result<PFLT_CONTEXT, NTSTATUS> {
    check_irql("FltGetInstanceContext", APC_LEVEL);
    super::context_get(CtxKey::Instance(instance)).map(|p| p as PFLT_CONTEXT)
}

/// # Safety
/// `instance` and `fo` belong to the current (completed) create; `ctx` is a stream-handle context; IRQL <= APC_LEVEL.
pub unsafe fn set_stream_handle_context(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
    ctx: PFLT_CONTEXT,
) -> NTSTATUS {
    check_irql("FltSetStreamHandleContext", APC_LEVEL);
    super::context_attach(
        CtxKey::StreamHandle(instance, fo as usize),
        ctx as usize,
        FLT_STREAMHANDLE_CONTEXT as u16,
    )
}

/// FltGetStreamHandleContext: IRQL <= APC_LEVEL (documentation page; so
/// are FltGetStreamContext and FltGetInstanceContext). A post-operation
/// callback, which may run at DISPATCH_LEVEL, must not call it: it gets
/// the reference its pre-operation took.
///
/// # Safety
/// `instance` and `fo` are the current operation's; IRQL <= APC_LEVEL. The returned reference must be released.
pub unsafe fn get_stream_handle_context(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
) -> Result<PFLT_CONTEXT, NTSTATUS> {
    check_irql("FltGetStreamHandleContext", APC_LEVEL);
    super::context_get(CtxKey::StreamHandle(instance, fo as usize)).map(|p| p as PFLT_CONTEXT)
}

/// FltGetFileNameInformation + FltParseFileNameInformation: IRQL <= APC_LEVEL.
///
/// # Safety
/// `data` is the current operation's callback data; IRQL <= APC_LEVEL. The returned block must be released with `release_file_name`.
pub unsafe fn get_file_name(
    data: *mut FLT_CALLBACK_DATA,
    flags: u32,
) -> Result<*mut FLT_FILE_NAME_INFORMATION, NTSTATUS> {
    check_irql("FltGetFileNameInformation", APC_LEVEL);
    super::name_for(data as usize, flags)
}

/// FltGetDestinationFileNameInformation + FltParseFileNameInformation:
/// IRQL <= APC_LEVEL. Only during a rename or link request on `fo`.
///
/// # Safety
/// As for the real routine; IRQL <= APC_LEVEL.
pub unsafe fn get_destination_name(
    instance: PFLT_INSTANCE,
    fo: *const FILE_OBJECT,
    root: HANDLE,
    name: &[u16],
    flags: u32,
) -> Result<*mut FLT_FILE_NAME_INFORMATION, NTSTATUS> {
    check_irql("FltGetDestinationFileNameInformation", APC_LEVEL);
    super::destination_name_for(instance, fo as usize, root as usize, name, flags)
}

/// FltCancelFileOpen: PASSIVE_LEVEL, only from the post-create callback of
/// the create that opened `fo`, and only after it succeeded.
///
/// # Safety
/// As for the real routine.
pub unsafe fn cancel_file_open(instance: PFLT_INSTANCE, fo: *const FILE_OBJECT) {
    check_irql("FltCancelFileOpen", PASSIVE_LEVEL);
    super::cancel_open(instance, fo as usize);
}

/// The requester's SID: `SeQuerySubjectContextToken` (the shared macro
/// implementation) on the create's `AccessState->SubjectSecurityContext`,
/// then `SeQueryInformationToken(TokenUser)`: PASSIVE_LEVEL. The
/// simulation's tokens are the ones [`super::Sim::set_user`] registered.
///
/// # Safety
/// `data` is a create's callback data; PASSIVE_LEVEL.
pub unsafe fn requester_sid(
    data: *const FLT_CALLBACK_DATA,
    out: &mut [u8],
) -> Result<usize, NTSTATUS> {
    check_irql("SeQueryInformationToken", PASSIVE_LEVEL);
    if with_state(|s| s.ops.get(&(data as usize)).is_none_or(|o| o.major != 0)) {
        violation("requester SID queried outside a create");
    }
    // SAFETY: per the caller.
    let ctx = unsafe { crate::kernel::create_subject_context(data) }.ok_or(STATUS_UNSUCCESSFUL)?;
    // SAFETY: the simulation's ACCESS_STATE lives for the create.
    let token = unsafe { crate::kernel::subject_context_token(ctx) } as usize;
    let sid = with_state(|s| s.tokens.get(&token).cloned()).ok_or(STATUS_UNSUCCESSFUL)?;
    // SAFETY: `sid` is a well-formed binary SID.
    unsafe { crate::kernel::copy_sid(sid.as_ptr(), out) }.ok_or(STATUS_BUFFER_OVERFLOW)
}

/// # Safety
/// `info` came from `get_file_name` and is not used afterwards; IRQL <= APC_LEVEL.
pub unsafe fn release_file_name(info: *mut FLT_FILE_NAME_INFORMATION) {
    check_irql("FltReleaseFileNameInformation", APC_LEVEL);
    if with_state(|s| s.names.remove(&(info as usize))).is_none() {
        violation("FltReleaseFileNameInformation of a name block not handed out (double release?)");
    }
}

/// FltGetRequestorProcessId: IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `data` is the current operation's callback data; IRQL <= DISPATCH_LEVEL.
pub unsafe fn requestor_pid(data: *const FLT_CALLBACK_DATA) -> u64 {
    check_irql("FltGetRequestorProcessId", DISPATCH_LEVEL);
    with_state(|s| s.ops.get(&(data as usize)).map(|o| o.pid))
        .unwrap_or_else(|| violation("requestor of an unknown callback data"))
}

/// FltGetDiskDeviceObject + IoVolumeDeviceToDosName: PASSIVE_LEVEL.
///
/// # Safety
/// `volume` is valid (InstanceSetup); PASSIVE_LEVEL.
pub unsafe fn volume_dos_name(volume: PFLT_VOLUME, out: &mut [u16]) -> Result<usize, NTSTATUS> {
    check_irql("IoVolumeDeviceToDosName", PASSIVE_LEVEL);
    let dos = with_state(|s| {
        s.volumes
            .iter()
            .find(|v| v.handle == volume)
            .map(|v| v.dos.clone())
    })
    .unwrap_or_else(|| violation("IoVolumeDeviceToDosName of an unknown volume"));
    let Some(dos) = dos else {
        return Err(STATUS_NOT_FOUND);
    };
    let w: Vec<u16> = dos.encode_utf16().collect();
    if w.len() > out.len() {
        return Err(STATUS_BUFFER_OVERFLOW);
    }
    out[..w.len()].copy_from_slice(&w);
    Ok(w.len())
}

/// ZwOpenSymbolicLinkObject + ZwQuerySymbolicLinkObject: PASSIVE_LEVEL.
///
/// # Safety
/// PASSIVE_LEVEL, outside any filter callback.
pub unsafe fn resolve_symbolic_link(name: &[u16], out: &mut [u16]) -> Result<usize, NTSTATUS> {
    check_irql("ZwOpenSymbolicLinkObject", PASSIVE_LEVEL);
    let name = String::from_utf16_lossy(name);
    let target = with_state(|s| {
        s.volumes
            .iter()
            .find(|v| {
                v.dos
                    .as_deref()
                    .is_some_and(|d| name.eq_ignore_ascii_case(&format!(r"\??\{d}")))
            })
            .map(|v| v.device.clone())
    })
    .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
    let w: Vec<u16> = target.encode_utf16().collect();
    if w.len() > out.len() {
        return Err(STATUS_BUFFER_OVERFLOW);
    }
    out[..w.len()].copy_from_slice(&w);
    Ok(w.len())
}

/// FltGetVolumeFromName + FltGetVolumeInstanceFromName (+ dereferencing
/// the volume): PASSIVE_LEVEL. The returned instance is referenced.
///
/// # Safety
/// `filter` is the registered filter; PASSIVE_LEVEL. The returned instance is referenced: release it with `object_dereference`.
pub unsafe fn volume_instance_by_name(
    filter: PFLT_FILTER,
    device: &[u16],
) -> Result<PFLT_INSTANCE, NTSTATUS> {
    check_irql("FltGetVolumeFromName", PASSIVE_LEVEL);
    if filter != super::FILTER {
        violation("FltGetVolumeFromName with a foreign filter handle");
    }
    let device = String::from_utf16_lossy(device);
    with_state(|s| {
        let v = s
            .volumes
            .iter()
            .find(|v| v.device.eq_ignore_ascii_case(&device))
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        // STATUS_FLT_INSTANCE_NOT_FOUND
        let inst = v.instance.ok_or(0xC01C_0011_u32 as i32)?;
        if s.tearing.contains(&inst) {
            // FltMgr refuses new references once teardown started.
            return Err(crate::flush::STATUS_FLT_DELETING_OBJECT);
        }
        *s.object_refs.entry(inst).or_insert(0) += 1;
        Ok(inst)
    })
}

/// FltObjectDereference: IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// the caller owns one reference on `obj`; IRQL <= DISPATCH_LEVEL.
pub unsafe fn object_dereference(obj: *mut c_void) {
    check_irql("FltObjectDereference", DISPATCH_LEVEL);
    with_state(|s| match s.object_refs.get_mut(&(obj as isize)) {
        Some(n) if *n > 0 => *n -= 1,
        _ => violation("FltObjectDereference of an object without a reference"),
    });
}

/// FltCreateFileEx2 with this filter's instance: PASSIVE_LEVEL, never from
/// a callback, and the instance must be ours on the file's volume.
///
/// Models what the driver relies on: FILE_OPEN_REPARSE_POINT (a junction
/// as the *last* component is opened itself; one earlier in a full path is
/// followed, as NTFS does), opens relative to a directory handle, the
/// dispositions, the kind of object (file or directory), and the security
/// descriptor of what is created (read like the object manager would, see
/// `acl`; it must be 4-byte aligned).
///
/// # Safety
/// `filter` is registered and `instance` is its instance on the file's volume; PASSIVE_LEVEL, never from a callback.
pub unsafe fn create_file(
    filter: PFLT_FILTER,
    instance: PFLT_INSTANCE,
    root: HANDLE,
    path: &[u16],
    mode: CreateMode,
    sd: &crate::sddl::SdBuf,
) -> Result<crate::kernel::Opened, NTSTATUS> {
    check_irql("FltCreateFileEx2", PASSIVE_LEVEL);
    check_not_in_callback("FltCreateFileEx2");
    if filter != super::FILTER {
        violation("FltCreateFileEx2 with a foreign filter handle");
    }
    // SAFETY: the driver passes a descriptor it built.
    let security = unsafe { super::acl::read(sd.0.as_ptr()) }
        .unwrap_or_else(|e| violation(&format!("FltCreateFileEx2: {e}")));
    let name = String::from_utf16_lossy(path);
    let key = if root.is_null() {
        let device_path = super::nt_to_device(&name).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        super::follow_reparse(&device_path.to_uppercase())
    } else {
        if name.contains('\\') {
            violation("FltCreateFileEx2 relative to a directory with a name that has a backslash");
        }
        let dir = with_state(|s| {
            s.own_files
                .values()
                .find(|o| o.handle == root as usize && o.dir)
                .map(|o| o.key.clone())
        })
        .unwrap_or_else(|| {
            violation(
                "FltCreateFileEx2 relative to a handle that is not an open directory of the filter",
            )
        });
        format!("{}\\{}", dir.trim_end_matches('\\'), name.to_uppercase())
    };
    with_state(|s| {
        let vol = s
            .volumes
            .iter()
            .find(|v| key.starts_with(&v.device.to_uppercase()))
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        if vol.instance != Some(instance) {
            violation("FltCreateFileEx2 for a file on another volume than the instance passed (I/O would enter the stack at the top)");
        }
        let is_file = s.files.contains_key(&key);
        let is_dir = s.dirs.contains_key(&key);
        let mut created = false;
        match mode {
            CreateMode::New if is_file || is_dir => return Err(STATUS_OBJECT_NAME_COLLISION),
            CreateMode::New => {
                s.files.insert(key.clone(), Vec::new());
                s.security.insert(key.clone(), security);
                created = true;
            }
            CreateMode::Existing if is_dir => return Err(crate::flush::STATUS_FILE_IS_A_DIRECTORY),
            CreateMode::Existing if !is_file => return Err(STATUS_OBJECT_NAME_NOT_FOUND),
            CreateMode::Existing => {}
            CreateMode::Directory if is_file => return Err(crate::flush::STATUS_NOT_A_DIRECTORY),
            CreateMode::Directory if is_dir => {}
            CreateMode::Directory => {
                // Created by a SYSTEM thread: the token's default owner.
                s.dirs.insert(
                    key.clone(),
                    super::DirNode::created_by(super::acl::ADMINISTRATORS),
                );
                s.security.insert(key.clone(), security);
                created = true;
            }
        }
        let fo = Box::into_raw(Box::<FILE_OBJECT>::default());
        s.next_handle += 4;
        let handle = s.next_handle as HANDLE;
        s.own_files.insert(
            fo as usize,
            OwnFileState {
                key,
                instance,
                handle: handle as usize,
                dir: mode == CreateMode::Directory,
            },
        );
        Ok(crate::kernel::Opened {
            file: OwnFile {
                handle,
                file_object: fo,
            },
            created,
        })
    })
}

/// ZwQuerySecurityObject(OWNER_SECURITY_INFORMATION) on an own file or
/// directory: PASSIVE_LEVEL. A self-relative descriptor with only the owner.
///
/// # Safety
/// `handle` came from `create_file`; PASSIVE_LEVEL.
pub unsafe fn query_owner(handle: HANDLE, out: &mut crate::sddl::SdBuf) -> Result<usize, NTSTATUS> {
    check_irql("ZwQuerySecurityObject", PASSIVE_LEVEL);
    check_not_in_callback("ZwQuerySecurityObject");
    let owner = with_state(|s| {
        let Some(of) = s.own_files.values().find(|o| o.handle == handle as usize) else {
            violation("ZwQuerySecurityObject on a handle the filter does not own");
        };
        s.dirs
            .get(&of.key)
            .map(|d| d.owner.clone())
            .unwrap_or_else(|| super::acl::ADMINISTRATORS.to_string())
    });
    let bytes = super::acl::owner_only(&owner);
    if bytes.len() > out.0.len() {
        return Err(STATUS_BUFFER_TOO_SMALL_SIM);
    }
    out.0[..bytes.len()].copy_from_slice(&bytes);
    Ok(bytes.len())
}

const STATUS_BUFFER_TOO_SMALL_SIM: NTSTATUS = 0xC000_0023_u32 as i32;

/// FltQueryInformationFile(FileAttributeTagInformation): PASSIVE_LEVEL.
/// FILE_ATTRIBUTE_DIRECTORY (0x10), FILE_ATTRIBUTE_REPARSE_POINT (0x400),
/// FILE_ATTRIBUTE_NORMAL (0x80).
///
/// # Safety
/// `fo` was opened by `create_file` with `instance`; PASSIVE_LEVEL.
pub unsafe fn query_attributes(
    instance: PFLT_INSTANCE,
    fo: *mut FILE_OBJECT,
) -> Result<u32, NTSTATUS> {
    own_file("FltQueryInformationFile", instance, fo, |s, key| {
        if let Some(d) = s.dirs.get(&key) {
            Ok(0x10 | if d.reparse_to.is_some() { 0x400 } else { 0 })
        } else {
            Ok(0x80)
        }
    })
}

fn own_file<R>(
    api: &str,
    instance: PFLT_INSTANCE,
    fo: *mut FILE_OBJECT,
    f: impl FnOnce(&mut super::State, String) -> R,
) -> R {
    check_irql(api, PASSIVE_LEVEL);
    check_not_in_callback(api);
    with_state(|s| {
        let Some(of) = s.own_files.get(&(fo as usize)) else {
            violation(&format!("{api} on a file object the filter did not open"));
        };
        if of.instance != instance {
            violation(&format!(
                "{api} with an instance other than the one the file was opened with"
            ));
        }
        let key = of.key.clone();
        f(s, key)
    })
}

/// FltWriteFile (synchronous): PASSIVE_LEVEL, never from a callback.
///
/// # Safety
/// `fo` was opened by `create_file` with `instance`; PASSIVE_LEVEL, never from a callback.
pub unsafe fn write_file(
    instance: PFLT_INSTANCE,
    fo: *mut FILE_OBJECT,
    offset: u64,
    bytes: &[u8],
) -> Result<(), NTSTATUS> {
    // A disk takes time: the latency a test set (outside the state lock),
    // during which other CPUs keep producing (the test's hook).
    let latency = with_state(|s| s.write_latency);
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
    super::run_log_write_hook();
    own_file("FltWriteFile", instance, fo, |s, key| {
        if s.dirs.contains_key(&key) {
            violation("FltWriteFile on a directory");
        }
        if s.fail_writes {
            return Err(0xC000_007F_u32 as i32); // STATUS_DISK_FULL
        }
        let f = s.files.entry(key).or_default();
        let end = offset as usize + bytes.len();
        if f.len() < end {
            f.resize(end, 0);
        }
        f[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    })
}

/// FltSetInformationFile(FileEndOfFileInformation): PASSIVE_LEVEL.
///
/// # Safety
/// as for `write_file`.
pub unsafe fn set_file_size(instance: PFLT_INSTANCE, fo: *mut FILE_OBJECT, len: u64) -> NTSTATUS {
    own_file("FltSetInformationFile", instance, fo, |s, key| {
        s.files.entry(key).or_default().resize(len as usize, 0);
        STATUS_SUCCESS
    })
}

/// FltFlushBuffers2: PASSIVE_LEVEL.
///
/// # Safety
/// as for `write_file`.
pub unsafe fn flush_file(instance: PFLT_INSTANCE, fo: *mut FILE_OBJECT) -> NTSTATUS {
    own_file("FltFlushBuffers2", instance, fo, |_, _| STATUS_SUCCESS)
}

/// FltSetInformationFile(FileRenameInformation) with a RootDirectory:
/// PASSIVE_LEVEL. The new name is relative to the directory handle `root`.
///
/// # Safety
/// as for `write_file`; `root` is the directory handle `new_name` is relative to.
pub unsafe fn rename_file(
    instance: PFLT_INSTANCE,
    fo: *mut FILE_OBJECT,
    root: HANDLE,
    new_name: &[u16],
) -> NTSTATUS {
    let new_name = String::from_utf16_lossy(new_name);
    own_file("FltSetInformationFile(Rename)", instance, fo, |s, key| {
        let Some(dir) = s
            .own_files
            .values()
            .find(|o| o.handle == root as usize && o.dir)
            .map(|o| o.key.clone())
        else {
            violation("rename relative to a handle that is not an open directory of the filter");
        };
        let new_key = format!(
            "{}\\{}",
            dir.trim_end_matches('\\'),
            new_name.to_uppercase()
        );
        if let Some(data) = s.files.remove(&key) {
            s.files.insert(new_key.clone(), data);
        }
        if let Some(sec) = s.security.remove(&key) {
            s.security.insert(new_key.clone(), sec);
        }
        if let Some(of) = s.own_files.get_mut(&(fo as usize)) {
            of.key = new_key;
        }
        STATUS_SUCCESS
    })
}

/// ObDereferenceObject(FileObject) + FltClose(Handle): PASSIVE_LEVEL.
///
/// # Safety
/// `file` came from `create_file` and is not used afterwards; PASSIVE_LEVEL.
pub unsafe fn close_file(file: OwnFile) {
    check_irql("FltClose", PASSIVE_LEVEL);
    check_not_in_callback("FltClose");
    let of = with_state(|s| s.own_files.remove(&(file.file_object as usize)));
    match of {
        Some(of) if of.handle == file.handle as usize => {
            // SAFETY: created by Box::into_raw in create_file.
            drop(unsafe { Box::from_raw(file.file_object) });
        }
        _ => violation("FltClose of a handle/file object pair the filter does not own"),
    }
}

fn event_of(e: *mut KEVENT) -> Arc<(Mutex<bool>, Condvar)> {
    with_state(|s| s.events.get(&(e as usize)).cloned())
        .unwrap_or_else(|| violation("use of an uninitialised KEVENT"))
}

/// KeInitializeEvent(SynchronizationEvent): any IRQL.
///
/// # Safety
/// `e` points to a KEVENT in non-paged memory that outlives its use.
pub unsafe fn event_init(e: *mut KEVENT) {
    if !with_state(|s| {
        s.pool
            .iter()
            .any(|(&a, l)| (e as usize) >= a && (e as usize) < a + l.size())
    }) {
        violation("KEVENT not in non-paged pool");
    }
    with_state(|s| {
        s.events
            .insert(e as usize, Arc::new((Mutex::new(false), Condvar::new())))
    });
}

/// KeSetEvent(Wait = FALSE): IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `e` was initialised by `event_init`; IRQL <= DISPATCH_LEVEL.
pub unsafe fn event_set(e: *mut KEVENT) {
    check_irql("KeSetEvent", DISPATCH_LEVEL);
    let ev = event_of(e);
    *ev.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
    ev.1.notify_one();
}

/// KeWaitForSingleObject with a timeout: IRQL <= APC_LEVEL. Returns true
/// when signalled (a synchronization event auto-resets).
///
/// # Safety
/// `e` was initialised by `event_init`; IRQL <= APC_LEVEL, never from a callback.
pub unsafe fn event_wait(e: *mut KEVENT, timeout_ms: u32) -> bool {
    check_irql("KeWaitForSingleObject", APC_LEVEL);
    check_not_in_callback("KeWaitForSingleObject");
    let ev = event_of(e);
    let g = ev.0.lock().unwrap_or_else(|p| p.into_inner());
    let (mut g, _) =
        ev.1.wait_timeout_while(g, Duration::from_millis(timeout_ms.into()), |set| !*set)
            .unwrap_or_else(|p| p.into_inner());
    std::mem::replace(&mut *g, false)
}

struct ThreadExit;

/// PsCreateSystemThread + ObReferenceObjectByHandle + ZwClose: PASSIVE_LEVEL.
///
/// # Safety
/// `ctx` stays valid until the thread is joined; PASSIVE_LEVEL.
pub unsafe fn start_system_thread(
    routine: crate::abi::ThreadStart,
    abandon: unsafe fn(*mut c_void),
    ctx: *mut c_void,
) -> Result<ThreadObject, NTSTATUS> {
    check_irql("PsCreateSystemThread", PASSIVE_LEVEL);
    if super::failing(super::Step::SystemThread) {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let ctx = ctx as usize;
    let panic_slot: Arc<Mutex<Option<String>>> = Arc::default();
    let slot = panic_slot.clone();
    let cpu = with_state(|s| {
        s.next_cpu += 1;
        s.next_cpu
    });
    let handle = std::thread::Builder::new()
        .name("fltpolicy-flush".into())
        .spawn(move || {
            CURRENT.with(|c| {
                c.irql.set(PASSIVE_LEVEL);
                c.in_callback.set(0);
                c.cpu.set(cpu);
            });
            // SAFETY: the routine and context come from the driver, which
            // guarantees the context outlives the thread.
            let r = std::panic::catch_unwind(|| unsafe { routine(ctx as *mut c_void) });
            if let Err(e) = r {
                if e.downcast_ref::<ThreadExit>().is_none() {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "system thread panicked".into());
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
                }
            }
        })
        .map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    if super::failing(super::Step::ThreadReference) {
        // ObReferenceObjectByHandle failed after PsCreateSystemThread
        // succeeded: the thread runs, and the caller is about to free its
        // context. The driver's `abandon` must make it return; the real
        // layer then waits on the thread handle. A thread still running
        // after that would run on freed memory.
        // SAFETY: the context is still valid (the caller has not failed yet).
        unsafe { abandon(ctx as *mut c_void) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !handle.is_finished() {
            if std::time::Instant::now() > deadline {
                violation("a system thread whose ObReferenceObjectByHandle failed is still running 10 s after it was abandoned: it would run on the state the failing DriverEntry frees");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = handle.join();
        if let Some(msg) = panic_slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            std::panic::panic_any(msg);
        }
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let id = with_state(|s| {
        s.next_handle += 4;
        s.threads.insert(
            s.next_handle,
            ThreadSlot {
                handle,
                panic: panic_slot,
            },
        );
        s.next_handle
    });
    Ok(ThreadObject(id as *mut c_void))
}

/// KeWaitForSingleObject(thread) + ObDereferenceObject: PASSIVE_LEVEL.
///
/// # Safety
/// `t` came from `start_system_thread` and is joined once; PASSIVE_LEVEL.
pub unsafe fn join_system_thread(t: ThreadObject) {
    check_irql("KeWaitForSingleObject(Thread)", PASSIVE_LEVEL);
    let slot = with_state(|s| s.threads.remove(&(t.0 as usize)))
        .unwrap_or_else(|| violation("wait on an unknown thread object"));
    let _ = slot.handle.join();
    let msg = slot.panic.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(msg) = msg {
        std::panic::panic_any(msg);
    }
}

/// PsTerminateSystemThread: PASSIVE_LEVEL, on the thread itself.
pub fn exit_system_thread() -> ! {
    check_irql("PsTerminateSystemThread", PASSIVE_LEVEL);
    std::panic::resume_unwind(Box::new(ThreadExit))
}

/// PsSetCreateProcessNotifyRoutineEx: PASSIVE_LEVEL.
///
/// # Safety
/// `cb` stays valid until removed; register once, remove once; PASSIVE_LEVEL.
pub unsafe fn set_process_notify(cb: crate::abi::ProcessNotify, remove: bool) -> NTSTATUS {
    check_irql("PsSetCreateProcessNotifyRoutineEx", PASSIVE_LEVEL);
    with_state(|s| {
        if remove {
            if s.process_notify.take().is_none() {
                violation("removing a process notify routine that is not registered");
            }
        } else {
            if s.process_notify.is_some() {
                violation("process notify routine registered twice");
            }
            if s.fail_process_notify {
                // STATUS_ACCESS_DENIED: an image linked without /INTEGRITYCHECK.
                return STATUS_ACCESS_DENIED;
            }
            s.process_notify = Some(cb);
        }
        STATUS_SUCCESS
    })
}

/// IoCreateDevice + security from `sddl` + IoCreateSymbolicLink: PASSIVE_LEVEL.
///
/// # Safety
/// `driver` is this driver's object during DriverEntry; PASSIVE_LEVEL.
pub unsafe fn create_control_device(
    driver: *mut DRIVER_OBJECT,
    sd: &crate::sddl::SdBuf,
) -> Result<*mut DEVICE_OBJECT, NTSTATUS> {
    check_irql("IoCreateDevice", PASSIVE_LEVEL);
    if super::failing(super::Step::ControlDevice) {
        // STATUS_OBJECT_NAME_COLLISION: another \Device\FltPolicy exists.
        return Err(STATUS_OBJECT_NAME_COLLISION);
    }
    // SAFETY: the driver passes a descriptor it built.
    let acl = unsafe { super::acl::read(sd.0.as_ptr()) }
        .unwrap_or_else(|e| violation(&format!("control device security: {e}")));
    let dev = Box::into_raw(Box::<DEVICE_OBJECT>::default());
    // SAFETY: both valid.
    unsafe { (*dev).DriverObject = driver };
    with_state(|s| {
        if s.control_device.is_some() {
            violation("control device created twice");
        }
        s.control_device = Some(super::ControlDevice {
            dev: dev as usize,
            acl,
            deleted: false,
            handles: 0,
            in_flight: 0,
        });
    });
    Ok(dev)
}

/// IoDeleteSymbolicLink + IoDeleteDevice: PASSIVE_LEVEL.
///
/// # Safety
/// `dev` came from `create_control_device`, no request is running; PASSIVE_LEVEL.
pub unsafe fn delete_control_device(dev: *mut DEVICE_OBJECT) {
    check_irql("IoDeleteDevice", PASSIVE_LEVEL);
    perturb();
    with_state(|s| match s.control_device.as_mut() {
        Some(c) if c.dev == dev as usize && !c.deleted => {
            // Delete-pending while handles or IRPs still reference it.
            c.deleted = true;
            super::ControlDevice::reap(&mut s.control_device);
        }
        _ => violation("IoDeleteDevice of a device the driver did not create"),
    });
}

/// IofCompleteRequest: IRQL <= DISPATCH_LEVEL; exactly once per IRP.
///
/// # Safety
/// `irp` is an IRP dispatched to this driver, completed exactly once; IRQL <= DISPATCH_LEVEL.
pub unsafe fn complete_irp(irp: *mut IRP, status: NTSTATUS, info: usize) {
    check_irql("IoCompleteRequest", DISPATCH_LEVEL);
    perturb();
    // SAFETY: the IRP is the one being dispatched, owned by the caller.
    let r = unsafe { &mut *irp };
    r.IoStatus.Anonymous.Status = status;
    r.IoStatus.Information = info;
    with_state(|s| {
        if !s.completed_irps.insert(irp as usize) {
            violation("IRP completed twice");
        }
    });
}

/// SeCaptureSubjectContext + SeTokenIsAdmin on the requestor's token.
pub fn caller_is_admin() -> bool {
    check_irql("SeCaptureSubjectContext", PASSIVE_LEVEL);
    perturb();
    CURRENT.with(|c| c.admin.get())
}

pub(crate) fn unicode(s: &[u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: (s.len() * 2) as u16,
        MaximumLength: (s.len() * 2) as u16,
        Buffer: s.as_ptr().cast_mut(),
    }
}

#[allow(dead_code)]
fn _assert_state_is_used() {
    let _ = state;
}

/// Kernel-layer initialisation (the real layer resolves routines by name).
pub fn init() -> NTSTATUS {
    check_irql("DriverEntry", PASSIVE_LEVEL);
    STATUS_SUCCESS
}

/// KeAcquireInStackQueuedSpinLock / KeReleaseInStackQueuedSpinLock:
/// IRQL <= DISPATCH_LEVEL; `f` runs at DISPATCH_LEVEL, so every kernel
/// call it makes is checked against that IRQL.
pub fn with_spin_lock<R>(lock: &crate::kernel::SpinLock, f: impl FnOnce() -> R) -> R {
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    check_irql("KeAcquireInStackQueuedSpinLock", DISPATCH_LEVEL);
    while lock
        .0
        .compare_exchange_weak(0, 1, Acquire, Relaxed)
        .is_err()
    {
        // A host thread holding the lock can be descheduled (a real CPU
        // at DISPATCH_LEVEL cannot); yield rather than burn the core.
        std::thread::yield_now();
    }
    struct Unlock<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for Unlock<'_> {
        fn drop(&mut self) {
            self.0.store(0, Release);
        }
    }
    let _unlock = Unlock(&lock.0);
    super::with_irql(DISPATCH_LEVEL, false, f)
}

/// ZwQuerySystemInformation(SystemProcessInformation), then per process
/// PsLookupProcessByProcessId (≤ APC_LEVEL), SeLocateProcessImageName
/// (PASSIVE_LEVEL; the NT device path, empty for the System process),
/// PsGetProcessExitStatus and ObDereferenceObject. Calls `found` for each
/// running process and then `exited` for each whose exit status was set
/// by the time `found` returned. PASSIVE_LEVEL, outside callbacks.
///
/// A process marked with [`super::Sim::process_exits_during_load`] exits
/// (its notify routine runs) after the snapshot was taken and before its
/// image is read: the race a real load can hit.
///
/// # Safety
/// PASSIVE_LEVEL, outside any filter callback.
pub unsafe fn for_each_process(
    found: &mut dyn FnMut(u64, u64, &[u16]),
    exited: &mut dyn FnMut(u64),
) -> Result<usize, NTSTATUS> {
    check_irql("ZwQuerySystemInformation", PASSIVE_LEVEL);
    check_not_in_callback("ZwQuerySystemInformation");
    let mut snapshot: Vec<super::RunningProcess> =
        with_state(|s| s.running.values().cloned().collect());
    snapshot.sort_by_key(|p| p.pid);
    for p in &snapshot {
        check_irql("PsLookupProcessByProcessId", APC_LEVEL);
        if p.exits_during_load {
            if let Some(cb) = with_state(|s| {
                s.running.remove(&p.pid);
                s.process_notify
            }) {
                // SAFETY: the driver's routine, exit notification (null
                // info), at PASSIVE_LEVEL as the process manager calls it.
                super::with_irql(PASSIVE_LEVEL, false, || unsafe {
                    cb(0 as _, p.pid as usize as HANDLE, std::ptr::null_mut())
                });
            }
        }
        check_irql("SeLocateProcessImageName", PASSIVE_LEVEL);
        let image: Vec<u16> = p.image_nt.encode_utf16().collect();
        found(p.pid, p.ppid, &image);
        if p.exits_during_load {
            exited(p.pid);
        }
    }
    Ok(snapshot.len())
}
