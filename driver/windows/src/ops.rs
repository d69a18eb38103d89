//! Pre- and post-operation callbacks.
//!
//! | callback | IRQL | what |
//! |---|---|---|
//! | pre-create | PASSIVE | *normalized* name + requester SID into a new stream-handle context → evaluate the open and every operation the requested access implies; deny fails the open. No name: decide in post-create, or fail closed ([`pre_create`]) |
//! | post-create | PASSIVE | set the context on the handle; decide what pre-create could not name (deny → `FltCancelFileOpen`); record a carried `log` with its status |
//! | pre-read/write/set-info | ≤ APC (paging I/O included: no I/O is issued at DISPATCH) | take the handle's context reference, evaluate; deny completes with STATUS_ACCESS_DENIED (never for paging I/O); rename and hard-link *destinations* are named and evaluated too |
//! | post-read/write/set-info | ≤ DISPATCH | record the carried verdict with the final status; release the reference |
//! | pre-cleanup | ≤ APC | record `close` |
//!
//! Post-op touches only non-paged memory (the completion block, the
//! context it references, the pid table, the queue), allocates nothing,
//! takes no lock, evaluates nothing and calls nothing limited to
//! APC_LEVEL: everything it needs comes from pre-op in a completion block
//! ([`crate::completion`], the swapBuffers pattern), released on every
//! path, `FLTFL_POST_OPERATION_DRAINING` included.
//!
//! Each operation is evaluated once. A `log` verdict on read, write,
//! set-info or create is decided in pre-op; the block carries the deciding
//! rule, tag and policy identity, and post-op records exactly that decision
//! with `IoStatus.Status` — a policy swap in between changes nothing.

use core::ffi::c_void;

use fltpolicy_core::event::{Action, EventView, Op};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;
use windows_sys::Wdk::Storage::FileSystem::{
    FileDispositionInformation, FileDispositionInformationEx, FileEndOfFileInformation,
    FileLinkInformation, FileLinkInformationEx, FileRenameInformation, FileRenameInformationEx,
    FILE_INFORMATION_CLASS,
};

use crate::audit;
use crate::completion;
use crate::globals::{self, Counters, Globals};
use crate::kernel::{self, status::*};
use crate::names::{self, NameRef};
use crate::policy::PolicyGuard;
use crate::process::ProcessInfo;
use crate::wdk::{arm, FltCreateParameters, FltReadWriteParameters, FltSetInformationParameters};

/// `IRP_PAGING_IO` in `FLT_IO_PARAMETER_BLOCK::IrpFlags`.
pub const IRP_PAGING_IO: u32 = 0x0000_0002;
/// `SL_OPEN_PAGING_FILE` in `OperationFlags` of a create.
pub const SL_OPEN_PAGING_FILE: u8 = 0x02;
/// `SL_OPEN_TARGET_DIRECTORY`: the I/O manager opens the *parent* of a
/// rename or hard-link target (wdm.h).
pub const SL_OPEN_TARGET_DIRECTORY: u8 = 0x04;
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
unsafe fn fill_facts(g: &Globals, data: *const FLT_CALLBACK_DATA, f: &mut Facts) {
    // SAFETY: per the caller.
    let iopb = unsafe { iopb(data) };
    // SAFETY: FltGetRequestorProcessId is valid at IRQL <= DISPATCH_LEVEL.
    f.pid = unsafe { kernel::requestor_pid(data) };
    f.paging = iopb.IrpFlags & IRP_PAGING_IO != 0;
    lookup_process(g, f.pid, &mut f.proc);
}

impl Facts {
    /// Unfilled facts of an operation of `size` bytes, to be filled in
    /// place by [`fill_facts`] (returning them by value would put a second
    /// 540-byte copy on the callback's frame).
    const fn new(size: u64) -> Facts {
        Facts {
            pid: 0,
            proc: ProcessInfo::unknown(),
            size,
            paging: false,
        }
    }
}

/// The pid table lookup, out of line: its temporaries (a 512-byte image
/// copy among them) stay off the callbacks' frames.
#[inline(never)]
fn lookup_process(g: &Globals, pid: u64, out: &mut ProcessInfo) {
    g.processes.lookup(pid, out);
}

