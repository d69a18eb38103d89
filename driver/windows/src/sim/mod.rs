//! A strict Filter Manager simulation (host only).
//!
//! The driver cannot run here, so its callback code runs against this
//! stand-in for fltmgr.sys and ntoskrnl.exe ([`kernel`] implements
//! [`crate::kernel`]). The simulation builds real `FLT_CALLBACK_DATA`,
//! `FLT_IO_PARAMETER_BLOCK`, `FLT_RELATED_OBJECTS`, `IRP` and
//! `PS_CREATE_NOTIFY_INFO` structures (the windows-sys types), calls the
//! callbacks through the driver's own `FLT_REGISTRATION` table, keeps a
//! current IRQL per simulated CPU (thread), and checks every kernel call
//! like Driver Verifier — a violation panics with `DRIVER VERIFIER:`. At
//! unload it checks that every context, name block, object reference, pool
//! block, thread, device and file was released.
//!
//! One simulation runs at a time per process (the driver's state is global,
//! as in a kernel); [`Sim::new`] takes a process-wide lock.

#[allow(unused_imports)]
use std::prelude::rust_2021::*;
#[allow(unused_imports)]
use std::{format, thread_local, vec};

pub mod acl;
pub mod kernel;
mod special_pool;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IO_SECURITY_CONTEXT, IRP,
};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::*;
use windows_sys::Wdk::System::SystemServices::PS_CREATE_NOTIFY_INFO;
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FLT_FILESYSTEM_TYPE, FLT_FSTYPE_CDFS, FLT_FSTYPE_FAT, FLT_FSTYPE_MUP, FLT_FSTYPE_NTFS,
};

use crate::kernel::status::*;
use crate::kernel::{Irql, APC_LEVEL, DISPATCH_LEVEL, PASSIVE_LEVEL};

/// Where the I/O manager and Filter Manager put the parameters the driver
/// reads (x64 byte offsets from wdm.h and fltkernel.h). The simulation
/// writes requests at these offsets itself rather than through the
/// driver's types ([`crate::wdk`]), so a layout mistake in the driver is
/// not mirrored here; `tests/layout.rs` checks each number against a C
/// compiler's `offsetof` over the DDK headers.
pub mod wire {
    /// `FLT_PARAMETERS.Create.SecurityContext`.
    pub const CREATE_SECURITY_CONTEXT: usize = 0;
    /// `FLT_PARAMETERS.Create.Options`.
    pub const CREATE_OPTIONS: usize = 8;
    /// `FLT_PARAMETERS.Create.AllocationSize`.
    pub const CREATE_ALLOCATION_SIZE: usize = 40;
    /// `FLT_PARAMETERS.Read.Length` (= `.Write.Length`).
    pub const READ_WRITE_LENGTH: usize = 0;
    /// `FLT_PARAMETERS.SetFileInformation.Length`.
    pub const SET_INFO_LENGTH: usize = 0;
    /// `FLT_PARAMETERS.SetFileInformation.FileInformationClass`.
    pub const SET_INFO_CLASS: usize = 8;
    /// `FLT_PARAMETERS.SetFileInformation.InfoBuffer`.
    pub const SET_INFO_BUFFER: usize = 32;
    /// `IO_STACK_LOCATION.MajorFunction`.
    pub const STACK_MAJOR: usize = 0;
    /// `IO_STACK_LOCATION.Parameters.DeviceIoControl.OutputBufferLength`.
    pub const IOCTL_OUTPUT_LENGTH: usize = 8;
    /// `IO_STACK_LOCATION.Parameters.DeviceIoControl.InputBufferLength`.
    pub const IOCTL_INPUT_LENGTH: usize = 16;
    /// `IO_STACK_LOCATION.Parameters.DeviceIoControl.IoControlCode`.
    pub const IOCTL_CODE: usize = 24;
    /// `sizeof(IO_STACK_LOCATION)`.
    pub const STACK_SIZE: usize = 72;
    /// `FILE_RENAME_INFORMATION.FileNameLength` (= FILE_LINK_INFORMATION's).
    pub const RENAME_FILE_NAME_LENGTH: usize = 16;
    /// `FILE_RENAME_INFORMATION.FileName`.
    pub const RENAME_FILE_NAME: usize = 20;
}

/// Writes `v` at byte `off` of `dst` (a request structure built here).
fn put<D, T: Copy>(dst: &mut D, off: usize, v: T) {
    assert!(
        off + std::mem::size_of::<T>() <= std::mem::size_of::<D>(),
        "parameter at {off} outside the structure"
    );
    let at = (dst as *mut D).cast::<u8>().wrapping_add(off).cast::<T>();
    // SAFETY: in bounds (checked above) of an exclusively borrowed value
    // whose fields are integers and raw pointers (any bytes valid);
    // unaligned write.
    unsafe { at.write_unaligned(v) };
}

/// Freed pool blocks kept poisoned before their memory is reused.
pub(crate) const QUARANTINE: usize = 64;

/// The filter handle the simulation hands out.
pub(crate) const FILTER: PFLT_FILTER = 0x0F17;

/// Per-thread (per simulated CPU) state.
pub(crate) struct Current {
    pub irql: Cell<Irql>,
    pub in_callback: Cell<u32>,
    pub admin: Cell<bool>,
    pub cpu: Cell<usize>,
}

thread_local! {
    pub(crate) static CURRENT: Current = const {
        Current { irql: Cell::new(0), in_callback: Cell::new(0), admin: Cell::new(false), cpu: Cell::new(0) }
    };
}

/// Reports a rule violation the way a verifier bugcheck would.
pub fn violation(msg: &str) -> ! {
    std::panic::panic_any(format!("DRIVER VERIFIER: {msg}"))
}

pub(crate) struct CtxInfo {
    pub ctype: u16,
    pub layout: std::alloc::Layout,
    pub refs: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum CtxKey {
    Instance(PFLT_INSTANCE),
    StreamHandle(PFLT_INSTANCE, usize),
}

pub(crate) struct OwnFileState {
    pub key: String,
    pub instance: PFLT_INSTANCE,
    pub handle: usize,
    /// Opened as a directory.
    pub dir: bool,
}

/// A directory on a simulated volume.
#[derive(Clone, Debug, Default)]
pub(crate) struct DirNode {
    /// A reparse point (junction) to this device path (upper case).
    pub reparse_to: Option<String>,
    /// Owner SID (`S-1-...`).
    pub owner: String,
}

/// A standard user's SID (what `Sim::plant_*` create things as).
pub const A_USER: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

impl DirNode {
    pub(crate) fn created_by(owner: &str) -> DirNode {
        DirNode {
            reparse_to: None,
            owner: owner.to_string(),
        }
    }
}

pub(crate) struct ThreadSlot {
    pub handle: std::thread::JoinHandle<()>,
    pub panic: Arc<Mutex<Option<String>>>,
}

/// A simulated volume.
#[derive(Clone, Debug)]
pub struct Volume {
    pub handle: PFLT_VOLUME,
    pub device: String,
    pub dos: Option<String>,
    pub device_type: u32,
    pub fs: FLT_FILESYSTEM_TYPE,
    pub instance: Option<PFLT_INSTANCE>,
}

/// An operation in flight: what the name query and requestor lookups see.
pub(crate) struct OpInfo {
    pub pid: u64,
    /// The name as the requester opened it (may hold 8.3 short names).
    pub device_path: String,
    pub volume: String,
    /// IRP_MJ_* of the operation.
    pub major: u8,
    /// The operation's file object.
    pub fo: usize,
    /// An open by file ID: no name can be had in pre-create.
    pub by_id: bool,
    /// The post-operation callback is running (or has run).
    pub post: bool,
    /// FltCancelFileOpen was called for this create.
    pub cancelled: bool,
    /// `FLT_IO_PARAMETER_BLOCK::OperationFlags` (SL_*).
    pub op_flags: u8,
}

impl OpInfo {
    pub(crate) fn new(pid: u64, device_path: String, volume: String) -> OpInfo {
        OpInfo {
            pid,
            device_path,
            volume,
            major: 0xFF,
            fo: 0,
            by_id: false,
            post: false,
            cancelled: false,
            op_flags: 0,
        }
    }
}

/// A process running on the simulated machine (what
/// ZwQuerySystemInformation and SeLocateProcessImageName report).
#[derive(Clone, Debug)]
pub(crate) struct RunningProcess {
    pub pid: u64,
    pub ppid: u64,
    /// NT path (`\Device\HarddiskVolume3\…`); empty for System.
    pub image_nt: String,
    /// Exits between the driver's snapshot and its image lookup.
    pub exits_during_load: bool,
}

/// A user's open file.
struct UserFile {
    fo: *mut FILE_OBJECT,
    device_path: String,
    instance: PFLT_INSTANCE,
    volume: PFLT_VOLUME,
    pid: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub registration: Option<usize>,
    pub driver: usize,
    pub filtering: bool,
    pub pool: HashMap<usize, std::alloc::Layout>,
    pub allocations_made: u64,
    pub fail_allocations_after: Option<u64>,
    pub contexts: HashMap<usize, CtxInfo>,
    pub attached: HashMap<CtxKey, usize>,
    pub names: HashMap<usize, Box<NameBlock>>,
    pub ops: HashMap<usize, OpInfo>,
    pub volumes: Vec<Volume>,
    pub object_refs: HashMap<isize, u32>,
    pub files: HashMap<String, Vec<u8>>,
    /// Directories (upper-case device paths); only those the driver
    /// creates or a test plants are modelled.
    pub dirs: HashMap<String, DirNode>,
    /// Security descriptors of what the driver created.
    pub security: HashMap<String, acl::SecurityInfo>,
    /// Instances whose teardown has started.
    pub tearing: HashSet<PFLT_INSTANCE>,
    /// Instances handed out so far (new ones on remount).
    pub instances_made: isize,
    pub own_files: HashMap<usize, OwnFileState>,
    pub next_handle: usize,
    pub events: HashMap<usize, Arc<(Mutex<bool>, Condvar)>>,
    pub threads: HashMap<usize, ThreadSlot>,
    pub next_cpu: usize,
    pub process_notify: Option<crate::abi::ProcessNotify>,
    /// Processes running now, whether or not the driver was told.
    pub running: HashMap<u64, RunningProcess>,
    pub fail_process_notify: bool,
    pub control_device: Option<ControlDevice>,
    pub completed_irps: HashSet<usize>,
    pub fail_writes: bool,
    /// How long each FltWriteFile of the log takes.
    pub write_latency: std::time::Duration,
    /// Freed pool blocks kept poisoned (see `kernel::free_pool`).
    pub quarantine: std::collections::VecDeque<(usize, std::alloc::Layout)>,
    /// A DriverEntry step the simulation makes fail (see [`Sim::fail_step`]).
    pub fail_step: Option<Step>,
    /// Access tokens: address → binary SID of the token's user.
    pub tokens: HashMap<usize, Vec<u8>>,
    /// pid → its primary token address.
    pub process_tokens: HashMap<u64, usize>,
    /// 8.3 short names: upper-case device path with the short last
    /// component → the device path with the long one.
    pub short_names: HashMap<String, String>,
    /// Every name query fails (a volume whose names cannot be had).
    pub fail_names: bool,
}

/// The control device object as the I/O manager keeps it.
pub(crate) struct ControlDevice {
    pub dev: usize,
    pub acl: acl::SecurityInfo,
    /// IoDeleteDevice was called; the object stays (delete-pending) until
    /// the last handle is closed and the last IRP completed.
    pub deleted: bool,
    /// Open handles (successful creates not yet closed).
    pub handles: usize,
    /// IRPs being dispatched (each holds a reference on the object).
    pub in_flight: usize,
}

impl ControlDevice {
    /// Frees a delete-pending object once nothing references it.
    fn reap(slot: &mut Option<ControlDevice>) {
        if slot
            .as_ref()
            .is_some_and(|c| c.deleted && c.handles == 0 && c.in_flight == 0)
        {
            let c = slot.take().expect("checked");
            // SAFETY: created by Box::into_raw in create_control_device;
            // nothing references it any more.
            drop(unsafe { Box::from_raw(c.dev as *mut DEVICE_OBJECT) });
        }
    }
}

/// Runs on the flush thread during each log write (see [`Sim::on_log_write`]).
type LogWriteHook = Box<dyn Fn() + Send + Sync>;
static LOG_WRITE_HOOK: Mutex<Option<Arc<LogWriteHook>>> = Mutex::new(None);

pub(crate) fn run_log_write_hook() {
    let hook = LOG_WRITE_HOOK
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(h) = hook {
        h();
    }
}

/// Scheduling noise (see [`Sim::perturb`]): off unless a test sets a seed.
static PERTURB_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static PERTURB_RNG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// At a kernel call: when perturbation is on, sleep a pseudo-random time
/// (0–2 ms) or yield, so that other simulated CPUs run in between. Widens
/// every race window between two kernel calls of the driver.
pub(crate) fn perturb() {
    use std::sync::atomic::Ordering::Relaxed;
    if !PERTURB_ON.load(Relaxed) {
        return;
    }
    // splitmix64 over a shared counter: deterministic per seed up to the
    // interleaving itself.
    let mut z = PERTURB_RNG
        .fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    match z % 4 {
        0 => std::thread::yield_now(),
        1 => {}
        _ => std::thread::sleep(std::time::Duration::from_micros((z >> 8) % 2000)),
    }
}

/// DriverEntry steps whose kernel call the simulation can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    RegisterFilter,
    ControlDevice,
    SystemThread,
    /// PsCreateSystemThread succeeds, ObReferenceObjectByHandle fails.
    ThreadReference,
    StartFiltering,
}

