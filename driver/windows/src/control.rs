//! The control device (`\Device\FltPolicy`, `\\.\FltPolicy`) and its IOCTLs.
//!
//! Access is limited twice: the device object carries the DACL of
//! [`CONTROL_SDDL`] (SYSTEM and Administrators only), and every create and
//! every IOCTL checks the caller's token again ([`kernel::caller_is_admin`]),
//! so a handle passed to an unprivileged process is still refused.
//!
//! All requests are METHOD_BUFFERED and run at PASSIVE_LEVEL. Inputs are
//! decoded by [`fltpolicy_core::control`] (the layout shared with the CLI),
//! which checks magic, version, kind and every length against the buffer
//! actually received; a policy image is copied into non-paged pool before
//! it is verified ([`crate::policy::PolicyBlock::create`]), so user mode
//! cannot change it between check and use. Each failure maps to its own
//! NTSTATUS ([`fltpolicy_core::control::ControlError::ntstatus`]).

use core::sync::atomic::{AtomicU32, Ordering};

use fltpolicy_core::control::{
    self as wire, ControlError, LoadReply, Status, IOCTL_LOAD_POLICY, IOCTL_QUERY_STATUS,
    IOCTL_SET_LOG_PATH, LOAD_REPLY_LEN, STATUS_LEN,
};
use fltpolicy_core::event::Target;
use fltpolicy_core::record::DropReason;
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP};
use windows_sys::Win32::Foundation::NTSTATUS;

use crate::flush::LogPath;
use crate::globals::{self, Globals, Rundown};
use crate::kernel::{self, status::*};
use crate::policy::{BlockError, PolicyBlock};
use crate::wdk::IoStackLocation;

/// Security descriptor of the control device: protected DACL, generic-all
/// for LocalSystem (SY) and BUILTIN\Administrators (BA), nobody else.
pub const CONTROL_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

const IRP_MJ_CREATE: u8 = 0x00;
const IRP_MJ_CLOSE: u8 = 0x02;
const IRP_MJ_CLEANUP: u8 = 0x12;
/// `STATUS_DEVICE_NOT_READY`: the driver is unloading.
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = 0xC000_00A3_u32 as i32;
/// `STATUS_BUFFER_TOO_SMALL`.
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as i32;

/// The current stack location of `irp` (`IoGetCurrentIrpStackLocation`),
/// typed with the WDK layout ([`IoStackLocation`]: windows-sys's
/// `IO_STACK_LOCATION` misplaces the DeviceIoControl parameters,
/// microsoft/windows-rs#4404).
///
/// # Safety
/// `irp` is an IRP being dispatched to this driver.
pub unsafe fn current_stack(irp: *mut IRP) -> *mut IoStackLocation {
    // SAFETY: per the caller, the IRP is valid.
    let irp = unsafe { &*irp };
    // SAFETY: while an IRP is dispatched the union holds the current stack
    // location pointer (the I/O manager set it).
    let overlay = unsafe { irp.Tail.Overlay };
    // SAFETY: as above, the stack-location member of the inner union.
    unsafe { overlay.Anonymous2.Anonymous.CurrentStackLocation }.cast()
}

/// Control-device state that must outlive [`Globals`]: an image static (as
/// in Microsoft's cdo sample), valid for as long as the I/O manager can
/// dispatch an IRP to this driver. A mandatory unload frees `Globals` while
/// a handle may still be open (the device object stays, delete-pending,
/// until its last handle closes); the dispatch routines therefore enter
/// [`Gate::requests`] *before* they look at `Globals`, and teardown closes
/// and drains the gate before it frees anything a request can use.
#[derive(Debug)]
pub struct Gate {
    /// Control requests (create, device-control) in flight.
    pub requests: Rundown,
    /// Open handles (creates that succeeded minus closes).
    pub opens: AtomicU32,
}

/// The control device's [`Gate`].
pub static GATE: Gate = Gate {
    requests: Rundown::new(),
    opens: AtomicU32::new(0),
};

impl Gate {
    /// DriverEntry, before the device exists: open, no handles. (A fresh
    /// image starts that way; the host simulation loads the driver many
    /// times in one process.)
    pub fn reset(&self) {
        self.requests.reopen();
        self.opens.store(0, Ordering::Release);
    }
}