fn view<'a>(op: Op, path: &'a str, user: &'a str, f: &'a Facts) -> EventView<'a> {
    EventView {
        op: Some(op),
        path,
        pid: f.pid,
        ppid: f.proc.ppid,
        image: f.proc.image(),
        user,
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
    } else if class == FileLinkInformation || class == FileLinkInformationEx {
        // On the file itself a hard link changes metadata; where the new
        // name lands it is a create ([`destination_op`]).
        (Op::SetInfo, 0)
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

/// `FILE_OPEN_BY_FILE_ID` create option.
pub const FILE_OPEN_BY_FILE_ID: u32 = 0x0000_2000;

/// Bit per operation in a `u8` mask (the image's rule `ops` encoding).
fn op_bit(op: Op) -> u8 {
    1u8 << (op as u8)
}

/// The tag recorded on a denial made because no name could be had while a
/// deny rule could have applied (rule: none, path: empty).
pub const UNNAMED_TAG: &str = "fltpolicy:unnamed";

/// Records a fail-closed denial of `op` (no name; a deny rule could apply).
#[inline(never)]
fn record_unnamed_denial(g: &Globals, guard: &PolicyGuard<'_>, op: Op, f: &Facts, user: &str) {
    Counters::bump(&g.counters.unnamed_denied);
    Counters::bump(&g.counters.denied);
    let ev = view(op, "", user, f);
    let v = fltpolicy_core::event::Verdict {
        action: Action::Deny,
        rule: None,
        line: 0,
        tag: UNNAMED_TAG,
    };
    audit::record(g, guard, &ev, &v, Some(STATUS_ACCESS_DENIED));
}

/// [`record_unnamed_denial`] of a create, with the requester's SID.
/// PASSIVE_LEVEL. Out of line: the SID string stays off the callback's frame.
///
/// # Safety
/// `data` is a create's callback data.
#[inline(never)]
unsafe fn record_unnamed_create_denial(
    g: &Globals,
    guard: &PolicyGuard<'_>,
    data: *const FLT_CALLBACK_DATA,
    op: Op,
    f: &Facts,
) {
    // SAFETY: per the caller; PASSIVE_LEVEL.
    let user = unsafe { names::requester_user(data) };
    record_unnamed_denial(g, guard, op, f, user.as_str());
}

/// A completion block carrying `ev`'s facts and the verdict, for post-op
/// to record (out of line: keeps the callbacks' frames small). Without a free block the verdict is recorded now, without
/// the final status, and the shortfall counted — never dropped.
#[inline(never)]
fn carry(
    g: &Globals,
    guard: &PolicyGuard<'_>,
    ev: &EventView<'_>,
    v: &fltpolicy_core::event::Verdict<'_>,
) -> Option<&'static mut completion::Completion> {
    let Some(c) = completion::claim(kernel::current_processor()) else {
        Counters::bump(&g.counters.carried_fallback);
        audit::record(g, guard, ev, v, None);
        return None;
    };
    c.op = ev.op.unwrap_or(Op::SetInfo);
    c.size = ev.size;
    c.pid = ev.pid;
    c.paging = ev.paging;
    c.time_ns = kernel::system_time_ns();
    c.record = true;
    c.verdict.fill(v, guard);
    Some(c)
}

/// Hands the block and the context reference it now owns to post-op.
///
/// # Safety
/// `completion` is FltMgr's completion-context slot of this pre-op.
unsafe fn hand_over(
    c: &'static mut completion::Completion,
    name: NameRef,
    completion: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    c.name = name.into_raw();
    // SAFETY: FltMgr passes a valid completion-context slot.
    unsafe { *completion = completion::as_context(c) };
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}

/// Where a rename or hard link would put the file, read from its
/// `FILE_RENAME_INFORMATION` / `FILE_LINK_INFORMATION` buffer (same x64
/// layout: flags or `ReplaceIfExists` at 0, `RootDirectory` at 8,
/// `FileNameLength` at 16, the name at 20).
struct Destination<'a> {
    root: windows_sys::Win32::Foundation::HANDLE,
    name: &'a [u16],
}

