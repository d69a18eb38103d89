//! DriverEntry, the single cleanup path, and the filter unload callback.
//!
//! DriverEntry performs these steps, in this order, recording each success
//! in [`Globals::steps`]:
//!
//! 1. allocate [`Globals`] (queue storage, pid table) and publish it;
//! 2. register the process-creation notify routine (pid → image table),
//!    then fill the table with the processes already running;
//! 3. register the filter (FltRegisterFilter);
//! 4. create the control device and its symbolic link;
//! 5. start the flush thread;
//! 6. start filtering (FltStartFiltering).
//!
//! `teardown` is the only cleanup path — used by a failing DriverEntry
//! and by unload — and undoes exactly the recorded steps in reverse:
//! stop producing (6), stop the flush thread after a final drain (5),
//! delete the control device (4), unregister the filter (3), remove the
//! notify routine (2), free the state (1).
//!
//! All of it runs at PASSIVE_LEVEL.

use core::sync::atomic::{AtomicIsize, Ordering};

use windows_sys::Wdk::Foundation::{DRIVER_OBJECT, KEVENT};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::FLTFL_FILTER_UNLOAD_MANDATORY;
use windows_sys::Wdk::System::SystemServices::PS_CREATE_NOTIFY_INFO;
use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS, UNICODE_STRING};

use crate::globals::{self, step, Counters, FlushShared, Globals, Rundown};
use crate::kernel::{self, status::*, ThreadObject};
use crate::policy::PolicySlot;
use crate::process::ProcessTable;

/// `STATUS_INVALID_PARAMETER`.
const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
/// `STATUS_FLT_DO_NOT_DETACH`: refuse a non-mandatory unload.
pub const STATUS_FLT_DO_NOT_DETACH: NTSTATUS = 0xC01C_0010_u32 as i32;

crate::kernel_callback! {
/// The driver's entry point. PASSIVE_LEVEL.
///
/// # Safety
/// Called once by the I/O manager with a valid driver object.
#[no_mangle]
pub unsafe fn DriverEntry(driver: *mut DRIVER_OBJECT, _registry: *const UNICODE_STRING) -> NTSTATUS {
    let st = kernel::init();
    if !nt_success(st) {
        return st;
    }
    crate::control::GATE.reset();
    let g = match create_globals() {
        Some(g) => g,
        None => return STATUS_INSUFFICIENT_RESOURCES,
    };
    globals::publish(g);
    // SAFETY: `g` was just created and published; only this thread (and,
    // after the steps below, callbacks reading atomics) uses it.
    let gr: &Globals = unsafe { &*g };
    // SAFETY: driver object from the I/O manager; PASSIVE_LEVEL.
    let st = unsafe { start(gr, driver) };
    if !nt_success(st) {
        // SAFETY: the one cleanup path; undoes what `start` recorded.
        unsafe { teardown() };
    }
    st
}
}