crate::kernel_callback! {
/// IRP_MJ_CREATE / CLOSE / CLEANUP of the control device. PASSIVE_LEVEL.
///
/// CLOSE and CLEANUP always succeed (they "can not be failed", cdo sample)
/// and never touch [`Globals`]: after a mandatory unload they still arrive
/// for handles that were open.
///
/// # Safety
/// Called by the I/O manager.
pub unsafe fn dispatch_open_close(_dev: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the I/O manager dispatches a valid IRP.
    let stack = unsafe { current_stack(irp) };
    // SAFETY: the current stack location of a dispatched IRP is valid.
    let major = unsafe { (*stack).MajorFunction };
    let status = match major {
        IRP_MJ_CREATE => open(),
        IRP_MJ_CLOSE => {
            // Saturating: a close never fails, even one the count missed.
            let _ = GATE
                .opens
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            STATUS_SUCCESS
        }
        IRP_MJ_CLEANUP => STATUS_SUCCESS,
        _ => STATUS_INVALID_DEVICE_REQUEST,
    };
    // SAFETY: we own the IRP and complete it exactly once.
    unsafe { kernel::complete_irp(irp, status, 0) };
    status
}
}

/// IRP_MJ_CREATE: inside the gate, so teardown cannot free `Globals` under
/// it and an unload's check of the open count cannot miss this open.
fn open() -> NTSTATUS {
    if !GATE.requests.enter() {
        return STATUS_DEVICE_NOT_READY;
    }
    let status = match globals::get() {
        None => STATUS_DEVICE_NOT_READY,
        Some(g) if g.stopping.load(Ordering::Acquire) => STATUS_DEVICE_NOT_READY,
        Some(_) if !kernel::caller_is_admin() => STATUS_ACCESS_DENIED,
        Some(_) => {
            GATE.opens.fetch_add(1, Ordering::AcqRel);
            STATUS_SUCCESS
        }
    };
    GATE.requests.exit();
    status
}

crate::kernel_callback! {
/// IRP_MJ_DEVICE_CONTROL of the control device. PASSIVE_LEVEL.
///
/// # Safety
/// Called by the I/O manager.
pub unsafe fn dispatch_device_control(_dev: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let (status, info) = if GATE.requests.enter() {
        let r = match globals::get() {
            None => (STATUS_DEVICE_NOT_READY, 0),
            // SAFETY: valid IRP from the I/O manager; `g` stays valid
            // while we are inside the gate.
            Some(g) => unsafe { handle(g, irp) },
        };
        GATE.requests.exit();
        r
    } else {
        (STATUS_DEVICE_NOT_READY, 0)
    };
    // SAFETY: we own the IRP and complete it exactly once.
    unsafe { kernel::complete_irp(irp, status, info) };
    status
}
}