/// # Safety
/// `buf` holds `len` bytes of the request's system buffer.
unsafe fn destination<'a>(buf: *const c_void, len: u32) -> Option<Destination<'a>> {
    const HEADER: usize = crate::wdk::RENAME_FILE_NAME;
    let len = len as usize;
    if buf.is_null() || len < HEADER {
        return None;
    }
    let b = buf.cast::<u8>();
    // SAFETY: len >= HEADER bytes are readable; unaligned reads.
    let root = unsafe {
        b.wrapping_add(crate::wdk::RENAME_ROOT_DIRECTORY)
            .cast::<usize>()
            .read_unaligned()
    };
    // SAFETY: as above.
    let name_len = unsafe {
        b.wrapping_add(crate::wdk::RENAME_FILE_NAME_LENGTH)
            .cast::<u32>()
            .read_unaligned()
    } as usize;
    if name_len % 2 != 0 || name_len > len - HEADER || b.wrapping_add(HEADER) as usize % 2 != 0 {
        return None;
    }
    // SAFETY: the name lies within the buffer (checked above) and is
    // 2-aligned (the system buffer is pool-aligned; checked).
    let name =
        unsafe { core::slice::from_raw_parts(b.wrapping_add(HEADER).cast::<u16>(), name_len / 2) };
    Some(Destination {
        root: root as windows_sys::Win32::Foundation::HANDLE,
        name,
    })
}

/// Checks the destination of a rename (`op` = rename: evaluated as rename
/// and create there) or hard link (`op` = create) against the policy.
/// PASSIVE/APC_LEVEL (set-information pre-op). Returns the status to
/// complete the request with when denied.
///
/// # Safety
/// The arguments are this set-information pre-op's.
#[inline(never)]
unsafe fn check_destination(
    g: &Globals,
    guard: &PolicyGuard<'_>,
    data: *mut FLT_CALLBACK_DATA,
    objs: &FLT_RELATED_OBJECTS,
    op: Op,
    f: &Facts,
    name: &NameRef,
) -> Option<i32> {
    let (source, user) = (name.path(), name.user());
    let ops: [Option<Op>; 2] = if op == Op::Rename {
        [Some(Op::Rename), Some(Op::Create)]
    } else {
        [Some(Op::Create), None]
    };
    let mask = ops.iter().flatten().fold(0u8, |m, &o| m | op_bit(o));
    let could_deny = guard.block().deny_ops & mask != 0;
    if !could_deny {
        return None;
    }
    // SAFETY: per the caller.
    let iopb = unsafe { iopb(data) };
    // SAFETY: set-information parameters, per the major function.
    let p = unsafe { set_info_params(iopb) };
    // SAFETY: InfoBuffer holds Length bytes for a buffered set-information.
    let dest = unsafe { destination(p.2, p.1) };
    let info = match dest {
        // SAFETY: pre-op of a rename/link runs at IRQL <= APC_LEVEL, as the
        // destination query requires; instance and file object are ours.
        Some(d) => unsafe {
            kernel::get_destination_name(
                objs.Instance,
                objs.FileObject,
                d.root,
                d.name,
                FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT,
            )
        }
        .ok(),
        None => None,
    };
    let Some(info) = info else {
        // No destination name while a deny rule could apply: fail closed.
        record_unnamed_denial(g, guard, op, f, user);
        return Some(STATUS_ACCESS_DENIED);
    };
    let denied = {
        // SAFETY: `info` is valid and parsed until released below.
        let info_ref = unsafe { &*info };
        // SAFETY: as above.
        let path = unsafe { names::PathBuf::from_info(objs, info_ref) };
        match path {
            Some(path) => {
                let mut denied = None;
                for o in ops.into_iter().flatten() {
                    let ev = view(o, path.as_str(), user, f);
                    let v = guard.evaluate(&ev);
                    if v.action == Action::Deny {
                        Counters::bump(&g.counters.matched);
                        Counters::bump(&g.counters.denied);
                        // Recorded on the file, with the destination the
                        // rule matched as its target.
                        let rec = view(o, source, user, f);
                        audit::record_target(
                            g,
                            guard,
                            &rec,
                            &v,
                            Some(STATUS_ACCESS_DENIED),
                            path.as_str(),
                        );
                        denied = Some(STATUS_ACCESS_DENIED);
                        break;
                    }
                }
                denied
            }
            None => {
                // No memory for the path: fail closed (a deny could apply).
                record_unnamed_denial(g, guard, op, f, user);
                Some(STATUS_ACCESS_DENIED)
            }
        }
    };
    // SAFETY: we own the reference from get_destination_name; IRQL <= APC.
    unsafe { kernel::release_file_name(info) };
    denied
}

