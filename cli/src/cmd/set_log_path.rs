//! `fltpolicy set-log-path PATH`: tells the Windows driver to write its
//! audit log to PATH from now on. The driver's flush thread closes the
//! current file (ending its chain with a rotation record) and opens PATH on
//! its next wake-up, below the filter, with its own instance for that
//! volume. On Linux the engine's log is chosen by `fltpolicy run --log LOG`.
use std::process::ExitCode;

use anyhow::{bail, Result};
use fltpolicy_core::control::{is_valid_log_path, MAX_LOG_PATH_LEN};

/// Point the Windows driver's audit log at a new file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Absolute drive path on a local volume, e.g. C:\ProgramData\fltpolicy\audit.fplog
    path: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // The driver validates again; checking here gives the reason in words.
    if args.path.len() > MAX_LOG_PATH_LEN {
        bail!(
            "log path is {} bytes; the driver accepts at most {MAX_LOG_PATH_LEN}",
            args.path.len()
        );
    }
    if !is_valid_log_path(&args.path) {
        bail!(
            "{:?} is not an absolute drive path such as C:\\ProgramData\\fltpolicy\\audit.fplog \
             (no '/', no '.' or '..' components, no empty components)",
            args.path
        );
    }
    send(&args.path)?;
    eprintln!(
        "the driver will write its audit log to {} from its next flush",
        args.path
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(windows)]
fn send(path: &str) -> Result<()> {
    crate::cmd::control_windows::set_log_path(path)
}

#[cfg(not(windows))]
fn send(_path: &str) -> Result<()> {
    bail!(
        "set-log-path talks to the Windows driver; the Linux engine's log is chosen by \
         `fltpolicy run POLICY --log LOG`"
    )
}
