//! The simulation must catch what Driver Verifier would: each test breaks
//! one rule on purpose and expects the simulated bugcheck. Without these the
//! scenarios' "no violation" would prove nothing.

mod common;

use common::*;
use fltpolicy_driver::kernel::{self, APC_LEVEL, DISPATCH_LEVEL, PASSIVE_LEVEL};
use fltpolicy_driver::sim::{access, kernel as simk, with_irql, Io, Sim};

#[test]
#[should_panic(expected = "DRIVER VERIFIER: FltGetFileNameInformation called at IRQL 2")]
fn a_name_query_at_dispatch_is_a_violation() {
    let _sim = Sim::new();
    with_irql(DISPATCH_LEVEL, true, || {
        // SAFETY: test only; the IRQL check fires before the data is touched.
        let _ = unsafe { kernel::get_file_name(std::ptr::null_mut(), 0) };
    });
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: ExAllocatePool2(Paged) called at IRQL 2")]
fn a_paged_allocation_at_dispatch_is_a_violation() {
    let _sim = Sim::new();
    with_irql(DISPATCH_LEVEL, false, || simk::alloc_paged(64));
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: KeDelayExecutionThread called at IRQL 2")]
fn a_wait_at_dispatch_is_a_violation() {
    let _sim = Sim::new();
    with_irql(DISPATCH_LEVEL, false, kernel::yield_passive);
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: FltWriteFile called at IRQL 1")]
fn a_write_above_passive_is_a_violation() {
    let _sim = Sim::new();
    with_irql(APC_LEVEL, false, || {
        // SAFETY: test only; the IRQL check fires first.
        let _ = unsafe { kernel::write_file(0, std::ptr::null_mut(), 0, b"x") };
    });
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: FltWriteFile issued from inside a filter callback")]
fn a_write_from_a_callback_is_a_violation_even_at_passive() {
    let _sim = Sim::new();
    with_irql(PASSIVE_LEVEL, true, || {
        // SAFETY: test only; the callback check fires first.
        let _ = unsafe { kernel::write_file(0, std::ptr::null_mut(), 0, b"x") };
    });
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: FltCreateFileEx2 issued from inside a filter callback")]
fn a_create_from_a_callback_is_a_violation() {
    let _sim = Sim::new();
    with_irql(PASSIVE_LEVEL, true, || {
        let p: Vec<u16> = r"\??\C:\x".encode_utf16().collect();
        // SAFETY: test only; the callback check fires first.
        let sd = fltpolicy_driver::sddl::SdBuf::new();
        // SAFETY: test only; the callback check fires first.
        let _ = unsafe {
            kernel::create_file(0, 0, std::ptr::null_mut(), &p, kernel::CreateMode::New, &sd)
        };
    });
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: ExFreePoolWithTag of")]
fn a_double_free_is_a_violation() {
    let _sim = Sim::new();
    let p = kernel::alloc_nonpaged(16);
    // SAFETY: test only; the first free is valid, the second is the violation.
    unsafe { kernel::free_pool(p) };
    // SAFETY: test only; as above.
    unsafe { kernel::free_pool(p) };
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: context")]
fn a_leaked_context_reference_is_caught_at_unload() {
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\a.txt", access::WRITE, access::OPEN_IF)
        .unwrap();
    sim.write(h, 1, Io::from(1234));
    // Take a reference on the handle's name context and never release it.
    let fo = sim.file_object(h);
    let inst = sim.instance_of(r"C:\");
    // SAFETY: test only; valid instance and file object of the simulation.
    let _leak = unsafe { kernel::get_stream_handle_context(inst, fo) }.unwrap();
    sim.unload();
}

#[test]
#[should_panic(expected = "DRIVER VERIFIER: 1 pool block(s) leaked at unload")]
fn a_leaked_pool_block_is_caught_at_unload() {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    let _leak = kernel::alloc_nonpaged(32);
    sim.unload();
}

#[test]
fn the_driver_itself_breaks_no_rule_on_the_paging_path() {
    // The positive control of the tests above: the same simulation runs the
    // paging path at DISPATCH_LEVEL without a violation.
    let mut sim = started(r"log write under C:\Data");
    let h = sim
        .open(1234, r"C:\Data\p.bin", access::WRITE, access::OPEN_IF)
        .unwrap();
    let io = Io {
        pid: 4,
        irql: APC_LEVEL,
        post_irql: DISPATCH_LEVEL,
        paging: true,
    };
    for _ in 0..50 {
        assert_eq!(sim.write(h, 4096, io), 0);
    }
    assert_eq!(sim.unload(), 0);
    assert_eq!(events(&log_records(&sim)).len(), 50);
}