/// Steps 2–6. Stops at the first failure.
///
/// # Safety
/// PASSIVE_LEVEL, DriverEntry.
// Not inlined into DriverEntry (nor is create_globals): separate frames keep
// each under the 1 KiB stack budget (docs/windows-driver.md).
#[inline(never)]
unsafe fn start(g: &Globals, driver: *mut DRIVER_OBJECT) -> NTSTATUS {
    // SAFETY: PASSIVE_LEVEL; the routine stays valid until removed in teardown.
    let st = unsafe { kernel::set_process_notify(process_notify, false) };
    if !nt_success(st) {
        return st;
    }
    g.steps.fetch_or(step::PROCESS_NOTIFY, Ordering::AcqRel);
    // The processes already running, with their images (registered first,
    // so none falls between the snapshot and the notify routine). Best
    // effort: on failure they stay unknown until they exit and start again.
    // SAFETY: PASSIVE_LEVEL (DriverEntry), outside any callback.
    let _ = unsafe { crate::process::fill_from_running(g.processes) };

    // SAFETY: driver object from the I/O manager; the registration is static.
    match unsafe { kernel::register_filter(driver, &crate::registration::REGISTRATION.0) } {
        Ok(f) => g.filter_handle.store(f, Ordering::Release),
        Err(st) => return st,
    }
    g.steps.fetch_or(step::FILTER_REGISTERED, Ordering::AcqRel);

    // The device's protected DACL, as a 4-byte aligned self-relative
    // descriptor (the kernel reads it as 32-bit fields).
    let Ok(dacl) = crate::sddl::parse(crate::control::CONTROL_SDDL) else {
        return STATUS_INVALID_PARAMETER;
    };
    let mut sd = crate::sddl::SdBuf::new();
    dacl.to_self_relative(&mut sd);
    // SAFETY: PASSIVE_LEVEL; the dispatch routines live as long as the image.
    match unsafe { kernel::create_control_device(driver, &sd) } {
        Ok(dev) => {
            // SAFETY: Globals is only written here during DriverEntry, before
            // any path that reads `control_device` can run.
            unsafe { (*(g as *const Globals).cast_mut()).control_device = dev };
        }
        Err(st) => return st,
    }
    // SAFETY: the driver object is ours during DriverEntry.
    unsafe {
        let mf = &mut (*driver).MajorFunction;
        mf[0x00] = crate::abi::dispatch(crate::control::dispatch_open_close); // IRP_MJ_CREATE
        mf[0x02] = crate::abi::dispatch(crate::control::dispatch_open_close); // IRP_MJ_CLOSE
        mf[0x12] = crate::abi::dispatch(crate::control::dispatch_open_close); // IRP_MJ_CLEANUP
        mf[0x0E] = crate::abi::dispatch(crate::control::dispatch_device_control);
        // IRP_MJ_DEVICE_CONTROL
    }
    g.steps.fetch_or(step::CONTROL_DEVICE, Ordering::AcqRel);

    // SAFETY: Globals outlives the thread: teardown joins it before
    // freeing, and if the thread cannot be tracked `abandon_flush_thread`
    // stops it and the kernel layer waits for it before returning.
    match unsafe {
        kernel::start_system_thread(
            crate::flush::flush_thread,
            crate::flush::abandon_flush_thread,
            (g as *const Globals).cast_mut().cast(),
        )
    } {
        Ok(t) => {
            // SAFETY: as for control_device above.
            unsafe { (*(g as *const Globals).cast_mut()).flush_thread = t };
        }
        Err(st) => return st,
    }
    g.steps.fetch_or(step::FLUSH_THREAD, Ordering::AcqRel);

    // SAFETY: the filter is registered.
    let st = unsafe { kernel::start_filtering(g.filter()) };
    if !nt_success(st) {
        return st;
    }
    g.steps.fetch_or(step::FILTERING, Ordering::AcqRel);
    STATUS_SUCCESS
}

crate::kernel_callback! {
/// FLT_REGISTRATION::FilterUnloadCallback. PASSIVE_LEVEL.
///
/// A non-mandatory unload is refused while a control handle is open; a
/// mandatory one proceeds, and requests on handles still open then get
/// STATUS_DEVICE_NOT_READY (closes succeed). The control gate is closed
/// and drained *before* the open count is read, so an open racing the
/// check either is counted or is refused.
///
/// # Safety
/// Called by FltMgr.
pub unsafe fn filter_unload(flags: u32) -> NTSTATUS {
    let gate = &crate::control::GATE;
    gate.requests.close_and_wait();
    if flags & FLTFL_FILTER_UNLOAD_MANDATORY == 0 && gate.opens.load(Ordering::Acquire) != 0 {
        gate.requests.reopen();
        return STATUS_FLT_DO_NOT_DETACH;
    }
    // SAFETY: FltMgr calls unload once, at PASSIVE_LEVEL.
    unsafe { teardown() };
    STATUS_SUCCESS
}
}

/// The one cleanup path. PASSIVE_LEVEL.
///
/// # Safety
/// Called once, by DriverEntry on failure or by unload.
unsafe fn teardown() {
    let Some(g) = globals::get() else {
        return;
    };
    let steps = g.steps.load(Ordering::Acquire);
    // Control requests first: refuse new ones and wait for running ones, so
    // none can use anything freed below (the gate is an image static).
    crate::control::GATE.requests.close_and_wait();
    // (6) Stop producing: callbacks see `stopping` and return at once; wait
    // for producers already inside `audit::record`.
    g.stopping.store(true, Ordering::Release);
    g.producers.close_and_wait();
    // (5) Final drain, End record, close the log, join.
    if steps & step::FLUSH_THREAD != 0 {
        g.flush.stop.store(true, Ordering::Release);
        // SAFETY: the event lives in Globals; PASSIVE_LEVEL.
        unsafe { kernel::event_set(g.flush.wake.get()) };
        // SAFETY: the thread object was referenced by start_system_thread.
        unsafe { kernel::join_system_thread(g.flush_thread) };
    }
    // (4) Control device (no request is running: the gate is closed). With
    // a handle still open the I/O manager keeps the device object,
    // delete-pending, until the handle closes; its requests stay outside
    // the gate.
    if steps & step::CONTROL_DEVICE != 0 {
        // SAFETY: created in `start`; no request is running.
        unsafe { kernel::delete_control_device(g.control_device) };
    }
    // (3) Unregister: FltMgr waits for in-flight callbacks and tears down
    // instances and their contexts.
    if steps & step::FILTER_REGISTERED != 0 {
        // SAFETY: registered in `start`.
        unsafe { kernel::unregister_filter(g.filter()) };
    }
    // (2) The notify routine (removal waits for running callbacks).
    if steps & step::PROCESS_NOTIFY != 0 {
        // SAFETY: registered in `start`.
        unsafe { kernel::set_process_notify(process_notify, true) };
    }
    // (1) Free the state: nothing can reach it any more.
    g.policy.clear();
    let pending = g
        .flush
        .pending_path
        .swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !pending.is_null() {
        // SAFETY: unclaimed by the (joined) flush thread; ours.
        unsafe { crate::flush::LogPath::destroy(pending) };
    }
    let raw = globals::retire();
    // SAFETY: every path that could reach the block has been shut down.
    unsafe { destroy_globals(raw) };
}

