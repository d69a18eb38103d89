//! Pre- and post-operation callbacks.
//!
//! | callback | IRQL | what |
//! |---|---|---|
//! | pre-create | PASSIVE | opened name → evaluate the open and every operation the requested access implies; deny fails the open |
//! | post-create | PASSIVE | cache the normalized name ([`crate::names`]); finish the create's record with its status |
//! | pre-read/write/set-info | ≤ DISPATCH (paging: any) | evaluate from the cached name; deny completes with STATUS_ACCESS_DENIED (never for paging I/O) |
//! | post-read/write/set-info | ≤ DISPATCH | record with the final status |
//! | pre-cleanup | ≤ APC | record `close` |
//!
//! The paths below PASSIVE touch only non-paged memory (contexts, the pid
//! table, the policy block, the queue), allocate nothing, take no lock and
//! call nothing limited to APC_LEVEL.
//!
//! Where the result matters (read, write, set-info, create), a `log`
//! verdict is carried to post-op: the completion context holds the
//! generation of the policy that decided (a plain integer, nothing to
//! free), and post-op evaluates the event again under the policy active at
//! completion and records it with `IoStatus.Status`. A swap between pre and
//! post therefore records under the newer policy — the one that is in force
//! when the operation's effect becomes visible.

use core::ffi::c_void;

use fltpolicy_core::event::{Action, EventView, Op};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;
use windows_sys::Wdk::Storage::FileSystem::{
    FileDispositionInformation, FileDispositionInformationEx, FileEndOfFileInformation,
    FileRenameInformation, FileRenameInformationEx, FILE_INFORMATION_CLASS,
};

use crate::audit;
use crate::globals::{self, Counters, Globals};
use crate::kernel::{self, status::*};
use crate::names::NameRef;
use crate::process::ProcessInfo;
use crate::wdk::{arm, FltCreateParameters, FltReadWriteParameters, FltSetInformationParameters};

/// `IRP_PAGING_IO` in `FLT_IO_PARAMETER_BLOCK::IrpFlags`.
pub const IRP_PAGING_IO: u32 = 0x0000_0002;
/// `SL_OPEN_PAGING_FILE` in `OperationFlags` of a create.
pub const SL_OPEN_PAGING_FILE: u8 = 0x02;
/// `FILE_DELETE_ON_CLOSE` create option.
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
/// Access bits (`winnt.h`).
pub const FILE_READ_DATA: u32 = 0x0001;
pub const FILE_WRITE_DATA: u32 = 0x0002;
pub const FILE_APPEND_DATA: u32 = 0x0004;
pub const DELETE: u32 = 0x0001_0000;
/// Create dispositions (high byte of `Parameters.Create.Options`).
pub const FILE_SUPERSEDE: u32 = 0;
pub const FILE_OPEN: u32 = 1;
pub const FILE_CREATE: u32 = 2;
pub const FILE_OPEN_IF: u32 = 3;
pub const FILE_OVERWRITE: u32 = 4;
pub const FILE_OVERWRITE_IF: u32 = 5;
/// `FILE_DISPOSITION_DELETE` flag of FileDispositionInformationEx.
pub const FILE_DISPOSITION_DELETE: u32 = 0x1;
/// `STATUS_REPARSE`: the create is being redirected, no file object yet.
pub const STATUS_REPARSE: i32 = 0x0000_0104;

/// Non-zero marker in the completion context: "record in post-op". The
/// value is the deciding policy's generation (informational: post-op
/// evaluates under the policy then active).
fn marker(generation: u64) -> *mut c_void {
    // Generations start at 1, so the marker is never null.
    generation.max(1) as usize as *mut c_void
}

/// The parameter block of `data`.
///
/// # Safety
/// `data` is FltMgr's callback data for the current operation (its `Iopb`
/// is always valid).
unsafe fn iopb<'a>(data: *const FLT_CALLBACK_DATA) -> &'a FLT_IO_PARAMETER_BLOCK {
    // SAFETY: per the caller.
    let d = unsafe { &*data };
    // SAFETY: FltMgr always supplies a parameter block.
    unsafe { &*d.Iopb }
}

