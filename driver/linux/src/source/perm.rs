//! The permission thread: open (and read, when a rule can deny reads)
//! before it happens; the only place Linux lets the engine say no.
//!
//! Every permission event is answered exactly once, and the event's
//! descriptor is closed only after its answer is written (the kernel matches
//! the answer by that descriptor). [`Responder`] enforces both: an answer is
//! written under its lock and only if the event is still pending, so the
//! deadline watchdog and the thread can never both answer, and the thread
//! closes a descriptor only after its own `answer` call returned.
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fltpolicy_core::event::Action;

use crate::marks;
use crate::sink::UpstreamLoss;
use crate::slot::PolicyReader;
use crate::stats::Counters;
use crate::sys::fanotify::{mask, Events, Group};
use crate::sys::{fd, wake::Wake};

use super::{decide_and_record, may_record, Shared, EVENT_BUFFER_BYTES};

/// Queue ring hint of this thread's records.
const THREAD_HINT: usize = 1;

/// Longest a permission event may wait for the engine's answer before the
/// watchdog answers allow (counted as `deadline_allows`). Evaluation itself
/// takes microseconds; this bounds the damage of a stall (a `/proc` read
/// of a process stuck in the kernel, a descheduled thread on an overloaded
/// machine) to a delay, never a hang of the caller. Two seconds is far above
/// any normal answer time even on a loaded 2-core machine, so a deny is
/// never lost to the deadline in normal operation.
pub const PERMISSION_DEADLINE: Duration = Duration::from_secs(2);
/// How often the watchdog looks for overdue events.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(250);

/// Answers permission events exactly once.
#[derive(Debug)]
pub struct Responder {
    group: Group,
    pending: Mutex<HashMap<RawFd, Instant>>,
}

impl Responder {
    pub fn new(group: Group) -> Responder {
        Responder {
            group,
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn group(&self) -> &Group {
        &self.group
    }

    fn register(&self, fds: impl Iterator<Item = RawFd>) {
        let now = Instant::now();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for fd in fds {
            p.insert(fd, now);
        }
    }

    /// Answers `fd` if it is still pending. `true`: this call answered.
    pub fn answer(&self, fd: RawFd, allow: bool) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.remove(&fd).is_none() {
            return false;
        }
        // A failed write means the kernel no longer waits on this event
        // (the group is being torn down); nothing else can be done.
        let _ = self.group.respond(fd, allow);
        true
    }

    /// Answers allow for every event pending longer than `deadline`;
    /// returns how many.
    pub fn expire(&self, deadline: Duration) -> u64 {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let overdue: Vec<RawFd> = p
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= deadline)
            .map(|(fd, _)| *fd)
            .collect();
        for fd in &overdue {
            p.remove(fd);
            let _ = self.group.respond(*fd, true);
        }
        overdue.len() as u64
    }
}