pub(crate) fn failing(step: Step) -> bool {
    with_state(|s| s.fail_step == Some(step))
}

// SAFETY: State holds raw addresses as plain integers; the only pointers
// (in Box<NameBlock>) point into the same box's buffer, which moves with it.
unsafe impl Send for State {}

pub(crate) struct NameBlock {
    pub info: FLT_FILE_NAME_INFORMATION,
    pub buf: Vec<u16>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static EXCLUSIVE: Mutex<()> = Mutex::new(());

pub(crate) fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut g = state();
    let s = g.as_mut().unwrap_or_else(|| {
        std::panic::panic_any("the driver called the kernel outside a simulation")
    });
    f(s)
}

pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Follows junctions among the *intermediate* components of `key` (upper
/// case device path), as NTFS does for a full-path open; the last
/// component is opened itself (FILE_OPEN_REPARSE_POINT).
pub(crate) fn follow_reparse(key: &str) -> String {
    let mut key = key.to_string();
    for _ in 0..8 {
        let hit = with_state(|s| {
            s.dirs.iter().find_map(|(d, n)| {
                let t = n.reparse_to.as_ref()?;
                let rest = key.strip_prefix(d.as_str())?;
                rest.starts_with('\\').then(|| format!("{t}{rest}"))
            })
        });
        match hit {
            Some(k) => key = k,
            None => break,
        }
    }
    key
}

/// `\??\C:\x` or `\Device\HarddiskVolume3\x` → the device form.
pub(crate) fn nt_to_device(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix(r"\??\") {
        let (drive, tail) = rest.split_at(rest.find('\\').unwrap_or(rest.len()));
        let dev = with_state(|s| {
            s.volumes
                .iter()
                .find(|v| {
                    v.dos
                        .as_deref()
                        .is_some_and(|d| d.eq_ignore_ascii_case(drive))
                })
                .map(|v| v.device.clone())
        })?;
        Some(format!("{dev}{tail}"))
    } else {
        Some(path.to_string())
    }
}

fn registration() -> &'static FLT_REGISTRATION {
    let p = with_state(|s| s.registration).unwrap_or_else(|| violation("no filter registered"));
    // SAFETY: the driver registered a 'static FLT_REGISTRATION.
    unsafe { &*(p as *const FLT_REGISTRATION) }
}

pub(crate) fn context_registered(ctype: u16, size: usize) -> bool {
    let reg = registration();
    let mut p = reg.ContextRegistration;
    // SAFETY: the table is a static array terminated by FLT_CONTEXT_END.
    while !p.is_null() && unsafe { (*p).ContextType } != FLT_CONTEXT_END as u16 {
        // SAFETY: as above.
        let c = unsafe { &*p };
        if c.ContextType == ctype && (c.Size == usize::MAX || c.Size == size) {
            return true;
        }
        // SAFETY: within the terminated table.
        p = unsafe { p.add(1) };
    }
    false
}

pub(crate) fn context_release(ctx: usize, api: &str) {
    let freed = with_state(|s| {
        let Some(c) = s.contexts.get_mut(&ctx) else {
            violation(&format!(
                "{api} of a context that does not exist (released too often?)"
            ));
        };
        c.refs -= 1;
        if c.refs == 0 {
            s.contexts.remove(&ctx).map(|c| c.layout)
        } else {
            None
        }
    });
    if let Some(layout) = freed {
        // SAFETY: allocated in allocate_context with this layout.
        unsafe { std::alloc::dealloc(ctx as *mut u8, layout) };
    }
}

pub(crate) fn context_attach(key: CtxKey, ctx: usize, ctype: u16) -> NTSTATUS {
    with_state(|s| {
        let Some(c) = s.contexts.get_mut(&ctx) else {
            violation("setting a context that does not exist");
        };
        if c.ctype != ctype {
            violation("setting a context of the wrong type");
        }
        if s.attached.contains_key(&key) {
            return STATUS_FLT_CONTEXT_ALREADY_DEFINED;
        }
        c.refs += 1;
        s.attached.insert(key, ctx);
        STATUS_SUCCESS
    })
}

pub(crate) fn context_get(key: CtxKey) -> Result<usize, NTSTATUS> {
    with_state(|s| {
        let ctx = *s.attached.get(&key).ok_or(STATUS_NOT_FOUND)?;
        s.contexts
            .get_mut(&ctx)
            .expect("attached context exists")
            .refs += 1;
        Ok(ctx)
    })
}

fn context_detach(key: CtxKey) {
    if let Some(ctx) = with_state(|s| s.attached.remove(&key)) {
        context_release(ctx, "context teardown");
    }
}

/// `path` (device form) with every 8.3 short component replaced by its
/// long name, as NTFS normalizes it.
pub(crate) fn normalize(s: &State, path: &str) -> String {
    let Some(vol) = s
        .volumes
        .iter()
        .find(|v| starts_with_ci(path, &v.device))
        .map(|v| v.device.clone())
    else {
        return path.to_string();
    };
    let mut out = vol;
    for comp in path[out.len()..].split('\\').filter(|c| !c.is_empty()) {
        let cand = format!("{out}\\{comp}");
        out = s
            .short_names
            .get(&cand.to_uppercase())
            .cloned()
            .unwrap_or(cand);
    }
    out
}

/// A parsed name block for `device_path` on `volume`, owned by the state.
fn name_block(
    s: &mut State,
    device_path: &str,
    volume: &str,
    format: u32,
) -> *mut FLT_FILE_NAME_INFORMATION {
    let buf: Vec<u16> = device_path.encode_utf16().collect();
    let vol_units = volume.encode_utf16().count().min(buf.len());
    let empty = UNICODE_STRING {
        Length: 0,
        MaximumLength: 0,
        Buffer: std::ptr::null_mut(),
    };
    let mut block = Box::new(NameBlock {
        info: FLT_FILE_NAME_INFORMATION {
            Size: std::mem::size_of::<FLT_FILE_NAME_INFORMATION>() as u16,
            NamesParsed: 0xF,
            Format: format,
            Name: empty,
            Volume: empty,
            Share: empty,
            Extension: empty,
            Stream: empty,
            FinalComponent: empty,
            ParentDir: empty,
        },
        buf,
    });
    let whole = kernel::unicode(&block.buf);
    let vol = kernel::unicode(&block.buf[..vol_units]);
    let last = block
        .buf
        .iter()
        .rposition(|&c| c == u16::from(b'\\'))
        .map_or(0, |i| i + 1);
    let fin = kernel::unicode(&block.buf[last..]);
    block.info.Name = whole;
    block.info.Volume = vol;
    block.info.FinalComponent = fin;
    let p = &mut block.info as *mut FLT_FILE_NAME_INFORMATION;
    s.names.insert(p as usize, block);
    p
}

