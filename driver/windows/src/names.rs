//! The file name cache: the normalized name resolved once at post-create
//! and kept, with the volume's DOS prefix, in a non-paged stream-handle
//! context.
//!
//! `FltGetFileNameInformation` may only be called at IRQL <= APC_LEVEL, and
//! paging I/O arrives at DISPATCH_LEVEL (kernel rule 6). So names are
//! resolved exactly once per open, in post-create (PASSIVE_LEVEL),
//! converted to UTF-8 (the evaluator's encoding) with the DOS prefix
//! (`C:\Data\a.txt`), and cached per handle. Read, write, set-information
//! and cleanup, paging or not, only read the cached copy
//! (`FltGetStreamHandleContext`, IRQL <= DISPATCH_LEVEL).
//!
//! Must never: query a name outside the create path.

use windows_sys::Wdk::Foundation::FILE_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FLT_RELATED_OBJECTS, FLT_STREAMHANDLE_CONTEXT,
    PFLT_CONTEXT, PFLT_INSTANCE,
};
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

use crate::instance::InstanceRef;
use crate::kernel::{self, status::*};
use crate::utf;

/// Longest cached path in UTF-8 bytes. NT names reach 32,767 UTF-16 units;
/// 8 KiB covers any path a policy can meaningfully name, and a longer one is
/// cut at a character boundary (its prefix — what `under` rules test — is
/// kept) and flagged.
pub const MAX_NAME_BYTES: usize = 8192;

/// Header of the variable-sized stream-handle context; `len` UTF-8 bytes
/// follow it in the same allocation.
#[repr(C)]
#[derive(Debug)]
pub struct NameContext {
    len: u32,
    truncated: u32,
}

const HEADER: usize = core::mem::size_of::<NameContext>();

/// The UTF-16 units of a UNICODE_STRING.
///
/// # Safety
/// `s` describes `Length` valid bytes (or is empty).
pub unsafe fn units(s: &UNICODE_STRING) -> &[u16] {
    if s.Buffer.is_null() || s.Length == 0 {
        return &[];
    }
    // SAFETY: per the caller, Buffer holds Length bytes of UTF-16.
    unsafe { core::slice::from_raw_parts(s.Buffer, usize::from(s.Length) / 2) }
}

/// The path a name information block denotes, in the policy's syntax: the
/// volume part replaced by `dos` when the volume has a DOS name.
///
/// # Safety
/// `info` is a valid, parsed name information block.
pub unsafe fn dos_units(info: &FLT_FILE_NAME_INFORMATION) -> (&[u16], &[u16]) {
    // SAFETY: the block is valid per the caller.
    let name = unsafe { units(&info.Name) };
    // SAFETY: as above.
    let volume = unsafe { units(&info.Volume) };
    if name.len() >= volume.len() && utf::eq_ignore_ascii_case_utf16(&name[..volume.len()], volume)
    {
        (volume, &name[volume.len()..])
    } else {
        (&[], name)
    }
}

/// Writes `dos` + the volume-relative part of `info` as UTF-8 into `out`.
/// Returns (length, truncated).
///
/// # Safety
/// `info` is a valid, parsed name information block.
pub unsafe fn write_path(
    dos: &str,
    info: &FLT_FILE_NAME_INFORMATION,
    out: &mut [u8],
) -> (usize, bool) {
    // SAFETY: per the caller.
    let (volume, rest) = unsafe { dos_units(info) };
    let mut at = 0;
    if !dos.is_empty() && !volume.is_empty() {
        if dos.len() > out.len() {
            return (0, true);
        }
        out[..dos.len()].copy_from_slice(dos.as_bytes());
        at = dos.len();
        let (n, cut) = utf::utf16_to_utf8(rest, &mut out[at..]);
        (at + n, cut)
    } else {
        // No DOS name: keep the device form of the whole name.
        let (n, cut) = utf::utf16_to_utf8(volume, &mut out[at..]);
        at += n;
        if cut {
            return (at, true);
        }
        let (n, cut) = utf::utf16_to_utf8(rest, &mut out[at..]);
        (at + n, cut)
    }
}