/// Writes one field of a fresh, uninitialised allocation, without reading
/// or dropping what was there.
macro_rules! init {
    ($raw:ident . $f:ident = const $v:block) => {{
        // SAFETY: a field projection of the fresh allocation (nothing read).
        let p = unsafe { &raw mut (*$raw).$f };
        // SAFETY: as below.
        unsafe { p.write(const $v) };
    }};
    ($raw:ident . $f:ident = $v:expr) => {{
        // SAFETY: a field projection of the fresh allocation (nothing read).
        let p = unsafe { &raw mut (*$raw).$f };
        // SAFETY: `$raw` is a fresh, suitably aligned allocation of a
        // Globals; each field is written once, before the block is used.
        unsafe { p.write($v) };
    }};
}

/// Step 1. PASSIVE_LEVEL.
fn create_globals() -> Option<*mut Globals> {
    let words = crate::audit::alloc_storage()?;
    let table = kernel::alloc_nonpaged(core::mem::size_of::<ProcessTable>());
    if table.is_null() {
        // SAFETY: unused storage from alloc_storage.
        unsafe { crate::audit::free_storage(words) };
        return None;
    }
    let flush_mem = crate::flush::FlushMem::create().unwrap_or(core::ptr::null_mut());
    let raw = crate::pool::alloc_for::<Globals>();
    if raw.is_null() || flush_mem.is_null() {
        // SAFETY: nothing else refers to these fresh allocations.
        unsafe { kernel::free_pool(table) };
        // SAFETY: as above.
        unsafe { crate::audit::free_storage(words) };
        // SAFETY: as above (null is ignored).
        unsafe { crate::flush::FlushMem::destroy(flush_mem) };
        if !raw.is_null() {
            // SAFETY: as above.
            unsafe { crate::pool::free_for(raw) };
        }
        return None;
    }
    // SAFETY: `table` is a zeroed allocation of a ProcessTable, whose
    // fields are all atomic integers (zero = empty); it lives until
    // destroy_globals.
    let processes: &'static ProcessTable = unsafe { &*table.cast::<ProcessTable>() };
    // Globals is built in place, field by field: it holds the audit queue
    // (several KiB of cache-padded counters), which must not pass through
    // this kernel stack frame (1 KiB budget, docs/windows-driver.md). The
    // queue is written as a constant, then given its storage.
    // `raw` is a fresh, suitably aligned, unused allocation of a Globals;
    // every field is written exactly once before anything reads the block
    // (`all_fields_written` keeps this list complete).
    #[cfg(not(loom))]
    init!(raw.queue = const { crate::audit::AuditQueue::unattached(&[]) });
    // loom's atomics are not `const`.
    #[cfg(loom)]
    init!(raw.queue = crate::audit::AuditQueue::unattached(&[]));
    // SAFETY: a field projection of the fresh allocation (nothing read).
    let queue = unsafe { &raw mut (*raw).queue };
    // SAFETY: the queue field was just initialised; nothing else refers to
    // the block yet.
    let queue = unsafe { &mut *queue };
    if queue.attach(words).is_err() {
        // SAFETY: nothing else refers to these fresh allocations (the
        // queue holds no resources).
        unsafe { kernel::free_pool(table) };
        // SAFETY: as above.
        unsafe { crate::audit::free_storage(words) };
        // SAFETY: as above.
        unsafe { crate::flush::FlushMem::destroy(flush_mem) };
        // SAFETY: as above.
        unsafe { crate::pool::free_for(raw) };
        return None;
    }
    init!(raw.filter_handle = AtomicIsize::new(0));
    init!(raw.control_device = core::ptr::null_mut());
    init!(raw.flush_thread = ThreadObject(core::ptr::null_mut()));
    init!(raw.steps = Default::default());
    init!(raw.stopping = Default::default());
    init!(raw.policy = PolicySlot::new());
    init!(raw.counters = Counters::default());
    init!(raw.queue_storage = words);
    init!(raw.processes = processes);
    let flush = FlushShared {
        // Zeroed storage (valid for the plain-data KEVENT); initialised by
        // event_init below.
        wake: core::cell::UnsafeCell::new(
            // SAFETY: KEVENT is plain data for which all-zero bytes are a
            // valid (uninitialised) value.
            unsafe { core::mem::zeroed::<KEVENT>() },
        ),
        stop: Default::default(),
        pending_path: Default::default(),
        paused: Default::default(),
        max_file_bytes: core::sync::atomic::AtomicU64::new(crate::flush::MAX_FILE_BYTES),
        log_instance: Default::default(),
        detach: Default::default(),
        abandoned: Default::default(),
        log_state: Default::default(),
        log_error: Default::default(),
    };
    init!(raw.flush = flush);
    init!(raw.flush_mem = flush_mem);
    init!(raw.loading = Default::default());
    init!(raw.producers = Rundown::default());
    // SAFETY: initialised just above.
    let wake = unsafe { (*raw).flush.wake.get() };
    // SAFETY: the event is in non-paged pool inside the block; PASSIVE_LEVEL.
    unsafe { kernel::event_init(wake) };
    Some(raw)
}