/// `STATUS_INVALID_PARAMETER`: what FltMgr answers a name query it cannot
/// serve (an open by file ID in pre-create).
const STATUS_INVALID_PARAMETER_NAME: NTSTATUS = 0xC000_000D_u32 as i32;
/// `STATUS_FLT_INVALID_NAME_REQUEST`.
const STATUS_FLT_INVALID_NAME_REQUEST: NTSTATUS = 0xC01C_0004_u32 as i32;

/// FltGetFileNameInformation: the *opened* name is the path as the
/// requester spelled it; the *normalized* one has every short name
/// expanded. An open by file ID has no name before the file system opened
/// it (pre-create); with [`Sim::fail_name_queries`] nothing has a name.
pub(crate) fn name_for(
    data: usize,
    flags: u32,
) -> Result<*mut FLT_FILE_NAME_INFORMATION, NTSTATUS> {
    with_state(|s| {
        let op = s
            .ops
            .get(&data)
            .unwrap_or_else(|| violation("name query with unknown callback data"));
        if s.fail_names {
            return Err(STATUS_FLT_INVALID_NAME_REQUEST);
        }
        if op.major == 0 && op.by_id && !op.post {
            return Err(STATUS_INVALID_PARAMETER_NAME);
        }
        let format = flags & 0xFF;
        let (path, volume) = (op.device_path.clone(), op.volume.clone());
        let path = if format == FLT_FILE_NAME_OPENED {
            path
        } else if format == FLT_FILE_NAME_NORMALIZED {
            normalize(s, &path)
        } else {
            violation(&format!("name query with unsupported format {format:#x}"))
        };
        Ok(name_block(s, &path, &volume, format))
    })
}

/// FltGetDestinationFileNameInformation: only for the rename or link in
/// flight on `fo`; a full name (`\??\C:\x`), or one relative to the file's
/// directory when `root` is null and the name has no separator.
pub(crate) fn destination_name_for(
    instance: PFLT_INSTANCE,
    fo: usize,
    root: usize,
    name: &[u16],
    flags: u32,
) -> Result<*mut FLT_FILE_NAME_INFORMATION, NTSTATUS> {
    let name = String::from_utf16_lossy(name);
    let full = if name.starts_with('\\') {
        nt_to_device(&name).ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?
    } else {
        let dir = with_state(|s| {
            s.ops
                .values()
                .find(|o| o.fo == fo && o.major == 0x06)
                .map(|o| o.device_path.clone())
        })
        .unwrap_or_else(|| {
            violation("FltGetDestinationFileNameInformation outside a set-information on that file")
        });
        let parent = dir
            .rfind('\\')
            .map_or(dir.as_str(), |i| &dir[..i])
            .to_string();
        format!("{parent}\\{name}")
    };
    if root != 0 {
        return Err(STATUS_NOT_SUPPORTED);
    }
    with_state(|s| {
        if !s
            .ops
            .values()
            .any(|o| o.fo == fo && o.major == 0x06 && !o.post)
        {
            violation("FltGetDestinationFileNameInformation outside a set-information pre-op on that file");
        }
        if s.volumes.iter().all(|v| v.instance != Some(instance)) {
            violation("FltGetDestinationFileNameInformation with an unknown instance");
        }
        if s.fail_names {
            return Err(STATUS_FLT_INVALID_NAME_REQUEST);
        }
        let volume = s
            .volumes
            .iter()
            .find(|v| starts_with_ci(&full, &v.device))
            .map(|v| v.device.clone())
            .ok_or(STATUS_OBJECT_NAME_NOT_FOUND)?;
        let format = flags & 0xFF;
        let path = if format == FLT_FILE_NAME_NORMALIZED {
            normalize(s, &full)
        } else {
            full.clone()
        };
        Ok(name_block(s, &path, &volume, format))
    })
}

/// FltCancelFileOpen: only in the post-create of a successful create of `fo`.
pub(crate) fn cancel_open(instance: PFLT_INSTANCE, fo: usize) {
    with_state(|s| {
        let Some(op) = s.ops.values_mut().find(|o| o.fo == fo && o.major == 0) else {
            violation("FltCancelFileOpen outside a create of that file object");
        };
        if !op.post {
            violation("FltCancelFileOpen called from a pre-create callback");
        }
        if op.cancelled {
            violation("FltCancelFileOpen called twice");
        }
        op.cancelled = true;
        if s.volumes.iter().all(|v| v.instance != Some(instance)) {
            violation("FltCancelFileOpen with an unknown instance");
        }
    });
}

/// `S-1-5-21-…` → binary SID (test input; panics on a malformed string).
pub fn sid_from_str(text: &str) -> Vec<u8> {
    let mut parts = text.split('-');
    assert_eq!(parts.next(), Some("S"), "SID string {text}");
    assert_eq!(parts.next(), Some("1"), "SID string {text}");
    let auth: u64 = parts.next().expect("authority").parse().expect("authority");
    let subs: Vec<u32> = parts.map(|p| p.parse().expect("sub-authority")).collect();
    let mut v = vec![1u8, subs.len() as u8];
    v.extend_from_slice(&auth.to_be_bytes()[2..]);
    for sub in subs {
        v.extend_from_slice(&sub.to_le_bytes());
    }
    v
}

static EVALUATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Called by the driver's evaluator wrapper on every policy evaluation.
pub fn note_evaluation() {
    EVALUATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// FltStartFiltering: InstanceSetup for every mounted volume.
pub(crate) fn attach_all() {
    let vols = with_state(|s| s.volumes.clone());
    for i in 0..vols.len() {
        attach(i);
    }
}

/// InstanceSetup for volume `i` (mount, or FltStartFiltering).
pub(crate) fn attach(i: usize) {
    let reg = registration();
    let v = with_state(|s| s.volumes[i].clone());
    {
        let inst: PFLT_INSTANCE = with_state(|s| {
            s.instances_made += 1;
            0x1000 + i as isize + 0x100 * (s.instances_made - 1)
        });
        let objs = FLT_RELATED_OBJECTS {
            Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
            TransactionContext: 0,
            Filter: FILTER,
            Volume: v.handle,
            Instance: inst,
            FileObject: std::ptr::null(),
            Transaction: std::ptr::null(),
        };
        let st = match crate::abi::from_instance_setup(reg.InstanceSetupCallback) {
            // SAFETY: the driver's callback with valid related objects, at
            // PASSIVE_LEVEL as FltMgr calls it.
            Some(cb) => with_irql(PASSIVE_LEVEL, true, || unsafe {
                cb(&objs, 0, v.device_type, v.fs)
            }),
            None => STATUS_SUCCESS,
        };
        if nt_success(st) {
            with_state(|s| s.volumes[i].instance = Some(inst));
        } else {
            // A refused instance must not keep a context.
            context_detach(CtxKey::Instance(inst));
        }
    }
}

/// Instance teardown as FltMgr runs it: InstanceTeardownStart, then a wait
/// until the filter holds no reference on the instance and no file opened
/// through it (a volume cannot dismount under an open file; FltMgr waits
/// for the instance's rundown), then InstanceTeardownComplete and the
/// instance's contexts go. The wait is bounded here: a filter that never
/// lets go gets an error instead of a hung machine.
pub(crate) fn teardown_instance(i: usize, reason: u32) -> Result<(), String> {
    let reg = registration();
    let Some(inst) = with_state(|s| s.volumes[i].instance) else {
        return Ok(());
    };
    let v = with_state(|s| {
        s.tearing.insert(inst);
        s.volumes[i].clone()
    });
    let objs = FLT_RELATED_OBJECTS {
        Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
        TransactionContext: 0,
        Filter: FILTER,
        Volume: v.handle,
        Instance: inst,
        FileObject: std::ptr::null(),
        Transaction: std::ptr::null(),
    };
    if let Some(cb) = crate::abi::from_teardown(reg.InstanceTeardownStartCallback) {
        // SAFETY: the driver's callback, at PASSIVE_LEVEL as FltMgr calls it.
        with_irql(PASSIVE_LEVEL, false, || unsafe { cb(&objs, reason) });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let held = with_state(|s| {
            let refs = s.object_refs.get(&inst).copied().unwrap_or(0);
            let files = s.own_files.values().filter(|o| o.instance == inst).count();
            (refs, files)
        });
        if held == (0, 0) {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "instance {inst:#x} teardown waited 10 s: the filter still holds {} reference(s) and {} open file(s) on the volume",
                held.0, held.1
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if let Some(cb) = crate::abi::from_teardown(reg.InstanceTeardownCompleteCallback) {
        // SAFETY: as above.
        with_irql(PASSIVE_LEVEL, false, || unsafe { cb(&objs, reason) });
    }
    let keys: Vec<CtxKey> = with_state(|s| {
        s.attached
            .keys()
            .copied()
            .filter(|k| match k {
                CtxKey::Instance(x) | CtxKey::StreamHandle(x, _) => *x == inst,
            })
            .collect()
    });
    for k in keys {
        context_detach(k);
    }
    with_state(|s| {
        s.volumes[i].instance = None;
        s.tearing.remove(&inst);
        s.object_refs.remove(&inst);
    });
    Ok(())
}

/// FltUnregisterFilter: tear down every instance, close our view of every
/// open handle.
pub(crate) fn teardown_instances() {
    let n = with_state(|s| s.volumes.len());
    for i in 0..n {
        // FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD
        if let Err(e) = teardown_instance(i, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD) {
            violation(&format!("at FltUnregisterFilter: {e}"));
        }
    }
    let keys: Vec<CtxKey> = with_state(|s| s.attached.keys().copied().collect());
    for k in keys {
        context_detach(k);
    }
    with_state(|s| {
        for v in &mut s.volumes {
            v.instance = None;
        }
        if let Some((inst, n)) = s.object_refs.iter().find(|(_, n)| **n > 0) {
            violation(&format!(
                "instance {inst:#x} still referenced ({n}) at FltUnregisterFilter"
            ));
        }
        if let Some((addr, c)) = s.contexts.iter().next() {
            violation(&format!(
                "context {addr:#x} (type {:#x}) leaked: {} reference(s) left at FltUnregisterFilter",
                c.ctype, c.refs
            ));
        }
    });
}

/// Runs `f` at `irql`, optionally marked as a filter callback.
pub fn with_irql<R>(irql: Irql, callback: bool, f: impl FnOnce() -> R) -> R {
    let (old, depth) = CURRENT.with(|c| (c.irql.replace(irql), c.in_callback.get()));
    if callback {
        CURRENT.with(|c| c.in_callback.set(depth + 1));
    }
    struct Restore(Irql, u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| {
                c.irql.set(self.0);
                c.in_callback.set(self.1);
            });
        }
    }
    let _r = Restore(old, depth);
    f()
}

/// How a read or write arrives.
#[derive(Clone, Copy, Debug)]
pub struct Io {
    pub pid: u64,
    /// IRQL of the pre-operation callback.
    pub irql: Irql,
    /// IRQL of the post-operation callback (completion; may be DISPATCH).
    pub post_irql: Irql,
    pub paging: bool,
}

impl Io {
    /// A normal cached I/O from `pid` at PASSIVE_LEVEL.
    pub fn from(pid: u64) -> Io {
        Io {
            pid,
            irql: PASSIVE_LEVEL,
            post_irql: PASSIVE_LEVEL,
            paging: false,
        }
    }
    /// A paging write from the modified page writer (System, pid 4),
    /// completed at DISPATCH_LEVEL.
    pub fn paging_at_dispatch() -> Io {
        Io {
            pid: 4,
            irql: APC_LEVEL,
            post_irql: DISPATCH_LEVEL,
            paging: true,
        }
    }
}

/// An open user handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle(usize);

/// A test's action between an operation's pre-op and the file system.
type Between = Box<dyn FnOnce(&Sim) + Send>;

/// The simulated machine.
pub struct Sim {
    _exclusive: MutexGuard<'static, ()>,
    driver: Box<DRIVER_OBJECT>,
    handles: Mutex<HashMap<usize, UserFile>>,
    loaded: std::sync::atomic::AtomicBool,
    /// Runs once, between the next operation's pre-op and the file system.
    between: Mutex<Option<Between>>,
    /// The next post-operation callback is called with
    /// FLTFL_POST_OPERATION_DRAINING (the filter is being detached).
    drain_next_post: std::sync::atomic::AtomicBool,
    /// Completion blocks in use when this simulation started (a test that
    /// panicked mid-operation may leave some behind in the static pool).
    completions_at_start: usize,
}

// SAFETY: the raw FILE_OBJECT pointers in UserFile are boxes owned by this
// Sim, only created and freed under the `handles` mutex; the driver object
// is only read by shared references after load.
unsafe impl Sync for Sim {}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("loaded", &self.loaded).finish()
    }
}

