//! The per-handle cache: the normalized name and the requester's SID,
//! resolved once per open and kept, with the volume's DOS prefix, in a
//! non-paged stream-handle context.
//!
//! `FltGetFileNameInformation` and `SeQueryInformationToken` need
//! IRQL <= APC_LEVEL / PASSIVE_LEVEL, and paging I/O completes at
//! DISPATCH_LEVEL (kernel rule 6). So both are resolved exactly once per
//! open, in the create path (PASSIVE_LEVEL): pre-create builds the context
//! from the *normalized* name (8.3 short names, `:$DATA` and the like
//! resolved, so that the deny decision sees the name policies are written
//! against) and the SID, decides on it, and post-create sets it on the
//! handle; an open pre-create cannot name (by file ID) is named in
//! post-create instead. Paths are converted to UTF-8 (the evaluator's
//! encoding) with the DOS prefix (`C:\Data\a.txt`). Read, write,
//! set-information and cleanup pre-ops take a reference with
//! `FltGetStreamHandleContext` (IRQL <= APC_LEVEL) and hand it to their
//! post-op ([`crate::completion`]).
//!
//! Must never: query a name outside the create path and the rename/link
//! destination check; take a context reference above APC_LEVEL.

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
    /// The requester's SID string, captured at create (PASSIVE_LEVEL).
    user: UserSid,
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

/// Allocates a stream-handle context holding the DOS form of `info`'s
/// path and `user`, not yet set on any handle. PASSIVE/APC_LEVEL
/// (`FltAllocateContext` is documented for IRQL <= APC_LEVEL). The
/// returned context carries one reference (the allocation's): hand it to
/// [`set_context`] or give it up with [`release_unset`].
///
/// # Safety
/// `info` is a valid, parsed name information block; `objs` are the
/// current create's related objects.
#[inline(never)]
pub unsafe fn build_context(
    objs: &FLT_RELATED_OBJECTS,
    info: &FLT_FILE_NAME_INFORMATION,
    user: &UserSid,
) -> Result<PFLT_CONTEXT, NTSTATUS> {
    // SAFETY: the instance is the one this callback runs for; IRQL <= APC.
    let inst = unsafe { InstanceRef::get(objs.Instance) };
    let dos = inst.as_ref().map_or("", |i| i.ctx().dos());
    // SAFETY: the block is valid per the caller.
    let (volume, rest) = unsafe { dos_units(info) };
    let full = if dos.is_empty() || volume.is_empty() {
        utf::utf8_len(volume) + utf::utf8_len(rest)
    } else {
        dos.len() + utf::utf8_len(rest)
    };
    let want = full.min(MAX_NAME_BYTES);
    // SAFETY: the filter is registered; a non-paged context may be
    // allocated at IRQL <= APC_LEVEL.
    let ctx = unsafe {
        kernel::allocate_context(objs.Filter, FLT_STREAMHANDLE_CONTEXT as u16, HEADER + want)
    }?;
    // SAFETY: `ctx` is a fresh allocation of HEADER + want bytes; the byte
    // region after the header is ours.
    let out =
        unsafe { core::slice::from_raw_parts_mut(ctx.cast::<u8>().wrapping_add(HEADER), want) };
    // SAFETY: `info` is valid (see above).
    let (n, cut) = unsafe { write_path(dos, info, out) };
    // SAFETY: the header region of the fresh context is ours; pool
    // alignment suffices for NameContext.
    unsafe {
        ctx.cast::<NameContext>().write(NameContext {
            len: n as u32,
            truncated: u32::from(cut || full > MAX_NAME_BYTES),
            user: *user,
        })
    };
    Ok(ctx)
}

/// Sets a context from [`build_context`] on the completed create's handle
/// and drops the allocation reference (the handle keeps its own when the
/// set succeeded). PASSIVE_LEVEL (post-create; `FltSetStreamHandleContext`
/// needs IRQL <= APC_LEVEL).
///
/// # Safety
/// `ctx` came from [`build_context`] and its reference is given up here;
/// `objs` are the completed create's related objects.
pub unsafe fn set_context(objs: &FLT_RELATED_OBJECTS, ctx: PFLT_CONTEXT) -> Result<(), NTSTATUS> {
    // SAFETY: instance and file object belong to this completed create;
    // PASSIVE_LEVEL.
    let st = unsafe { kernel::set_stream_handle_context(objs.Instance, objs.FileObject, ctx) };
    // SAFETY: drop the allocation reference; IRQL <= DISPATCH_LEVEL.
    unsafe { kernel::release_context(ctx) };
    if nt_success(st) || st == STATUS_FLT_CONTEXT_ALREADY_DEFINED {
        Ok(())
    } else {
        Err(st)
    }
}