/// Post-create: resolves the normalized name and caches it in a new
/// stream-handle context. PASSIVE_LEVEL only.
///
/// # Safety
/// Called from post-create with FltMgr's callback data and related objects.
pub unsafe fn cache_name(
    data: *mut FLT_CALLBACK_DATA,
    objs: &FLT_RELATED_OBJECTS,
) -> Result<(), NTSTATUS> {
    use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
        FLT_FILE_NAME_NORMALIZED, FLT_FILE_NAME_QUERY_DEFAULT,
    };
    // SAFETY: post-create runs at PASSIVE_LEVEL, as the name query requires;
    // `data` is the current operation's callback data.
    let info = unsafe {
        kernel::get_file_name(data, FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT)
    }?;
    let result = {
        // SAFETY: the instance is the one this callback runs for.
        let inst = unsafe { InstanceRef::get(objs.Instance) };
        let dos = inst.as_ref().map_or("", |i| i.ctx().dos());
        // SAFETY: `info` is a valid parsed name block until released below.
        let info_ref = unsafe { &*info };
        // SAFETY: as above.
        let (volume, rest) = unsafe { dos_units(info_ref) };
        let full = if dos.is_empty() || volume.is_empty() {
            utf::utf8_len(volume) + utf::utf8_len(rest)
        } else {
            dos.len() + utf::utf8_len(rest)
        };
        let want = full.min(MAX_NAME_BYTES);
        // SAFETY: the filter is registered; a non-paged context may be
        // allocated at PASSIVE_LEVEL.
        match unsafe {
            kernel::allocate_context(objs.Filter, FLT_STREAMHANDLE_CONTEXT as u16, HEADER + want)
        } {
            Ok(ctx) => {
                // SAFETY: `ctx` is a fresh allocation of HEADER + want bytes;
                // the byte region after the header is ours.
                let out = unsafe {
                    core::slice::from_raw_parts_mut(ctx.cast::<u8>().wrapping_add(HEADER), want)
                };
                // SAFETY: `info_ref` is valid (see above).
                let (n, cut) = unsafe { write_path(dos, info_ref, out) };
                // SAFETY: the header region of the fresh context is ours.
                unsafe {
                    ctx.cast::<NameContext>().write(NameContext {
                        len: n as u32,
                        truncated: u32::from(cut || full > MAX_NAME_BYTES),
                    })
                };
                // SAFETY: instance and file object belong to this completed
                // create; PASSIVE_LEVEL (<= APC_LEVEL required).
                let st = unsafe {
                    kernel::set_stream_handle_context(objs.Instance, objs.FileObject, ctx)
                };
                // SAFETY: drop the allocation reference; the handle holds
                // its own when the set succeeded.
                unsafe { kernel::release_context(ctx) };
                if nt_success(st) || st == STATUS_FLT_CONTEXT_ALREADY_DEFINED {
                    Ok(())
                } else {
                    Err(st)
                }
            }
            Err(st) => Err(st),
        }
    };
    // SAFETY: we own the reference from get_file_name; PASSIVE_LEVEL.
    unsafe { kernel::release_file_name(info) };
    result
}

/// A held reference to a handle's cached name; released on drop.
#[derive(Debug)]
pub struct NameRef(PFLT_CONTEXT);

impl NameRef {
    /// The cached name of `file` on `instance`, if post-create cached one.
    /// IRQL <= DISPATCH_LEVEL; never allocates.
    ///
    /// # Safety
    /// `instance` and `file` are the current operation's.
    pub unsafe fn get(instance: PFLT_INSTANCE, file: *const FILE_OBJECT) -> Option<NameRef> {
        // SAFETY: per the caller; valid at IRQL <= DISPATCH_LEVEL.
        unsafe { kernel::get_stream_handle_context(instance, file) }
            .ok()
            .map(NameRef)
    }

    /// The cached path (`C:\Data\a.txt`).
    pub fn path(&self) -> &str {
        // SAFETY: the context was written by cache_name (header + len UTF-8
        // bytes) before it was set; our reference keeps it alive.
        let hdr = unsafe { &*self.0.cast::<NameContext>() };
        // SAFETY: as above: `len` bytes follow the header.
        let bytes = unsafe {
            core::slice::from_raw_parts(self.0.cast::<u8>().wrapping_add(HEADER), hdr.len as usize)
        };
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// Whether the cached path was cut.
    pub fn truncated(&self) -> bool {
        // SAFETY: see `path`.
        unsafe { (*self.0.cast::<NameContext>()).truncated != 0 }
    }
}

impl Drop for NameRef {
    fn drop(&mut self) {
        // SAFETY: we hold one reference from get_stream_handle_context;
        // FltReleaseContext is valid at IRQL <= DISPATCH_LEVEL.
        unsafe { kernel::release_context(self.0) };
    }
}
