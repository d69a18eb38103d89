//! Every kernel structure the driver reads or writes, checked field by
//! field (x64 offset and size) against a C compiler over DDK headers this
//! project did not write: Wine's (`libwine-dev`: `ddk/ntifs.h`,
//! `ddk/fltkernel.h`, `ddk/wdm.h`) and mingw-w64's (`ddk/ntifs.h`, which
//! has no `fltkernel.h`).
//!
//! The test writes a C file with one `offsetof`/`sizeof` probe per row
//! below, compiles it to assembly with `x86_64-w64-mingw32-gcc -S` (the
//! values come out as assembler constants: nothing has to run on Windows),
//! and compares each number with `core::mem::offset_of!`/`size_of` on the
//! type the driver actually uses — windows-sys's where it is right, the
//! driver's own ([`fltpolicy_driver::wdk`]) where it is not. A probe a
//! header set does not declare (mingw has no Filter Manager types) is
//! reported as such; each row must be checked by at least one header set.
//!
//! A second table keeps the windows-sys definitions the driver replaced and
//! asserts that they still disagree with the headers exactly where
//! `wdk.rs` says (microsoft/windows-rs#4404, #3525): if an upgrade fixes
//! them, this test says so.
//!
//! `cargo test -p fltpolicy-driver --test layout -- --nocapture` prints the
//! whole table (docs/windows-driver.md keeps a copy).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use fltpolicy_driver::wdk;
use windows_sys::Wdk::Foundation::*;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;
use windows_sys::Wdk::Storage::FileSystem::*;
use windows_sys::Wdk::System::SystemServices::*;
use windows_sys::Win32::Foundation::*;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

/// The Windows C compiler (mingw-w64; `.ci/run` installs it).
fn compiler() -> String {
    std::env::var("FLTPOLICY_WIN_CC").unwrap_or_else(|_| "x86_64-w64-mingw32-gcc".into())
}
const WINE_INCLUDE: &str = "/usr/include/wine/wine/windows";
const MINGW_DDK: &str = "/usr/share/mingw-w64/include/ddk";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `offsetof` and `sizeof` of a member.
    Field,
    /// `offsetof` only (the simulation's byte offsets).
    Offset,
    /// `sizeof` of the type.
    Size,
    /// `__alignof__` of the type.
    Align,
    /// The value of a constant expression.
    Value,
}

#[derive(Clone, Debug)]
struct Row {
    ctype: &'static str,
    cfield: &'static str,
    kind: Kind,
    /// The Rust type and path compared, for the report.
    rust: String,
    /// (offset or value, size)
    got: (i128, Option<usize>),
}

impl Row {
    fn key(&self) -> String {
        match self.kind {
            Kind::Size => format!("{} sizeof", self.ctype),
            Kind::Align => format!("{} alignof", self.ctype),
            Kind::Value => format!("value {}", self.cfield),
            _ => format!("{} {}", self.ctype, self.cfield),
        }
    }
    fn probe(&self) -> String {
        let k = self.key();
        match self.kind {
            Kind::Field | Kind::Offset => format!(
                "P(\"{k}\", offsetof({t}, {f}), sizeof(((({t} *)0)->{f})))",
                t = self.ctype,
                f = self.cfield
            ),
            Kind::Size => format!("P(\"{k}\", sizeof({}), 0)", self.ctype),
            Kind::Align => format!("P(\"{k}\", __alignof__({}), 0)", self.ctype),
            Kind::Value => format!("P(\"{k}\", (long long)({}), 0)", self.cfield),
        }
    }
}

/// Size of the place a raw pointer projection names.
fn pointee_size<F>(_: *const F) -> usize {
    std::mem::size_of::<F>()
}

macro_rules! field {
    ($rows:ident, $ct:literal . $cf:literal => $t:ty, $($p:tt)+) => {{
        let u = std::mem::MaybeUninit::<$t>::uninit();
        // SAFETY: a raw place projection into uninitialised memory: no
        // reference is made and nothing is read.
        let size = pointee_size(unsafe { &raw const (*u.as_ptr()).$($p)+ });
        $rows.push(Row {
            ctype: $ct,
            cfield: $cf,
            kind: Kind::Field,
            rust: format!("{}.{}", stringify!($t), stringify!($($p)+).replace(' ', "")),
            got: (std::mem::offset_of!($t, $($p)+) as i128, Some(size)),
        });
    }};
}

macro_rules! size {
    ($rows:ident, $ct:literal => $t:ty) => {{
        $rows.push(Row {
            ctype: $ct,
            cfield: "",
            kind: Kind::Size,
            rust: format!("size_of::<{}>", stringify!($t)),
            got: (std::mem::size_of::<$t>() as i128, None),
        });
    }};
}

macro_rules! align {
    ($rows:ident, $ct:literal => $t:ty) => {{
        $rows.push(Row {
            ctype: $ct,
            cfield: "",
            kind: Kind::Align,
            rust: format!("align_of::<{}>", stringify!($t)),
            got: (std::mem::align_of::<$t>() as i128, None),
        });
    }};
}

macro_rules! value {
    ($rows:ident, $c:literal => $v:expr) => {{
        $rows.push(Row {
            ctype: "",
            cfield: $c,
            kind: Kind::Value,
            rust: stringify!($v).replace(' ', ""),
            got: ($v as i128, None),
        });
    }};
}

macro_rules! offset {
    ($rows:ident, $ct:literal . $cf:literal => $v:expr) => {{
        $rows.push(Row {
            ctype: $ct,
            cfield: $cf,
            kind: Kind::Offset,
            rust: stringify!($v).replace(' ', ""),
            got: ($v as i128, None),
        });
    }};
}