/// How [`Sim::open_with`] opens a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Open {
    /// Create options (low 24 bits of `Parameters.Create.Options`).
    pub options: u32,
    /// `Parameters.Create.AllocationSize`.
    pub allocation: i64,
    /// `OperationFlags` (SL_*).
    pub op_flags: u8,
    /// Open by file ID: no name in pre-create.
    pub by_id: bool,
    /// A client (impersonation) token ([`Sim::token_for`]).
    pub impersonating: Option<usize>,
}

/// Access masks and dispositions for [`Sim::open`].
pub mod access {
    pub const READ: u32 = 0x0001;
    pub const WRITE: u32 = 0x0002;
    pub const DELETE: u32 = 0x0001_0000;
    pub const OPEN: u32 = 1;
    pub const OPEN_IF: u32 = 3;
    pub const CREATE: u32 = 2;
}

impl Sim {
    /// A machine with C: (NTFS), E: (FAT), a network share (MUP) and a
    /// CD-ROM; only C: and E: get instances.
    pub fn new() -> Sim {
        let exclusive = EXCLUSIVE.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = State::default();
        let disk = crate::instance::FILE_DEVICE_DISK_FILE_SYSTEM;
        st.volumes = vec![
            Volume {
                handle: 0x2000,
                device: r"\Device\HarddiskVolume3".into(),
                dos: Some("C:".into()),
                device_type: disk,
                fs: FLT_FSTYPE_NTFS,
                instance: None,
            },
            Volume {
                handle: 0x2001,
                device: r"\Device\HarddiskVolume4".into(),
                dos: Some("E:".into()),
                device_type: disk,
                fs: FLT_FSTYPE_FAT,
                instance: None,
            },
            Volume {
                handle: 0x2002,
                device: r"\Device\Mup".into(),
                dos: None,
                device_type: 0x14,
                fs: FLT_FSTYPE_MUP,
                instance: None,
            },
            Volume {
                handle: 0x2003,
                device: r"\Device\CdRom0".into(),
                dos: Some("D:".into()),
                device_type: 0x03,
                fs: FLT_FSTYPE_CDFS,
                instance: None,
            },
        ];
        // The System process (pid 4: lazy writer, mapped and modified page
        // writers) runs from boot and has no image file.
        st.running.insert(
            4,
            RunningProcess {
                pid: 4,
                ppid: 0,
                image_nt: String::new(),
                exits_during_load: false,
            },
        );
        let old = state().replace(st);
        if let Some(old) = old {
            for (p, layout) in old.quarantine {
                special_pool::release(p as *mut u8, layout.size());
            }
        }
        CURRENT.with(|c| {
            c.irql.set(PASSIVE_LEVEL);
            c.in_callback.set(0);
        });
        PERTURB_ON.store(false, std::sync::atomic::Ordering::Relaxed);
        *LOG_WRITE_HOOK.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Sim {
            _exclusive: exclusive,
            driver: Box::default(),
            handles: Mutex::default(),
            loaded: std::sync::atomic::AtomicBool::new(false),
            between: Mutex::new(None),
            drain_next_post: std::sync::atomic::AtomicBool::new(false),
            completions_at_start: crate::completion::in_use(),
        }
    }

