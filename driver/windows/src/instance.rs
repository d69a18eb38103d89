//! InstanceSetup: which volumes the filter attaches to, and the volume's
//! DOS prefix kept in the instance context.
//!
//! Policies name files the way operators see them (`C:\Data`); FltMgr names
//! them by device (`\Device\HarddiskVolume3\Data`). At attach time
//! (PASSIVE_LEVEL) we resolve the volume's DOS name once and keep it in a
//! non-paged instance context, so post-create can build `C:\Data\...`
//! without another lookup.
//!
//! Attach: local disks (FILE_DEVICE_DISK_FILE_SYSTEM) formatted NTFS, ReFS,
//! FAT or exFAT. Skip: network redirectors, CD/UDF, RAW, named pipes and
//! mailslots — the policy language has no rules for them and their I/O
//! paths (e.g. redirector paging) have their own constraints.

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_INSTANCE_CONTEXT, FLT_RELATED_OBJECTS, PFLT_CONTEXT,
};
use windows_sys::Win32::Foundation::NTSTATUS;
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FLT_FILESYSTEM_TYPE, FLT_FSTYPE_EXFAT, FLT_FSTYPE_FAT, FLT_FSTYPE_NTFS, FLT_FSTYPE_REFS,
};

use crate::kernel::{self, status::*};

/// `FILE_DEVICE_DISK_FILE_SYSTEM`.
pub const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 0x0000_0008;
/// Longest DOS prefix kept: a drive letter and colon need 2 bytes; a
/// mount-point volume has none (then paths keep their device form).
pub const MAX_DOS_PREFIX: usize = 8;

/// The instance context (non-paged, fixed size).
#[repr(C)]
#[derive(Debug)]
pub struct InstanceContext {
    dos_len: u8,
    dos: [u8; MAX_DOS_PREFIX],
}

impl InstanceContext {
    /// The DOS prefix (`C:`), or "" for a volume without a drive letter.
    pub fn dos(&self) -> &str {
        let n = (self.dos_len as usize).min(MAX_DOS_PREFIX);
        core::str::from_utf8(&self.dos[..n]).unwrap_or("")
    }
}

/// Whether a volume of this type is filtered.
pub fn should_attach(device_type: u32, fs: FLT_FILESYSTEM_TYPE) -> bool {
    device_type == FILE_DEVICE_DISK_FILE_SYSTEM
        && matches!(
            fs,
            FLT_FSTYPE_NTFS | FLT_FSTYPE_REFS | FLT_FSTYPE_FAT | FLT_FSTYPE_EXFAT
        )
}

crate::kernel_callback! {
/// FLT_REGISTRATION::InstanceSetupCallback. PASSIVE_LEVEL.
///
/// # Safety
/// Called by FltMgr with valid related objects.
pub unsafe fn instance_setup(
    objs: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    device_type: u32,
    fs: FLT_FILESYSTEM_TYPE,
) -> NTSTATUS {
    if !should_attach(device_type, fs) {
        return STATUS_FLT_DO_NOT_ATTACH;
    }
    // SAFETY: FltMgr passes valid related objects for the duration of the
    // call. PASSIVE_LEVEL.
    let objs = unsafe { &*objs };
    let mut wide = [0u16; MAX_DOS_PREFIX];
    // SAFETY: the volume object is valid during InstanceSetup, which runs at
    // PASSIVE_LEVEL as volume_dos_name requires.
    let dos_units = unsafe { kernel::volume_dos_name(objs.Volume, &mut wide) }.unwrap_or(0);
    // SAFETY: the filter handle is valid while the filter is registered; a
    // non-paged fixed-size context may be allocated at PASSIVE_LEVEL.
    let allocated = unsafe { kernel::allocate_context(objs.Filter, FLT_INSTANCE_CONTEXT as u16, core::mem::size_of::<InstanceContext>()) };
    let ctx = match allocated {
        Ok(c) => c,
        // Without the context paths could not be named: do not attach.
        Err(_) => return STATUS_FLT_DO_NOT_ATTACH,
    };
    let mut ic = InstanceContext {
        dos_len: 0,
        dos: [0; MAX_DOS_PREFIX],
    };
    let (n, cut) = crate::utf::utf16_to_utf8(&wide[..dos_units], &mut ic.dos);
    ic.dos_len = if cut { 0 } else { n as u8 };
    // SAFETY: `ctx` is a fresh context of size_of::<InstanceContext>() bytes
    // with pool alignment.
    unsafe { ctx.cast::<InstanceContext>().write(ic) };
    // SAFETY: instance and context are valid; PASSIVE_LEVEL (<= APC_LEVEL
    // required by FltSetInstanceContext).
    let st = unsafe { kernel::set_instance_context(objs.Instance, ctx) };
    // The instance holds its own reference once set; drop ours either way.
    // SAFETY: we own one reference from allocate_context.
    unsafe { kernel::release_context(ctx) };
    if nt_success(st) {
        STATUS_SUCCESS
    } else {
        STATUS_FLT_DO_NOT_ATTACH
    }
}
}

