//! The thin layer between the driver logic and the kernel.
//!
//! Every kernel service the driver uses goes through one function here. With
//! feature `kernel` the functions are the real FFI (`ffi.rs`, windows-sys plus
//! a small reviewed `raw-dylib` block for ntoskrnl exports); on the host they
//! are the [`crate::sim`] Filter Manager, which checks the caller's IRQL and
//! context against the documented limits and panics like a Driver Verifier
//! bugcheck when a rule is broken.
//!
//! Both implementations expose exactly the same signatures, so the callback
//! code that the tests drive is the code in the `.sys`. The IRQL ceiling of
//! each function is stated on the sim's implementation and in
//! `docs/windows-driver.md`.

pub mod status;

#[cfg(feature = "kernel")]
mod ffi;
#[cfg(feature = "kernel")]
pub use ffi::*;

#[cfg(not(feature = "kernel"))]
pub use crate::sim::kernel::*;

/// Current interrupt request level.
pub type Irql = u8;
pub const PASSIVE_LEVEL: Irql = 0;
pub const APC_LEVEL: Irql = 1;
pub const DISPATCH_LEVEL: Irql = 2;

/// Pool tag of every allocation the driver makes ("FpDr", shown reversed
/// by pool tools as `rDpF`).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"FpDr");

/// A file the driver opened for itself (the audit log): the kernel handle
/// and the referenced FILE_OBJECT FltCreateFileEx2 returned.
#[derive(Debug, Clone, Copy)]
pub struct OwnFile {
    pub handle: windows_sys::Win32::Foundation::HANDLE,
    pub file_object: *mut windows_sys::Wdk::Foundation::FILE_OBJECT,
}

/// A referenced system thread object (PETHREAD).
#[derive(Debug, Clone, Copy)]
pub struct ThreadObject(pub *mut core::ffi::c_void);

/// How [`create_file`] opens the driver's own files. Every mode passes
/// FILE_OPEN_REPARSE_POINT: a reparse point in the *last* component is
/// opened itself, never followed (the caller checks the attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// FILE_CREATE | FILE_NON_DIRECTORY_FILE: a new, empty file; fails
    /// with [`STATUS_OBJECT_NAME_COLLISION`] if the name exists.
    New,
    /// FILE_OPEN | FILE_NON_DIRECTORY_FILE: an existing file
    /// (`STATUS_FILE_IS_A_DIRECTORY` for a directory).
    Existing,
    /// FILE_OPEN_IF | FILE_DIRECTORY_FILE: the log directory, created with
    /// the given security descriptor if missing (`STATUS_NOT_A_DIRECTORY`
    /// for a file).
    Directory,
}

/// A file or directory [`create_file`] opened.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    pub file: OwnFile,
    /// FILE_CREATED: it did not exist (it carries the given descriptor).
    pub created: bool,
}

/// `STATUS_OBJECT_NAME_COLLISION`.
pub const STATUS_OBJECT_NAME_COLLISION: windows_sys::Win32::Foundation::NTSTATUS =
    0xC000_0035_u32 as i32;

/// A `KSPIN_LOCK` (zero = released: `KeInitializeSpinLock` only zeroes
/// it, so zeroed pool holds a valid released lock). Used only through
/// [`with_spin_lock`] (queued spin lock routines).
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct SpinLock(pub(crate) core::sync::atomic::AtomicUsize);

/// `SeQuerySubjectContextToken` (ntifs.h): the effective token of a
/// captured subject context — the client (impersonation) token if there is
/// one, else the primary token. The WDK defines it as a macro (it is not an
/// ntoskrnl export), so it is defined once here, exactly as the header
/// does, and every token the driver reads goes through it: the admin check
/// on the control device and the requester's SID in pre-create. The
/// returned token is not referenced; it lives as long as the subject
/// context. Any IRQL (reads two fields).
///
/// # Safety
/// `ctx` points to a valid subject context (captured with
/// `SeCaptureSubjectContext`, or a create's
/// `AccessState->SubjectSecurityContext`).
pub unsafe fn subject_context_token(
    ctx: *const windows_sys::Wdk::Foundation::SECURITY_SUBJECT_CONTEXT,
) -> *mut core::ffi::c_void {
    // SAFETY: per the caller.
    let c = unsafe { &*ctx };
    if c.ClientToken.is_null() {
        c.PrimaryToken
    } else {
        c.ClientToken
    }
}

/// The subject context of a create's requester
/// (`SecurityContext->AccessState->SubjectSecurityContext`), if present.
///
/// # Safety
/// `data` is a create's callback data, during pre- or post-create.
pub unsafe fn create_subject_context(
    data: *const windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_CALLBACK_DATA,
) -> Option<*const windows_sys::Wdk::Foundation::SECURITY_SUBJECT_CONTEXT> {
    // SAFETY: per the caller: FltMgr's callback data.
    let iopb = unsafe { (*data).Iopb };
    // SAFETY: FltMgr always supplies a parameter block.
    let iopb = unsafe { &*iopb };
    // SAFETY: create parameters, per the caller (WDK layout, crate::wdk).
    let sec = unsafe { crate::wdk::arm::<crate::wdk::FltCreateParameters>(&iopb.Parameters) }
        .SecurityContext;
    if sec.is_null() {
        return None;
    }
    // SAFETY: the I/O manager's security context is valid during the create.
    let state = unsafe { (*sec).AccessState };
    if state.is_null() {
        return None;
    }
    // SAFETY: as above; a field address, not a read.
    Some(unsafe { core::ptr::addr_of!((*state).SubjectSecurityContext) })
}

/// Copies a binary SID (`revision, count, authority[6], sub[count]`) of at
/// most `out.len()` bytes; its length. Never reads past what the header
/// announces.
///
/// # Safety
/// `sid` points to a valid SID.
pub unsafe fn copy_sid(sid: *const u8, out: &mut [u8]) -> Option<usize> {
    if sid.is_null() {
        return None;
    }
    // SAFETY: a valid SID has at least its 8-byte header.
    let count = usize::from(unsafe { *sid.wrapping_add(1) });
    let len = 8 + 4 * count;
    if len > out.len() {
        return None;
    }
    // SAFETY: the SID is `len` bytes long per its own header.
    out[..len].copy_from_slice(unsafe { core::slice::from_raw_parts(sid, len) });
    Some(len)
}