/// Names every field of [`Globals`]: adding one fails to compile here until
/// `create_globals`, which writes the fields one by one, writes it too.
#[allow(dead_code)]
fn all_fields_written(g: &Globals) {
    let Globals {
        filter_handle: _,
        control_device: _,
        flush_thread: _,
        steps: _,
        stopping: _,
        policy: _,
        counters: _,
        queue: _,
        queue_storage: _,
        processes: _,
        flush: _,
        flush_mem: _,
        loading: _,
        producers: _,
    } = g;
}

/// Frees what [`create_globals`] allocated.
///
/// # Safety
/// `raw` came from create_globals and nothing can reach it.
unsafe fn destroy_globals(raw: *mut Globals) {
    if raw.is_null() {
        return;
    }
    // SAFETY: per the caller.
    let g = unsafe { &*raw };
    let words = g.queue_storage;
    let table = (g.processes as *const ProcessTable).cast_mut().cast::<u8>();
    let flush_mem = g.flush_mem;
    // SAFETY: dropping in place; Globals owns no resources with Drop impls
    // beyond plain data (the queue only borrows its storage).
    unsafe { core::ptr::drop_in_place(raw) };
    // SAFETY: nothing refers to these allocations any more (the flush
    // thread, the only user of `flush_mem`, was joined).
    unsafe { kernel::free_pool(table) };
    // SAFETY: as above.
    unsafe { crate::flush::FlushMem::destroy(flush_mem) };
    // SAFETY: as above.
    unsafe { crate::audit::free_storage(words) };
    // SAFETY: as above.
    unsafe { crate::pool::free_for(raw) };
}

crate::kernel_callback! {
/// `PsSetCreateProcessNotifyRoutineEx` callback. PASSIVE_LEVEL.
///
/// # Safety
/// Called by the process manager.
pub unsafe fn process_notify(
    _process: windows_sys::Wdk::Foundation::PEPROCESS,
    pid: HANDLE,
    info: *mut PS_CREATE_NOTIFY_INFO,
) {
    let Some(g) = globals::get() else {
        return;
    };
    let pid = pid as usize as u64;
    if info.is_null() {
        g.processes.remove(pid);
        return;
    }
    // SAFETY: the process manager passes a valid info block for a create.
    let info = unsafe { &*info };
    let mut image = [0u8; crate::process::MAX_IMAGE];
    let n = if info.ImageFileName.is_null() {
        0
    } else {
        // SAFETY: ImageFileName is a valid UNICODE_STRING during the call.
        let name = unsafe { &*info.ImageFileName };
        // SAFETY: as above, it describes Length bytes of UTF-16.
        let units = unsafe { crate::names::units(name) };
        // `\??\C:\Windows\...` → `C:\Windows\...`
        let q: [u16; 4] = [b'\\' as u16, b'?' as u16, b'?' as u16, b'\\' as u16];
        let units = units.strip_prefix(&q[..]).unwrap_or(units);
        crate::utf::utf16_to_utf8(units, &mut image).0
    };
    let image = core::str::from_utf8(&image[..n]).unwrap_or("");
    g.processes.insert(pid, info.ParentProcessId as usize as u64, image);
}
}
