//! Helpers shared by the simulation scenarios: compile a policy, load it
//! through the control device, read the audit log the flush thread wrote.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use fltpolicy_core::control::{
    self, Kind, LoadReply, Status, IOCTL_LOAD_POLICY, IOCTL_QUERY_STATUS, LOAD_REPLY_LEN,
    STATUS_LEN,
};
use fltpolicy_core::event::{Action, Op, Target};
use fltpolicy_core::record::frame::{decode_body, decode_header, parse_frame, FrameParse};
use fltpolicy_core::record::{DropReason, Record};
use fltpolicy_driver::sim::Sim;

pub const LOG: &str = r"C:\ProgramData\fltpolicy\audit.log";

pub fn compile(src: &str) -> Vec<u8> {
    match fltpolicy_compiler::compile(src, "x.pol", Target::Windows) {
        Ok(c) => c.image,
        Err(e) => panic!("policy does not compile: {e:?}"),
    }
}

/// Loads a started simulation with `src` and returns the reply.
pub fn load_policy(sim: &Sim, src: &str) -> LoadReply {
    let req = control::request(Kind::Load, &compile(src));
    let (st, out) = sim.ioctl(IOCTL_LOAD_POLICY, &req, LOAD_REPLY_LEN);
    assert_eq!(st, 0, "load failed with {st:#x}");
    LoadReply::decode(&out).expect("load reply decodes")
}

pub fn status(sim: &Sim) -> Status {
    let (st, out) = sim.ioctl(
        IOCTL_QUERY_STATUS,
        &control::request(Kind::Status, &[]),
        STATUS_LEN,
    );
    assert_eq!(st, 0, "status failed with {st:#x}");
    Status::decode(&out).expect("status decodes")
}

/// A simulation with the driver loaded and `src` active.
pub fn started(src: &str) -> Sim {
    let mut sim = Sim::new();
    assert_eq!(sim.load(), 0);
    load_policy(&sim, src);
    sim.process_start(1234, 1, r"C:\Tools\writer.exe");
    sim.process_start(999, 1, r"C:\Tools\other.exe");
    sim.process_start(77, 1, r"C:\Windows\System32\robocopy.exe");
    sim
}

/// One decoded record, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Rec {
    Event {
        seq: u64,
        op: Option<Op>,
        action: Option<Action>,
        path: String,
        pid: u64,
        image: String,
        status: Option<i32>,
        paging: bool,
        tag: String,
        generation: u64,
        user: String,
        rule: Option<u32>,
        target: String,
        target_matched: bool,
    },
    Dropped {
        seq: u64,
        count: u64,
        reason: DropReason,
    },
    End {
        seq: u64,
    },
}

/// Every record of one log file; panics on any corruption.
pub fn records_of(bytes: &[u8]) -> Vec<Rec> {
    let (_h, mut off) = decode_header(bytes).expect("log header decodes");
    let mut out = Vec::new();
    while off < bytes.len() {
        let f = match parse_frame(&bytes[off..]) {
            FrameParse::Frame(f) => f,
            other => panic!("bad frame at {off}: {other:?}"),
        };
        let rec = decode_body(f.body).expect("frame body decodes");
        out.push(match rec {
            Record::Event(e) => Rec::Event {
                seq: e.seq,
                op: e.data.op,
                action: e.data.action.action(),
                path: e.data.path.to_string(),
                pid: e.data.pid,
                image: e.data.image.to_string(),
                status: e.data.status,
                paging: e.data.flags & fltpolicy_core::record::flags::PAGING != 0,
                tag: e.data.tag.to_string(),
                generation: e.data.policy.generation,
                user: e.data.user.to_string(),
                rule: e.data.rule,
                target: e.data.target_path.to_string(),
                target_matched: e.data.flags & fltpolicy_core::record::flags::TARGET_MATCHED != 0,
            },
            Record::Dropped(d) => Rec::Dropped {
                seq: d.seq,
                count: d.count,
                reason: d.reason,
            },
            Record::End(e) => Rec::End { seq: e.seq },
        });
        off += f.total;
    }
    out
}

/// Records of the default log, or empty.
pub fn log_records(sim: &Sim) -> Vec<Rec> {
    sim.file_contents(LOG)
        .map(|b| records_of(&b))
        .unwrap_or_default()
}

pub fn events(recs: &[Rec]) -> Vec<&Rec> {
    recs.iter()
        .filter(|r| matches!(r, Rec::Event { .. }))
        .collect()
}

/// Polls until `f` holds (the flush thread runs on its own schedule).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
