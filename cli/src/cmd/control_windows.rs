//! The Windows transport of `fltpolicy load` and `fltpolicy status`:
//! `DeviceIoControl` on the driver's control device `\\.\FltPolicy`.
//!
//! Request and reply layouts come from `fltpolicy_core::control`, the same
//! code the driver decodes them with. The device admits only SYSTEM and
//! Administrators (its DACL, checked again by the driver on every request),
//! so these calls need an elevated prompt.
#![cfg(windows)]

use std::io;
use std::ptr::{null, null_mut};

use anyhow::{Context, Result};
use fltpolicy_core::control::{
    self, Kind, LoadReply, Status, IOCTL_LOAD_POLICY, IOCTL_QUERY_STATUS, IOCTL_SET_LOG_PATH,
    LOAD_REPLY_LEN, STATUS_LEN,
};
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{CreateFileW, OPEN_EXISTING};
use windows_sys::Win32::System::IO::DeviceIoControl;

/// An open handle to the control device, closed on drop.
struct Device(HANDLE);

impl Device {
    fn open() -> Result<Device> {
        let path: Vec<u16> = control::DEVICE_WIN32_PATH
            .encode_utf16()
            .chain(Some(0))
            .collect();
        // SAFETY: `path` is a NUL-terminated UTF-16 string that outlives the
        // call; no security attributes or template handle.
        let h = unsafe {
            CreateFileW(
                path.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                0,
                null(),
                OPEN_EXISTING,
                0,
                null_mut(),
            )
        };
        if h == INVALID_HANDLE_VALUE {
            // SAFETY: reads the calling thread's last-error value.
            let code = unsafe { GetLastError() };
            let err = io::Error::from_raw_os_error(code as i32);
            let hint = match code {
                2 | 3 => "is the fltpolicy driver loaded? (`fltmc load fltpolicy`)",
                5 => "the control device admits only Administrators and SYSTEM: run from an elevated prompt",
                _ => "",
            };
            return Err(anyhow::anyhow!("{err}"))
                .context(format!("opening {} {hint}", control::DEVICE_WIN32_PATH));
        }
        Ok(Device(h))
    }

    /// One METHOD_BUFFERED request; returns the bytes the driver wrote.
    fn ioctl(&self, code: u32, input: &[u8], out_len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; out_len];
        let mut returned = 0u32;
        let in_len = u32::try_from(input.len()).context("request larger than 4 GiB")?;
        // SAFETY: the buffers are valid for the lengths passed; synchronous
        // call (no OVERLAPPED) on a handle we own.
        let ok = unsafe {
            DeviceIoControl(
                self.0,
                code,
                input.as_ptr().cast(),
                in_len,
                out.as_mut_ptr().cast(),
                out_len as u32,
                &mut returned,
                null_mut(),
            )
        };
        if ok == 0 {
            // SAFETY: reads the calling thread's last-error value.
            let last = unsafe { GetLastError() };
            let err = io::Error::from_raw_os_error(last as i32);
            let hint = match last {
                // STATUS_INVALID_IMAGE_FORMAT
                193 => ": the driver's verifier rejected the image",
                // STATUS_REVISION_MISMATCH
                1306 => ": the driver speaks another control protocol version",
                // STATUS_NOT_SUPPORTED
                50 => ": the image was compiled for another platform",
                // STATUS_DEVICE_BUSY
                170 => ": another policy load is in progress",
                5 => ": the driver refused a non-elevated caller",
                _ => "",
            };
            anyhow::bail!("control request {code:#x} failed: {err}{hint}");
        }
        out.truncate(returned as usize);
        Ok(out)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: we own the handle and close it once.
        unsafe { CloseHandle(self.0) };
    }
}

/// Sends a policy image to the driver, which verifies it and swaps it in.
pub fn load_policy(image: &[u8]) -> Result<LoadReply> {
    let dev = Device::open()?;
    let req = control::request(Kind::Load, image);
    let out = dev.ioctl(IOCTL_LOAD_POLICY, &req, LOAD_REPLY_LEN)?;
    LoadReply::decode(&out).context("decoding the driver's load reply")
}

/// Reads the driver's counters and the active policy's identity.
pub fn query_status() -> Result<Status> {
    let dev = Device::open()?;
    let req = control::request(Kind::Status, &[]);
    let out = dev.ioctl(IOCTL_QUERY_STATUS, &req, STATUS_LEN)?;
    Status::decode(&out).context("decoding the driver's status reply")
}

/// Points the driver's audit log at `path` (a validated `X:\...` path); the
/// flush thread re-opens the log there.
pub fn set_log_path(path: &str) -> Result<()> {
    let dev = Device::open()?;
    let req = control::request(Kind::SetLogPath, path.as_bytes());
    dev.ioctl(IOCTL_SET_LOG_PATH, &req, 0)?;
    Ok(())
}
