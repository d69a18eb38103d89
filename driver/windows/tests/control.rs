//! The control device: access checks and malformed requests. Every bad
//! buffer gets its precise NTSTATUS and leaves the active policy untouched.

mod common;

use common::*;
use fltpolicy_core::control::{
    self, Kind, IOCTL_LOAD_POLICY, IOCTL_QUERY_STATUS, IOCTL_SET_LOG_PATH, LOAD_REPLY_LEN,
    STATUS_LEN,
};
use fltpolicy_driver::control::STATUS_BUFFER_TOO_SMALL;
use fltpolicy_driver::kernel::status::*;
use fltpolicy_driver::sim::Sim;

const POLICY: &str = r"log writes under C:\Data from pid 1234";

fn loaded() -> Sim {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    sim
}

// Expected statuses from ntstatus.h (Wine's copy, wine/windows/ntstatus.h),
// not from the driver's own `ControlError::ntstatus()`.
const NT_INFO_LENGTH_MISMATCH: i32 = 0xC000_0004_u32 as i32;
const NT_INVALID_PARAMETER_1: i32 = 0xC000_00EF_u32 as i32;
const NT_INVALID_PARAMETER_2: i32 = 0xC000_00F0_u32 as i32;
const NT_INVALID_PARAMETER_3: i32 = 0xC000_00F1_u32 as i32;
const NT_REVISION_MISMATCH: i32 = 0xC000_0059_u32 as i32;
const NT_INVALID_BUFFER_SIZE: i32 = 0xC000_0206_u32 as i32;
const NT_OBJECT_PATH_SYNTAX_BAD: i32 = 0xC000_003B_u32 as i32;

#[test]
fn only_administrators_open_and_use_the_device() {
    let mut sim = loaded();
    // The DACL (SDDL D:P(A;;GA;;;SY)(A;;GA;;;BA)) refuses a standard user.
    assert_eq!(sim.open_control(false), STATUS_ACCESS_DENIED);
    assert_eq!(sim.open_control(true), STATUS_SUCCESS);
    // A handle that reached a non-elevated caller is refused by the
    // handler's own token check, and nothing changes.
    let req = control::request(Kind::Load, &compile(POLICY));
    let (st, out) = sim.ioctl_as_user(IOCTL_LOAD_POLICY, &req, LOAD_REPLY_LEN);
    assert_eq!(st, STATUS_ACCESS_DENIED);
    assert!(out.is_empty());
    let (st, _) = sim.ioctl_as_user(
        IOCTL_QUERY_STATUS,
        &control::request(Kind::Status, &[]),
        STATUS_LEN,
    );
    assert_eq!(st, STATUS_ACCESS_DENIED);
    assert_eq!(status(&sim).policy_loaded, 0);
    // A non-mandatory unload is refused while the handle is open.
    assert_ne!(sim.unload(), 0);
    sim.close_control();
    assert_eq!(sim.unload(), 0);
}

#[test]
fn malformed_load_requests_get_precise_statuses() {
    let mut sim = loaded();
    let good = control::request(Kind::Load, &compile(POLICY));
    let cases: Vec<(&str, Vec<u8>, usize, i32)> = vec![
        ("empty", vec![], LOAD_REPLY_LEN, NT_INFO_LENGTH_MISMATCH),
        (
            "short header",
            good[..10].to_vec(),
            LOAD_REPLY_LEN,
            NT_INFO_LENGTH_MISMATCH,
        ),
        (
            "bad magic",
            {
                let mut b = good.clone();
                b[0] ^= 0xff;
                b
            },
            LOAD_REPLY_LEN,
            NT_INVALID_PARAMETER_1,
        ),
        (
            "wrong version",
            {
                let mut b = good.clone();
                b[4] = 9;
                b
            },
            LOAD_REPLY_LEN,
            NT_REVISION_MISMATCH,
        ),
        (
            "wrong kind",
            control::request(Kind::Status, &[]),
            LOAD_REPLY_LEN,
            NT_INVALID_PARAMETER_2,
        ),
        (
            "length lies (longer)",
            {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&(good.len() as u32).to_le_bytes());
                b
            },
            LOAD_REPLY_LEN,
            NT_INFO_LENGTH_MISMATCH,
        ),
        (
            "length lies (shorter)",
            {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&1u32.to_le_bytes());
                b
            },
            LOAD_REPLY_LEN,
            NT_INFO_LENGTH_MISMATCH,
        ),
        (
            "length lies (huge)",
            {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
                b
            },
            LOAD_REPLY_LEN,
            NT_INFO_LENGTH_MISMATCH,
        ),
        (
            "truncated body",
            good[..good.len() - 3].to_vec(),
            LOAD_REPLY_LEN,
            NT_INFO_LENGTH_MISMATCH,
        ),
        (
            "reserved set",
            {
                let mut b = good.clone();
                b[13] = 1;
                b
            },
            LOAD_REPLY_LEN,
            NT_INVALID_PARAMETER_3,
        ),
        (
            "empty image",
            control::request(Kind::Load, &[]),
            LOAD_REPLY_LEN,
            NT_INVALID_BUFFER_SIZE,
        ),
        (
            "garbage image",
            control::request(Kind::Load, b"definitely not a policy image"),
            LOAD_REPLY_LEN,
            STATUS_INVALID_IMAGE_FORMAT,
        ),
        (
            "image with a flipped byte",
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 1] ^= 0x5a;
                b
            },
            LOAD_REPLY_LEN,
            STATUS_INVALID_IMAGE_FORMAT,
        ),
        (
            "output too small",
            good.clone(),
            LOAD_REPLY_LEN - 1,
            STATUS_BUFFER_TOO_SMALL,
        ),
    ];
    for (what, input, out_len, want) in cases {
        let (st, out) = sim.ioctl(IOCTL_LOAD_POLICY, &input, out_len);
        assert_eq!(st, want, "{what}: got {st:#x}, want {want:#x}");
        assert!(out.is_empty(), "{what}: no output on failure");
        assert_eq!(status(&sim).policy_loaded, 0, "{what}: nothing installed");
    }
    // A Linux image is well formed but not for this enforcement point.
    let linux = fltpolicy_compiler::compile(
        "log writes under /srv",
        "l.pol",
        fltpolicy_core::event::Target::Linux,
    )
    .unwrap()
    .image;
    let (st, _) = sim.ioctl(
        IOCTL_LOAD_POLICY,
        &control::request(Kind::Load, &linux),
        LOAD_REPLY_LEN,
    );
    assert_eq!(st, STATUS_NOT_SUPPORTED);
    // After all that, a good request works and counts as generation 1.
    let (st, out) = sim.ioctl(IOCTL_LOAD_POLICY, &good, LOAD_REPLY_LEN);
    assert_eq!(st, 0);
    assert_eq!(control::LoadReply::decode(&out).unwrap().generation, 1);
    assert_eq!(sim.unload(), 0);
}