/// For a rename (`Op::Rename`) or hard link (`Op::Create`) request, what
/// its destination is checked as ([`check_destination`]).
///
/// # Safety
/// `data` is a set-information request's callback data.
unsafe fn destination_op(data: *const FLT_CALLBACK_DATA) -> Option<Op> {
    // SAFETY: per the caller.
    let params = unsafe { iopb(data) };
    // SAFETY: a set-information request's block, per the caller.
    let (class, ..) = unsafe { set_info_params(params) };
    if class == FileRenameInformation || class == FileRenameInformationEx {
        Some(Op::Rename)
    } else if class == FileLinkInformation || class == FileLinkInformationEx {
        Some(Op::Create)
    } else {
        None
    }
}

/// `(class, Length, InfoBuffer)` of a set-information request.
///
/// # Safety
/// `iopb` is a set-information request's parameter block.
unsafe fn set_info_params(
    iopb: &FLT_IO_PARAMETER_BLOCK,
) -> (FILE_INFORMATION_CLASS, u32, *const c_void) {
    // SAFETY: set-information parameters, per the caller (the WDK layout:
    // windows-sys's is wrong, see crate::wdk).
    let p = unsafe { arm::<FltSetInformationParameters>(&iopb.Parameters) };
    (p.FileInformationClass, p.Length, p.InfoBuffer.cast_const())
}

