/*
 * Declarations the installed independent headers lack: Wine 8.0's
 * ddk/fltkernel.h stops short of FLT_RELATED_OBJECTS, FLT_FILE_NAME_INFORMATION
 * and several constants, and mingw-w64 10 has no fltkernel.h at all.
 *
 * Transcribed from Microsoft's published WDK reference (the "Syntax"
 * sections of learn.microsoft.com/windows-hardware/drivers/ddi/fltkernel
 * and ntddk/wdm pages), not from windows-sys or from this project's Rust
 * code. Compiled on top of Wine's headers (which supply the base types) by
 * tests/layout.rs, only for the probes neither header set declares; the
 * report marks those rows "WDK reference".
 */
#pragma once

#ifndef FLT_SUPPLEMENT_TYPES
#define FLT_SUPPLEMENT_TYPES
typedef struct _FLT_VOLUME *PFLT_VOLUME_S;
typedef struct _KTRANSACTION *PKTRANSACTION_S;

/* fltkernel.h: FLT_RELATED_OBJECTS */
typedef struct _FLT_RELATED_OBJECTS {
    USHORT CONST Size;
    USHORT CONST TransactionContext;
    PFLT_FILTER CONST Filter;
    PFLT_VOLUME_S CONST Volume;
    PFLT_INSTANCE CONST Instance;
    PFILE_OBJECT CONST FileObject;
    PKTRANSACTION_S CONST Transaction;
} FLT_RELATED_OBJECTS, *PFLT_RELATED_OBJECTS;

/* fltkernel.h: FLT_FILE_NAME_INFORMATION */
typedef USHORT FLT_FILE_NAME_PARSED_FLAGS;
typedef struct _FLT_FILE_NAME_INFORMATION {
    USHORT Size;
    FLT_FILE_NAME_PARSED_FLAGS NamesParsed;
    FLT_FILE_NAME_OPTIONS Format;
    UNICODE_STRING Name;
    UNICODE_STRING Volume;
    UNICODE_STRING Share;
    UNICODE_STRING Extension;
    UNICODE_STRING Stream;
    UNICODE_STRING FinalComponent;
    UNICODE_STRING ParentDir;
} FLT_FILE_NAME_INFORMATION, *PFLT_FILE_NAME_INFORMATION;

/* fltkernel.h: FLT_SET_CONTEXT_OPERATION */
typedef enum _FLT_SET_CONTEXT_OPERATION {
    FLT_SET_CONTEXT_REPLACE_IF_EXISTS,
    FLT_SET_CONTEXT_KEEP_IF_EXISTS
} FLT_SET_CONTEXT_OPERATION, *PFLT_SET_CONTEXT_OPERATION;

/* ntddk.h: FILE_DISPOSITION_INFORMATION_EX */
typedef struct _FILE_DISPOSITION_INFORMATION_EX {
    ULONG Flags;
} FILE_DISPOSITION_INFORMATION_EX, *PFILE_DISPOSITION_INFORMATION_EX;
#endif

/* fltkernel.h constants */
#define FLTFL_POST_OPERATION_DRAINING 0x00000001
#define FLTFL_CALLBACK_DATA_IRP_OPERATION 0x00000001
#define FLTFL_FILTER_UNLOAD_MANDATORY 0x00000001
#define FLT_REGISTRATION_VERSION_0203 0x0203
#define FLT_REGISTRATION_VERSION FLT_REGISTRATION_VERSION_0203
#define FLT_FILE_NAME_NORMALIZED 0x01
#define FLT_FILE_NAME_OPENED 0x02
#define FLT_FILE_NAME_QUERY_DEFAULT 0x0100
#define FLT_CONTEXT_END 0xffff
#define IRP_MJ_OPERATION_END ((UCHAR)0x80)
/* ntddk.h */
#define FILE_DISPOSITION_DELETE 0x00000001
