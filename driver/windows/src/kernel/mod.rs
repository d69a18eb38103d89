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

/// How [`create_file`] opens the driver's own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// FILE_CREATE: a new, empty file; fails with
    /// [`STATUS_OBJECT_NAME_COLLISION`] if it exists.
    New,
    /// FILE_OPEN: an existing file.
    Existing,
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