/// What the driver reads and writes, with the types it uses.
fn driver_rows() -> Vec<Row> {
    let mut r = Vec::new();
    // Callback data and parameter block (fltkernel.h).
    field!(r, "FLT_CALLBACK_DATA"."Flags" => FLT_CALLBACK_DATA, Flags);
    field!(r, "FLT_CALLBACK_DATA"."Thread" => FLT_CALLBACK_DATA, Thread);
    field!(r, "FLT_CALLBACK_DATA"."Iopb" => FLT_CALLBACK_DATA, Iopb);
    field!(r, "FLT_CALLBACK_DATA"."IoStatus" => FLT_CALLBACK_DATA, IoStatus);
    field!(r, "FLT_CALLBACK_DATA"."IoStatus.Status" => FLT_CALLBACK_DATA, IoStatus.Anonymous.Status);
    field!(r, "FLT_CALLBACK_DATA"."IoStatus.Information" => FLT_CALLBACK_DATA, IoStatus.Information);
    field!(r, "FLT_CALLBACK_DATA"."TagData" => FLT_CALLBACK_DATA, TagData);
    field!(r, "FLT_CALLBACK_DATA"."RequestorMode" => FLT_CALLBACK_DATA, RequestorMode);
    size!(r, "FLT_CALLBACK_DATA" => FLT_CALLBACK_DATA);
    field!(r, "FLT_IO_PARAMETER_BLOCK"."IrpFlags" => FLT_IO_PARAMETER_BLOCK, IrpFlags);
    field!(r, "FLT_IO_PARAMETER_BLOCK"."MajorFunction" => FLT_IO_PARAMETER_BLOCK, MajorFunction);
    field!(r, "FLT_IO_PARAMETER_BLOCK"."MinorFunction" => FLT_IO_PARAMETER_BLOCK, MinorFunction);
    field!(r, "FLT_IO_PARAMETER_BLOCK"."OperationFlags" => FLT_IO_PARAMETER_BLOCK, OperationFlags);
    field!(r, "FLT_IO_PARAMETER_BLOCK"."TargetFileObject" => FLT_IO_PARAMETER_BLOCK, TargetFileObject);
    field!(r, "FLT_IO_PARAMETER_BLOCK"."TargetInstance" => FLT_IO_PARAMETER_BLOCK, TargetInstance);
    field!(r, "FLT_IO_PARAMETER_BLOCK"."Parameters" => FLT_IO_PARAMETER_BLOCK, Parameters);
    size!(r, "FLT_IO_PARAMETER_BLOCK" => FLT_IO_PARAMETER_BLOCK);
    size!(r, "FLT_PARAMETERS" => FLT_PARAMETERS);
    align!(r, "FLT_PARAMETERS" => FLT_PARAMETERS);
    // FLT_PARAMETERS arms the driver reads: its own definitions (the arms
    // start at offset 0 of the union).
    field!(r, "FLT_PARAMETERS"."Create.SecurityContext" => wdk::FltCreateParameters, SecurityContext);
    field!(r, "FLT_PARAMETERS"."Create.Options" => wdk::FltCreateParameters, Options);
    field!(r, "FLT_PARAMETERS"."Create.FileAttributes" => wdk::FltCreateParameters, FileAttributes);
    field!(r, "FLT_PARAMETERS"."Create.ShareAccess" => wdk::FltCreateParameters, ShareAccess);
    field!(r, "FLT_PARAMETERS"."Create.EaLength" => wdk::FltCreateParameters, EaLength);
    field!(r, "FLT_PARAMETERS"."Create.EaBuffer" => wdk::FltCreateParameters, EaBuffer);
    field!(r, "FLT_PARAMETERS"."Create.AllocationSize" => wdk::FltCreateParameters, AllocationSize);
    field!(r, "FLT_PARAMETERS"."Read.Length" => wdk::FltReadWriteParameters, Length);
    field!(r, "FLT_PARAMETERS"."Read.Key" => wdk::FltReadWriteParameters, Key);
    field!(r, "FLT_PARAMETERS"."Read.ByteOffset" => wdk::FltReadWriteParameters, ByteOffset);
    field!(r, "FLT_PARAMETERS"."Read.ReadBuffer" => wdk::FltReadWriteParameters, Buffer);
    field!(r, "FLT_PARAMETERS"."Read.MdlAddress" => wdk::FltReadWriteParameters, MdlAddress);
    field!(r, "FLT_PARAMETERS"."Write.Length" => wdk::FltReadWriteParameters, Length);
    field!(r, "FLT_PARAMETERS"."Write.Key" => wdk::FltReadWriteParameters, Key);
    field!(r, "FLT_PARAMETERS"."Write.ByteOffset" => wdk::FltReadWriteParameters, ByteOffset);
    field!(r, "FLT_PARAMETERS"."Write.WriteBuffer" => wdk::FltReadWriteParameters, Buffer);
    field!(r, "FLT_PARAMETERS"."Write.MdlAddress" => wdk::FltReadWriteParameters, MdlAddress);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.Length" => wdk::FltSetInformationParameters, Length);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.FileInformationClass" => wdk::FltSetInformationParameters, FileInformationClass);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.ParentOfTarget" => wdk::FltSetInformationParameters, ParentOfTarget);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.DeleteHandle" => wdk::FltSetInformationParameters, ReplaceIfExistsOrDeleteHandle);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.InfoBuffer" => wdk::FltSetInformationParameters, InfoBuffer);
    // The simulation's byte offsets (sim::wire), relative to the union.
    offset!(r, "FLT_PARAMETERS"."Create.SecurityContext" => fltpolicy_driver::sim::wire::CREATE_SECURITY_CONTEXT);
    offset!(r, "FLT_PARAMETERS"."Create.Options" => fltpolicy_driver::sim::wire::CREATE_OPTIONS);
    offset!(r, "FLT_PARAMETERS"."Create.AllocationSize" => fltpolicy_driver::sim::wire::CREATE_ALLOCATION_SIZE);
    offset!(r, "FLT_PARAMETERS"."Write.Length" => fltpolicy_driver::sim::wire::READ_WRITE_LENGTH);
    offset!(r, "FLT_PARAMETERS"."SetFileInformation.Length" => fltpolicy_driver::sim::wire::SET_INFO_LENGTH);
    offset!(r, "FLT_PARAMETERS"."SetFileInformation.FileInformationClass" => fltpolicy_driver::sim::wire::SET_INFO_CLASS);
    offset!(r, "FLT_PARAMETERS"."SetFileInformation.InfoBuffer" => fltpolicy_driver::sim::wire::SET_INFO_BUFFER);
    offset!(r, "IO_STACK_LOCATION"."MajorFunction" => fltpolicy_driver::sim::wire::STACK_MAJOR);
    offset!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.OutputBufferLength" => fltpolicy_driver::sim::wire::IOCTL_OUTPUT_LENGTH);
    offset!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.InputBufferLength" => fltpolicy_driver::sim::wire::IOCTL_INPUT_LENGTH);
    offset!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.IoControlCode" => fltpolicy_driver::sim::wire::IOCTL_CODE);
    // Related objects, registration tables.
    field!(r, "FLT_RELATED_OBJECTS"."Size" => FLT_RELATED_OBJECTS, Size);
    field!(r, "FLT_RELATED_OBJECTS"."TransactionContext" => FLT_RELATED_OBJECTS, TransactionContext);
    field!(r, "FLT_RELATED_OBJECTS"."Filter" => FLT_RELATED_OBJECTS, Filter);
    field!(r, "FLT_RELATED_OBJECTS"."Volume" => FLT_RELATED_OBJECTS, Volume);
    field!(r, "FLT_RELATED_OBJECTS"."Instance" => FLT_RELATED_OBJECTS, Instance);
    field!(r, "FLT_RELATED_OBJECTS"."FileObject" => FLT_RELATED_OBJECTS, FileObject);
    field!(r, "FLT_RELATED_OBJECTS"."Transaction" => FLT_RELATED_OBJECTS, Transaction);
    size!(r, "FLT_RELATED_OBJECTS" => FLT_RELATED_OBJECTS);
    field!(r, "FLT_REGISTRATION"."Size" => FLT_REGISTRATION, Size);
    field!(r, "FLT_REGISTRATION"."Version" => FLT_REGISTRATION, Version);
    field!(r, "FLT_REGISTRATION"."Flags" => FLT_REGISTRATION, Flags);
    field!(r, "FLT_REGISTRATION"."ContextRegistration" => FLT_REGISTRATION, ContextRegistration);
    field!(r, "FLT_REGISTRATION"."OperationRegistration" => FLT_REGISTRATION, OperationRegistration);
    field!(r, "FLT_REGISTRATION"."FilterUnloadCallback" => FLT_REGISTRATION, FilterUnloadCallback);
    field!(r, "FLT_REGISTRATION"."InstanceSetupCallback" => FLT_REGISTRATION, InstanceSetupCallback);
    field!(r, "FLT_REGISTRATION"."InstanceQueryTeardownCallback" => FLT_REGISTRATION, InstanceQueryTeardownCallback);
    field!(r, "FLT_REGISTRATION"."InstanceTeardownStartCallback" => FLT_REGISTRATION, InstanceTeardownStartCallback);
    field!(r, "FLT_REGISTRATION"."InstanceTeardownCompleteCallback" => FLT_REGISTRATION, InstanceTeardownCompleteCallback);
    field!(r, "FLT_REGISTRATION"."GenerateFileNameCallback" => FLT_REGISTRATION, GenerateFileNameCallback);
    field!(r, "FLT_REGISTRATION"."NormalizeNameComponentCallback" => FLT_REGISTRATION, NormalizeNameComponentCallback);
    field!(r, "FLT_REGISTRATION"."NormalizeContextCleanupCallback" => FLT_REGISTRATION, NormalizeContextCleanupCallback);
    field!(r, "FLT_REGISTRATION"."TransactionNotificationCallback" => FLT_REGISTRATION, TransactionNotificationCallback);
    field!(r, "FLT_REGISTRATION"."NormalizeNameComponentExCallback" => FLT_REGISTRATION, NormalizeNameComponentExCallback);
    field!(r, "FLT_REGISTRATION"."SectionNotificationCallback" => FLT_REGISTRATION, SectionNotificationCallback);
    size!(r, "FLT_REGISTRATION" => FLT_REGISTRATION);
    field!(r, "FLT_OPERATION_REGISTRATION"."MajorFunction" => FLT_OPERATION_REGISTRATION, MajorFunction);
    field!(r, "FLT_OPERATION_REGISTRATION"."Flags" => FLT_OPERATION_REGISTRATION, Flags);
    field!(r, "FLT_OPERATION_REGISTRATION"."PreOperation" => FLT_OPERATION_REGISTRATION, PreOperation);
    field!(r, "FLT_OPERATION_REGISTRATION"."PostOperation" => FLT_OPERATION_REGISTRATION, PostOperation);
    field!(r, "FLT_OPERATION_REGISTRATION"."Reserved1" => FLT_OPERATION_REGISTRATION, Reserved1);
    size!(r, "FLT_OPERATION_REGISTRATION" => FLT_OPERATION_REGISTRATION);
    field!(r, "FLT_CONTEXT_REGISTRATION"."ContextType" => FLT_CONTEXT_REGISTRATION, ContextType);
    field!(r, "FLT_CONTEXT_REGISTRATION"."Flags" => FLT_CONTEXT_REGISTRATION, Flags);
    field!(r, "FLT_CONTEXT_REGISTRATION"."ContextCleanupCallback" => FLT_CONTEXT_REGISTRATION, ContextCleanupCallback);
    field!(r, "FLT_CONTEXT_REGISTRATION"."Size" => FLT_CONTEXT_REGISTRATION, Size);
    field!(r, "FLT_CONTEXT_REGISTRATION"."PoolTag" => FLT_CONTEXT_REGISTRATION, PoolTag);
    field!(r, "FLT_CONTEXT_REGISTRATION"."ContextAllocateCallback" => FLT_CONTEXT_REGISTRATION, ContextAllocateCallback);
    field!(r, "FLT_CONTEXT_REGISTRATION"."ContextFreeCallback" => FLT_CONTEXT_REGISTRATION, ContextFreeCallback);
    field!(r, "FLT_CONTEXT_REGISTRATION"."Reserved1" => FLT_CONTEXT_REGISTRATION, Reserved1);
    size!(r, "FLT_CONTEXT_REGISTRATION" => FLT_CONTEXT_REGISTRATION);
    // Name information.
    field!(r, "FLT_FILE_NAME_INFORMATION"."Size" => FLT_FILE_NAME_INFORMATION, Size);
    field!(r, "FLT_FILE_NAME_INFORMATION"."NamesParsed" => FLT_FILE_NAME_INFORMATION, NamesParsed);
    field!(r, "FLT_FILE_NAME_INFORMATION"."Format" => FLT_FILE_NAME_INFORMATION, Format);
    field!(r, "FLT_FILE_NAME_INFORMATION"."Name" => FLT_FILE_NAME_INFORMATION, Name);
    field!(r, "FLT_FILE_NAME_INFORMATION"."Volume" => FLT_FILE_NAME_INFORMATION, Volume);
    field!(r, "FLT_FILE_NAME_INFORMATION"."Share" => FLT_FILE_NAME_INFORMATION, Share);
    field!(r, "FLT_FILE_NAME_INFORMATION"."Extension" => FLT_FILE_NAME_INFORMATION, Extension);
    field!(r, "FLT_FILE_NAME_INFORMATION"."Stream" => FLT_FILE_NAME_INFORMATION, Stream);
    field!(r, "FLT_FILE_NAME_INFORMATION"."FinalComponent" => FLT_FILE_NAME_INFORMATION, FinalComponent);
    field!(r, "FLT_FILE_NAME_INFORMATION"."ParentDir" => FLT_FILE_NAME_INFORMATION, ParentDir);
    size!(r, "FLT_FILE_NAME_INFORMATION" => FLT_FILE_NAME_INFORMATION);
    // Create security context.
    field!(r, "IO_SECURITY_CONTEXT"."SecurityQos" => IO_SECURITY_CONTEXT, SecurityQos);
    field!(r, "IO_SECURITY_CONTEXT"."AccessState" => IO_SECURITY_CONTEXT, AccessState);
    field!(r, "IO_SECURITY_CONTEXT"."DesiredAccess" => IO_SECURITY_CONTEXT, DesiredAccess);
    field!(r, "IO_SECURITY_CONTEXT"."FullCreateOptions" => IO_SECURITY_CONTEXT, FullCreateOptions);
    size!(r, "IO_SECURITY_CONTEXT" => IO_SECURITY_CONTEXT);
    field!(r, "ACCESS_STATE"."OperationID" => ACCESS_STATE, OperationID);
    field!(r, "ACCESS_STATE"."Flags" => ACCESS_STATE, Flags);
    field!(r, "ACCESS_STATE"."RemainingDesiredAccess" => ACCESS_STATE, RemainingDesiredAccess);
    field!(r, "ACCESS_STATE"."PreviouslyGrantedAccess" => ACCESS_STATE, PreviouslyGrantedAccess);
    field!(r, "ACCESS_STATE"."OriginalDesiredAccess" => ACCESS_STATE, OriginalDesiredAccess);
    field!(r, "ACCESS_STATE"."SubjectSecurityContext" => ACCESS_STATE, SubjectSecurityContext);
    field!(r, "ACCESS_STATE"."SecurityDescriptor" => ACCESS_STATE, SecurityDescriptor);
    field!(r, "ACCESS_STATE"."AuxData" => ACCESS_STATE, AuxData);
    field!(r, "ACCESS_STATE"."ObjectName" => ACCESS_STATE, ObjectName);
    field!(r, "ACCESS_STATE"."ObjectTypeName" => ACCESS_STATE, ObjectTypeName);
    size!(r, "ACCESS_STATE" => ACCESS_STATE);
    field!(r, "SECURITY_SUBJECT_CONTEXT"."ClientToken" => SECURITY_SUBJECT_CONTEXT, ClientToken);
    field!(r, "SECURITY_SUBJECT_CONTEXT"."ImpersonationLevel" => SECURITY_SUBJECT_CONTEXT, ImpersonationLevel);
    field!(r, "SECURITY_SUBJECT_CONTEXT"."PrimaryToken" => SECURITY_SUBJECT_CONTEXT, PrimaryToken);
    field!(r, "SECURITY_SUBJECT_CONTEXT"."ProcessAuditId" => SECURITY_SUBJECT_CONTEXT, ProcessAuditId);
    size!(r, "SECURITY_SUBJECT_CONTEXT" => SECURITY_SUBJECT_CONTEXT);
    // Process notify.
    field!(r, "PS_CREATE_NOTIFY_INFO"."Size" => PS_CREATE_NOTIFY_INFO, Size);
    field!(r, "PS_CREATE_NOTIFY_INFO"."Flags" => PS_CREATE_NOTIFY_INFO, Anonymous.Flags);
    field!(r, "PS_CREATE_NOTIFY_INFO"."ParentProcessId" => PS_CREATE_NOTIFY_INFO, ParentProcessId);
    field!(r, "PS_CREATE_NOTIFY_INFO"."CreatingThreadId" => PS_CREATE_NOTIFY_INFO, CreatingThreadId);
    field!(r, "PS_CREATE_NOTIFY_INFO"."FileObject" => PS_CREATE_NOTIFY_INFO, FileObject);
    field!(r, "PS_CREATE_NOTIFY_INFO"."ImageFileName" => PS_CREATE_NOTIFY_INFO, ImageFileName);
    field!(r, "PS_CREATE_NOTIFY_INFO"."CommandLine" => PS_CREATE_NOTIFY_INFO, CommandLine);
    field!(r, "PS_CREATE_NOTIFY_INFO"."CreationStatus" => PS_CREATE_NOTIFY_INFO, CreationStatus);
    size!(r, "PS_CREATE_NOTIFY_INFO" => PS_CREATE_NOTIFY_INFO);
    // IRP and its stack location (control device).
    field!(r, "IRP"."Type" => IRP, Type);
    field!(r, "IRP"."Size" => IRP, Size);
    field!(r, "IRP"."MdlAddress" => IRP, MdlAddress);
    field!(r, "IRP"."Flags" => IRP, Flags);
    field!(r, "IRP"."AssociatedIrp.SystemBuffer" => IRP, AssociatedIrp.SystemBuffer);
    field!(r, "IRP"."IoStatus" => IRP, IoStatus);
    field!(r, "IRP"."IoStatus.Status" => IRP, IoStatus.Anonymous.Status);
    field!(r, "IRP"."IoStatus.Information" => IRP, IoStatus.Information);
    field!(r, "IRP"."RequestorMode" => IRP, RequestorMode);
    field!(r, "IRP"."UserBuffer" => IRP, UserBuffer);
    field!(r, "IRP"."Tail.Overlay.CurrentStackLocation" => IRP, Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation);
    size!(r, "IRP" => IRP);
    field!(r, "IO_STACK_LOCATION"."MajorFunction" => wdk::IoStackLocation, MajorFunction);
    field!(r, "IO_STACK_LOCATION"."MinorFunction" => wdk::IoStackLocation, MinorFunction);
    field!(r, "IO_STACK_LOCATION"."Flags" => wdk::IoStackLocation, Flags);
    field!(r, "IO_STACK_LOCATION"."Control" => wdk::IoStackLocation, Control);
    field!(r, "IO_STACK_LOCATION"."Parameters" => wdk::IoStackLocation, Parameters);
    field!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.OutputBufferLength" => wdk::IoStackLocation, Parameters.DeviceIoControl.OutputBufferLength);
    field!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.InputBufferLength" => wdk::IoStackLocation, Parameters.DeviceIoControl.InputBufferLength);
    field!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.IoControlCode" => wdk::IoStackLocation, Parameters.DeviceIoControl.IoControlCode);
    field!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.Type3InputBuffer" => wdk::IoStackLocation, Parameters.DeviceIoControl.Type3InputBuffer);
    field!(r, "IO_STACK_LOCATION"."DeviceObject" => wdk::IoStackLocation, DeviceObject);
    field!(r, "IO_STACK_LOCATION"."FileObject" => wdk::IoStackLocation, FileObject);
    field!(r, "IO_STACK_LOCATION"."CompletionRoutine" => wdk::IoStackLocation, CompletionRoutine);
    field!(r, "IO_STACK_LOCATION"."Context" => wdk::IoStackLocation, Context);
    size!(r, "IO_STACK_LOCATION" => wdk::IoStackLocation);
    // Driver and device objects (DriverEntry writes MajorFunction; the
    // control device's Flags are cleared of DO_DEVICE_INITIALIZING).
    field!(r, "DRIVER_OBJECT"."Type" => DRIVER_OBJECT, Type);
    field!(r, "DRIVER_OBJECT"."DeviceObject" => DRIVER_OBJECT, DeviceObject);
    field!(r, "DRIVER_OBJECT"."Flags" => DRIVER_OBJECT, Flags);
    field!(r, "DRIVER_OBJECT"."DriverStart" => DRIVER_OBJECT, DriverStart);
    field!(r, "DRIVER_OBJECT"."DriverExtension" => DRIVER_OBJECT, DriverExtension);
    field!(r, "DRIVER_OBJECT"."DriverName" => DRIVER_OBJECT, DriverName);
    field!(r, "DRIVER_OBJECT"."FastIoDispatch" => DRIVER_OBJECT, FastIoDispatch);
    field!(r, "DRIVER_OBJECT"."DriverInit" => DRIVER_OBJECT, DriverInit);
    field!(r, "DRIVER_OBJECT"."DriverUnload" => DRIVER_OBJECT, DriverUnload);
    field!(r, "DRIVER_OBJECT"."MajorFunction" => DRIVER_OBJECT, MajorFunction);
    size!(r, "DRIVER_OBJECT" => DRIVER_OBJECT);
    field!(r, "DEVICE_OBJECT"."Type" => DEVICE_OBJECT, Type);
    field!(r, "DEVICE_OBJECT"."DriverObject" => DEVICE_OBJECT, DriverObject);
    field!(r, "DEVICE_OBJECT"."Flags" => DEVICE_OBJECT, Flags);
    field!(r, "DEVICE_OBJECT"."Characteristics" => DEVICE_OBJECT, Characteristics);
    field!(r, "DEVICE_OBJECT"."DeviceExtension" => DEVICE_OBJECT, DeviceExtension);
    field!(r, "DEVICE_OBJECT"."DeviceType" => DEVICE_OBJECT, DeviceType);
    size!(r, "DEVICE_OBJECT" => DEVICE_OBJECT);
    size!(r, "FILE_OBJECT" => FILE_OBJECT);
    // Kernel objects and plain records.
    size!(r, "KEVENT" => KEVENT);
    align!(r, "KEVENT" => KEVENT);
    field!(r, "OBJECT_ATTRIBUTES"."Length" => OBJECT_ATTRIBUTES, Length);
    field!(r, "OBJECT_ATTRIBUTES"."RootDirectory" => OBJECT_ATTRIBUTES, RootDirectory);
    field!(r, "OBJECT_ATTRIBUTES"."ObjectName" => OBJECT_ATTRIBUTES, ObjectName);
    field!(r, "OBJECT_ATTRIBUTES"."Attributes" => OBJECT_ATTRIBUTES, Attributes);
    field!(r, "OBJECT_ATTRIBUTES"."SecurityDescriptor" => OBJECT_ATTRIBUTES, SecurityDescriptor);
    field!(r, "OBJECT_ATTRIBUTES"."SecurityQualityOfService" => OBJECT_ATTRIBUTES, SecurityQualityOfService);
    size!(r, "OBJECT_ATTRIBUTES" => OBJECT_ATTRIBUTES);
    field!(r, "UNICODE_STRING"."Length" => UNICODE_STRING, Length);
    field!(r, "UNICODE_STRING"."MaximumLength" => UNICODE_STRING, MaximumLength);
    field!(r, "UNICODE_STRING"."Buffer" => UNICODE_STRING, Buffer);
    size!(r, "UNICODE_STRING" => UNICODE_STRING);
    field!(r, "IO_STATUS_BLOCK"."Status" => IO_STATUS_BLOCK, Anonymous.Status);
    field!(r, "IO_STATUS_BLOCK"."Pointer" => IO_STATUS_BLOCK, Anonymous.Pointer);
    field!(r, "IO_STATUS_BLOCK"."Information" => IO_STATUS_BLOCK, Information);
    size!(r, "IO_STATUS_BLOCK" => IO_STATUS_BLOCK);
    // File information classes the driver reads (set-info buffers) or
    // writes (its own log: end of file, rename).
    field!(r, "FILE_DISPOSITION_INFORMATION"."DeleteFile" => FILE_DISPOSITION_INFORMATION, DeleteFile);
    size!(r, "FILE_DISPOSITION_INFORMATION" => FILE_DISPOSITION_INFORMATION);
    field!(r, "FILE_DISPOSITION_INFORMATION_EX"."Flags" => FILE_DISPOSITION_INFORMATION_EX, Flags);
    size!(r, "FILE_DISPOSITION_INFORMATION_EX" => FILE_DISPOSITION_INFORMATION_EX);
    field!(r, "FILE_END_OF_FILE_INFORMATION"."EndOfFile" => FILE_END_OF_FILE_INFORMATION, EndOfFile);
    size!(r, "FILE_END_OF_FILE_INFORMATION" => FILE_END_OF_FILE_INFORMATION);
    field!(r, "FILE_RENAME_INFORMATION"."ReplaceIfExists" => FILE_RENAME_INFORMATION, Anonymous.ReplaceIfExists);
    field!(r, "FILE_RENAME_INFORMATION"."RootDirectory" => FILE_RENAME_INFORMATION, RootDirectory);
    field!(r, "FILE_RENAME_INFORMATION"."FileNameLength" => FILE_RENAME_INFORMATION, FileNameLength);
    field!(r, "FILE_RENAME_INFORMATION"."FileName" => FILE_RENAME_INFORMATION, FileName);
    size!(r, "FILE_RENAME_INFORMATION" => FILE_RENAME_INFORMATION);
    field!(r, "FILE_BASIC_INFORMATION"."CreationTime" => FILE_BASIC_INFORMATION, CreationTime);
    field!(r, "FILE_BASIC_INFORMATION"."LastAccessTime" => FILE_BASIC_INFORMATION, LastAccessTime);
    field!(r, "FILE_BASIC_INFORMATION"."LastWriteTime" => FILE_BASIC_INFORMATION, LastWriteTime);
    field!(r, "FILE_BASIC_INFORMATION"."ChangeTime" => FILE_BASIC_INFORMATION, ChangeTime);
    field!(r, "FILE_BASIC_INFORMATION"."FileAttributes" => FILE_BASIC_INFORMATION, FileAttributes);
    size!(r, "FILE_BASIC_INFORMATION" => FILE_BASIC_INFORMATION);
    // Byte offsets the driver and the simulation use for rename and link
    // buffers, the attribute-tag query of its own log, the process list.
    offset!(r, "FILE_RENAME_INFORMATION"."RootDirectory" => wdk::RENAME_ROOT_DIRECTORY);
    offset!(r, "FILE_RENAME_INFORMATION"."FileNameLength" => wdk::RENAME_FILE_NAME_LENGTH);
    offset!(r, "FILE_RENAME_INFORMATION"."FileName" => wdk::RENAME_FILE_NAME);
    offset!(r, "FILE_LINK_INFORMATION"."RootDirectory" => wdk::RENAME_ROOT_DIRECTORY);
    offset!(r, "FILE_LINK_INFORMATION"."FileNameLength" => wdk::RENAME_FILE_NAME_LENGTH);
    offset!(r, "FILE_LINK_INFORMATION"."FileName" => wdk::RENAME_FILE_NAME);
    offset!(r, "FILE_RENAME_INFORMATION"."FileNameLength" => fltpolicy_driver::sim::wire::RENAME_FILE_NAME_LENGTH);
    offset!(r, "FILE_RENAME_INFORMATION"."FileName" => fltpolicy_driver::sim::wire::RENAME_FILE_NAME);
    value!(r, "FileAttributeTagInformation" => wdk::FILE_ATTRIBUTE_TAG_INFORMATION_CLASS);
    value!(r, "sizeof(FILE_ATTRIBUTE_TAG_INFORMATION)" => wdk::FILE_ATTRIBUTE_TAG_INFORMATION_SIZE);
    offset!(r, "SYSTEM_PROCESS_INFORMATION"."NextEntryOffset" => wdk::SPI_NEXT_ENTRY_OFFSET);
    offset!(r, "SYSTEM_PROCESS_INFORMATION"."UniqueProcessId" => wdk::SPI_UNIQUE_PROCESS_ID);
    offset!(r, "SYSTEM_PROCESS_INFORMATION"."InheritedFromUniqueProcessId" => wdk::SPI_INHERITED_FROM_UNIQUE_PROCESS_ID);
    field!(r, "TOKEN_USER"."User.Sid" => windows_sys::Win32::Security::TOKEN_USER, User.Sid);
    field!(r, "TOKEN_USER"."User.Attributes" => windows_sys::Win32::Security::TOKEN_USER, User.Attributes);
    size!(r, "TOKEN_USER" => windows_sys::Win32::Security::TOKEN_USER);
    // Constants the driver hard-codes or takes from windows-sys.
    value!(r, "IRP_MJ_CREATE" => fltpolicy_driver::ops::IRP_MJ_CREATE);
    value!(r, "IRP_MJ_CLOSE" => 2);
    value!(r, "IRP_MJ_READ" => 3);
    value!(r, "IRP_MJ_WRITE" => 4);
    value!(r, "IRP_MJ_SET_INFORMATION" => 6);
    value!(r, "IRP_MJ_DEVICE_CONTROL" => 0x0E);
    value!(r, "IRP_MJ_CLEANUP" => 0x12);
    value!(r, "IRP_PAGING_IO" => fltpolicy_driver::ops::IRP_PAGING_IO);
    value!(r, "SL_OPEN_PAGING_FILE" => fltpolicy_driver::ops::SL_OPEN_PAGING_FILE);
    value!(r, "FILE_DELETE_ON_CLOSE" => fltpolicy_driver::ops::FILE_DELETE_ON_CLOSE);
    value!(r, "FILE_DISPOSITION_DELETE" => fltpolicy_driver::ops::FILE_DISPOSITION_DELETE);
    value!(r, "DELETE" => fltpolicy_driver::ops::DELETE);
    value!(r, "FILE_WRITE_DATA" => fltpolicy_driver::ops::FILE_WRITE_DATA);
    value!(r, "FILE_APPEND_DATA" => fltpolicy_driver::ops::FILE_APPEND_DATA);
    value!(r, "FILE_READ_DATA" => fltpolicy_driver::ops::FILE_READ_DATA);
    value!(r, "FILE_OPEN" => fltpolicy_driver::ops::FILE_OPEN);
    value!(r, "FILE_OVERWRITE" => fltpolicy_driver::ops::FILE_OVERWRITE);
    value!(r, "FileRenameInformation" => FileRenameInformation);
    value!(r, "FileDispositionInformation" => FileDispositionInformation);
    value!(r, "FileEndOfFileInformation" => FileEndOfFileInformation);
    value!(r, "FileDispositionInformationEx" => FileDispositionInformationEx);
    value!(r, "FileRenameInformationEx" => FileRenameInformationEx);
    value!(r, "FLTFL_POST_OPERATION_DRAINING" => FLTFL_POST_OPERATION_DRAINING);
    value!(r, "FLTFL_CALLBACK_DATA_IRP_OPERATION" => FLTFL_CALLBACK_DATA_IRP_OPERATION);
    value!(r, "FLTFL_FILTER_UNLOAD_MANDATORY" => FLTFL_FILTER_UNLOAD_MANDATORY);
    value!(r, "FLT_REGISTRATION_VERSION" => FLT_REGISTRATION_VERSION);
    value!(r, "FLT_FILE_NAME_OPENED" => FLT_FILE_NAME_OPENED);
    value!(r, "FLT_FILE_NAME_NORMALIZED" => FLT_FILE_NAME_NORMALIZED);
    value!(r, "FLT_FILE_NAME_QUERY_DEFAULT" => FLT_FILE_NAME_QUERY_DEFAULT);
    value!(r, "FLT_INSTANCE_CONTEXT" => FLT_INSTANCE_CONTEXT);
    value!(r, "FLT_STREAMHANDLE_CONTEXT" => FLT_STREAMHANDLE_CONTEXT);
    value!(r, "FLT_CONTEXT_END" => FLT_CONTEXT_END);
    value!(r, "FLT_PREOP_SUCCESS_WITH_CALLBACK" => FLT_PREOP_SUCCESS_WITH_CALLBACK);
    value!(r, "FLT_PREOP_SUCCESS_NO_CALLBACK" => FLT_PREOP_SUCCESS_NO_CALLBACK);
    value!(r, "FLT_PREOP_COMPLETE" => FLT_PREOP_COMPLETE);
    value!(r, "FLT_POSTOP_FINISHED_PROCESSING" => FLT_POSTOP_FINISHED_PROCESSING);
    value!(r, "FLT_PREOP_PENDING" => FLT_PREOP_PENDING);
    value!(r, "FLT_PREOP_SYNCHRONIZE" => FLT_PREOP_SYNCHRONIZE);
    value!(r, "FLT_SET_CONTEXT_KEEP_IF_EXISTS" => FLT_SET_CONTEXT_KEEP_IF_EXISTS);
    value!(r, "FLT_FSTYPE_NTFS" => windows_sys::Win32::Storage::InstallableFileSystems::FLT_FSTYPE_NTFS);
    value!(r, "FLT_FSTYPE_FAT" => windows_sys::Win32::Storage::InstallableFileSystems::FLT_FSTYPE_FAT);
    value!(r, "FLT_FSTYPE_CDFS" => windows_sys::Win32::Storage::InstallableFileSystems::FLT_FSTYPE_CDFS);
    value!(r, "FLT_FSTYPE_MUP" => windows_sys::Win32::Storage::InstallableFileSystems::FLT_FSTYPE_MUP);
    value!(r, "FLT_FSTYPE_EXFAT" => windows_sys::Win32::Storage::InstallableFileSystems::FLT_FSTYPE_EXFAT);
    value!(r, "FLT_FSTYPE_REFS" => windows_sys::Win32::Storage::InstallableFileSystems::FLT_FSTYPE_REFS);
    value!(r, "FILE_SUPERSEDE" => fltpolicy_driver::ops::FILE_SUPERSEDE);
    value!(r, "FILE_CREATE" => fltpolicy_driver::ops::FILE_CREATE);
    value!(r, "FILE_OPEN_IF" => fltpolicy_driver::ops::FILE_OPEN_IF);
    value!(r, "FILE_OVERWRITE_IF" => fltpolicy_driver::ops::FILE_OVERWRITE_IF);
    value!(r, "IRP_MJ_OPERATION_END" => 0x80);
    value!(r, "FILE_DEVICE_DISK_FILE_SYSTEM" => fltpolicy_driver::instance::FILE_DEVICE_DISK_FILE_SYSTEM);
    value!(r, "DO_DEVICE_INITIALIZING" => 0x80);
    value!(r, "STATUS_FLT_DO_NOT_ATTACH" => fltpolicy_driver::kernel::status::STATUS_FLT_DO_NOT_ATTACH);
    value!(r, "STATUS_FLT_DO_NOT_DETACH" => fltpolicy_driver::entry::STATUS_FLT_DO_NOT_DETACH);
    value!(r, "STATUS_FLT_CONTEXT_ALREADY_DEFINED" => fltpolicy_driver::kernel::status::STATUS_FLT_CONTEXT_ALREADY_DEFINED);
    value!(r, "STATUS_ACCESS_DENIED" => fltpolicy_driver::kernel::status::STATUS_ACCESS_DENIED);
    value!(r, "STATUS_REPARSE" => fltpolicy_driver::ops::STATUS_REPARSE);
    r
}