    /// Makes the next allocations after `n` fail (resource exhaustion).
    pub fn fail_allocations_after(&self, n: u64) {
        with_state(|s| s.fail_allocations_after = Some(s.allocations_made + n));
    }
    /// Makes the kernel call of one DriverEntry step fail.
    pub fn fail_step(&self, step: Step) {
        with_state(|s| s.fail_step = Some(step));
    }
    /// Whether the flush thread is running.
    pub fn threads(&self) -> usize {
        with_state(|s| s.threads.len())
    }
    /// Lowers the log rotation threshold of the next log session.
    pub fn set_rotation_limit(&self, bytes: u64) {
        if let Some(g) = crate::globals::get() {
            g.flush
                .max_file_bytes
                .store(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
    /// Makes PsSetCreateProcessNotifyRoutineEx fail.
    pub fn fail_process_notify(&self) {
        with_state(|s| s.fail_process_notify = true);
    }
    /// Pool blocks currently allocated.
    pub fn pool_blocks(&self) -> usize {
        with_state(|s| s.pool.len())
    }
    /// Which volumes have an instance.
    pub fn attached(&self) -> Vec<String> {
        with_state(|s| {
            s.volumes
                .iter()
                .filter(|v| v.instance.is_some())
                .map(|v| v.device.clone())
                .collect()
        })
    }

    /// Calls DriverEntry at PASSIVE_LEVEL.
    pub fn load(&mut self) -> NTSTATUS {
        let drv: *mut DRIVER_OBJECT = &mut *self.driver;
        // SAFETY: a valid driver object; PASSIVE_LEVEL.
        let st = with_irql(PASSIVE_LEVEL, false, || unsafe {
            crate::entry::DriverEntry(drv, std::ptr::null())
        });
        let loaded = nt_success(st);
        self.loaded
            .store(loaded, std::sync::atomic::Ordering::Release);
        if !loaded {
            self.check_clean("after a failed DriverEntry");
        }
        st
    }

    /// Turns on scheduling noise from `seed`: every simulated kernel call
    /// on the control path ([`perturb`]) may sleep or yield, so concurrent
    /// simulated CPUs interleave differently for each seed.
    pub fn perturb(&self, seed: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        PERTURB_RNG.store(seed.wrapping_mul(0x2545_F491_4F6C_DD1D), Relaxed);
        PERTURB_ON.store(true, Relaxed);
    }

    /// Closes every handle still open, calls the filter's unload callback
    /// and checks that nothing leaked.
    pub fn unload(&mut self) -> NTSTATUS {
        self.unload_with(0)
    }

    /// A mandatory unload (`FLTFL_FILTER_UNLOAD_MANDATORY`: the filter
    /// cannot refuse), callable while other threads use the simulation.
    /// Control-device handles may stay open: the device object is then
    /// delete-pending, and later requests on those handles still reach the
    /// driver's dispatch routines.
    pub fn unload_mandatory(&self) -> NTSTATUS {
        self.unload_with(FLTFL_FILTER_UNLOAD_MANDATORY)
    }

    fn unload_with(&self, flags: u32) -> NTSTATUS {
        let open: Vec<usize> = self.handles.lock().unwrap().keys().copied().collect();
        for h in open {
            self.close(Handle(h));
        }
        let reg = registration();
        let cb =
            crate::abi::from_unload(reg.FilterUnloadCallback).expect("unload callback registered");
        // SAFETY: FltMgr calls unload at PASSIVE_LEVEL.
        let st = with_irql(PASSIVE_LEVEL, false, || unsafe { cb(flags) });
        if nt_success(st) {
            self.loaded
                .store(false, std::sync::atomic::Ordering::Release);
            self.check_clean("at unload");
        } else if flags & FLTFL_FILTER_UNLOAD_MANDATORY != 0 {
            violation("a mandatory unload was refused");
        }
        st
    }

    fn check_clean(&self, when: &str) {
        with_state(|s| {
            if s.registration.is_some() {
                violation(&format!("filter still registered {when}"));
            }
            if !s.pool.is_empty() {
                violation(&format!("{} pool block(s) leaked {when}", s.pool.len()));
            }
            if !s.contexts.is_empty() {
                violation(&format!("{} context(s) leaked {when}", s.contexts.len()));
            }
            if !s.names.is_empty() {
                violation(&format!(
                    "{} file name block(s) not released {when}",
                    s.names.len()
                ));
            }
            if !s.threads.is_empty() {
                violation(&format!("system thread still running {when}"));
            }
            if s.process_notify.is_some() {
                violation(&format!("process notify routine still registered {when}"));
            }
            if s.control_device.as_ref().is_some_and(|c| !c.deleted) {
                violation(&format!("control device not deleted {when}"));
            }
            if !s.own_files.is_empty() {
                violation(&format!("filter-owned file still open {when}"));
            }
        });
        let held = crate::completion::in_use().saturating_sub(self.completions_at_start);
        if held != 0 {
            violation(&format!("{held} completion block(s) never released {when}"));
        }
    }

    /// The DOS path `C:\x` in device form, with its volume and instance.
    fn resolve(&self, dos_path: &str) -> (String, String, PFLT_VOLUME, Option<PFLT_INSTANCE>) {
        let (drive, rest) = dos_path.split_at(2);
        with_state(|s| {
            let v = s
                .volumes
                .iter()
                .find(|v| {
                    v.dos
                        .as_deref()
                        .is_some_and(|d| d.eq_ignore_ascii_case(drive))
                })
                .unwrap_or_else(|| std::panic::panic_any(format!("no volume {drive}")));
            (
                format!("{}{}", v.device, rest),
                v.device.clone(),
                v.handle,
                v.instance,
            )
        })
    }

    /// A process starts: it joins the running processes and, if the driver
    /// registered its notify routine, the routine runs at PASSIVE_LEVEL.
    /// Before load, the process is one the driver finds already running.
    pub fn process_start(&self, pid: u64, ppid: u64, image_dos: &str) {
        self.add_running(pid, ppid, image_dos, false);
        let Some(cb) = with_state(|s| s.process_notify) else {
            return;
        };
        let name: Vec<u16> = format!(r"\??\{image_dos}").encode_utf16().collect();
        let mut us = kernel::unicode(&name);
        // SAFETY: all-zero is a valid PS_CREATE_NOTIFY_INFO.
        let mut info: PS_CREATE_NOTIFY_INFO = unsafe { std::mem::zeroed() };
        info.Size = std::mem::size_of::<PS_CREATE_NOTIFY_INFO>();
        info.ParentProcessId = ppid as usize as HANDLE;
        info.ImageFileName = &mut us;
        // SAFETY: the driver's routine with a valid info block.
        with_irql(PASSIVE_LEVEL, false, || unsafe {
            cb(0 as _, pid as usize as HANDLE, &mut info)
        });
    }

    /// A process that runs before load and exits while DriverEntry lists
    /// the running processes: after the snapshot, before its image is
    /// read (see `kernel::for_each_process`).
    pub fn process_exits_during_load(&self, pid: u64, ppid: u64, image_dos: &str) {
        self.add_running(pid, ppid, image_dos, true);
    }

    fn add_running(&self, pid: u64, ppid: u64, image_dos: &str, exits_during_load: bool) {
        let dos = format!(r"\??\{image_dos}");
        let image_nt = nt_to_device(&dos).unwrap_or(dos);
        with_state(|s| {
            s.running.insert(
                pid,
                RunningProcess {
                    pid,
                    ppid,
                    image_nt,
                    exits_during_load,
                },
            )
        });
    }

    /// A process exits.
    pub fn process_exit(&self, pid: u64) {
        let cb = with_state(|s| {
            s.running.remove(&pid);
            s.process_notify
        });
        if let Some(cb) = cb {
            // SAFETY: exit notification (null info).
            with_irql(PASSIVE_LEVEL, false, || unsafe {
                cb(0 as _, pid as usize as HANDLE, std::ptr::null_mut())
            });
        }
    }

    /// Runs one operation through the registered callbacks, the way FltMgr
    /// does: pre at `irql`, the file system (`perform`), post at
    /// `post_irql`. Returns the final status.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &self,
        major: u8,
        fo: *mut FILE_OBJECT,
        instance: PFLT_INSTANCE,
        volume: PFLT_VOLUME,
        info: OpInfo,
        params: FLT_PARAMETERS,
        irp_flags: u32,
        irql: Irql,
        post_irql: Irql,
        perform: impl FnOnce(&mut FLT_CALLBACK_DATA) -> NTSTATUS,
    ) -> NTSTATUS {
        let reg = registration();
        let mut entry = None;
        let mut p = reg.OperationRegistration;
        // SAFETY: static table terminated by IRP_MJ_OPERATION_END (0x80).
        while unsafe { (*p).MajorFunction } != 0x80 {
            // SAFETY: as above.
            if unsafe { (*p).MajorFunction } == major {
                // SAFETY: as above.
                entry = Some(unsafe { &*p });
            }
            // SAFETY: within the table.
            p = unsafe { p.add(1) };
        }
        let paging = irp_flags & crate::ops::IRP_PAGING_IO != 0;
        if irql > APC_LEVEL {
            // "Constraints on Dispatch Routines": no I/O, paging I/O
            // included, is sent at DISPATCH_LEVEL, so FltMgr never calls a
            // pre-operation callback there. Only post-ops reach DISPATCH.
            std::panic::panic_any(format!(
                "simulation misuse: a pre-operation callback at IRQL {irql} (FltMgr calls them at <= APC_LEVEL)"
            ));
        }
        let mut info = info;
        info.major = major;
        info.fo = fo as usize;
        let op_flags = info.op_flags;
        let iopb = Box::new(FLT_IO_PARAMETER_BLOCK {
            IrpFlags: irp_flags,
            MajorFunction: major,
            MinorFunction: 0,
            OperationFlags: op_flags,
            Reserved: 0,
            TargetFileObject: fo,
            TargetInstance: instance,
            Parameters: params,
        });
        // SAFETY: all-zero is a valid FLT_CALLBACK_DATA.
        let mut data: Box<FLT_CALLBACK_DATA> = Box::new(unsafe { std::mem::zeroed() });
        data.Flags = FLTFL_CALLBACK_DATA_IRP_OPERATION;
        data.Thread = (0x7000_0000 + info.pid as usize) as _;
        data.Iopb = &*iopb;
        let dp: *mut FLT_CALLBACK_DATA = &mut *data;
        with_state(|s| s.ops.insert(dp as usize, info));
        let objs = FLT_RELATED_OBJECTS {
            Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
            TransactionContext: 0,
            Filter: FILTER,
            Volume: volume,
            Instance: instance,
            FileObject: fo,
            Transaction: std::ptr::null(),
        };
        let filtering = with_state(|s| s.filtering);
        let (pre, post) = match (entry, filtering) {
            (Some(e), true) => (
                crate::abi::from_pre(e.PreOperation),
                crate::abi::from_post(e.PostOperation),
            ),
            _ => (None, None),
        };
        let mut cc: *mut std::ffi::c_void = std::ptr::null_mut();
        let pre_status = match pre {
            // SAFETY: the driver's callback with FltMgr-shaped arguments.
            Some(f) => with_irql(irql, true, || unsafe { f(dp, &objs, &mut cc) }),
            None => FLT_PREOP_SUCCESS_NO_CALLBACK,
        };
        let status = match pre_status {
            FLT_PREOP_COMPLETE => {
                if !cc.is_null() {
                    violation("completion context set on an operation completed in pre-operation");
                }
                // SAFETY: reading the status the filter set.
                unsafe { data.IoStatus.Anonymous.Status }
            }
            FLT_PREOP_SUCCESS_NO_CALLBACK
            | FLT_PREOP_SUCCESS_WITH_CALLBACK
            | FLT_PREOP_SYNCHRONIZE => {
                if !cc.is_null() && pre_status == FLT_PREOP_SUCCESS_NO_CALLBACK {
                    violation("completion context set but no post-operation requested");
                }
                if pre_status != FLT_PREOP_SUCCESS_NO_CALLBACK && post.is_none() {
                    violation("post-operation requested for an operation without a post callback");
                }
                // Whatever a test wants to happen while the operation is
                // in the file system (a policy swap, for instance).
                let between = self.between.lock().unwrap().take();
                if let Some(b) = between {
                    b(self);
                }
                // SAFETY: the data box is ours.
                let st = perform(unsafe { &mut *dp });
                // SAFETY: the data box is ours.
                let d = unsafe { &mut *dp };
                d.IoStatus.Anonymous.Status = st;
                let mut final_status = st;
                if pre_status != FLT_PREOP_SUCCESS_NO_CALLBACK {
                    let at = if pre_status == FLT_PREOP_SYNCHRONIZE || major == 0 {
                        // Post-create always runs at PASSIVE_LEVEL in the
                        // requester's thread.
                        irql
                    } else {
                        post_irql
                    };
                    let draining = self
                        .drain_next_post
                        .swap(false, std::sync::atomic::Ordering::Relaxed);
                    let flags = if draining {
                        FLTFL_POST_OPERATION_DRAINING
                    } else {
                        0
                    };
                    with_state(|s| {
                        if let Some(o) = s.ops.get_mut(&(dp as usize)) {
                            o.post = true;
                        }
                    });
                    if let Some(f) = post {
                        // SAFETY: the driver's post callback.
                        let r = with_irql(at, true, || unsafe { f(dp, &objs, cc, flags) });
                        if r != FLT_POSTOP_FINISHED_PROCESSING {
                            violation("post-operation did not finish processing (pending paging I/O is forbidden)");
                        }
                    }
                    // SAFETY: the data box is ours again.
                    let d = unsafe { &*dp };
                    // SAFETY: the I/O status union holds the NTSTATUS.
                    let after = unsafe { d.IoStatus.Anonymous.Status };
                    let cancelled =
                        with_state(|s| s.ops.get(&(dp as usize)).is_some_and(|o| o.cancelled));
                    if major == 0 {
                        if cancelled && (nt_success(after) || !nt_success(st)) {
                            violation("a cancelled open must be failed with an error status, after a successful create");
                        }
                        if !cancelled && nt_success(st) && !nt_success(after) {
                            violation("post-create failed a successful create without FltCancelFileOpen (the file stays open below)");
                        }
                        final_status = after;
                    } else if after != st {
                        violation("post-operation changed the status of a completed operation");
                    }
                }
                final_status
            }
            FLT_PREOP_PENDING if paging => violation("paging I/O pended in pre-operation"),
            other => violation(&format!(
                "pre-operation returned unsupported status {other}"
            )),
        };
        with_state(|s| s.ops.remove(&(dp as usize)));
        drop(iopb);
        status
    }

    /// Opens `dos_path` (`C:\Data\a.txt`) as `pid` with `access` and
    /// `disposition` ([`access`]). Creates and opens run at PASSIVE_LEVEL.
    /// The path may use 8.3 short names ([`Sim::add_short_name`]).
    pub fn open(
        &self,
        pid: u64,
        dos_path: &str,
        desired: u32,
        disposition: u32,
    ) -> Result<Handle, NTSTATUS> {
        self.open_how(pid, dos_path, desired, disposition, Open::default())
    }

    /// Opens the file by its file ID (`FILE_OPEN_BY_FILE_ID`): FltMgr has
    /// no name for it before the file system opened it.
    pub fn open_by_id(&self, pid: u64, dos_path: &str, desired: u32) -> Result<Handle, NTSTATUS> {
        self.open_how(
            pid,
            dos_path,
            desired,
            access::OPEN,
            Open {
                options: crate::ops::FILE_OPEN_BY_FILE_ID,
                by_id: true,
                ..Open::default()
            },
        )
    }

    /// The I/O manager's open of a rename or link target's parent
    /// (`SL_OPEN_TARGET_DIRECTORY`) for `dos_target`; returns the status
    /// (the directory handle is closed at once).
    pub fn open_target_directory(&self, pid: u64, dos_target: &str) -> NTSTATUS {
        let parent = &dos_target[..dos_target.rfind('\\').unwrap_or(dos_target.len())];
        let dev = self.resolve(parent).0;
        with_state(|s| {
            s.files.entry(dev.to_uppercase()).or_default();
        });
        match self.open_how(
            pid,
            dos_target,
            access::WRITE,
            access::OPEN_IF,
            Open {
                op_flags: crate::ops::SL_OPEN_TARGET_DIRECTORY,
                ..Open::default()
            },
        ) {
            Ok(h) => {
                self.close(h);
                0
            }
            Err(st) => st,
        }
    }

    /// [`Sim::open`] with create options (`FILE_DELETE_ON_CLOSE`, ...) and
    /// an initial allocation size.
    pub fn open_with(
        &self,
        pid: u64,
        dos_path: &str,
        desired: u32,
        disposition: u32,
        options: u32,
        allocation: i64,
    ) -> Result<Handle, NTSTATUS> {
        self.open_how(
            pid,
            dos_path,
            desired,
            disposition,
            Open {
                options,
                allocation,
                ..Open::default()
            },
        )
    }

    /// [`Sim::open`] with everything a create can say ([`Open`]).
    pub fn open_how(
        &self,
        pid: u64,
        dos_path: &str,
        desired: u32,
        disposition: u32,
        how: Open,
    ) -> Result<Handle, NTSTATUS> {
        let (device_path, volume_name, volume, instance) = self.resolve(dos_path);
        let fo = Box::into_raw(Box::<FILE_OBJECT>::default());
        let token = with_state(|s| s.process_tokens.get(&pid).copied()).unwrap_or(0);
        // SAFETY: all-zero is valid.
        let mut state: Box<windows_sys::Wdk::Foundation::ACCESS_STATE> =
            Box::new(unsafe { std::mem::zeroed() });
        state.SubjectSecurityContext.PrimaryToken = token as *mut std::ffi::c_void;
        state.SubjectSecurityContext.ClientToken = how
            .impersonating
            .map_or(std::ptr::null_mut(), |t| t as *mut std::ffi::c_void);
        // SAFETY: all-zero is valid.
        let mut sec: IO_SECURITY_CONTEXT = unsafe { std::mem::zeroed() };
        sec.DesiredAccess = desired;
        sec.AccessState = &mut *state;
        // SAFETY: all-zero is valid.
        let mut params: FLT_PARAMETERS = unsafe { std::mem::zeroed() };
        // Filter Manager's layout (fltkernel.h, see [`wire`]).
        put(
            &mut params,
            wire::CREATE_SECURITY_CONTEXT,
            &mut sec as *mut IO_SECURITY_CONTEXT,
        );
        put(
            &mut params,
            wire::CREATE_OPTIONS,
            disposition << 24 | (how.options & 0x00FF_FFFF),
        );
        put(&mut params, wire::CREATE_ALLOCATION_SIZE, how.allocation);
        let key = with_state(|s| normalize(s, &device_path)).to_uppercase();
        let mut info = OpInfo::new(pid, device_path.clone(), volume_name);
        info.by_id = how.by_id;
        info.op_flags = how.op_flags;
        let st = self.dispatch(
            0,
            fo,
            instance.unwrap_or(0),
            volume,
            info,
            params,
            0,
            PASSIVE_LEVEL,
            PASSIVE_LEVEL,
            |d| {
                with_state(|s| {
                    let exists = s.files.contains_key(&key);
                    match disposition {
                        access::OPEN if !exists => STATUS_OBJECT_NAME_NOT_FOUND,
                        access::CREATE if exists => crate::kernel::STATUS_OBJECT_NAME_COLLISION,
                        _ => {
                            s.files.entry(key.clone()).or_default();
                            d.IoStatus.Information = if exists { 1 } else { 2 };
                            STATUS_SUCCESS
                        }
                    }
                })
            },
        );
        if !nt_success(st) {
            // The I/O manager frees the file object of a failed create; any
            // stream-handle context set on it would be a leak.
            if let Some(inst) = instance {
                if with_state(|s| {
                    s.attached
                        .contains_key(&CtxKey::StreamHandle(inst, fo as usize))
                }) {
                    violation("stream-handle context left on a failed create's file object");
                }
            }
            // SAFETY: created above.
            drop(unsafe { Box::from_raw(fo) });
            return Err(st);
        }
        self.handles.lock().unwrap().insert(
            fo as usize,
            UserFile {
                fo,
                device_path,
                instance: instance.unwrap_or(0),
                volume,
                pid,
            },
        );
        Ok(Handle(fo as usize))
    }

    fn file(&self, h: Handle) -> (*mut FILE_OBJECT, String, PFLT_INSTANCE, PFLT_VOLUME, u64) {
        let hs = self.handles.lock().unwrap();
        let f = hs.get(&h.0).expect("open handle");
        (f.fo, f.device_path.clone(), f.instance, f.volume, f.pid)
    }

    fn volume_of(&self, device_path: &str) -> String {
        with_state(|s| {
            s.volumes
                .iter()
                .find(|v| starts_with_ci(device_path, &v.device))
                .map(|v| v.device.clone())
        })
        .unwrap_or_default()
    }

    /// Writes `len` bytes at the end of the file.
    pub fn write(&self, h: Handle, len: u32, io: Io) -> NTSTATUS {
        self.rw(h, 0x04, len, io)
    }

    /// Reads `len` bytes.
    pub fn read(&self, h: Handle, len: u32, io: Io) -> NTSTATUS {
        self.rw(h, 0x03, len, io)
    }

    fn rw(&self, h: Handle, major: u8, len: u32, io: Io) -> NTSTATUS {
        let (fo, path, inst, vol, _) = self.file(h);
        // SAFETY: all-zero is valid.
        let mut params: FLT_PARAMETERS = unsafe { std::mem::zeroed() };
        put(&mut params, wire::READ_WRITE_LENGTH, len);
        let flags = if io.paging {
            crate::ops::IRP_PAGING_IO
        } else {
            0
        };
        let info = OpInfo::new(io.pid, path.clone(), self.volume_of(&path));
        let key = with_state(|s| normalize(s, &path)).to_uppercase();
        self.dispatch(
            major,
            fo,
            inst,
            vol,
            info,
            params,
            flags,
            io.irql,
            io.post_irql,
            |d| {
                if major == 0x04 {
                    with_state(|s| {
                        s.files
                            .entry(key)
                            .or_default()
                            .extend(std::iter::repeat_n(0u8, len as usize))
                    });
                }
                d.IoStatus.Information = len as usize;
                STATUS_SUCCESS
            },
        )
    }

    fn set_info(
        &self,
        h: Handle,
        pid: u64,
        class: i32,
        buf: &mut [u8],
        perform: impl FnOnce() -> NTSTATUS,
    ) -> NTSTATUS {
        let (fo, path, inst, vol, _) = self.file(h);
        // SAFETY: all-zero is valid.
        let mut params: FLT_PARAMETERS = unsafe { std::mem::zeroed() };
        // Filter Manager's layout (fltkernel.h, see [`wire`]): the class
        // at +8, the buffer at +32.
        put(&mut params, wire::SET_INFO_LENGTH, buf.len() as u32);
        put(&mut params, wire::SET_INFO_CLASS, class);
        put(&mut params, wire::SET_INFO_BUFFER, buf.as_mut_ptr());
        let vname = self.volume_of(&path);
        let info = OpInfo::new(pid, path, vname);
        self.dispatch(
            0x06,
            fo,
            inst,
            vol,
            info,
            params,
            0,
            PASSIVE_LEVEL,
            PASSIVE_LEVEL,
            |_| perform(),
        )
    }

    /// Marks the file for deletion (FileDispositionInformation).
    pub fn delete(&self, h: Handle, pid: u64) -> NTSTATUS {
        let (_, path, ..) = self.file(h);
        let mut buf = [1u8];
        self.set_info(h, pid, 13, &mut buf, || {
            with_state(|s| {
                let k = normalize(s, &path).to_uppercase();
                s.files.remove(&k)
            });
            STATUS_SUCCESS
        })
    }

    /// Sets FileDispositionInformationEx with `flags` (FILE_DISPOSITION_DELETE
    /// = 1 marks the file for deletion).
    pub fn delete_ex(&self, h: Handle, pid: u64, flags: u32) -> NTSTATUS {
        let (_, path, ..) = self.file(h);
        let mut buf = flags.to_le_bytes();
        self.set_info(h, pid, 64, &mut buf, || {
            if flags & 1 != 0 {
                with_state(|s| {
                    let k = normalize(s, &path).to_uppercase();
                    s.files.remove(&k)
                });
            }
            STATUS_SUCCESS
        })
    }

    /// Sets the end of file (FileEndOfFileInformation).
    pub fn set_end_of_file(&self, h: Handle, pid: u64, eof: u64) -> NTSTATUS {
        let (_, path, ..) = self.file(h);
        let mut buf = eof.to_le_bytes();
        self.set_info(h, pid, 20, &mut buf, || {
            with_state(|s| {
                let k = normalize(s, &path).to_uppercase();
                s.files.entry(k).or_default().resize(eof as usize, 0)
            });
            STATUS_SUCCESS
        })
    }

    /// A `FILE_RENAME_INFORMATION` / `FILE_LINK_INFORMATION` buffer (x64:
    /// flags at 0, RootDirectory at 8, FileNameLength at 16, the name at
    /// 20) naming `target` (`\??\C:\x`, or a bare name relative to the
    /// file's directory), 8-aligned like a system buffer.
    fn rename_buffer(target: &str) -> Vec<u64> {
        let name: Vec<u16> = target.encode_utf16().collect();
        let bytes = wire::RENAME_FILE_NAME + name.len() * 2;
        let mut words = vec![0u64; bytes.div_ceil(8)];
        // SAFETY: `words` holds at least `bytes` bytes.
        let b = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes) };
        b[0] = 1; // ReplaceIfExists
        b[wire::RENAME_FILE_NAME_LENGTH..wire::RENAME_FILE_NAME_LENGTH + 4]
            .copy_from_slice(&((name.len() * 2) as u32).to_le_bytes());
        for (i, u) in name.iter().enumerate() {
            let at = wire::RENAME_FILE_NAME + 2 * i;
            b[at..at + 2].copy_from_slice(&u.to_le_bytes());
        }
        words
    }

