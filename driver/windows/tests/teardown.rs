//! Control-device requests interleaved with unload (issue 9, defect 3).
//!
//! Real threads race a mandatory unload against opens, IOCTLs and closes
//! of the control device, with the simulation's scheduling noise
//! ([`Sim::perturb`]) seeded differently for each round. The simulation's
//! special pool makes freed pool pages inaccessible, so a dispatch routine
//! that touches `Globals` after teardown freed it faults at once (the
//! process aborts with `DRIVER VERIFIER: special pool: ... use after
//! free`) — which is why these tests live in their own test binary.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use fltpolicy_core::control::{self as wire, Kind, IOCTL_QUERY_STATUS, STATUS_LEN};
use fltpolicy_driver::control::STATUS_DEVICE_NOT_READY;
use fltpolicy_driver::kernel::status::*;
use fltpolicy_driver::sim::Sim;

/// Rounds (seeds) per run: each races one unload against the clients.
const SEEDS: u64 = 40;

#[test]
fn control_requests_racing_a_mandatory_unload_never_touch_freed_state() {
    for seed in 0..SEEDS {
        let mut sim = Sim::new();
        assert_eq!(sim.load(), 0);
        // One handle opened before the race and kept across the unload.
        assert_eq!(sim.open_control(true), STATUS_SUCCESS);
        sim.perturb(seed);
        let stop = AtomicBool::new(false);
        let status_req = wire::request(Kind::Status, &[]);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(Ordering::Acquire) {
                        let st = sim.open_control(true);
                        let (q, _) = sim.ioctl(IOCTL_QUERY_STATUS, &status_req, STATUS_LEN);
                        assert!(
                            q == STATUS_SUCCESS || q == STATUS_DEVICE_NOT_READY,
                            "status query: {q:#x}"
                        );
                        if st == STATUS_SUCCESS {
                            sim.close_control();
                        } else {
                            // Unloading or unloaded: a clear refusal.
                            assert!(
                                st == STATUS_DEVICE_NOT_READY || st == STATUS_OBJECT_NAME_NOT_FOUND,
                                "open: {st:#x}"
                            );
                        }
                    }
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(seed % 7));
            assert_eq!(sim.unload_mandatory(), STATUS_SUCCESS);
            std::thread::sleep(std::time::Duration::from_millis(2));
            stop.store(true, Ordering::Release);
        });
        // The handle opened before the unload: requests are refused, the
        // close succeeds (the simulation fails a failed close itself).
        let (q, _) = sim.ioctl(IOCTL_QUERY_STATUS, &status_req, STATUS_LEN);
        assert_eq!(q, STATUS_DEVICE_NOT_READY, "seed {seed}");
        sim.close_control();
        drop(sim);
    }
}

#[test]
fn a_close_after_a_mandatory_unload_succeeds_and_a_refused_unload_keeps_working() {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    assert_eq!(sim.open_control(true), STATUS_SUCCESS);
    // Non-mandatory: refused while the handle is open, and the device
    // keeps answering afterwards.
    assert_ne!(sim.unload(), STATUS_SUCCESS);
    assert_eq!(status(&sim).policy_loaded, 0);
    assert_eq!(sim.open_control(true), STATUS_SUCCESS);
    sim.close_control();
    // Mandatory: proceeds; the open handle's close still succeeds.
    assert_eq!(sim.unload_mandatory(), STATUS_SUCCESS);
    assert_eq!(sim.open_control(true), STATUS_OBJECT_NAME_NOT_FOUND);
    sim.close_control();
}