/// The final (or, when completing in pre-op, the chosen) status.
///
/// # Safety
/// As for [`iopb`].
unsafe fn io_status(data: *const FLT_CALLBACK_DATA) -> i32 {
    // SAFETY: per the caller.
    let d = unsafe { &*data };
    // SAFETY: IoStatus' union holds the NTSTATUS for file-system requests.
    unsafe { d.IoStatus.Anonymous.Status }
}

/// Completes the operation in pre-op with `status` and no information.
///
/// # Safety
/// As for [`iopb`]; only in a pre-operation that returns FLT_PREOP_COMPLETE.
unsafe fn complete_with(data: *mut FLT_CALLBACK_DATA, status: i32) {
    // SAFETY: per the caller, we own IoStatus when completing in pre-op.
    let d = unsafe { &mut *data };
    d.IoStatus.Anonymous.Status = status;
    d.IoStatus.Information = 0;
}

/// The facts about the current operation that come from the callback data
/// and the pid table.
struct Facts {
    pid: u64,
    proc: ProcessInfo,
    size: u64,
    paging: bool,
}

/// # Safety
/// `data` is FltMgr's callback data for the current operation.
unsafe fn facts(g: &Globals, data: *const FLT_CALLBACK_DATA, size: u64) -> Facts {
    // SAFETY: per the caller.
    let iopb = unsafe { iopb(data) };
    // SAFETY: FltGetRequestorProcessId is valid at IRQL <= DISPATCH_LEVEL.
    let pid = unsafe { kernel::requestor_pid(data) };
    let mut proc = ProcessInfo::unknown();
    g.processes.lookup(pid, &mut proc);
    Facts {
        pid,
        proc,
        size,
        paging: iopb.IrpFlags & IRP_PAGING_IO != 0,
    }
}

fn view<'a>(op: Op, path: &'a str, f: &'a Facts) -> EventView<'a> {
    EventView {
        op: Some(op),
        path,
        pid: f.pid,
        ppid: f.proc.ppid,
        image: f.proc.image(),
        user: "",
        size: f.size,
        paging: f.paging,
    }
}

fn live() -> Option<&'static Globals> {
    globals::get().filter(|g| !g.stopping.load(core::sync::atomic::Ordering::Acquire))
}

/// Classifies a set-information request. Reads the system buffer, which
/// FltMgr keeps valid at any IRQL for buffered IRP_MJ_SET_INFORMATION.
///
/// # Safety
/// `p` are the parameters of a set-information operation.
unsafe fn set_info_op(p: &FltSetInformationParameters) -> (Op, u64) {
    let class: FILE_INFORMATION_CLASS = p.FileInformationClass;
    let buf = p.InfoBuffer;
    if class == FileRenameInformation || class == FileRenameInformationEx {
        (Op::Rename, 0)
    } else if class == FileDispositionInformation {
        // FILE_DISPOSITION_INFORMATION { BOOLEAN DeleteFile; }
        // SAFETY: InfoBuffer holds Length >= 1 bytes for this class (the I/O
        // manager validated the length before the filter saw it).
        let delete = !buf.is_null() && p.Length >= 1 && unsafe { *buf.cast::<u8>() } != 0;
        (if delete { Op::Delete } else { Op::SetInfo }, 0)
    } else if class == FileDispositionInformationEx {
        // FILE_DISPOSITION_INFORMATION_EX { ULONG Flags; }
        let flags = if !buf.is_null() && p.Length >= 4 {
            // SAFETY: as above, Length >= 4 for this class; unaligned read to
            // be independent of the buffer's alignment.
            unsafe { buf.cast::<u32>().read_unaligned() }
        } else {
            0
        };
        (
            if flags & FILE_DISPOSITION_DELETE != 0 {
                Op::Delete
            } else {
                Op::SetInfo
            },
            0,
        )
    } else if class == FileEndOfFileInformation {
        // FILE_END_OF_FILE_INFORMATION { LARGE_INTEGER EndOfFile; }
        let eof = if !buf.is_null() && p.Length >= 8 {
            // SAFETY: Length >= 8 for this class.
            unsafe { buf.cast::<i64>().read_unaligned() }
        } else {
            0
        };
        (Op::SetInfo, eof.max(0) as u64)
    } else {
        (Op::SetInfo, 0)
    }
}

