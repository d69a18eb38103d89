/* Shared between fltharness.sys (kernel side, in Wine's winedevice.exe) and
 * harnessctl.exe (user side): the \\.\FltHarness request that drives one
 * synthetic file-system operation, process event or setting through the
 * filter the way Filter Manager would. */
#pragma once

#define HARNESS_DEVICE_TYPE 0x8F51
#define HARNESS_CTL(fn) ((HARNESS_DEVICE_TYPE << 16) | ((fn) << 2) | 0 /* METHOD_BUFFERED */)
#define IOCTL_HARNESS_OP HARNESS_CTL(0x901)

enum harness_kind {
    HK_PROCESS = 1,      /* process-creation notify: pid, ppid, path = image (\??\C:\...) */
    HK_CREATE = 2,       /* IRP_MJ_CREATE on path; returns a file id */
    HK_READ = 3,
    HK_WRITE = 4,
    HK_SETINFO = 5,      /* IRP_MJ_SET_INFORMATION, info_class, path = rename target */
    HK_CLEANUP = 6,      /* IRP_MJ_CLEANUP, then the handle's contexts go */
    HK_PROCESS_EXIT = 7, /* process-exit notify */
    HK_CONFIG = 8,       /* flags: HC_* */
    HK_DETACH = 9,       /* fltmc detach: InstanceQueryTeardown, then teardown of the instance */
    HK_ATTACH = 10,      /* fltmc attach: InstanceSetup (manual attachment) on C: */
};

/* HK_CONFIG flags */
#define HC_IOCTL_COMPAT 1  /* rewrite DeviceIoControl parameters into the windows-sys 0.61.2 layout (windows-rs#4404 workaround) */
#define HC_NOT_ADMIN 2     /* the caller's token is not an administrator's */

/* op flags */
#define HF_DELETE 1        /* disposition: DeleteFile / FILE_DISPOSITION_DELETE */
#define HF_FS_STATUS 4     /* the file system below completes the operation with fs_status */
#define HF_NO_NAME 8       /* create: no name can be had for the file (e.g. an open by file ID) */

/* pid HARNESS_HOST_PID: the process hosting the harness and the driver
 * (winedevice.exe), which was running before the driver loaded. */
#define HARNESS_HOST_PID 0xffffffffu

struct harness_op {
    unsigned int kind;
    unsigned int file_id;
    unsigned int pid;
    unsigned int ppid;
    unsigned int access;      /* create: DesiredAccess */
    unsigned int options;     /* create: (disposition << 24) | create options */
    unsigned int info_class;  /* setinfo: FILE_INFORMATION_CLASS */
    unsigned int flags;       /* HF_* / HC_* */
    unsigned int irp_flags;   /* FLT_IO_PARAMETER_BLOCK.IrpFlags (IRP_PAGING_IO, IRP_NOCACHE, ...) */
    unsigned int op_flags;    /* FLT_IO_PARAMETER_BLOCK.OperationFlags (SL_OPEN_TARGET_DIRECTORY, ...) */
    int fs_status;            /* with HF_FS_STATUS: the file system's status */
    unsigned long long length;/* read/write length, EOF, create AllocationSize */
    unsigned short path[260]; /* UTF-16, NUL-terminated: \Device\HarddiskVolume1\dir\file (the opened name); rename/link target; process image */
    unsigned short norm[260]; /* create: the normalized name when it differs from the opened one (8.3 names); else empty */
    char user[96];            /* create: the requester's SID (S-1-5-21-...); empty: HARNESS_DEFAULT_USER */
};

/* The user of every synthetic create that names none (a local account). */
#define HARNESS_DEFAULT_USER "S-1-5-21-1004336348-1177238915-682003330-1001"

struct harness_result {
    int pre_status;           /* FLT_PREOP_CALLBACK_STATUS (-1: no pre callback ran) */
    int final_status;         /* IoStatus.Status the requester sees */
    unsigned int file_id;
    unsigned int post_called;
};