#[test]
fn malformed_status_and_log_path_requests() {
    let mut sim = loaded();
    let (st, _) = sim.ioctl(
        IOCTL_QUERY_STATUS,
        &control::request(Kind::Status, &[]),
        STATUS_LEN - 1,
    );
    assert_eq!(st, STATUS_BUFFER_TOO_SMALL);
    let (st, _) = sim.ioctl(
        IOCTL_QUERY_STATUS,
        &control::request(Kind::Status, b"x"),
        STATUS_LEN,
    );
    assert_eq!(st, NT_INFO_LENGTH_MISMATCH);
    for (path, want) in [
        (&b"relative\\x.log"[..], NT_OBJECT_PATH_SYNTAX_BAD),
        (&br"C:\a\..\b.log"[..], NT_OBJECT_PATH_SYNTAX_BAD),
        (&[0xC3, 0x28][..], NT_OBJECT_PATH_SYNTAX_BAD),
        (&b""[..], NT_INVALID_BUFFER_SIZE),
        (&[b'a'; 2000][..], NT_INVALID_BUFFER_SIZE),
    ] {
        let (st, _) = sim.ioctl(
            IOCTL_SET_LOG_PATH,
            &control::request(Kind::SetLogPath, path),
            0,
        );
        assert_eq!(st, want, "{:?}", String::from_utf8_lossy(path));
    }
    // Unknown IOCTL code.
    let (st, _) = sim.ioctl(0x8F50_A0FC, &[], 0);
    assert_eq!(st, STATUS_INVALID_DEVICE_REQUEST);
    // No buffers at all.
    let (st, _) = sim.ioctl(IOCTL_LOAD_POLICY, &[], 0);
    assert_eq!(st, STATUS_BUFFER_TOO_SMALL);
    assert_eq!(sim.unload(), 0);
}

#[test]
fn fuzzed_load_buffers_never_crash_or_install() {
    let mut sim = loaded();
    let good = control::request(Kind::Load, &compile(POLICY));
    // Deterministic xorshift: flip bytes, cut, extend.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut accepted = 0;
    for _ in 0..400 {
        let mut b = good.clone();
        match rnd() % 3 {
            0 => {
                let i = (rnd() as usize) % b.len();
                b[i] ^= 1 << (rnd() % 8);
            }
            1 => b.truncate((rnd() as usize) % b.len()),
            _ => b.extend((0..rnd() % 9).map(|_| rnd() as u8)),
        }
        let (st, out) = sim.ioctl(IOCTL_LOAD_POLICY, &b, LOAD_REPLY_LEN);
        if st == 0 {
            accepted += 1;
            assert_eq!(out.len(), LOAD_REPLY_LEN);
        } else {
            assert!(st < 0, "failure statuses are errors: {st:#x}");
            assert!(out.is_empty());
        }
    }
    assert_eq!(status(&sim).generation, accepted);
    assert_eq!(sim.unload(), 0);
}