/// Gives up a context from [`build_context`] that was never set (a denied
/// or failed create): it is freed. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `ctx` came from [`build_context`] and is not used afterwards.
pub unsafe fn release_unset(ctx: PFLT_CONTEXT) {
    // SAFETY: the only reference is the allocation's, ours.
    unsafe { kernel::release_context(ctx) };
}

/// Post-create, when pre-create could not name the file (an open by file
/// ID): resolves the normalized name of the now open file, captures the
/// requester's SID and builds the context (not yet set). PASSIVE_LEVEL.
///
/// # Safety
/// Called from post-create with FltMgr's callback data and related objects.
pub unsafe fn context_for_opened(
    data: *mut FLT_CALLBACK_DATA,
    objs: &FLT_RELATED_OBJECTS,
) -> Result<PFLT_CONTEXT, NTSTATUS> {
    use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
        FLT_FILE_NAME_NORMALIZED, FLT_FILE_NAME_QUERY_DEFAULT,
    };
    // SAFETY: post-create runs at PASSIVE_LEVEL, as the name query requires;
    // `data` is the current operation's callback data.
    let info = unsafe {
        kernel::get_file_name(data, FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT)
    }?;
    // SAFETY: the create's security context is valid in post-create;
    // PASSIVE_LEVEL.
    let user = unsafe { requester_user(data) };
    // SAFETY: `info` is valid and parsed until released below.
    let info_ref = unsafe { &*info };
    // SAFETY: as above.
    let r = unsafe { build_context(objs, info_ref, &user) };
    // SAFETY: we own the reference from get_file_name; PASSIVE_LEVEL.
    unsafe { kernel::release_file_name(info) };
    r
}

/// Pre-create: the normalized name and the requester's SID in a new
/// (unset) context, or `None` when the file cannot be named here (an open
/// by file ID, a failed query, no memory). PASSIVE_LEVEL. Kept out of line
/// so pre-create's frame stays small.
///
/// # Safety
/// Called from pre-create with FltMgr's callback data and related objects.
#[inline(never)]
pub unsafe fn context_for_create(
    data: *mut FLT_CALLBACK_DATA,
    objs: &FLT_RELATED_OBJECTS,
) -> Option<PFLT_CONTEXT> {
    use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
        FLT_FILE_NAME_NORMALIZED, FLT_FILE_NAME_QUERY_DEFAULT,
    };
    // SAFETY: pre-create runs at PASSIVE_LEVEL (<= APC_LEVEL required);
    // FLT_FILE_NAME_NORMALIZED is allowed in pre-create.
    let info = unsafe {
        kernel::get_file_name(data, FLT_FILE_NAME_NORMALIZED | FLT_FILE_NAME_QUERY_DEFAULT)
    }
    .ok()?;
    // SAFETY: PASSIVE_LEVEL; this create's security context.
    let user = unsafe { requester_user(data) };
    // SAFETY: `info` is valid and parsed until released below.
    let info_ref = unsafe { &*info };
    // SAFETY: as above.
    let r = unsafe { build_context(objs, info_ref, &user) };
    // SAFETY: we own the reference from get_file_name; PASSIVE_LEVEL.
    unsafe { kernel::release_file_name(info) };
    r.ok()
}

/// A DOS-form UTF-8 path in its own non-paged block (never on the stack:
/// paths reach [`MAX_NAME_BYTES`]). Freed on drop. Allocated at
/// PASSIVE/APC_LEVEL only (the rename/link destination check).
#[derive(Debug)]
pub struct PathBuf {
    p: *mut u8,
    len: usize,
}

impl PathBuf {
    /// The path `info` names, or `None` when pool is exhausted.
    ///
    /// # Safety
    /// `info` is a valid, parsed name block; `objs` the current operation's.
    pub unsafe fn from_info(
        objs: &FLT_RELATED_OBJECTS,
        info: &FLT_FILE_NAME_INFORMATION,
    ) -> Option<PathBuf> {
        // SAFETY: the instance is this callback's; IRQL <= APC_LEVEL.
        let inst = unsafe { InstanceRef::get(objs.Instance) };
        let dos = inst.as_ref().map_or("", |i| i.ctx().dos());
        // SAFETY: valid block per the caller.
        let (volume, rest) = unsafe { dos_units(info) };
        let full = dos.len().max(utf::utf8_len(volume)) + utf::utf8_len(rest);
        let want = full.clamp(1, MAX_NAME_BYTES);
        let p = kernel::alloc_nonpaged(want);
        if p.is_null() {
            return None;
        }
        // SAFETY: a fresh block of `want` bytes, ours.
        let out = unsafe { core::slice::from_raw_parts_mut(p, want) };
        // SAFETY: valid block per the caller.
        let (len, _) = unsafe { write_path(dos, info, out) };
        Some(PathBuf { p, len })
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `len` bytes written by write_path (UTF-8) live in `p`.
        let b = unsafe { core::slice::from_raw_parts(self.p, self.len) };
        core::str::from_utf8(b).unwrap_or("")
    }
}