    /// Renames the file to `new_dos_path` (FileRenameInformation with the
    /// full NT name `\??\C:\…`, as Win32 MoveFileEx sends it).
    pub fn rename(&self, h: Handle, pid: u64, new_dos_path: &str) -> NTSTATUS {
        self.rename_as(h, pid, new_dos_path, &format!(r"\??\{new_dos_path}"))
    }

    /// Renames the file to `new_dos_path`, spelling the target in the
    /// request as `spelled` (for instance with short names).
    pub fn rename_as(&self, h: Handle, pid: u64, new_dos_path: &str, spelled: &str) -> NTSTATUS {
        let (_, path, ..) = self.file(h);
        let (new_dev, ..) = self.resolve(new_dos_path);
        let mut words = Self::rename_buffer(spelled);
        let len = 20 + spelled.encode_utf16().count() * 2;
        // SAFETY: `words` holds at least `len` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
        let st = self.set_info(h, pid, 10, buf, || {
            with_state(|s| {
                let k = normalize(s, &path).to_uppercase();
                let nk = normalize(s, &new_dev).to_uppercase();
                if let Some(d) = s.files.remove(&k) {
                    s.files.insert(nk, d);
                }
            });
            STATUS_SUCCESS
        });
        if nt_success(st) {
            if let Some(f) = self.handles.lock().unwrap().get_mut(&h.0) {
                f.device_path = new_dev;
            }
        }
        st
    }