/// # Safety
/// `irp` is a METHOD_BUFFERED device-control IRP dispatched to us.
unsafe fn handle(g: &Globals, irp: *mut IRP) -> (NTSTATUS, usize) {
    if g.stopping.load(Ordering::Acquire) {
        return (STATUS_DEVICE_NOT_READY, 0);
    }
    if !kernel::caller_is_admin() {
        return (STATUS_ACCESS_DENIED, 0);
    }
    // SAFETY: valid IRP dispatched to us.
    let stack = unsafe { current_stack(irp) };
    // SAFETY: the current stack location of a dispatched IRP is valid.
    let stack = unsafe { &*stack };
    // SAFETY: DeviceIoControl is the union member for IRP_MJ_DEVICE_CONTROL.
    let p = unsafe { stack.Parameters.DeviceIoControl };
    // SAFETY: valid IRP dispatched to us.
    let irp_ref = unsafe { &*irp };
    // SAFETY: METHOD_BUFFERED: the union holds SystemBuffer, which the I/O
    // manager allocated with max(in, out) bytes (or null when both are 0).
    let sys = unsafe { irp_ref.AssociatedIrp.SystemBuffer }.cast::<u8>();
    let in_len = p.InputBufferLength as usize;
    let out_len = p.OutputBufferLength as usize;
    if sys.is_null() && (in_len != 0 || out_len != 0) {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let input: &[u8] = if in_len == 0 {
        &[]
    } else {
        // SAFETY: SystemBuffer holds at least in_len bytes (see above).
        unsafe { core::slice::from_raw_parts(sys, in_len) }
    };
    match p.IoControlCode {
        IOCTL_LOAD_POLICY => {
            if out_len < LOAD_REPLY_LEN {
                return (STATUS_BUFFER_TOO_SMALL, 0);
            }
            let reply = match load(g, input) {
                Ok(r) => r,
                Err(st) => return (st, 0),
            };
            // SAFETY: the input has been fully consumed (copied into the
            // policy block); SystemBuffer holds at least out_len bytes.
            let out = unsafe { core::slice::from_raw_parts_mut(sys, out_len) };
            match reply.encode(out) {
                Ok(n) => (STATUS_SUCCESS, n),
                Err(e) => (e.ntstatus(), 0),
            }
        }
        IOCTL_QUERY_STATUS => {
            if let Err(e) = wire::parse_status(input) {
                return (e.ntstatus(), 0);
            }
            if out_len < STATUS_LEN {
                return (STATUS_BUFFER_TOO_SMALL, 0);
            }
            let s = status(g);
            // SAFETY: as above; the (empty) input was fully parsed.
            let out = unsafe { core::slice::from_raw_parts_mut(sys, out_len) };
            match s.encode(out) {
                Ok(n) => (STATUS_SUCCESS, n),
                Err(e) => (e.ntstatus(), 0),
            }
        }
        IOCTL_SET_LOG_PATH => match wire::parse_set_log_path(input) {
            Err(e) => (e.ntstatus(), 0),
            Ok(path) => match LogPath::create(path) {
                None => (STATUS_INSUFFICIENT_RESOURCES, 0),
                Some(lp) => {
                    let old = g.flush.pending_path.swap(lp, Ordering::AcqRel);
                    if !old.is_null() {
                        // SAFETY: the swap took the unclaimed block back
                        // from the slot; nobody else can reach it.
                        unsafe { LogPath::destroy(old) };
                    }
                    // SAFETY: the event lives in Globals; PASSIVE_LEVEL.
                    unsafe { kernel::event_set(g.flush.wake.get()) };
                    (STATUS_SUCCESS, 0)
                }
            },
        },
        _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
    }
}

/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;

/// Verifies and installs a policy. PASSIVE_LEVEL; one at a time.
fn load(g: &Globals, input: &[u8]) -> Result<LoadReply, NTSTATUS> {
    let image = wire::parse_load(input).map_err(ControlError::ntstatus)?;
    if g.loading.swap(true, Ordering::AcqRel) {
        return Err(STATUS_DEVICE_BUSY);
    }
    let result = install(g, image);
    g.loading.store(false, Ordering::Release);
    result
}

#[inline(never)] // the verifier's frame stays apart from the dispatch path's
fn install(g: &Globals, image: &[u8]) -> Result<LoadReply, NTSTATUS> {
    let block = PolicyBlock::create(image, 0).map_err(|e| match e {
        BlockError::NoMemory => STATUS_INSUFFICIENT_RESOURCES,
        BlockError::Invalid => STATUS_INVALID_IMAGE_FORMAT,
    })?;
    // SAFETY: `block` is ours until installed.
    let b = unsafe { &mut *block };
    if b.target != Target::Windows {
        // SAFETY: not installed; ours alone.
        unsafe { PolicyBlock::destroy(block) };
        return Err(STATUS_NOT_SUPPORTED);
    }
    b.generation = g.policy.next_generation();
    let reply = LoadReply {
        generation: b.generation,
        rule_count: b.rule_count,
        target: b.target as u32,
        policy_hash: b.hash,
    };
    // SAFETY: `block` came from PolicyBlock::create; ownership passes to the
    // slot. PASSIVE_LEVEL; loads are serialised by `loading`.
    unsafe { g.policy.install(block) };
    Ok(reply)
}

/// The counters and the active policy's identity.
pub fn status(g: &Globals) -> Status {
    let c = &g.counters;
    let drops = g.queue.drop_totals();
    let dropped = drops[DropReason::QueueFull as usize] + drops[DropReason::QueueBusy as usize];
    let queued = c.logged_queued.load(Ordering::Relaxed);
    let logged = c.logged.load(Ordering::Relaxed);
    let mut s = Status {
        events_seen: c.events_seen.load(Ordering::Relaxed),
        matched: c.matched.load(Ordering::Relaxed),
        logged,
        denied: c.denied.load(Ordering::Relaxed),
        dropped,
        generation: g.policy.generation(),
        queued: queued.saturating_sub(logged),
        log_state: g.flush.log_state.load(Ordering::Acquire),
        log_error: g.flush.log_error.load(Ordering::Relaxed),
        ..Status::default()
    };
    if let Some(p) = g.policy.read() {
        let b = p.block();
        s.rule_count = b.rule_count;
        s.policy_loaded = 1;
        s.policy_hash = b.hash;
        s.generation = b.generation;
    }
    s
}