impl Drop for PathBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in from_info, freed once; IRQL <= DISPATCH.
        unsafe { kernel::free_pool(self.p) };
    }
}

/// Longest SID string: `S-1-` + a 48-bit authority in hex (`0x` + 12
/// digits) + 15 sub-authorities of up to 10 digits, each after a `-`.
pub const MAX_SID_CHARS: usize = 4 + 14 + 15 * 11;
/// `SECURITY_MAX_SID_SIZE`: revision, count, authority, 15 sub-authorities.
pub const MAX_SID_BYTES: usize = 8 + 15 * 4;

/// A SID in its string form (`S-1-5-21-…`), as `RtlConvertSidToUnicodeString`
/// writes it, in a fixed buffer.
#[derive(Clone, Copy)]
pub struct UserSid {
    // MAX_SID_CHARS <= 255 (asserted below): the length fits a u8.
    len: u8,
    buf: [u8; MAX_SID_CHARS],
}

const _: () = assert!(MAX_SID_CHARS <= 255);

impl core::fmt::Debug for UserSid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl UserSid {
    /// No SID (the requester's token could not be read).
    pub const EMPTY: UserSid = UserSid {
        len: 0,
        buf: [0; MAX_SID_CHARS],
    };

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    fn push(&mut self, s: &[u8]) {
        let at = usize::from(self.len);
        self.buf[at..at + s.len()].copy_from_slice(s);
        self.len += s.len() as u8;
    }

    fn push_dec(&mut self, mut v: u64) {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&d[i..]);
    }

    /// Formats a binary SID the way `RtlConvertSidToUnicodeString` does:
    /// `S-1-` then the identifier authority in decimal when it fits in 32
    /// bits, else as `0x` and 12 upper-case hex digits, then each
    /// sub-authority in decimal. `None` for a malformed SID (revision not
    /// 1, more than 15 sub-authorities, shorter than its count says).
    pub fn from_binary(sid: &[u8]) -> Option<UserSid> {
        let (&rev, rest) = sid.split_first()?;
        let (&count, rest) = rest.split_first()?;
        let count = usize::from(count);
        if rev != 1 || count > 15 || rest.len() < 6 + 4 * count {
            return None;
        }
        let mut auth = [0u8; 8];
        auth[2..].copy_from_slice(&rest[..6]);
        let auth = u64::from_be_bytes(auth);
        let mut s = UserSid::EMPTY;
        s.push(b"S-1-");
        if auth >> 32 == 0 {
            s.push_dec(auth);
        } else {
            s.push(b"0x");
            for k in (0..12).rev() {
                s.push(&[b"0123456789ABCDEF"[((auth >> (4 * k)) & 0xF) as usize]]);
            }
        }
        for i in 0..count {
            let at = 6 + 4 * i;
            let sub = u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
            s.push(b"-");
            s.push_dec(u64::from(sub));
        }
        Some(s)
    }
}

/// The SID string of the create's requester (the effective token of
/// `SecurityContext->AccessState->SubjectSecurityContext`), or empty when
/// the token cannot be read (counted by the caller's absence of a user).
/// PASSIVE_LEVEL (`SeQueryInformationToken`).
///
/// # Safety
/// `data` is a create's callback data, in pre- or post-create.
#[inline(never)]
pub unsafe fn requester_user(data: *const FLT_CALLBACK_DATA) -> UserSid {
    let mut sid = [0u8; MAX_SID_BYTES];
    // SAFETY: per the caller; PASSIVE_LEVEL.
    match unsafe { kernel::requester_sid(data, &mut sid) } {
        Ok(n) => UserSid::from_binary(&sid[..n]).unwrap_or(UserSid::EMPTY),
        Err(_) => UserSid::EMPTY,
    }
}

/// A held reference to a handle's cached name; released on drop.
#[derive(Debug)]
pub struct NameRef(PFLT_CONTEXT);

