//! The event threads: one reads the notification group, one the permission
//! group. Both turn kernel events into [`EventView`]s, evaluate them with
//! the policy they hold, and push records; the permission thread also
//! answers the kernel.
//!
//! What these threads must never do: open a file on a marked filesystem
//! (the permission thread would wait on its own event), block on the log
//! (records go to a queue that counts drops instead), or leave a permission
//! event unanswered (the deadline watchdog answers allow if evaluation
//! stalls).
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use fltpolicy_core::event::{Action, EventView, Op, OpSet, Verdict};
use fltpolicy_core::record::EventData;

use crate::facts::PolicyFacts;
use crate::marks;
use crate::procinfo::{ProcessTable, Users};
use crate::sink::{Sink, UpstreamLoss};
use crate::slot::{LoadedPolicy, PolicySlot};
use crate::stats::Counters;
use crate::sys::handle::MountFds;

pub mod notify;
pub mod perm;

/// Size of the buffer one `read` of a fanotify group fills. 256 KiB holds
/// a few thousand events, so a burst is drained in few system calls.
pub const EVENT_BUFFER_BYTES: usize = 256 * 1024;

/// State shared by the event threads, the control socket and the engine.
#[derive(Debug)]
pub struct Shared {
    pub slot: PolicySlot,
    pub counters: Counters,
    pub sink: Arc<dyn Sink>,
    /// This process: its events are never evaluated, logged or blocked.
    pub own_pid: u32,
    pub users: Arc<Users>,
    /// pid → image/ppid/user, kept current by the tracker thread.
    pub procs: Arc<ProcessTable>,
    pub stop: AtomicBool,
    /// [`OpSet`] bits the permission group currently reports; the
    /// notification thread skips these so nothing is recorded twice.
    pub perm_ops: AtomicU8,
    /// One descriptor per marked filesystem, for `open_by_handle_at`.
    pub mounts: RwLock<MountFds>,
    /// Bumped when a directory moves into (or above) a permission tree: the
    /// permission thread then drops its ignore marks (a directory it told
    /// the kernel to stop asking about may now hold protected files).
    pub ignore_epoch: std::sync::atomic::AtomicU64,
    /// The permission group's descriptor (-1 before it exists), for the
    /// notification thread to drop ignore marks at once.
    pub perm_fd: std::sync::atomic::AtomicI32,
    /// Files inside the permission trees, by handle key → their path
    /// there: a hard link elsewhere (made before or after the policy
    /// loaded) is the same file, and is decided on this path. Filled by
    /// the notification thread (scan at start, then creates and renames
    /// into the trees); read by the permission thread for files with more
    /// than one link.
    pub protected: RwLock<std::collections::HashMap<Box<[u8]>, String>>,
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
    pub fn perm_ops(&self) -> OpSet {
        OpSet(self.perm_ops.load(Ordering::Acquire))
    }
}

/// Wall-clock time for records, nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Whether an event for `op` on `path` could be recorded under `facts`:
/// a cheap test that lets the threads skip process lookups and evaluation
/// for the bulk of a filesystem's activity.
pub fn may_record(facts: &PolicyFacts, op: Op, path: &str) -> bool {
    if !facts.recording_ops.contains(op) {
        return false;
    }
    match &facts.roots {
        None => true,
        Some(roots) => roots.iter().any(|r| marks::is_under(path, r)),
    }
}

/// The process table as one batch of events sees it: connector messages
/// are applied once per batch, before the first lookup (a batch whose events
/// are all filtered out costs no `recv`).
#[derive(Debug)]
pub struct BatchProcs {
    table: Arc<ProcessTable>,
    synced: bool,
}

impl BatchProcs {
    pub fn new(table: Arc<ProcessTable>) -> BatchProcs {
        BatchProcs {
            table,
            synced: false,
        }
    }

    /// Marks the start of a new batch.
    pub fn new_batch(&mut self) {
        self.synced = false;
    }

    pub fn get(&mut self, pid: u32) -> Arc<crate::procinfo::ProcInfo> {
        if !self.synced {
            self.table.sync();
            self.synced = true;
        }
        self.table.get(pid)
    }
}

/// Whether an event's verdict must be reported as an `unattributed` loss:
/// its process could not be identified (no image: it exited before the
/// engine learnt it, and no exec event named it), some recording rule
/// tests the process, and the event matched nothing — with the identity
/// it might have matched. A matched event is recorded as usual (its
/// record shows the empty image).
pub fn unattributed(facts: &PolicyFacts, info: &crate::procinfo::ProcInfo, action: Action) -> bool {
    action == Action::None && facts.process_fields && info.image.is_empty()
}