/// The operation and size of a read/write/set-info/cleanup request.
///
/// # Safety
/// `data` is the current callback data.
unsafe fn classify(data: *const FLT_CALLBACK_DATA) -> Option<(Op, u64)> {
    // SAFETY: per the caller.
    let iopb = unsafe { iopb(data) };
    match u32::from(iopb.MajorFunction) {
        // SAFETY: read parameters, per the major function (FltMgr's block
        // is fully initialised).
        IRP_MJ_READ => Some((
            Op::Read,
            u64::from(unsafe { arm::<FltReadWriteParameters>(&iopb.Parameters) }.Length),
        )),
        IRP_MJ_WRITE => Some((
            Op::Write,
            // SAFETY: write parameters, per the major function.
            u64::from(unsafe { arm::<FltReadWriteParameters>(&iopb.Parameters) }.Length),
        )),
        // SAFETY: set-information parameters, per the major function.
        IRP_MJ_SET_INFORMATION => {
            // SAFETY: set-information parameters, per the major function
            // (the WDK layout: windows-sys's is wrong, see crate::wdk).
            let p = unsafe { arm::<FltSetInformationParameters>(&iopb.Parameters) };
            // SAFETY: they are this operation's.
            Some(unsafe { set_info_op(p) })
        }
        IRP_MJ_CLEANUP => Some((Op::Close, 0)),
        _ => None,
    }
}

const IRP_MJ_READ: u32 = 0x03;
const IRP_MJ_WRITE: u32 = 0x04;
const IRP_MJ_SET_INFORMATION: u32 = 0x06;
const IRP_MJ_CLEANUP: u32 = 0x12;
pub const IRP_MJ_CREATE: u8 = 0x00;