crate::kernel_callback! {
/// FLT_REGISTRATION::InstanceQueryTeardownCallback. PASSIVE_LEVEL.
///
/// Allows a manual detach (`fltmc detach`, FltDetachVolume): without this
/// callback FltMgr refuses it. Nothing to refuse for: the flush thread
/// lets go of a log on the volume in InstanceTeardownStart.
///
/// # Safety
/// Called by FltMgr.
pub unsafe fn instance_query_teardown(_objs: *const FLT_RELATED_OBJECTS, _flags: u32) -> NTSTATUS {
    STATUS_SUCCESS
}
}

crate::kernel_callback! {
/// FLT_REGISTRATION::InstanceTeardownStartCallback. PASSIVE_LEVEL.
///
/// The volume is going away (manual detach, dismount, lock, removal, or
/// our own unregister). If the audit log is on it, the flush thread ends
/// the log and closes its file, its directory and its instance reference
/// before this returns: FltMgr waits for every reference on the instance,
/// and the volume cannot dismount under an open file. Records meanwhile
/// stay queued; the thread reopens the log when the volume is back.
///
/// # Safety
/// Called by FltMgr with valid related objects.
pub unsafe fn instance_teardown_start(objs: *const FLT_RELATED_OBJECTS, _reason: u32) {
    // SAFETY: FltMgr passes valid related objects for the call.
    let instance = unsafe { (*objs).Instance };
    if let Some(g) = crate::globals::get() {
        crate::flush::release_instance(g, instance);
    }
}
}

crate::kernel_callback! {
/// FLT_REGISTRATION::InstanceTeardownCompleteCallback. PASSIVE_LEVEL.
///
/// # Safety
/// Called by FltMgr with valid related objects.
pub unsafe fn instance_teardown_complete(objs: *const FLT_RELATED_OBJECTS, _reason: u32) {
    // SAFETY: FltMgr passes valid related objects for the call.
    let instance = unsafe { (*objs).Instance };
    if let Some(g) = crate::globals::get() {
        crate::flush::instance_gone(g, instance);
    }
}
}

/// A held reference to an instance context; released on drop.
#[derive(Debug)]
pub struct InstanceRef(PFLT_CONTEXT);

impl InstanceRef {
    /// Gets the context of `instance`. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `instance` is a valid instance of this filter.
    pub unsafe fn get(
        instance: windows_sys::Wdk::Storage::FileSystem::Minifilters::PFLT_INSTANCE,
    ) -> Option<InstanceRef> {
        // SAFETY: per the caller; FltGetInstanceContext is valid at
        // IRQL <= DISPATCH_LEVEL.
        unsafe { kernel::get_instance_context(instance) }
            .ok()
            .map(InstanceRef)
    }
    pub fn ctx(&self) -> &InstanceContext {
        // SAFETY: the context was allocated and initialised as an
        // InstanceContext by instance_setup; our reference keeps it alive.
        unsafe { &*self.0.cast::<InstanceContext>() }
    }
}

impl Drop for InstanceRef {
    fn drop(&mut self) {
        // SAFETY: we hold exactly one reference, from get_instance_context.
        unsafe { kernel::release_context(self.0) };
    }
}