/// Both paths of a rename, as recorded (`path` = source, `target_path` =
/// destination), whichever of them the policy was evaluated on.
#[derive(Clone, Copy, Debug)]
pub struct TwoPaths<'a> {
    pub source: &'a str,
    pub target: &'a str,
    /// The evaluation was on `target` (the source matched nothing).
    pub on_target: bool,
}

/// Builds the view, evaluates it, lets `enforce` act on the verdict (the
/// permission thread answers the kernel there and returns the status the
/// caller got: `Some(0)` allowed, `Some(-EPERM)` denied; the notification
/// thread returns `None`: the operation already happened), and pushes a
/// record when the verdict asks for one. Returns the verdict's action.
/// `time_ns` is when the operation happened, as closely as the thread
/// knows it (fanotify events carry no timestamp): see the callers.
#[allow(clippy::too_many_arguments)]
pub fn decide_and_record(
    shared: &Shared,
    policy: &LoadedPolicy,
    procs: &mut BatchProcs,
    thread_hint: usize,
    time_ns: u64,
    op: Op,
    path: &str,
    pid: u32,
    size: u64,
    path_escaped: bool,
    two: Option<TwoPaths<'_>>,
    enforce: impl FnOnce(Action) -> Option<i32>,
) -> Action {
    let info = procs.get(pid);
    let view = EventView {
        op: Some(op),
        path,
        pid: u64::from(pid),
        ppid: info.ppid,
        image: &info.image,
        user: &info.user,
        size,
        paging: false,
    };
    let verdict: Verdict<'_> = policy.policy().evaluate(&view);
    let status = enforce(verdict.action);
    if unattributed(&policy.facts, &info, verdict.action) {
        shared.sink.lost_upstream(UpstreamLoss::Unattributed);
    }
    if verdict.action != Action::None {
        Counters::inc(&shared.counters.matched);
    }
    if verdict.action.records() {
        if verdict.action == Action::Deny && status.is_none() {
            Counters::inc(&shared.counters.deny_unenforceable);
        }
        let mut data = EventData::from_view(&view, &verdict, policy.id(), time_ns, status);
        if path_escaped {
            data.flags |= fltpolicy_core::record::flags::PATH_ESCAPED;
        }
        if let Some(t) = two {
            let (source, cut) =
                fltpolicy_core::record::clamp_str(t.source, fltpolicy_core::record::MAX_PATH_BYTES);
            data.path = source;
            data.flags &= !fltpolicy_core::record::flags::PATH_TRUNCATED;
            if cut {
                data.flags |= fltpolicy_core::record::flags::PATH_TRUNCATED;
            }
            data = data.with_target(t.target);
            if t.on_target {
                data.flags |= fltpolicy_core::record::flags::TARGET_MATCHED;
            }
        }
        if shared.sink.push(thread_hint, &data) {
            Counters::inc(&shared.counters.queued);
        } else {
            Counters::inc(&shared.counters.queue_full);
        }
    }
    verdict.action
}

#[cfg(test)]
mod unattributed_tests {
    use super::*;
    use crate::procinfo::ProcInfo;
    use fltpolicy_core::event::Target;
    use fltpolicy_core::image::Policy;

    fn facts(src: &str) -> PolicyFacts {
        let image = fltpolicy_compiler::compile(src, "t.pol", Target::Linux)
            .unwrap()
            .image;
        PolicyFacts::of(&Policy::from_bytes(&image).unwrap())
    }

    #[test]
    fn a_non_match_without_the_process_identity_is_reported_only_when_a_rule_needed_it() {
        let needs = facts("log create under /d where process == \"touch\"\n");
        let path_only = facts("log create under /d\n");
        let unknown = ProcInfo {
            image: String::new(),
            ppid: 0,
            user: String::new(),
        };
        let known = ProcInfo {
            image: "/usr/bin/touch".into(),
            ppid: 1,
            user: "root".into(),
        };
        assert!(unattributed(&needs, &unknown, Action::None));
        assert!(
            !unattributed(&needs, &unknown, Action::Log),
            "recorded anyway"
        );
        assert!(
            !unattributed(&needs, &known, Action::None),
            "a real non-match"
        );
        assert!(
            !unattributed(&path_only, &unknown, Action::None),
            "identity not needed"
        );
    }
}