/// The windows-sys definitions the driver replaced, with the rows where
/// they are known to be wrong (see `wdk.rs`).
fn windows_sys_rows() -> Vec<Row> {
    let mut r = Vec::new();
    field!(r, "FLT_PARAMETERS"."Create.Options" => FLT_PARAMETERS, Create.Options);
    field!(r, "FLT_PARAMETERS"."Create.FileAttributes" => FLT_PARAMETERS, Create.FileAttributes);
    field!(r, "FLT_PARAMETERS"."Create.EaLength" => FLT_PARAMETERS, Create.EaLength);
    field!(r, "FLT_PARAMETERS"."Create.EaBuffer" => FLT_PARAMETERS, Create.EaBuffer);
    field!(r, "FLT_PARAMETERS"."Create.AllocationSize" => FLT_PARAMETERS, Create.AllocationSize);
    field!(r, "FLT_PARAMETERS"."Read.Length" => FLT_PARAMETERS, Read.Length);
    field!(r, "FLT_PARAMETERS"."Read.Key" => FLT_PARAMETERS, Read.Key);
    field!(r, "FLT_PARAMETERS"."Read.ByteOffset" => FLT_PARAMETERS, Read.ByteOffset);
    field!(r, "FLT_PARAMETERS"."Write.Length" => FLT_PARAMETERS, Write.Length);
    field!(r, "FLT_PARAMETERS"."Write.ByteOffset" => FLT_PARAMETERS, Write.ByteOffset);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.Length" => FLT_PARAMETERS, SetFileInformation.Length);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.FileInformationClass" => FLT_PARAMETERS, SetFileInformation.FileInformationClass);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.ParentOfTarget" => FLT_PARAMETERS, SetFileInformation.ParentOfTarget);
    field!(r, "FLT_PARAMETERS"."SetFileInformation.InfoBuffer" => FLT_PARAMETERS, SetFileInformation.InfoBuffer);
    field!(r, "IO_STACK_LOCATION"."MajorFunction" => IO_STACK_LOCATION, MajorFunction);
    field!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.OutputBufferLength" => IO_STACK_LOCATION, Parameters.DeviceIoControl.OutputBufferLength);
    field!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.InputBufferLength" => IO_STACK_LOCATION, Parameters.DeviceIoControl.InputBufferLength);
    field!(r, "IO_STACK_LOCATION"."Parameters.DeviceIoControl.IoControlCode" => IO_STACK_LOCATION, Parameters.DeviceIoControl.IoControlCode);
    field!(r, "IO_STACK_LOCATION"."Parameters.Create.Options" => IO_STACK_LOCATION, Parameters.Create.Options);
    field!(r, "IO_STACK_LOCATION"."Parameters.Create.FileAttributes" => IO_STACK_LOCATION, Parameters.Create.FileAttributes);
    field!(r, "IO_STACK_LOCATION"."Parameters.Create.EaLength" => IO_STACK_LOCATION, Parameters.Create.EaLength);
    field!(r, "IO_STACK_LOCATION"."Parameters.Read.ByteOffset" => IO_STACK_LOCATION, Parameters.Read.ByteOffset);
    field!(r, "IO_STACK_LOCATION"."Parameters.SetFile.FileInformationClass" => IO_STACK_LOCATION, Parameters.SetFile.FileInformationClass);
    size!(r, "IO_STACK_LOCATION" => IO_STACK_LOCATION);
    r
}

