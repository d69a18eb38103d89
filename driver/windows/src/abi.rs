//! Calling conventions of the functions the kernel calls into the driver.
//!
//! In the `.sys` every callback is `extern "system"` and a panic aborts (the
//! image is built with `panic = "abort"`; the handler bugchecks). On the
//! host, the simulation reports rule violations by panicking from inside
//! kernel calls, so the callbacks it runs must let that panic unwind back
//! to the test: there they are `extern "system-unwind"`. The
//! [`kernel_callback!`](crate::kernel_callback) macro picks the ABI; the
//! converters below store host callbacks in the windows-sys tables (whose
//! fields are typed `extern "system"`) and the simulation converts them
//! back before calling, so every call uses the ABI the function was
//! defined with.

use core::ffi::c_void;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, IRP, PEPROCESS};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;
use windows_sys::Wdk::System::SystemServices::PS_CREATE_NOTIFY_INFO;
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};
use windows_sys::Win32::Storage::InstallableFileSystems::FLT_FILESYSTEM_TYPE;

/// Defines `pub unsafe fn` with the ABI kernel callbacks need in this build.
#[macro_export]
macro_rules! kernel_callback {
    ($(#[$attr:meta])* pub unsafe fn $name:ident ( $($p:ident : $t:ty),* $(,)? ) $(-> $r:ty)? $body:block) => {
        $(#[$attr])*
        #[cfg(feature = "kernel")]
        pub unsafe extern "system" fn $name($($p: $t),*) $(-> $r)? $body
        $(#[$attr])*
        #[cfg(not(feature = "kernel"))]
        pub unsafe extern "system-unwind" fn $name($($p: $t),*) $(-> $r)? $body
    };
}

macro_rules! abi_types {
    ($( $host:ident / $conv:ident / $back:ident : ($($a:ty),*) -> $r:ty => $sys:ty ;)*) => {$(
        #[cfg(feature = "kernel")]
        pub type $host = unsafe extern "system" fn($($a),*) -> $r;
        #[cfg(not(feature = "kernel"))]
        pub type $host = unsafe extern "system-unwind" fn($($a),*) -> $r;

        /// Stores a callback in a windows-sys table field.
        pub const fn $conv(f: $host) -> $sys {
            #[cfg(feature = "kernel")]
            {
                Some(f)
            }
            #[cfg(not(feature = "kernel"))]
            {
                // SAFETY: only the simulation calls through this pointer,
                // and it converts it back with the matching `from_*` first,
                // so the call uses the unwind ABI the function has. Function
                // pointers of both ABIs have the same size and
                // representation.
                Some(unsafe { core::mem::transmute::<$host, unsafe extern "system" fn($($a),*) -> $r>(f) })
            }
        }

        /// Recovers the callback stored by the matching converter.
        #[cfg(not(feature = "kernel"))]
        pub fn $back(f: $sys) -> Option<$host> {
            // SAFETY: every such pointer in this driver was produced by the
            // matching converter from a function of the unwind ABI.
            f.map(|f| unsafe { core::mem::transmute::<unsafe extern "system" fn($($a),*) -> $r, $host>(f) })
        }
    )*};
}

abi_types! {
    PreOp / pre / from_pre: (*mut FLT_CALLBACK_DATA, *const FLT_RELATED_OBJECTS, *mut *mut c_void) -> FLT_PREOP_CALLBACK_STATUS => PFLT_PRE_OPERATION_CALLBACK;
    PostOp / post / from_post: (*mut FLT_CALLBACK_DATA, *const FLT_RELATED_OBJECTS, *const c_void, u32) -> FLT_POSTOP_CALLBACK_STATUS => PFLT_POST_OPERATION_CALLBACK;
    InstanceSetup / instance_setup / from_instance_setup: (*const FLT_RELATED_OBJECTS, u32, u32, FLT_FILESYSTEM_TYPE) -> NTSTATUS => PFLT_INSTANCE_SETUP_CALLBACK;
    Unload / unload / from_unload: (u32) -> NTSTATUS => PFLT_FILTER_UNLOAD_CALLBACK;
    QueryTeardown / query_teardown / from_query_teardown: (*const FLT_RELATED_OBJECTS, u32) -> NTSTATUS => PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK;
    Teardown / teardown / from_teardown: (*const FLT_RELATED_OBJECTS, u32) -> () => PFLT_INSTANCE_TEARDOWN_CALLBACK;
    Dispatch / dispatch / from_dispatch: (*const DEVICE_OBJECT, *mut IRP) -> NTSTATUS => windows_sys::Wdk::Foundation::DRIVER_DISPATCH;
    ProcessNotify / process_notify / from_process_notify: (PEPROCESS, HANDLE, *mut PS_CREATE_NOTIFY_INFO) -> () => windows_sys::Wdk::System::SystemServices::PCREATE_PROCESS_NOTIFY_ROUTINE_EX;
}

/// The start routine of a system thread.
#[cfg(feature = "kernel")]
pub type ThreadStart = unsafe extern "system" fn(*mut c_void);
/// The start routine of a system thread.
#[cfg(not(feature = "kernel"))]
pub type ThreadStart = unsafe extern "system-unwind" fn(*mut c_void);