/// The watchdog: runs until `shared.stop` is set.
pub fn watchdog(responder: Arc<Responder>, shared: Arc<Shared>) {
    while !shared.stopping() {
        std::thread::sleep(WATCHDOG_PERIOD);
        let n = responder.expire(PERMISSION_DEADLINE);
        if n > 0 {
            shared
                .counters
                .deadline_allows
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Runs until `shared.stop` is set and the group is drained. Dropping the
/// group afterwards makes the kernel allow anything still queued.
pub fn run(responder: Arc<Responder>, shared: Arc<Shared>, wake: Arc<Wake>) {
    let mut buf = vec![0u8; EVENT_BUFFER_BYTES];
    let mut procs = super::BatchProcs::new(Arc::clone(&shared.procs));
    let mut reader = PolicyReader::new(&shared.slot);
    let mut path = String::new();
    let group_fd = responder.group().as_raw_fd();
    let mut ignores = Ignores::default();
    loop {
        let stopping = shared.stopping();
        loop {
            let n = match responder.group().read_events(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => break,
            };
            // The processes wait on these events: they happened just
            // before the kernel handed them over, not when each is decided.
            let read_ns = super::now_ns();
            responder.register(Events::new(&buf[..n]).filter_map(|e| e.fd));
            procs.new_batch();
            let policy = Arc::clone(reader.refresh(&shared.slot));
            ignores.refresh(&responder, &shared, policy.generation);
            for ev in Events::new(&buf[..n]) {
                if ev.mask & mask::Q_OVERFLOW != 0 {
                    Counters::inc(&shared.counters.kernel_overflows);
                    shared.sink.lost_upstream(UpstreamLoss::KernelQueueOverflow);
                }
                let Some(raw) = ev.fd else { continue };
                let Ok(event_fd) = fd::owned(raw) else {
                    continue;
                };
                let outcome = handle_one(
                    &responder, &shared, &policy, &mut procs, &mut path, read_ns, ev.mask, ev.pid,
                    &event_fd,
                );
                if outcome == Outcome::AllowedOutside {
                    ignores.ignore_parent_of(&responder, &policy.facts, &path);
                }
                // `event_fd` closes here, after its answer.
            }
        }
        if stopping {
            return;
        }
        let _ = fd::poll_readable(&[group_fd, wake.as_raw_fd()], -1);
    }
}

/// What became of one permission event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Allowed, and its path lies outside every permission tree (no rule
    /// could have matched it: a candidate for an ignore mark).
    AllowedOutside,
    /// Anything else.
    Other,
}

/// The ignore marks the permission thread placed: directories outside
/// every permission tree ([`crate::facts::PolicyFacts::perm_roots`]) whose
/// files the kernel no longer asks about — "answer once per directory".
/// Cleared on reload and when a directory moves into a permission tree.
#[derive(Debug, Default)]
struct Ignores {
    dirs: std::collections::HashSet<String>,
    epoch: u64,
    generation: u64,
}

/// Most ignore marks placed before the set is flushed and rebuilt.
const MAX_IGNORED_DIRS: usize = 16_384;

impl Ignores {
    fn refresh(&mut self, responder: &Responder, shared: &Shared, generation: u64) {
        let epoch = shared
            .ignore_epoch
            .load(std::sync::atomic::Ordering::Acquire);
        if epoch != self.epoch
            || generation != self.generation
            || self.dirs.len() >= MAX_IGNORED_DIRS
        {
            if !self.dirs.is_empty() {
                let _ = responder.group().flush_inode_marks();
                self.dirs.clear();
            }
            self.epoch = epoch;
            self.generation = generation;
        }
    }

    fn ignore_parent_of(
        &mut self,
        responder: &Responder,
        facts: &crate::facts::PolicyFacts,
        path: &str,
    ) {
        let Some(roots) = &facts.perm_roots else {
            return;
        };
        let Some((dir, _)) = path.rsplit_once('/') else {
            return;
        };
        let dir = if dir.is_empty() { "/" } else { dir };
        // Not in a tree, and no tree in or below it (a tree's root may be
        // a file directly in `dir`).
        if roots
            .iter()
            .any(|r| marks::is_under(dir, r) || marks::is_under(r, dir))
        {
            return;
        }
        if self.dirs.contains(dir) {
            return;
        }
        // The escaped form of a non-UTF-8 path is not its real name: skip.
        if dir.contains('\\') {
            return;
        }
        let Ok(c) = std::ffi::CString::new(dir) else {
            return;
        };
        let mask = mask::OPEN_PERM | mask::ACCESS_PERM;
        if responder.group().ignore_dir(&c, mask).is_ok() {
            self.dirs.insert(dir.to_string());
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn handle_one(
    responder: &Responder,
    shared: &Shared,
    policy: &crate::slot::LoadedPolicy,
    procs: &mut super::BatchProcs,
    path: &mut String,
    time_ns: u64,
    ev_mask: u64,
    pid: i32,
    event_fd: &OwnedFd,
) -> Outcome {
    let raw = event_fd.as_raw_fd();
    if pid as u32 == shared.own_pid {
        Counters::inc(&shared.counters.own_events);
        responder.answer(raw, true);
        return Outcome::Other;
    }
    Counters::inc(&shared.counters.events_seen);
    let Some(op) = marks::op_of_permission(ev_mask) else {
        responder.answer(raw, true);
        return Outcome::Other;
    };
    let mut bytes = Vec::new();
    if fd::proc_fd_path_bytes(raw, &mut bytes).is_err() {
        // The kernel's answer is still decided on the empty path, but the
        // event was not evaluated on its real path: the log gets a drop
        // record (reason `unresolved`) for it.
        Counters::inc(&shared.counters.unresolved);
        shared.sink.lost_upstream(UpstreamLoss::UnresolvedPath);
        bytes.clear();
    }
    // ` (deleted)` is the kernel's marker only on an unlinked file; a live
    // file may really carry that name.
    if fd::link_count(raw) == Some(0) {
        crate::path::strip_deleted_bytes(&mut bytes);
    }
    crate::path::normalize_bytes(&mut bytes);
    let mut escaped = crate::path::from_bytes(&bytes, path);
    // A path outside every tree may be another spelling of a protected
    // file: through a bind mount, another mount namespace's mount, or the
    // same filesystem mounted twice. Seen through the marked mount (by its
    // handle), the file has the path the policy is written in.
    if !bytes.is_empty()
        && policy
            .facts
            .perm_roots
            .as_ref()
            .is_none_or(|roots| !roots.iter().any(|r| marks::is_under(path, r)))
    {
        let mut via = Vec::new();
        // `try_read`: a reload holds the write lock while it opens mark
        // points, which may itself wait on this thread.
        let ok = match shared.mounts.try_read() {
            Ok(mounts) => {
                crate::sys::handle::path_via_marked_mount(&mounts, event_fd, &mut via).is_ok()
            }
            Err(_) => false,
        };
        if ok {
            if fd::link_count(raw) == Some(0) {
                crate::path::strip_deleted_bytes(&mut via);
            }
            crate::path::normalize_bytes(&mut via);
            if via != bytes {
                bytes = via;
                escaped = crate::path::from_bytes(&bytes, path);
            }
        }
    }
    // A hard link (made before or after the policy loaded) of a file
    // inside a permission tree is the same file: decided on its path there.
    let mut linked = false;
    if fd::link_count(raw).is_some_and(|n| n > 1)
        && policy
            .facts
            .perm_roots
            .as_ref()
            .is_some_and(|roots| !roots.iter().any(|r| marks::is_under(path, r)))
    {
        let mut key = Vec::new();
        if crate::sys::handle::key_of_fd(event_fd, &mut key).is_ok() {
            if let Ok(map) = shared.protected.try_read() {
                if let Some(p) = map.get(key.as_slice()) {
                    path.clear();
                    path.push_str(p);
                    linked = true;
                }
            }
        }
    }
    // Outside every tree of a rule that can match open or read, no rule
    // can match this event: after answering, the directory can be ignored.
    let outside = !linked
        && !bytes.is_empty()
        && policy
            .facts
            .perm_roots
            .as_ref()
            .is_some_and(|roots| !roots.iter().any(|r| marks::is_under(path, r)));
    let outcome = if outside {
        Outcome::AllowedOutside
    } else {
        Outcome::Other
    };
    if !may_record(&policy.facts, op, path) {
        responder.answer(raw, true);
        return outcome;
    }
    let size = fd::file_size(raw);
    decide_and_record(
        shared,
        policy,
        procs,
        THREAD_HINT,
        time_ns,
        op,
        path,
        pid as u32,
        size,
        escaped,
        None,
        |a| enforce(responder, shared, raw, a),
    );
    outcome
}

/// Answers the kernel for `action`; returns the status the caller sees.
fn enforce(responder: &Responder, shared: &Shared, raw: RawFd, action: Action) -> Option<i32> {
    let allow = action != Action::Deny;
    if responder.answer(raw, allow) {
        if allow {
            Some(0)
        } else {
            Counters::inc(&shared.counters.denied);
            Some(-libc::EPERM)
        }
    } else {
        // The watchdog answered allow before evaluation finished.
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fanotify::GroupKind;

    #[test]
    fn each_event_is_answered_once_by_the_thread_or_the_watchdog() {
        let Ok(group) = Group::init(GroupKind::Permission) else {
            eprintln!("skipped: fanotify permission groups need CAP_SYS_ADMIN");
            return;
        };
        // Descriptor numbers only: the kernel refuses answers for events it
        // does not know (the write fails, which `answer` ignores); what is
        // checked here is the bookkeeping that decides who answers.
        let r = Responder::new(group);
        r.register([1001, 1002, 1003].into_iter());
        assert!(r.answer(1001, false));
        assert!(!r.answer(1001, true), "a second answer is refused");
        // Nothing is overdue yet with a generous deadline.
        assert_eq!(r.expire(Duration::from_secs(3600)), 0);
        // With a zero deadline the watchdog answers the two pending events...
        assert_eq!(r.expire(Duration::ZERO), 2);
        // ...after which the thread's own answer is refused (no double answer).
        assert!(!r.answer(1002, false));
        assert!(!r.answer(1003, true));
        assert_eq!(r.expire(Duration::ZERO), 0);
    }
}