/// windows-sys 0.61.2 rows that disagree with the headers.
const WINDOWS_SYS_WRONG: &[&str] = &[
    "FLT_PARAMETERS Create.FileAttributes",
    "FLT_PARAMETERS Create.EaLength",
    "FLT_PARAMETERS Create.EaBuffer",
    "FLT_PARAMETERS Create.AllocationSize",
    "FLT_PARAMETERS Read.Key",
    "FLT_PARAMETERS Read.ByteOffset",
    "FLT_PARAMETERS Write.ByteOffset",
    "FLT_PARAMETERS SetFileInformation.FileInformationClass",
    "FLT_PARAMETERS SetFileInformation.ParentOfTarget",
    "FLT_PARAMETERS SetFileInformation.InfoBuffer",
    "IO_STACK_LOCATION Parameters.DeviceIoControl.InputBufferLength",
    "IO_STACK_LOCATION Parameters.DeviceIoControl.IoControlCode",
    "IO_STACK_LOCATION Parameters.Create.FileAttributes",
    "IO_STACK_LOCATION Parameters.Create.EaLength",
    "IO_STACK_LOCATION Parameters.Read.ByteOffset",
    "IO_STACK_LOCATION Parameters.SetFile.FileInformationClass",
];

/// Rows where Wine's and mingw-w64's headers differ, which one matches the
/// WDK, and why.
const KNOWN_DISAGREEMENTS: &[(&str, &str, &str)] = &[(
    "FILE_OBJECT sizeof",
    "mingw",
    "Wine 8.0's FILE_OBJECT stops before the WDK's trailing members (184 \
     bytes, the WDK's is 0xD8 = 216); the driver never allocates or reads \
     one, only passes pointers",
)];