crate::kernel_callback! {
/// Pre-operation for read, write, set-information and cleanup.
/// IRQL <= APC_LEVEL (no I/O, paging or not, is sent at DISPATCH_LEVEL:
/// "Constraints on Dispatch Routines"); non-paged; allocates nothing
/// except, at PASSIVE/APC for a rename or link, the destination path.
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
    // SAFETY: `data` is the current operation's callback data.
    let Some((op, size)) = (unsafe { classify(data) }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: FltMgr passes valid related objects.
    let objs = unsafe { &*objs };
    // SAFETY: the instance and file object are this operation's; a
    // pre-operation callback runs at IRQL <= APC_LEVEL, as
    // FltGetStreamHandleContext requires.
    let Some(name) = (unsafe { NameRef::get(objs.Instance, objs.FileObject) }) else {
        // Opened before we attached: nothing to evaluate against.
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let Some(guard) = g.policy.read() else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: as above.
    let mut f = Facts::new(size);
    // SAFETY: as above.
    unsafe { fill_facts(g, data, &mut f) };
    Counters::bump(&g.counters.events_seen);
    let ev = view(op, name.path(), name.user(), &f);
    let v = guard.evaluate(&ev);
    if v.action != Action::None {
        Counters::bump(&g.counters.matched);
    }
    // SAFETY: `data` is this operation's.
    let major = u32::from(unsafe { iopb(data) }.MajorFunction);
    if major == IRP_MJ_SET_INFORMATION && v.action != Action::Deny {
        // SAFETY: `data` is this set-information request's.
        if let Some(dest_op) = unsafe { destination_op(data) } {
            // A rename or hard link the file's own name does not deny: its
            // destination is a rename/create there.
            // SAFETY: this set-information pre-op's arguments.
            if let Some(st) = unsafe { check_destination(g, &guard, data, objs, dest_op, &f, &name) } {
                // SAFETY: completing in pre-op: we own IoStatus now.
                unsafe { complete_with(data, st) };
                return FLT_PREOP_COMPLETE;
            }
        }
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
        Action::Log | Action::Deny => match carry(g, &guard, &ev, &v) {
            // SAFETY: FltMgr's completion slot of this pre-op.
            Some(c) => unsafe { hand_over(c, name, completion) },
            None => FLT_PREOP_SUCCESS_NO_CALLBACK,
        },
        Action::Allow | Action::None => FLT_PREOP_SUCCESS_NO_CALLBACK,
    }
}
}

/// Records the verdict a completion block carries, with the final status.
/// Any IRQL <= DISPATCH_LEVEL (pid table and queue only). Out of line so
/// the post-op callbacks' frames stay small.
#[inline(never)]
fn record_carried(g: &Globals, c: &completion::Completion, name: &NameRef, status: i32) {
    let mut proc = ProcessInfo::unknown();
    lookup_process(g, c.pid, &mut proc);
    let ev = EventView {
        op: Some(c.op),
        path: name.path(),
        pid: c.pid,
        ppid: proc.ppid,
        image: proc.image(),
        user: name.user(),
        size: c.size,
        paging: c.paging,
    };
    audit::record_decided(
        g,
        c.verdict.policy,
        &ev,
        &c.verdict.verdict(),
        Some(status),
        c.time_ns,
    );
}

crate::kernel_callback! {
/// Post-operation for read, write and set-information: records the verdict
/// pre-op carried, with the final status, and releases the context
/// reference pre-op took — on every path, draining included. Any IRQL <=
/// DISPATCH_LEVEL; non-paged; allocates nothing, evaluates nothing, gets
/// no context.
///
/// # Safety
/// Called by FltMgr with valid arguments.
pub unsafe fn post_io(
    data: *mut FLT_CALLBACK_DATA,
    _objs: *const FLT_RELATED_OBJECTS,
    completion: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    if completion.is_null() {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: pre_io set this completion context from a claimed block.
    let c = unsafe { completion::from_context(completion) };
    // SAFETY: the block holds the reference pre_io took; dropping `name`
    // releases it (FltReleaseContext, IRQL <= DISPATCH_LEVEL).
    let name = unsafe { NameRef::from_raw(c.name) };
    if flags & FLTFL_POST_OPERATION_DRAINING == 0 && c.record {
        if let Some(g) = live() {
            // SAFETY: the completed operation's callback data.
            let status = unsafe { io_status(data) };
            record_carried(g, c, &name, status);
        }
    }
    drop(name);
    completion::release(c);
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

/// Whether the file system changes something before post-create could
/// cancel the open (`FltCancelFileOpen` undoes nothing: not a creation,
/// an overwrite, a supersede, nor the delete a `FILE_DELETE_ON_CLOSE`
/// handle performs at its cleanup).
pub fn changes_before_post_create(disposition: u32, options: u32) -> bool {
    disposition != FILE_OPEN || options & FILE_DELETE_ON_CLOSE != 0
}

/// What a create asks for: the disposition and options, the access mask.
struct CreateRequest {
    access: u32,
    disposition: u32,
    options: u32,
    alloc: u64,
}

/// # Safety
/// `iopb` is a create's parameter block.
unsafe fn create_request(iopb: &FLT_IO_PARAMETER_BLOCK) -> CreateRequest {
    // SAFETY: create parameters, per the caller (the WDK layout:
    // windows-sys's is wrong, see crate::wdk).
    let create = *unsafe { arm::<FltCreateParameters>(&iopb.Parameters) };
    let access = if create.SecurityContext.is_null() {
        0
    } else {
        // SAFETY: the I/O manager's security context is valid during the create.
        unsafe { (*create.SecurityContext).DesiredAccess }
    };
    CreateRequest {
        access,
        disposition: create.Options >> 24,
        options: create.Options & 0x00FF_FFFF,
        alloc: create.AllocationSize.max(0) as u64,
    }
}

/// The primary operation and the implied ones of a create, and their mask.
fn create_ops(r: &CreateRequest) -> ([Option<Op>; 4], u8) {
    let i = implied_ops(r.access, r.options);
    let ops = [Some(create_op(r.disposition)), i[0], i[1], i[2]];
    let mask = ops.iter().flatten().fold(0u8, |m, &o| m | op_bit(o));
    (ops, mask)
}

/// The verdict on a create's operations: the first `deny` among them, else
/// the primary operation's verdict. Evaluates each operation once.
#[inline(never)]
fn decide_create<'g>(
    guard: &'g PolicyGuard<'_>,
    ops: &[Option<Op>; 4],
    path: &str,
    user: &str,
    f: &Facts,
) -> (Op, fltpolicy_core::event::Verdict<'g>) {
    let primary = ops[0].unwrap_or(Op::Open);
    let mut primary_verdict = fltpolicy_core::event::Verdict::NO_MATCH;
    for op in ops.iter().flatten().copied() {
        let ev = view(op, path, user, f);
        let v = guard.evaluate(&ev);
        if v.action == Action::Deny {
            return (op, v);
        }
        if op == primary {
            primary_verdict = v;
        }
    }
    (primary, primary_verdict)
}

/// Tags a bare context pointer as the completion context of a create that
/// has nothing to record (pool and context allocations are 16-aligned, so
/// bit 0 is free); a completion block pointer is never odd.
fn bare_context(
    ctx: windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_CONTEXT,
) -> *mut c_void {
    (ctx as usize | 1) as *mut c_void
}

crate::kernel_callback! {
/// Pre-create. PASSIVE_LEVEL (FltMgr guarantees it for creates).
///
/// Names the file by its *normalized* name (FLT_FILE_NAME_NORMALIZED is
/// allowed in pre-create), captures the requester's SID, builds the
/// stream-handle context from both (off the stack), and decides on it.
/// When no name can be had (an open by file ID; a failed query):
/// * if no `deny` rule covers any operation the create implies, the
///   decision moves to post-create, where the opened file can be named;
/// * if one does and the create would change something before
///   post-create could cancel it (any disposition but `FILE_OPEN`, or
///   `FILE_DELETE_ON_CLOSE`), it fails now (fail closed);
/// * otherwise post-create decides on the opened file's name and cancels
///   the open (`FltCancelFileOpen`) on a deny, or when it cannot name it
///   either.
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
    if iopb.OperationFlags & SL_OPEN_TARGET_DIRECTORY != 0 {
        // The I/O manager opening the parent directory of a rename or link
        // target: no file is opened or created by this create. The rename
        // or link itself is decided on its destination name in pre-set-info.
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    }
    // SAFETY: a create's parameter block.
    let req = unsafe { create_request(iopb) };
    // SAFETY: FltMgr passes valid related objects.
    let objs_ref = unsafe { &*objs };
    // SAFETY: pre-create runs at PASSIVE_LEVEL: the name query and the
    // token query need <= APC / PASSIVE; `data` is this create's.
    let ctx = unsafe { names::context_for_create(data, objs_ref) };
    let Some(guard) = g.policy.read() else {
        // No policy: still cache (a policy may arrive later).
        return match ctx {
            Some(ctx) => {
                // SAFETY: FltMgr's completion slot; post_create sets or frees it.
                unsafe { *completion = bare_context(ctx) };
                FLT_PREOP_SUCCESS_WITH_CALLBACK
            }
            None => FLT_PREOP_SUCCESS_WITH_CALLBACK,
        };
    };
    // SAFETY: `data` is the current callback data.
    let mut f = Facts::new(req.alloc);
    // SAFETY: as above.
    unsafe { fill_facts(g, data, &mut f) };
    let (ops, mask) = create_ops(&req);
    Counters::bump(&g.counters.events_seen);
    let Some(ctx) = ctx else {
        // No name in pre-create.
        if guard.block().deny_ops & mask != 0 && changes_before_post_create(req.disposition, req.options) {
            // SAFETY: this create's data; PASSIVE_LEVEL.
            unsafe { record_unnamed_create_denial(g, &guard, data, ops[0].unwrap_or(Op::Open), &f) };
            // SAFETY: completing the create in pre-op: we own IoStatus.
            unsafe { complete_with(data, STATUS_ACCESS_DENIED) };
            return FLT_PREOP_COMPLETE;
        }
        let Some(c) = completion::claim(kernel::current_processor()) else {
            Counters::bump(&g.counters.carried_fallback);
            if guard.block().deny_ops & mask != 0 {
                // Post-create could not decide without the block: fail closed.
                record_unnamed_denial(g, &guard, ops[0].unwrap_or(Op::Open), &f, "");
                // SAFETY: as above.
                unsafe { complete_with(data, STATUS_ACCESS_DENIED) };
                return FLT_PREOP_COMPLETE;
            }
            return FLT_PREOP_SUCCESS_WITH_CALLBACK;
        };
        c.deferred_ops = mask;
        c.op = ops[0].unwrap_or(Op::Open);
        // SAFETY: FltMgr's completion slot.
        unsafe { *completion = completion::as_context(c) };
        return FLT_PREOP_SUCCESS_WITH_CALLBACK;
    };
    // SAFETY: the fresh context's allocation reference is ours.
    let name = unsafe { NameRef::from_raw(ctx) };
    let (op, v) = decide_create(&guard, &ops, name.path(), name.user(), &f);
    if v.action != Action::None {
        Counters::bump(&g.counters.matched);
    }
    let ev = view(op, name.path(), name.user(), &f);
    if v.action == Action::Deny {
        Counters::bump(&g.counters.denied);
        audit::record(g, &guard, &ev, &v, Some(STATUS_ACCESS_DENIED));
        // The context was never set: dropping `name` frees it.
        drop(name);
        // SAFETY: completing the create in pre-op: we own IoStatus.
        unsafe { complete_with(data, STATUS_ACCESS_DENIED) };
        return FLT_PREOP_COMPLETE;
    }
    if v.action.records() {
        if let Some(c) = carry(g, &guard, &ev, &v) {
            // SAFETY: FltMgr's completion slot of this pre-op.
            return unsafe { hand_over(c, name, completion) };
        }
    }
    // SAFETY: FltMgr's completion slot; post_create sets or frees it.
    unsafe { *completion = bare_context(name.into_raw()) };
    FLT_PREOP_SUCCESS_WITH_CALLBACK
}
}

crate::kernel_callback! {
/// Post-create. PASSIVE_LEVEL: sets the context pre-create built on the
/// new handle (or names the opened file when pre-create could not, and
/// decides then), records a carried `log` with the create's status, and
/// frees what the create no longer needs — draining included.
///
/// # Safety
/// Called by FltMgr with valid arguments.
pub unsafe fn post_create(
    data: *mut FLT_CALLBACK_DATA,
    objs: *const FLT_RELATED_OBJECTS,
    completion: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    // SAFETY: FltMgr passes valid arguments.
    let objs_ref = unsafe { &*objs };
    // SAFETY: as above.
    let status = unsafe { io_status(data) };
    let opened = nt_success(status) && status != STATUS_REPARSE;
    let draining = flags & FLTFL_POST_OPERATION_DRAINING != 0;
    let g = live();
    if completion as usize & 1 == 1 {
        // A bare context: set it on the handle, or free it.
        let ctx = (completion as usize & !1) as windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_CONTEXT;
        if opened && !draining {
            // SAFETY: post-create at PASSIVE_LEVEL; `ctx` came from
            // build_context in pre-create and is handed over here.
            let _ = unsafe { names::set_context(objs_ref, ctx) };
        } else {
            // SAFETY: never set; freed here.
            unsafe { names::release_unset(ctx) };
        }
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    if completion.is_null() {
        // Pre-create had no name and no block (nothing could deny): name
        // the opened file for the operations to come.
        if opened && !draining && g.is_some() {
            // SAFETY: post-create at PASSIVE_LEVEL with this create's data.
            if let Ok(ctx) = unsafe { names::context_for_opened(data, objs_ref) } {
                // SAFETY: as above.
                let _ = unsafe { names::set_context(objs_ref, ctx) };
            }
        }
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: pre_create set this completion context from a claimed block.
    let c = unsafe { completion::from_context(completion) };
    if c.deferred_ops != 0 {
        let mask = c.deferred_ops;
        let primary = c.op;
        completion::release(c);
        if opened && !draining {
            if let Some(g) = g {
                // SAFETY: post-create of this create, PASSIVE_LEVEL.
                unsafe { decide_in_post_create(g, data, objs_ref, primary, mask, status) };
            }
        }
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // A carried `log` on a named create.
    let ctx = c.name;
    // A reparse opened nothing: the reissued create is decided and recorded
    // on its own. A failure is recorded with its status.
    if !draining && c.record && status != STATUS_REPARSE {
        if let Some(g) = g {
            // SAFETY: the block holds the context reference pre-create took;
            // ManuallyDrop: the reference stays with `ctx` (set or freed below).
            let name = core::mem::ManuallyDrop::new(unsafe { NameRef::from_raw(ctx) });
            record_carried(g, c, &name, status);
        }
    }
    completion::release(c);
    if opened && !draining {
        // SAFETY: post-create at PASSIVE_LEVEL; hands the context over.
        let _ = unsafe { names::set_context(objs_ref, ctx) };
    } else {
        // SAFETY: never set; freed here.
        unsafe { names::release_unset(ctx) };
    }
    FLT_POSTOP_FINISHED_PROCESSING
}
}

/// Post-create half of a create pre-create could not name: names the
/// opened file, decides `mask`'s operations once, cancels the open on a
/// deny (or when it still has no name and a deny rule could apply), else
/// caches the name and records a `log`. PASSIVE_LEVEL.
///
/// # Safety
/// Post-create of a successful create, with its arguments.
#[inline(never)]
unsafe fn decide_in_post_create(
    g: &Globals,
    data: *mut FLT_CALLBACK_DATA,
    objs: &FLT_RELATED_OBJECTS,
    primary: Op,
    mask: u8,
    status: i32,
) {
    // SAFETY: per the caller, PASSIVE_LEVEL.
    let ctx = unsafe { names::context_for_opened(data, objs) };
    let Some(guard) = g.policy.read() else {
        if let Ok(ctx) = ctx {
            // SAFETY: as above.
            let _ = unsafe { names::set_context(objs, ctx) };
        }
        return;
    };
    // SAFETY: this create's data and parameter block.
    let params = unsafe { iopb(data) };
    // SAFETY: as above.
    let req = unsafe { create_request(params) };
    // SAFETY: as above.
    let mut f = Facts::new(req.alloc);
    // SAFETY: as above.
    unsafe { fill_facts(g, data, &mut f) };
    let ctx = match ctx {
        Ok(ctx) => ctx,
        Err(_) => {
            if guard.block().deny_ops & mask != 0 {
                // SAFETY: PASSIVE_LEVEL; this create's data.
                unsafe { record_unnamed_create_denial(g, &guard, data, primary, &f) };
                // SAFETY: post-create of a successful create, PASSIVE_LEVEL.
                unsafe { cancel_open(data, objs) };
            }
            return;
        }
    };
    // SAFETY: the fresh context's reference is ours.
    let name = unsafe { NameRef::from_raw(ctx) };
    // The same operations pre-create would have decided (same request).
    let (list, _) = create_ops(&req);
    let (op, v) = decide_create(&guard, &list, name.path(), name.user(), &f);
    if v.action != Action::None {
        Counters::bump(&g.counters.matched);
    }
    let ev = view(op, name.path(), name.user(), &f);
    if v.action == Action::Deny {
        Counters::bump(&g.counters.denied);
        audit::record(g, &guard, &ev, &v, Some(STATUS_ACCESS_DENIED));
        drop(name);
        // SAFETY: post-create of a successful create, PASSIVE_LEVEL.
        unsafe { cancel_open(data, objs) };
        return;
    }
    if v.action.records() {
        audit::record(g, &guard, &ev, &v, Some(status));
    }
    // SAFETY: hands the context over to the handle.
    let _ = unsafe { names::set_context(objs, name.into_raw()) };
}

/// Undoes a successful open in post-create and fails the create with
/// STATUS_ACCESS_DENIED. PASSIVE_LEVEL (`FltCancelFileOpen`).
///
/// # Safety
/// Post-create of a successful create, before any handle exists.
unsafe fn cancel_open(data: *mut FLT_CALLBACK_DATA, objs: &FLT_RELATED_OBJECTS) {
    // SAFETY: per the caller; PASSIVE_LEVEL in post-create.
    unsafe { kernel::cancel_file_open(objs.Instance, objs.FileObject) };
    // SAFETY: a cancelled create's status is ours to set.
    unsafe { complete_with(data, STATUS_ACCESS_DENIED) };
}
