//! Kernel structures that windows-sys 0.61.2 lays out wrongly for x64,
//! defined here from the WDK headers.
//!
//! The WDK marks some `ULONG` members of parameter unions
//! `POINTER_ALIGNMENT` (`__declspec(align(8))` on x64), which Microsoft's
//! metadata — and so windows-sys — drops. Every member after the first such
//! field then sits 4 or 8 bytes too early, and a driver built on the
//! windows-sys definition reads the wrong bytes:
//!
//! | structure | windows-sys | WDK x64 | upstream |
//! |---|---|---|---|
//! | `IO_STACK_LOCATION.Parameters.DeviceIoControl` | InputBufferLength +4, IoControlCode +8 | +8, +16 | microsoft/windows-rs#4404 |
//! | `FLT_PARAMETERS.SetFileInformation` | FileInformationClass +4, InfoBuffer +24 | +8, +32 | microsoft/windows-rs#3525 |
//! | `FLT_PARAMETERS.Create` | FileAttributes +12, EaLength +16, EaBuffer +20, AllocationSize +28 (the arm is packed to 4) | +16, +24, +32, +40 | same defect (POINTER_ALIGNMENT) |
//! | `FLT_PARAMETERS.Read` / `.Write` | Key +4, ByteOffset +8, buffer +16 | +8, +16, +24 | same defect |
//!
//! The driver reads these arms only through the types below. Each is
//! checked field by field against a C compiler's `offsetof` over Wine's and
//! mingw-w64's DDK headers (`tests/layout.rs`, which also asserts that the
//! windows-sys arms above still differ), and pinned here by compile-time
//! assertions so a wrong edit cannot build.
//!
//! The simulation does not use these types: it writes requests at the
//! headers' byte offsets itself (`sim::wire`, checked by the same test), so
//! a mistake here is not mirrored there.
#![allow(non_snake_case)]

use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, FILE_OBJECT, IO_SECURITY_CONTEXT};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{FLT_PARAMETERS, PFLT_INSTANCE};

/// `FLT_PARAMETERS.Create` (fltkernel.h): `FileAttributes` and `EaLength`
/// are `POINTER_ALIGNMENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FltCreateParameters {
    pub SecurityContext: *mut IO_SECURITY_CONTEXT,
    /// Low 24 bits: create options; high 8 bits: disposition.
    pub Options: u32,
    _pad0: u32,
    pub FileAttributes: u16,
    pub ShareAccess: u16,
    _pad1: u32,
    pub EaLength: u32,
    _pad2: u32,
    pub EaBuffer: *mut c_void,
    pub AllocationSize: i64,
}

/// `FLT_PARAMETERS.Read` and `.Write` (fltkernel.h): `Key` is
/// `POINTER_ALIGNMENT`. `Buffer` is `ReadBuffer` / `WriteBuffer`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FltReadWriteParameters {
    pub Length: u32,
    _pad0: u32,
    pub Key: u32,
    _pad1: u32,
    pub ByteOffset: i64,
    pub Buffer: *mut c_void,
    pub MdlAddress: *mut c_void,
}

/// `FLT_PARAMETERS.SetFileInformation` (fltkernel.h):
/// `FileInformationClass` is `POINTER_ALIGNMENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FltSetInformationParameters {
    pub Length: u32,
    _pad0: u32,
    /// A `FILE_INFORMATION_CLASS`.
    pub FileInformationClass: i32,
    _pad1: u32,
    pub ParentOfTarget: PFLT_INSTANCE,
    /// Union of `{ BOOLEAN ReplaceIfExists; BOOLEAN AdvanceOnly; }`,
    /// `ULONG ClusterCount` and `HANDLE DeleteHandle`.
    pub ReplaceIfExistsOrDeleteHandle: usize,
    pub InfoBuffer: *mut c_void,
}

/// An arm of `FLT_PARAMETERS` defined here.
///
/// # Safety
/// Implementors are `repr(C)` plain data (integers and raw pointers) no
/// larger and no more aligned than `FLT_PARAMETERS`.
pub unsafe trait FltParametersArm: Sized {}
// SAFETY: checked by the assertions at the end of this file.
unsafe impl FltParametersArm for FltCreateParameters {}
// SAFETY: as above.
unsafe impl FltParametersArm for FltReadWriteParameters {}
// SAFETY: as above.
unsafe impl FltParametersArm for FltSetInformationParameters {}

/// The arm `T` of an operation's parameters.
///
/// # Safety
/// Every byte of `p` is initialised (FltMgr's parameter block always is;
/// the simulation zeroes it first). Which arm is meaningful depends on the
/// major function: the caller reads the one of the current operation.
pub unsafe fn arm<T: FltParametersArm>(p: &FLT_PARAMETERS) -> &T {
    // SAFETY: T fits in the union with its alignment (FltParametersArm);
    // all-initialised bytes are a valid T (integers and raw pointers).
    unsafe { &*(p as *const FLT_PARAMETERS).cast::<T>() }
}

/// `IO_STACK_LOCATION.Parameters.DeviceIoControl` (wdm.h):
/// `InputBufferLength` and `IoControlCode` are `POINTER_ALIGNMENT`.
/// Upstream: microsoft/windows-rs#4404.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DeviceIoControlParameters {
    pub OutputBufferLength: u32,
    _pad0: u32,
    pub InputBufferLength: u32,
    _pad1: u32,
    pub IoControlCode: u32,
    _pad2: u32,
    pub Type3InputBuffer: *mut c_void,
}