#[derive(Clone)]
struct Headers {
    name: &'static str,
    prelude: String,
    include: &'static str,
    nostdinc: bool,
    /// Whether `include` goes on the include path (the user-mode set only
    /// checks it exists).
    ddk_path: bool,
}

const WINE_PRELUDE: &str = "#include <ntstatus.h>\n#define WIN32_NO_STATUS\n#include <windef.h>\n#include <winternl.h>\n#include <ddk/ntifs.h>\n#include <ddk/fltkernel.h>\n";

fn wine() -> Headers {
    Headers {
        name: "wine",
        prelude: WINE_PRELUDE.into(),
        include: WINE_INCLUDE,
        nostdinc: true,
        ddk_path: true,
    }
}

fn mingw() -> Headers {
    Headers {
        name: "mingw",
        prelude: "#include <ntifs.h>\n".into(),
        include: MINGW_DDK,
        nostdinc: false,
        ddk_path: true,
    }
}

/// mingw-w64's user-mode headers (`windows.h`, `winternl.h`), for what its
/// DDK does not declare.
fn mingw_user() -> Headers {
    Headers {
        name: "mingw-user",
        prelude: "#include <windows.h>\n#include <winternl.h>\n".into(),
        include: MINGW_DDK,
        nostdinc: false,
        ddk_path: false,
    }
}

