//! The fltpolicy Windows minifilter.
//!
//! Built two ways from the same callback code:
//!
//! * `--features kernel --target x86_64-pc-windows-msvc --crate-type cdylib`
//!   (`cargo xtask driver`): the `.sys`. [`kernel`] is then the real FFI into
//!   `fltmgr.sys` and `ntoskrnl.exe`.
//! * the host build (`cargo test`): [`kernel`] is the [`sim`] Filter
//!   Manager, which asserts the IRQL and API rules of
//!   `kernel-rules.md` the way Driver Verifier would.
//!
//! Layout (one responsibility per module):
//!
//! | module | what | IRQL |
//! |---|---|---|
//! | [`entry`] | DriverEntry, the single cleanup path, filter unload | PASSIVE |
//! | [`registration`] | the FLT_REGISTRATION table and context types | — |
//! | [`instance`] | InstanceSetup: which volumes, the DOS prefix | PASSIVE |
//! | [`names`] | create-time name + SID resolution into the stream-handle context | PASSIVE (resolve), ≤ APC (get) |
//! | [`ops`] | pre/post operation callbacks | ≤ APC (pre), ≤ DISPATCH (post) |
//! | [`completion`] | the blocks pre-op hands post-op (context reference, carried verdict) | ≤ DISPATCH |
//! | [`policy`] | the active policy slot and its lock-free swap | ≤ DISPATCH (read), PASSIVE (swap) |
//! | [`process`] | pid → image table fed by the process notify routine | PASSIVE (write), ≤ DISPATCH (read) |
//! | [`audit`] | the record queue producers push into | ≤ DISPATCH |
//! | [`flush`] | the flush thread: queue → log file | PASSIVE |
//! | [`control`] | the control device and its IOCTLs | PASSIVE |
//! | [`globals`] | per-load state in non-paged pool | — |
//! | [`kernel`] | the thin kernel layer: real FFI (feature `kernel`) or the [`sim`] | per function |
//! | [`abi`] | callback ABIs (`system` in the kernel, `system-unwind` on the host) | — |
//! | [`wdk`] | parameter layouts windows-sys gets wrong for x64, from the WDK headers | — |
//! | [`sddl`], [`utf`], [`pool`] | SDDL subset → DACL bytes; UTF-16 → UTF-8; aligned pool blocks | ≤ DISPATCH |
//!
//! Nothing reachable from a pre/post callback allocates, waits, takes a lock,
//! or calls a routine limited to APC_LEVEL, except the create path, which
//! FltMgr calls at PASSIVE_LEVEL.
#![cfg_attr(not(test), no_std)]

#[cfg(all(
    feature = "kernel",
    not(all(target_os = "windows", target_env = "msvc"))
))]
compile_error!(
    "feature `kernel` builds the .sys: use `cargo xtask driver` (x86_64-pc-windows-msvc)"
);

#[cfg(all(not(feature = "kernel"), not(test)))]
extern crate std;

pub mod abi;
pub mod audit;
pub mod completion;
pub mod control;
pub mod entry;
pub mod flush;
pub mod globals;
pub mod instance;
pub mod kernel;
pub mod names;
pub mod ops;
pub mod policy;
pub mod pool;
pub mod process;
pub mod registration;
pub mod sddl;
pub mod utf;
pub mod wdk;

#[cfg(not(feature = "kernel"))]
pub mod sim;

pub use entry::DriverEntry;

/// A panic in the kernel cannot unwind (`panic = "abort"`): bugcheck with
/// this driver's code and the source line, so a crash dump names the spot.
#[cfg(all(feature = "kernel", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    kernel::bugcheck(info.location().map_or(0, |l| l.line()))
}

/// The MSVC toolchain expects this symbol in images that use floating
/// point; the driver has no CRT to provide it.
#[cfg(all(feature = "kernel", not(test)))]
#[no_mangle]
#[used]
pub static _fltused: i32 = 0;