crate::kernel_callback! {
/// Pre-operation for read, write, set-information and cleanup.
/// Any IRQL <= DISPATCH_LEVEL; non-paged; allocates nothing.
///
/// # Safety
/// Called by FltMgr with valid arguments.
pub unsafe fn pre_io(
    data: *mut FLT_CALLBACK_DATA,
    objs: *const FLT_RELATED_OBJECTS,
    completion: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    let Some(g) = live() else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: FltMgr passes valid related objects.
    let objs = unsafe { &*objs };
    // SAFETY: the instance and file object are this operation's; the
    // context lookup is valid at IRQL <= DISPATCH_LEVEL.
    let Some(name) = (unsafe { NameRef::get(objs.Instance, objs.FileObject) }) else {
        // Opened before we attached, or the name could not be resolved at
        // create: nothing to evaluate against.
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: `data` is the current operation's callback data.
    let Some((op, size)) = (unsafe { classify(data) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let Some(guard) = g.policy.read() else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: as above.
    let f = unsafe { facts(g, data, size) };
    let ev = view(op, name.path(), &f);
    Counters::bump(&g.counters.events_seen);
    let v = guard.evaluate(&ev);
    if v.action != Action::None {
        Counters::bump(&g.counters.matched);
    }
    match v.action {
        // Paging I/O is never failed: it carries data the cache already
        // accepted (the open that allowed it was checked at create).
        Action::Deny if !f.paging && op != Op::Close => {
            Counters::bump(&g.counters.denied);
            audit::record(g, &guard, &ev, &v, Some(STATUS_ACCESS_DENIED));
            // SAFETY: completing in pre-op: we own IoStatus now.
            unsafe { complete_with(data, STATUS_ACCESS_DENIED) };
            FLT_PREOP_COMPLETE
        }
        Action::Log | Action::Deny if op == Op::Close => {
            audit::record(g, &guard, &ev, &v, None);
            FLT_PREOP_SUCCESS_NO_CALLBACK
        }
        Action::Log | Action::Deny => {
            // SAFETY: FltMgr passes a valid completion-context slot.
            unsafe { *completion = marker(guard.block().generation) };
            FLT_PREOP_SUCCESS_WITH_CALLBACK
        }
        Action::Allow | Action::None => FLT_PREOP_SUCCESS_NO_CALLBACK,
    }
}
}

crate::kernel_callback! {
/// Post-operation for read, write and set-information: records a `log`
/// decision with the final status. Any IRQL <= DISPATCH_LEVEL; non-paged;
/// allocates nothing; safe while draining (records nothing then).
///
/// # Safety
/// Called by FltMgr with valid arguments.
pub unsafe fn post_io(
    data: *mut FLT_CALLBACK_DATA,
    objs: *const FLT_RELATED_OBJECTS,
    completion: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    if completion.is_null() || flags & FLTFL_POST_OPERATION_DRAINING != 0 {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    let Some(g) = live() else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    // SAFETY: FltMgr passes valid related objects.
    let objs = unsafe { &*objs };
    // SAFETY: see pre_io.
    let Some(name) = (unsafe { NameRef::get(objs.Instance, objs.FileObject) }) else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    // SAFETY: `data` is the completed operation's callback data.
    let Some((op, size)) = (unsafe { classify(data) }) else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    let Some(guard) = g.policy.read() else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    // SAFETY: as above.
    let status = unsafe { io_status(data) };
    // SAFETY: as above.
    let f = unsafe { facts(g, data, size) };
    let ev = view(op, name.path(), &f);
    let v = guard.evaluate(&ev);
    if v.action.records() {
        audit::record(g, &guard, &ev, &v, Some(status));
    }
    FLT_POSTOP_FINISHED_PROCESSING
}
}

/// The operations a create with `access` and `options` implies, besides
/// the open itself: `deny write` must fail an open for writing.
pub fn implied_ops(access: u32, options: u32) -> [Option<Op>; 3] {
    [
        (access & FILE_READ_DATA != 0).then_some(Op::Read),
        (access & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0).then_some(Op::Write),
        (access & DELETE != 0 || options & FILE_DELETE_ON_CLOSE != 0).then_some(Op::Delete),
    ]
}

/// `create` when the disposition can make a new file, else `open`.
pub fn create_op(disposition: u32) -> Op {
    match disposition {
        FILE_OPEN | FILE_OVERWRITE => Op::Open,
        _ => Op::Create,
    }
}

/// Stack buffer for the opened name in pre-create. Longer names are
/// evaluated on their prefix (flagged in the record via the path limit).
const PRE_CREATE_PATH: usize = 2048;

crate::kernel_callback! {
/// Pre-create. PASSIVE_LEVEL (FltMgr guarantees it for creates).
///
/// # Safety
/// Called by FltMgr with valid arguments.
pub unsafe fn pre_create(
    data: *mut FLT_CALLBACK_DATA,
    objs: *const FLT_RELATED_OBJECTS,
    completion: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    let Some(g) = live() else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: FltMgr passes valid arguments.
    let iopb = unsafe { iopb(data) };
    if iopb.OperationFlags & SL_OPEN_PAGING_FILE != 0 {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: create parameters, per the major function (the WDK layout:
    // windows-sys's is wrong, see crate::wdk).
    let create = *unsafe { arm::<FltCreateParameters>(&iopb.Parameters) };
    let access = if create.SecurityContext.is_null() {
        0
    } else {
        // SAFETY: the I/O manager's security context is valid during the create.
        unsafe { (*create.SecurityContext).DesiredAccess }
    };
    let disposition = create.Options >> 24;
    let options = create.Options & 0x00FF_FFFF;
    let Some(guard) = g.policy.read() else {
        // No policy: still cache the name (a policy may arrive later).
        return FLT_PREOP_SUCCESS_WITH_CALLBACK;
    };
    // SAFETY: FltMgr passes valid related objects.
    let objs_ref = unsafe { &*objs };
    // SAFETY: pre-create runs at PASSIVE_LEVEL (name queries need <= APC).
    let info = match unsafe { kernel::get_file_name(data, FLT_FILE_NAME_OPENED | FLT_FILE_NAME_QUERY_DEFAULT) } {
        Ok(i) => i,
        Err(_) => return FLT_PREOP_SUCCESS_WITH_CALLBACK,
    };
    let mut buf = [0u8; PRE_CREATE_PATH];
    let len = {
        // SAFETY: the instance is this operation's.
        let inst = unsafe { crate::instance::InstanceRef::get(objs_ref.Instance) };
        let dos = inst.as_ref().map_or("", |i| i.ctx().dos());
        // SAFETY: `info` is valid and parsed until released below.
        let info_ref = unsafe { &*info };
        // SAFETY: as above.
        unsafe { crate::names::write_path(dos, info_ref, &mut buf) }.0
    };
    // SAFETY: we own the reference from get_file_name; PASSIVE_LEVEL.
    unsafe { kernel::release_file_name(info) };
    let path = core::str::from_utf8(&buf[..len]).unwrap_or("");
    // SAFETY: `data` is the current callback data.
    let f = unsafe { facts(g, data, create.AllocationSize.max(0) as u64) };
    let primary = create_op(disposition);
    Counters::bump(&g.counters.events_seen);
    let mut record_primary = false;
    for op in core::iter::once(Some(primary)).chain(implied_ops(access, options)).flatten() {
        let ev = view(op, path, &f);
        let v = guard.evaluate(&ev);
        if op == primary && v.action != Action::None {
            Counters::bump(&g.counters.matched);
            record_primary = v.action.records();
        }
        if v.action == Action::Deny {
            if op != primary {
                Counters::bump(&g.counters.matched);
            }
            Counters::bump(&g.counters.denied);
            audit::record(g, &guard, &ev, &v, Some(STATUS_ACCESS_DENIED));
            // SAFETY: completing the create in pre-op: we own IoStatus.
            unsafe { complete_with(data, STATUS_ACCESS_DENIED) };
            return FLT_PREOP_COMPLETE;
        }
    }
    if record_primary {
        // SAFETY: FltMgr passes a valid completion-context slot.
        unsafe { *completion = marker(guard.block().generation) };
    }
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}
}

crate::kernel_callback! {
/// Post-create. PASSIVE_LEVEL: caches the normalized name, then records a
/// `log`ged open with its status.
///
/// # Safety
/// Called by FltMgr with valid arguments.
pub unsafe fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objs: *const FLT_RELATED_OBJECTS,
    completion: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    let Some(g) = live() else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    // SAFETY: FltMgr passes valid arguments.
    let objs_ref = unsafe { &*objs };
    // SAFETY: as above.
    let status = unsafe { io_status(data) };
    let opened = nt_success(status) && status != STATUS_REPARSE;
    if opened {
        // SAFETY: post-create at PASSIVE_LEVEL with this create's data.
        let _ = unsafe { crate::names::cache_name(data, objs_ref) };
    }
    if completion.is_null() {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    let Some(guard) = g.policy.read() else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    // SAFETY: create parameters, per the major function.
    let params = unsafe { iopb(data) };
    // SAFETY: create parameters, per the major function (see pre_create).
    let create = *unsafe { arm::<FltCreateParameters>(&params.Parameters) };
    // SAFETY: `data` is this create's callback data.
    let f = unsafe { facts(g, data, create.AllocationSize.max(0) as u64) };
    let op = create_op(create.Options >> 24);
    // SAFETY: as in pre_io.
    let name = if opened { unsafe { NameRef::get(objs_ref.Instance, objs_ref.FileObject) } } else { None };
    let Some(name) = name else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    let ev = view(op, name.path(), &f);
    let v = guard.evaluate(&ev);
    if v.action.records() {
        audit::record(g, &guard, &ev, &v, Some(status));
    }
    FLT_POSTOP_FINISHED_PROCESSING
}
}