/// Wine's headers plus the declarations transcribed from the WDK
/// reference (`tests/ddk/fltkernel-supplement.h`), for what neither header
/// set declares.
fn supplemented() -> Headers {
    let sup = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ddk/fltkernel-supplement.h");
    Headers {
        name: "wdk-reference",
        prelude: format!("{WINE_PRELUDE}#include \"{}\"\n", sup.display()),
        include: WINE_INCLUDE,
        nostdinc: true,
        ddk_path: true,
    }
}

/// (offset or value, size) per probe key, and the keys the headers do not
/// declare.
type Measured = (BTreeMap<String, (i128, Option<usize>)>, Vec<String>);

/// Compiles the probes of `rows` over `h` and reads the numbers back. A
/// probe the headers reject is dropped and reported; the rest are compiled
/// again.
fn measure(h: &Headers, rows: &[Row], dir: &Path) -> Measured {
    assert!(
        Path::new(h.include).is_dir(),
        "{}: the {} DDK headers are missing (Debian: libwine-dev, mingw-w64)",
        h.include,
        h.name
    );
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        if !keys.iter().any(|(k, _)| *k == r.key()) {
            keys.push((r.key(), r.probe()));
        }
    }
    let mut missing = Vec::new();
    for _round in 0..8 {
        let mut src = h.prelude.clone();
        src.push_str("#include <stddef.h>\n");
        src.push_str("#define P(k, v, s) __asm__ volatile(\"\\n.ascii \\\"@@ \" k \" %c0 %c1\\\\n\\\"\" :: \"i\"((long long)(v)), \"i\"((long long)(s)));\n");
        src.push_str("void layout_probes(void) {\n");
        let first = src.lines().count() + 1;
        for (_, p) in &keys {
            src.push_str(p);
            src.push_str(";\n");
        }
        src.push_str("}\n");
        let c = dir.join(format!("layout-{}.c", h.name));
        std::fs::write(&c, &src).unwrap();
        let mut cmd = Command::new(compiler());
        if h.nostdinc {
            cmd.arg("-nostdinc")
                .arg(format!("-I{}", h.include))
                .arg(format!("-I{}/../msvcrt", h.include));
        } else if h.ddk_path {
            cmd.arg(format!("-I{}", h.include));
        }
        let out = cmd
            .args(["-S", "-o", "-", "-w"])
            .arg(&c)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running {} (install mingw-w64, or set FLTPOLICY_WIN_CC): {e}",
                    compiler()
                )
            });
        if out.status.success() {
            let asm = String::from_utf8_lossy(&out.stdout);
            let mut got = BTreeMap::new();
            for line in asm.lines() {
                let Some(rest) = line.trim().strip_prefix(".ascii \"@@ ") else {
                    continue;
                };
                let rest = rest.trim_end_matches("\\n\"");
                let mut parts: Vec<&str> = rest.rsplitn(3, ' ').collect();
                parts.reverse();
                let [key, v, s] = parts[..] else {
                    panic!("unparsable probe output: {line}")
                };
                let v: i128 = v.parse().unwrap();
                let s: usize = s.parse().unwrap();
                got.insert(key.to_string(), (v, (s != 0).then_some(s)));
            }
            assert_eq!(got.len(), keys.len(), "every probe printed");
            return (got, missing);
        }
        // Drop the probes the compiler rejected (by line) and try again.
        let err = String::from_utf8_lossy(&out.stderr);
        let name = c.display().to_string();
        let mut bad: Vec<usize> = err
            .lines()
            .filter(|l| l.contains("error"))
            .filter_map(|l| l.strip_prefix(&format!("{name}:")))
            .filter_map(|l| l.split(':').next()?.parse::<usize>().ok())
            .filter(|&line| line >= first && line < first + keys.len())
            .map(|line| line - first)
            .collect();
        bad.sort();
        bad.dedup();
        assert!(
            !bad.is_empty(),
            "{} headers: compile failed outside the probes:\n{err}",
            h.name
        );
        for i in bad.into_iter().rev() {
            missing.push(keys.remove(i).0);
        }
    }
    panic!("{} headers: too many rounds of rejected probes", h.name);
}

