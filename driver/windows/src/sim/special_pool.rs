//! Special pool for the simulation, as Driver Verifier's "special pool"
//! option does it: every non-paged block gets its own pages, placed so that
//! it ends against an inaccessible guard page (an overrun faults at once),
//! and a freed block's pages are made inaccessible and kept out of reuse for
//! a while (a use after free faults at once instead of reading stale or
//! reused bytes).
//!
//! A fault inside a freed block or a guard page is reported by a SIGSEGV
//! handler as `DRIVER VERIFIER: ...` on stderr, then the process aborts (a
//! fault cannot be turned into a panic: the faulting code may hold locks).
//! Any other fault goes to the handler that was installed before (the Rust
//! runtime's stack-overflow reporting).

#[allow(unused_imports)]
use std::prelude::rust_2021::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

const PAGE: usize = 4096;

/// Freed ranges remembered for the fault handler's report (a ring; the
/// simulation quarantines fewer blocks than this).
const REMEMBERED: usize = 256;
static FREED: [AtomicUsize; 2 * REMEMBERED] = [const { AtomicUsize::new(0) }; 2 * REMEMBERED];
static FREED_NEXT: AtomicUsize = AtomicUsize::new(0);

/// Geometry of a block of `size` bytes: bytes used (16-aligned), data pages.
fn geometry(size: usize) -> (usize, usize) {
    let bytes = size.max(1).div_ceil(16) * 16;
    (bytes, bytes.div_ceil(PAGE))
}

/// The mapping behind block `p` of `size` bytes: (base, data bytes, total).
fn mapping(p: *mut u8, size: usize) -> (*mut u8, usize, usize) {
    let (bytes, pages) = geometry(size);
    let guard = p as usize + bytes;
    let base = guard - pages * PAGE;
    (base as *mut u8, pages * PAGE, (pages + 1) * PAGE)
}

/// A zeroed block of `size` bytes, 16-byte aligned, ending at a guard page.
pub(crate) fn alloc(size: usize) -> *mut u8 {
    install_handler();
    let (bytes, pages) = geometry(size);
    let total = (pages + 1) * PAGE;
    // SAFETY: an anonymous private mapping; no existing memory is touched.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    let base = base.cast::<u8>();
    let guard = base.wrapping_add(pages * PAGE);
    // SAFETY: the last page of the mapping just created.
    unsafe { libc::mprotect(guard.cast(), PAGE, libc::PROT_NONE) };
    guard.wrapping_sub(bytes)
}

/// Makes a freed block inaccessible (quarantine).
pub(crate) fn retire(p: *mut u8, size: usize) {
    let (base, data, _) = mapping(p, size);
    // SAFETY: the data pages of a mapping made by `alloc`, not yet unmapped.
    unsafe { libc::mprotect(base.cast(), data, libc::PROT_NONE) };
    let i = FREED_NEXT.fetch_add(1, Ordering::Relaxed) % REMEMBERED;
    FREED[2 * i].store(base as usize, Ordering::Relaxed);
    FREED[2 * i + 1].store(base as usize + data, Ordering::Release);
}

/// Returns a quarantined block's pages to the system.
pub(crate) fn release(p: *mut u8, size: usize) {
    let (base, data, total) = mapping(p, size);
    for i in 0..REMEMBERED {
        if FREED[2 * i].load(Ordering::Relaxed) == base as usize {
            FREED[2 * i + 1].store(0, Ordering::Relaxed);
            FREED[2 * i].store(0, Ordering::Relaxed);
        }
    }
    let _ = data;
    // SAFETY: a mapping made by `alloc`, unreachable since it was retired.
    unsafe { libc::munmap(base.cast(), total) };
}

static INSTALL: Once = Once::new();
/// The SIGSEGV disposition before ours (set once, before any fault).
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: plain-data struct; zero is a valid starting value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa.sa_mask` is a valid sigset to clear.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: plain-data struct; zero is a valid starting value.
        let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: reads the current disposition into `prev`.
        unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut prev) };
        let _ = PREVIOUS.set(prev);
        // SAFETY: installs a handler that only reads atomics and calls
        // async-signal-safe functions.
        unsafe { libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()) };
        // SAFETY: as above.
        unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) };
    });
}

fn write_stderr(parts: &[&[u8]]) {
    for p in parts {
        // SAFETY: write(2) is async-signal-safe; the slices are valid.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
}

fn hex(v: usize, buf: &mut [u8; 18]) -> &[u8] {
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..16 {
        let d = (v >> ((15 - i) * 4)) & 0xF;
        buf[2 + i] = b"0123456789abcdef"[d];
    }
    &buf[..]
}

extern "C" fn on_fault(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let info_ref = unsafe { &*info };
    // SAFETY: SIGSEGV/SIGBUS carry a fault address.
    let addr = unsafe { info_ref.si_addr() } as usize;
    let mut freed = None;
    for i in 0..REMEMBERED {
        let lo = FREED[2 * i].load(Ordering::Relaxed);
        let hi = FREED[2 * i + 1].load(Ordering::Acquire);
        if lo != 0 && addr >= lo && addr < hi {
            freed = Some(lo);
        }
    }
    let mut a = [0u8; 18];
    let mut b = [0u8; 18];
    match freed {
        Some(base) => {
            write_stderr(&[
                b"\nDRIVER VERIFIER: special pool: access to freed pool memory at ",
                hex(addr, &mut a),
                b" (block pages from ",
                hex(base, &mut b),
                b"): use after free\n",
            ]);
            // SAFETY: async-signal-safe; ends the process like a bugcheck.
            unsafe { libc::abort() };
        }
        None => {
            // Not a freed block: could be a guard page (overrun) or anything
            // else; hand it to the previous handler (the runtime's
            // stack-overflow report), or die with the default action.
            write_stderr(&[
                b"\nDRIVER VERIFIER: special pool: fault at ",
                hex(addr, &mut a),
                b" (guard page overrun or wild pointer)\n",
            ]);
            if let Some(prev) = PREVIOUS.get() {
                if prev.sa_sigaction != libc::SIG_DFL
                    && prev.sa_sigaction != libc::SIG_IGN
                    && prev.sa_flags & libc::SA_SIGINFO != 0
                {
                    // SAFETY: the previous handler was installed with this
                    // signature (SA_SIGINFO).
                    let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
                        unsafe { std::mem::transmute(prev.sa_sigaction) };
                    f(sig, info, ctx);
                    return;
                }
            }
            // SAFETY: async-signal-safe.
            unsafe { libc::abort() };
        }
    }
}