impl NameRef {
    /// The cached name of `file` on `instance`, if create cached one.
    /// IRQL <= APC_LEVEL (`FltGetStreamHandleContext`): pre-operation
    /// callbacks only; post-op gets the reference pre-op took
    /// ([`crate::completion`]). Never allocates.
    ///
    /// # Safety
    /// `instance` and `file` are the current operation's.
    pub unsafe fn get(instance: PFLT_INSTANCE, file: *const FILE_OBJECT) -> Option<NameRef> {
        // SAFETY: per the caller; IRQL <= APC_LEVEL (pre-op).
        unsafe { kernel::get_stream_handle_context(instance, file) }
            .ok()
            .map(NameRef)
    }

    /// The cached path (`C:\Data\a.txt`).
    pub fn path(&self) -> &str {
        // SAFETY: the context was written by build_context (header + len UTF-8
        // bytes) before it was set; our reference keeps it alive.
        let hdr = unsafe { &*self.0.cast::<NameContext>() };
        // SAFETY: as above: `len` bytes follow the header.
        let bytes = unsafe {
            core::slice::from_raw_parts(self.0.cast::<u8>().wrapping_add(HEADER), hdr.len as usize)
        };
        core::str::from_utf8(bytes).unwrap_or("")
    }

    /// The SID string of the account that opened the handle, or "".
    pub fn user(&self) -> &str {
        // SAFETY: see `path`.
        unsafe { (*self.0.cast::<NameContext>()).user.as_str() }
    }

    /// Gives up ownership of the reference without releasing it (to carry
    /// it from pre-op to post-op in a completion block).
    pub fn into_raw(self) -> PFLT_CONTEXT {
        let p = self.0;
        core::mem::forget(self);
        p
    }

    /// Takes back a reference given up with [`NameRef::into_raw`] (or a
    /// fresh context from [`build_context`]).
    ///
    /// # Safety
    /// `p` carries one reference that the new `NameRef` now owns.
    pub unsafe fn from_raw(p: PFLT_CONTEXT) -> NameRef {
        NameRef(p)
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

#[cfg(test)]
mod tests {
    use super::UserSid;

    /// Expected strings are what Wine's ntdll `RtlConvertSidToUnicodeString`
    /// prints for the same bytes (a mingw-w64 program run under Wine 8.0):
    /// ground truth we did not write.
    #[test]
    fn sid_strings_match_rtl_convert_sid_to_unicode_string() {
        let cases: [(&[u8], &str); 4] = [
            (&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0], "S-1-5-18"),
            (
                &[
                    1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0xdc, 0x6f, 0xdd, 0x3b, 0x83, 0x72, 0x2b,
                    0x46, 0x82, 0x26, 0xa7, 0x28, 0x00, 0x02, 0, 0,
                ],
                "S-1-5-21-1004367836-1177252483-682043010-512",
            ),
            (&[1, 0, 0, 0, 0, 0, 0, 0], "S-1-0"),
            (
                &[1, 2, 0, 0, 0, 0, 0, 9, 255, 255, 255, 255, 0, 0, 0, 0],
                "S-1-9-4294967295-0",
            ),
        ];
        for (bin, want) in cases {
            assert_eq!(UserSid::from_binary(bin).unwrap().as_str(), want);
        }
    }

    /// An authority of 2^32 or more is written in hex (MS-DTYP 2.4.2.1:
    /// `"0x" 12HEXDIG`); Wine prints only its low 32 bits, Windows and
    /// ReactOS the hex form.
    #[test]
    fn a_wide_authority_is_written_in_hex() {
        let s =
            UserSid::from_binary(&[1, 1, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 1, 0, 0, 0]).unwrap();
        assert_eq!(s.as_str(), "S-1-0xABCDEF012345-1");
    }

    #[test]
    fn the_longest_sid_fits_and_malformed_ones_are_refused() {
        let mut max = vec![1u8, 15, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        max.extend(std::iter::repeat_n(0xff, 60));
        let s = UserSid::from_binary(&max).unwrap();
        assert_eq!(s.as_str().len(), super::MAX_SID_CHARS);
        assert!(
            UserSid::from_binary(&[2, 0, 0, 0, 0, 0, 0, 5]).is_none(),
            "revision 2"
        );
        assert!(
            UserSid::from_binary(&[1, 16, 0, 0, 0, 0, 0, 5]).is_none(),
            "16 sub-authorities"
        );
        assert!(
            UserSid::from_binary(&[1, 2, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0]).is_none(),
            "short"
        );
        assert!(UserSid::from_binary(&[]).is_none());
    }
}