    /// Creates a hard link `new_dos_path` to the file
    /// (FileLinkInformation, full NT name).
    pub fn link(&self, h: Handle, pid: u64, new_dos_path: &str) -> NTSTATUS {
        let (_, path, ..) = self.file(h);
        let (new_dev, ..) = self.resolve(new_dos_path);
        let spelled = format!(r"\??\{new_dos_path}");
        let mut words = Self::rename_buffer(&spelled);
        let len = 20 + spelled.encode_utf16().count() * 2;
        // SAFETY: `words` holds at least `len` bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
        self.set_info(h, pid, 11, buf, || {
            with_state(|s| {
                let k = normalize(s, &path).to_uppercase();
                let nk = normalize(s, &new_dev).to_uppercase();
                let d = s.files.get(&k).cloned().unwrap_or_default();
                s.files.insert(nk, d);
            });
            STATUS_SUCCESS
        })
    }

    /// Gives `dos_long` (`C:\Finance`) the 8.3 short name `short`
    /// (`FINANC~1`) in its directory, as NTFS would.
    pub fn add_short_name(&self, dos_long: &str, short: &str) {
        let (dev, ..) = self.resolve(dos_long);
        let parent = &dev[..dev.rfind('\\').expect("a path with a directory")];
        let key = format!("{parent}\\{short}").to_uppercase();
        with_state(|s| {
            let long = normalize(s, &dev);
            s.short_names.insert(key, long)
        });
    }

    /// Makes every name query fail (or work again).
    pub fn fail_name_queries(&self, fail: bool) {
        with_state(|s| s.fail_names = fail);
    }

    /// Gives process `pid` a primary token whose user is `sid`
    /// (`S-1-5-21-…`).
    pub fn set_user(&self, pid: u64, sid: &str) {
        let token = self.token_for(sid);
        with_state(|s| s.process_tokens.insert(pid, token));
    }

    /// A token (its address) for the user `sid`, e.g. for impersonation.
    pub fn token_for(&self, sid: &str) -> usize {
        let bin = sid_from_str(sid);
        with_state(|s| {
            let t = 0x5000_0000 + 0x10 * (s.tokens.len() + 1);
            s.tokens.insert(t, bin);
            t
        })
    }

