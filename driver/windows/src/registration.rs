//! The registration table handed to FltRegisterFilter: which operations we
//! filter, which contexts we use, and the instance and unload callbacks.
//! Kept apart (as in Microsoft's minispy `RegistrationData.c`) so the
//! filter's whole surface is visible in one place.
//!
//! Everything here is `static` data in the image's non-paged `.rdata`.

use core::ptr::null_mut;

use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;

use crate::abi;
use crate::kernel::POOL_TAG;

/// `FLT_VARIABLE_SIZED_CONTEXTS`: the name context's size varies per file.
const FLT_VARIABLE_SIZED_CONTEXTS: usize = usize::MAX;

const fn op(
    major: u8,
    pre: PFLT_PRE_OPERATION_CALLBACK,
    post: PFLT_POST_OPERATION_CALLBACK,
) -> FLT_OPERATION_REGISTRATION {
    FLT_OPERATION_REGISTRATION {
        MajorFunction: major,
        Flags: 0,
        PreOperation: pre,
        PostOperation: post,
        Reserved1: null_mut(),
    }
}

/// `IRP_MJ_OPERATION_END`.
const IRP_MJ_OPERATION_END: u8 = 0x80;

/// Immutable registration data holding raw pointers (only to other
/// statics), made shareable.
#[repr(transparent)]
pub struct Table<T>(pub T);

impl<T> core::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Table")
    }
}
// SAFETY: the tables are never written and point only at immutable statics
// and functions.
unsafe impl<T> Sync for Table<T> {}

/// The filtered operations.
pub static OPERATIONS: Table<[FLT_OPERATION_REGISTRATION; 6]> = Table([
    op(
        0x00,
        abi::pre(crate::ops::pre_create),
        abi::post(crate::ops::post_create),
    ), // IRP_MJ_CREATE
    op(
        0x03,
        abi::pre(crate::ops::pre_io),
        abi::post(crate::ops::post_io),
    ), // IRP_MJ_READ
    op(
        0x04,
        abi::pre(crate::ops::pre_io),
        abi::post(crate::ops::post_io),
    ), // IRP_MJ_WRITE
    op(
        0x06,
        abi::pre(crate::ops::pre_io),
        abi::post(crate::ops::post_io),
    ), // IRP_MJ_SET_INFORMATION
    op(0x12, abi::pre(crate::ops::pre_io), None), // IRP_MJ_CLEANUP
    op(IRP_MJ_OPERATION_END, None, None),
]);

const fn ctx(kind: u32, size: usize) -> FLT_CONTEXT_REGISTRATION {
    FLT_CONTEXT_REGISTRATION {
        ContextType: kind as u16,
        Flags: 0,
        // Neither context owns anything but its own bytes.
        ContextCleanupCallback: None,
        Size: size,
        PoolTag: POOL_TAG,
        ContextAllocateCallback: None,
        ContextFreeCallback: None,
        Reserved1: null_mut(),
    }
}

/// The contexts: the instance's DOS prefix and the per-handle name.
pub static CONTEXTS: Table<[FLT_CONTEXT_REGISTRATION; 3]> = Table([
    ctx(
        FLT_INSTANCE_CONTEXT,
        core::mem::size_of::<crate::instance::InstanceContext>(),
    ),
    ctx(FLT_STREAMHANDLE_CONTEXT, FLT_VARIABLE_SIZED_CONTEXTS),
    ctx(FLT_CONTEXT_END, 0),
]);

/// The registration handed to FltRegisterFilter.
pub static REGISTRATION: Table<FLT_REGISTRATION> = Table(FLT_REGISTRATION {
    Size: core::mem::size_of::<FLT_REGISTRATION>() as u16,
    Version: FLT_REGISTRATION_VERSION as u16,
    Flags: 0,
    ContextRegistration: CONTEXTS.0.as_ptr(),
    OperationRegistration: OPERATIONS.0.as_ptr(),
    FilterUnloadCallback: abi::unload(crate::entry::filter_unload),
    InstanceSetupCallback: abi::instance_setup(crate::instance::instance_setup),
    InstanceQueryTeardownCallback: abi::query_teardown(crate::instance::instance_query_teardown),
    InstanceTeardownStartCallback: abi::teardown(crate::instance::instance_teardown_start),
    InstanceTeardownCompleteCallback: abi::teardown(crate::instance::instance_teardown_complete),
    GenerateFileNameCallback: None,
    NormalizeNameComponentCallback: None,
    NormalizeContextCleanupCallback: None,
    TransactionNotificationCallback: None,
    NormalizeNameComponentExCallback: None,
    SectionNotificationCallback: None,
});