fn show(v: Option<&(i128, Option<usize>)>) -> String {
    match v {
        None => "—".into(),
        Some((o, Some(s))) => format!("{o} ({s})"),
        Some((o, None)) => format!("{o}"),
    }
}

#[test]
fn kernel_structures_match_the_ddk_headers() {
    let dir = tempfile::tempdir().unwrap();
    let driver = driver_rows();
    let sys = windows_sys_rows();
    let all: Vec<Row> = driver.iter().chain(sys.iter()).cloned().collect();
    let (wine, wine_missing) = measure(&wine(), &all, dir.path());
    let (mut mingw, ddk_missing) = measure(&mingw(), &all, dir.path());
    // What mingw-w64's DDK lacks, from its user-mode headers (winternl.h:
    // SYSTEM_PROCESS_INFORMATION, TOKEN_USER).
    let not_in_ddk: Vec<Row> = all
        .iter()
        .filter(|r| ddk_missing.contains(&r.key()))
        .cloned()
        .collect();
    let (user, mingw_missing) = measure(&mingw_user(), &not_in_ddk, dir.path());
    mingw.extend(user);
    // Only what neither header set declares is taken from the transcribed
    // WDK reference.
    let neither: Vec<Row> = all
        .iter()
        .filter(|r| !wine.contains_key(&r.key()) && !mingw.contains_key(&r.key()))
        .cloned()
        .collect();
    let (reference, reference_missing) = measure(&supplemented(), &neither, dir.path());

    let mut failures = Vec::new();
    let mut disagreements = Vec::new();
    println!("| C (x64) | Wine | mingw-w64 | WDK reference | Rust (the driver's type) | result |");
    println!("|---|---|---|---|---|---|");
    for r in &driver {
        let k = r.key();
        let (mut w, mut m, d) = (wine.get(&k), mingw.get(&k), reference.get(&k));
        if w.is_none() && m.is_none() && d.is_none() {
            failures.push(format!(
                "{k}: declared by no header set (typo in the probe?)"
            ));
        }
        if let (Some(wv), Some(mv)) = (w, m) {
            if wv != mv {
                disagreements.push(format!("{k}: wine {wv:?}, mingw {mv:?}"));
                match KNOWN_DISAGREEMENTS.iter().find(|(key, _, _)| *key == k) {
                    Some((_, "mingw", _)) => w = None,
                    Some((_, _, _)) => m = None,
                    None => failures.push(format!(
                        "{k}: Wine ({wv:?}) and mingw-w64 ({mv:?}) disagree; decide which is right"
                    )),
                }
            }
        }
        let ok = [w, m, d].into_iter().flatten().all(|h| {
            h.0 == r.got.0
                && match (h.1, r.got.1) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        });
        if !ok {
            failures.push(format!(
                "{k}: headers say wine {}, mingw {}, WDK reference {}; {} is {}",
                show(w),
                show(m),
                show(d),
                r.rust,
                show(Some(&r.got))
            ));
        }
        println!(
            "| `{k}` | {} | {} | {} | `{}` = {} | {} |",
            show(wine.get(&k)),
            show(mingw.get(&k)),
            show(d),
            r.rust,
            show(Some(&r.got)),
            if ok { "ok" } else { "**WRONG**" }
        );
    }
    println!("\nwindows-sys 0.61.2 definitions the driver replaced:\n");
    println!("| C (x64) | headers | windows-sys | result |");
    println!("|---|---|---|---|");
    let mut wrong = Vec::new();
    for r in &sys {
        let k = r.key();
        let h = wine
            .get(&k)
            .or(mingw.get(&k))
            .or(reference.get(&k))
            .unwrap_or_else(|| {
                panic!("{k}: declared by no header set");
            });
        let ok = h.0 == r.got.0 && h.1.is_none_or(|s| r.got.1.is_none_or(|g| g == s));
        if !ok {
            wrong.push(k.clone());
        }
        println!(
            "| `{k}` | {} | `{}` = {} | {} |",
            show(Some(h)),
            r.rust,
            show(Some(&r.got)),
            if ok { "right" } else { "wrong" }
        );
    }
    println!("\nnot declared by Wine's headers: {wine_missing:?}");
    println!("not declared by mingw-w64's headers: {mingw_missing:?}");
    println!("not declared by the WDK reference supplement either: {reference_missing:?}");
    println!("Wine and mingw-w64 disagree on: {disagreements:?}");
    assert!(
        failures.is_empty(),
        "the driver's kernel structures differ from the DDK headers:\n{}",
        failures.join("\n")
    );
    let mut expected: Vec<String> = WINDOWS_SYS_WRONG.iter().map(|s| s.to_string()).collect();
    expected.sort();
    wrong.sort();
    assert_eq!(
        wrong, expected,
        "windows-sys's replaced definitions no longer differ from the headers as wdk.rs documents"
    );
}