    /// Policy evaluations so far (every simulation in this process).
    pub fn evaluations() -> u64 {
        EVALUATIONS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `f` once, during the next operation, after its pre-operation
    /// callback and before the file system performs it.
    pub fn between_pre_and_post(&self, f: impl FnOnce(&Sim) + Send + 'static) {
        *self.between.lock().unwrap() = Some(Box::new(f));
    }

    /// Calls the next post-operation callback with
    /// FLTFL_POST_OPERATION_DRAINING, as FltMgr does while detaching.
    pub fn drain_next_post(&self) {
        self.drain_next_post
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// IRP_MJ_CLEANUP then close: the handle's contexts go away.
    pub fn close(&self, h: Handle) {
        let (fo, path, inst, vol, pid) = self.file(h);
        // SAFETY: all-zero is valid.
        let params: FLT_PARAMETERS = unsafe { std::mem::zeroed() };
        let vname = self.volume_of(&path);
        let info = OpInfo::new(pid, path, vname);
        self.dispatch(
            0x12,
            fo,
            inst,
            vol,
            info,
            params,
            0,
            PASSIVE_LEVEL,
            PASSIVE_LEVEL,
            |_| STATUS_SUCCESS,
        );
        context_detach(CtxKey::StreamHandle(inst, fo as usize));
        self.handles.lock().unwrap().remove(&h.0);
        // SAFETY: created in open.
        drop(unsafe { Box::from_raw(fo) });
    }

    fn irp(
        &self,
        major: u8,
        code: u32,
        input: &[u8],
        out_len: usize,
        admin: bool,
    ) -> (NTSTATUS, Vec<u8>) {
        // The I/O manager references the device object for the IRP's life.
        let dev = with_state(|s| {
            let c = s.control_device.as_mut().expect("control device exists");
            c.in_flight += 1;
            c.dev
        }) as *const DEVICE_OBJECT;
        struct Done;
        impl Drop for Done {
            fn drop(&mut self) {
                with_state(|s| {
                    if let Some(c) = s.control_device.as_mut() {
                        c.in_flight -= 1;
                    }
                    ControlDevice::reap(&mut s.control_device);
                });
            }
        }
        let _done = Done;
        let mut sysbuf = vec![0u8; input.len().max(out_len)];
        sysbuf[..input.len()].copy_from_slice(input);
        // The I/O manager's layout (wdm.h, see [`wire`]), not windows-sys's:
        // the control code at +16 of the parameters.
        let mut stack = Box::new([0u64; wire::STACK_SIZE / 8]);
        put(&mut *stack, wire::STACK_MAJOR, major);
        if major == 0x0E {
            put(&mut *stack, wire::IOCTL_CODE, code);
            put(&mut *stack, wire::IOCTL_INPUT_LENGTH, input.len() as u32);
            put(&mut *stack, wire::IOCTL_OUTPUT_LENGTH, out_len as u32);
        }
        // SAFETY: all-zero is valid for an IRP.
        let mut irp: Box<IRP> = Box::new(unsafe { std::mem::zeroed() });
        irp.AssociatedIrp.SystemBuffer = if sysbuf.is_empty() {
            std::ptr::null_mut()
        } else {
            sysbuf.as_mut_ptr().cast()
        };
        irp.Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation =
            (&mut *stack as *mut [u64; wire::STACK_SIZE / 8]).cast();
        let f = crate::abi::from_dispatch(self.driver.MajorFunction[major as usize])
            .expect("dispatch routine set");
        let ip: *mut IRP = &mut *irp;
        CURRENT.with(|c| c.admin.set(admin));
        // SAFETY: a valid IRP for the driver's dispatch routine at PASSIVE.
        let st = with_irql(PASSIVE_LEVEL, false, || unsafe { f(dev, ip) });
        CURRENT.with(|c| c.admin.set(false));
        if !with_state(|s| s.completed_irps.remove(&(ip as usize))) {
            violation("dispatch routine returned without completing the IRP");
        }
        // SAFETY: the driver completed the IRP.
        let (ist, info) = unsafe { (irp.IoStatus.Anonymous.Status, irp.IoStatus.Information) };
        assert_eq!(st, ist, "returned status differs from IoStatus.Status");
        if info > out_len {
            violation("IoStatus.Information exceeds the output buffer");
        }
        (st, sysbuf[..info].to_vec())
    }

    /// CreateFile on `\\.\FltPolicy`: the I/O manager checks the device's
    /// DACL, then the driver's create handler checks the caller again. A
    /// deleted (delete-pending) device cannot be opened.
    pub fn open_control(&self, admin: bool) -> NTSTATUS {
        let acl = with_state(|s| match s.control_device.as_ref() {
            Some(c) if !c.deleted => Some(c.acl.clone()),
            _ => None,
        });
        let Some(acl) = acl else {
            return STATUS_OBJECT_NAME_NOT_FOUND;
        };
        // The I/O manager's access check against the device's DACL.
        let who = if admin {
            acl::ADMINISTRATORS
        } else {
            acl::USERS
        };
        let principal_ok = acl.granted().iter().any(|s| s == who);
        if !principal_ok {
            return STATUS_ACCESS_DENIED;
        }
        let st = self.irp(0x00, 0, &[], 0, admin).0;
        if nt_success(st) {
            with_state(|s| {
                if let Some(c) = s.control_device.as_mut() {
                    c.handles += 1;
                }
            });
        }
        st
    }

    /// CloseHandle on the control device: IRP_MJ_CLEANUP, then IRP_MJ_CLOSE
    /// once the last reference goes. Neither may fail.
    pub fn close_control(&self) {
        if !with_state(|s| s.control_device.as_ref().is_some_and(|c| c.handles > 0)) {
            violation("close of a control-device handle that is not open");
        }
        for major in [0x12u8, 0x02] {
            let st = self.irp(major, 0, &[], 0, true).0;
            if st != STATUS_SUCCESS {
                violation(&format!(
                    "IRP_MJ_{} of the control device failed with {st:#x}: it cannot be failed",
                    if major == 0x12 { "CLEANUP" } else { "CLOSE" }
                ));
            }
        }
        with_state(|s| {
            if let Some(c) = s.control_device.as_mut() {
                c.handles -= 1;
            }
            ControlDevice::reap(&mut s.control_device);
        });
    }

    /// DeviceIoControl by an administrator.
    pub fn ioctl(&self, code: u32, input: &[u8], out_len: usize) -> (NTSTATUS, Vec<u8>) {
        self.irp(0x0E, code, input, out_len, true)
    }

    /// DeviceIoControl by a caller whose token is not elevated (a handle
    /// inherited from an administrator, for instance).
    pub fn ioctl_as_user(&self, code: u32, input: &[u8], out_len: usize) -> (NTSTATUS, Vec<u8>) {
        self.irp(0x0E, code, input, out_len, false)
    }

    /// The bytes of a file on a simulated volume (DOS path), if it exists.
    pub fn file_contents(&self, dos_path: &str) -> Option<Vec<u8>> {
        let (dev, ..) = self.resolve(dos_path);
        with_state(|s| s.files.get(&dev.to_uppercase()).cloned())
    }

    /// The bytes of a file by its device key (as [`Sim::files_under`] lists it).
    pub fn file_contents_device(&self, key: &str) -> Option<Vec<u8>> {
        with_state(|s| s.files.get(key).cloned())
    }

    /// Every file whose DOS path starts with `prefix`.
    pub fn files_under(&self, prefix: &str) -> Vec<String> {
        let (dev, ..) = self.resolve(prefix);
        let up = dev.to_uppercase();
        let mut v: Vec<String> = with_state(|s| {
            s.files
                .keys()
                .filter(|k| k.starts_with(&up))
                .cloned()
                .collect()
        });
        v.sort();
        v
    }

    /// Runs `f` during every write of the log (on the flush thread, outside
    /// any lock): what other CPUs produce while the disk is busy. A steady
    /// producer that no drain can outrun. `None` removes it.
    pub fn on_log_write(&self, f: Option<LogWriteHook>) {
        *LOG_WRITE_HOOK.lock().unwrap_or_else(|p| p.into_inner()) = f.map(Arc::new);
    }

    /// Makes each write of the log take `d` (a disk's latency).
    pub fn set_write_latency(&self, d: std::time::Duration) {
        with_state(|s| s.write_latency = d);
    }

    /// Makes the log's writes fail (disk full) or succeed again.
    pub fn fail_log_writes(&self, fail: bool) {
        with_state(|s| s.fail_writes = fail);
    }

    /// Test hook: stop (or resume) the flush thread's draining.
    pub fn pause_flush(&self, paused: bool) {
        if let Some(g) = crate::globals::get() {
            g.flush
                .paused
                .store(paused, std::sync::atomic::Ordering::Release);
            if !paused {
                // SAFETY: the event lives in Globals.
                unsafe { crate::kernel::event_set(g.flush.wake.get()) };
            }
        }
    }

    /// Runs `f` on this thread as simulated CPU `cpu`.
    pub fn on_cpu<R>(cpu: usize, f: impl FnOnce() -> R) -> R {
        CURRENT.with(|c| c.cpu.set(cpu));
        f()
    }
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if self.loaded.load(std::sync::atomic::Ordering::Acquire) && !std::thread::panicking() {
            let _ = self.unload();
        }
        if std::thread::panicking() {
            // Stop a running flush thread so it does not outlive the test.
            if let Some(g) = crate::globals::get() {
                g.flush
                    .stop
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }
}

impl Sim {
    fn key_of(&self, dos_path: &str) -> String {
        self.resolve(dos_path).0.to_uppercase()
    }

    /// A user plants a directory at `dos_path` (squatting a name).
    pub fn plant_directory(&self, dos_path: &str) {
        let k = self.key_of(dos_path);
        with_state(|s| s.dirs.insert(k, DirNode::created_by(A_USER)));
    }

    /// A user plants an (empty) file at `dos_path`.
    pub fn plant_file(&self, dos_path: &str) {
        let k = self.key_of(dos_path);
        with_state(|s| s.files.insert(k, Vec::new()));
    }

    /// A user plants a junction at `dos_path` pointing to `target`.
    pub fn plant_junction(&self, dos_path: &str, target: &str) {
        let k = self.key_of(dos_path);
        let t = self.key_of(target);
        with_state(|s| {
            s.dirs.insert(
                k,
                DirNode {
                    reparse_to: Some(t.clone()),
                    owner: A_USER.to_string(),
                },
            );
            s.dirs
                .entry(t)
                .or_insert_with(|| DirNode::created_by(acl::ADMINISTRATORS));
        });
    }

    /// Removes whatever is at `dos_path` (file or directory).
    pub fn remove_path(&self, dos_path: &str) {
        let k = self.key_of(dos_path);
        with_state(|s| {
            s.files.remove(&k);
            s.dirs.remove(&k);
            s.security.remove(&k);
        });
    }

    /// Whether `dos_path` is a directory.
    pub fn is_directory(&self, dos_path: &str) -> bool {
        let k = self.key_of(dos_path);
        with_state(|s| s.dirs.contains_key(&k))
    }

    /// The security descriptor the driver created `dos_path` with.
    pub fn security_of(&self, dos_path: &str) -> Option<acl::SecurityInfo> {
        let k = self.key_of(dos_path);
        with_state(|s| s.security.get(&k).cloned())
    }

    /// The security descriptor of the control device.
    pub fn control_security(&self) -> Option<acl::SecurityInfo> {
        with_state(|s| s.control_device.as_ref().map(|c| c.acl.clone()))
    }

    fn volume_index(&self, drive: &str) -> usize {
        with_state(|s| {
            s.volumes.iter().position(|v| {
                v.dos
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(drive))
            })
        })
        .unwrap_or_else(|| std::panic::panic_any(format!("no volume {drive}")))
    }

    /// The volume `drive` (`C:`) is dismounted or removed: a mandatory
    /// instance teardown (no InstanceQueryTeardown). Err if the filter does
    /// not let go of the instance within 10 s.
    pub fn dismount_volume(&self, drive: &str) -> Result<(), String> {
        let i = self.volume_index(drive);
        // FLTFL_INSTANCE_TEARDOWN_VOLUME_DISMOUNT
        teardown_instance(i, FLTFL_INSTANCE_TEARDOWN_VOLUME_DISMOUNT)
    }

    /// `fltmc detach fltpolicy <drive>` (FltDetachVolume): refused unless
    /// the filter registered InstanceQueryTeardown and it agrees.
    pub fn detach_volume(&self, drive: &str) -> Result<(), String> {
        let i = self.volume_index(drive);
        let reg = registration();
        let Some(q) = crate::abi::from_query_teardown(reg.InstanceQueryTeardownCallback) else {
            return Err("FltDetachVolume refused: no InstanceQueryTeardown callback".into());
        };
        let v = with_state(|s| s.volumes[i].clone());
        let Some(inst) = v.instance else {
            return Err("not attached".into());
        };
        let objs = FLT_RELATED_OBJECTS {
            Size: std::mem::size_of::<FLT_RELATED_OBJECTS>() as u16,
            TransactionContext: 0,
            Filter: FILTER,
            Volume: v.handle,
            Instance: inst,
            FileObject: std::ptr::null(),
            Transaction: std::ptr::null(),
        };
        // SAFETY: the driver's callback at PASSIVE_LEVEL.
        let st = with_irql(PASSIVE_LEVEL, false, || unsafe {
            q(&objs, FLTFL_INSTANCE_TEARDOWN_MANUAL)
        });
        if !nt_success(st) {
            return Err(format!("InstanceQueryTeardown refused: {st:#x}"));
        }
        teardown_instance(i, FLTFL_INSTANCE_TEARDOWN_MANUAL)
    }

    /// The volume `drive` is mounted again: InstanceSetup gives the filter a
    /// new instance on it.
    pub fn mount_volume(&self, drive: &str) {
        let i = self.volume_index(drive);
        attach(i);
    }

    /// The FILE_OBJECT behind a user handle (for tests that call kernel
    /// routines directly).
    pub fn file_object(&self, h: Handle) -> *const FILE_OBJECT {
        self.file(h).0
    }

    /// The filter's instance on the volume of `dos_path`.
    pub fn instance_of(&self, dos_path: &str) -> PFLT_INSTANCE {
        self.resolve(dos_path)
            .3
            .expect("the filter is attached to that volume")
    }
}