/// `IO_STACK_LOCATION.Parameters`: only the arm the driver reads, and the
/// union's full size (four pointers on x64).
#[repr(C)]
#[derive(Clone, Copy)]
pub union IoStackParameters {
    pub DeviceIoControl: DeviceIoControlParameters,
    pub Others: [*mut c_void; 4],
}

impl core::fmt::Debug for IoStackParameters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IoStackParameters")
    }
}

/// `IO_STACK_LOCATION` (wdm.h), with a correct `Parameters.DeviceIoControl`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IoStackLocation {
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    pub Flags: u8,
    pub Control: u8,
    pub Parameters: IoStackParameters,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub FileObject: *mut FILE_OBJECT,
    pub CompletionRoutine: *mut c_void,
    pub Context: *mut c_void,
}

/// `FILE_RENAME_INFORMATION` and `FILE_LINK_INFORMATION` (x64, the same
/// layout): byte offsets of `RootDirectory`, `FileNameLength` and
/// `FileName` (`ReplaceIfExists` / `Flags` at 0).
pub const RENAME_ROOT_DIRECTORY: usize = 8;
pub const RENAME_FILE_NAME_LENGTH: usize = 16;
pub const RENAME_FILE_NAME: usize = 20;

/// `FileAttributeTagInformation` and the size of its record
/// (`FILE_ATTRIBUTE_TAG_INFORMATION { FileAttributes; ReparseTag; }`).
pub const FILE_ATTRIBUTE_TAG_INFORMATION_CLASS: i32 = 35;
pub const FILE_ATTRIBUTE_TAG_INFORMATION_SIZE: usize = 8;

/// `SYSTEM_PROCESS_INFORMATION` (x64): byte offsets of `NextEntryOffset`,
/// `UniqueProcessId` and `InheritedFromUniqueProcessId`.
pub const SPI_NEXT_ENTRY_OFFSET: usize = 0;
pub const SPI_UNIQUE_PROCESS_ID: usize = 0x50;
pub const SPI_INHERITED_FROM_UNIQUE_PROCESS_ID: usize = 0x58;

// The constants above and the x64 layouts below are checked against a C
// compiler's offsetof by tests/layout.rs.
// x64 layouts from wdm.h / fltkernel.h (checked against the C compiler by
// tests/layout.rs; these keep the definitions from drifting in between).
const _: () = {
    assert!(offset_of!(FltCreateParameters, SecurityContext) == 0);
    assert!(offset_of!(FltCreateParameters, Options) == 8);
    assert!(offset_of!(FltCreateParameters, FileAttributes) == 16);
    assert!(offset_of!(FltCreateParameters, ShareAccess) == 18);
    assert!(offset_of!(FltCreateParameters, EaLength) == 24);
    assert!(offset_of!(FltCreateParameters, EaBuffer) == 32);
    assert!(offset_of!(FltCreateParameters, AllocationSize) == 40);
    assert!(size_of::<FltCreateParameters>() == 48);

    assert!(offset_of!(FltReadWriteParameters, Length) == 0);
    assert!(offset_of!(FltReadWriteParameters, Key) == 8);
    assert!(offset_of!(FltReadWriteParameters, ByteOffset) == 16);
    assert!(offset_of!(FltReadWriteParameters, Buffer) == 24);
    assert!(offset_of!(FltReadWriteParameters, MdlAddress) == 32);

    assert!(offset_of!(FltSetInformationParameters, Length) == 0);
    assert!(offset_of!(FltSetInformationParameters, FileInformationClass) == 8);
    assert!(offset_of!(FltSetInformationParameters, ParentOfTarget) == 16);
    assert!(offset_of!(FltSetInformationParameters, ReplaceIfExistsOrDeleteHandle) == 24);
    assert!(offset_of!(FltSetInformationParameters, InfoBuffer) == 32);

    assert!(size_of::<FltCreateParameters>() <= size_of::<FLT_PARAMETERS>());
    assert!(size_of::<FltReadWriteParameters>() <= size_of::<FLT_PARAMETERS>());
    assert!(size_of::<FltSetInformationParameters>() <= size_of::<FLT_PARAMETERS>());
    assert!(align_of::<FltCreateParameters>() <= align_of::<FLT_PARAMETERS>());
    assert!(align_of::<FltReadWriteParameters>() <= align_of::<FLT_PARAMETERS>());
    assert!(align_of::<FltSetInformationParameters>() <= align_of::<FLT_PARAMETERS>());

    assert!(offset_of!(DeviceIoControlParameters, OutputBufferLength) == 0);
    assert!(offset_of!(DeviceIoControlParameters, InputBufferLength) == 8);
    assert!(offset_of!(DeviceIoControlParameters, IoControlCode) == 16);
    assert!(offset_of!(DeviceIoControlParameters, Type3InputBuffer) == 24);
    assert!(offset_of!(IoStackLocation, Parameters) == 8);
    assert!(offset_of!(IoStackLocation, DeviceObject) == 40);
    assert!(offset_of!(IoStackLocation, FileObject) == 48);
    assert!(offset_of!(IoStackLocation, CompletionRoutine) == 56);
    assert!(offset_of!(IoStackLocation, Context) == 64);
    assert!(size_of::<IoStackLocation>() == 72);
};
