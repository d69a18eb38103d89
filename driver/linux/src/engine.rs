//! The engine: groups, marks, event threads, the policy slot, and the
//! operations the control socket offers (load, status).
//!
//! Threads (see `docs/linux-engine.md`):
//! * `fltpolicy-notify` — reads the notification group;
//! * `fltpolicy-perm` — reads the permission group and answers it;
//! * `fltpolicy-deadline` — answers allow for overdue permission events;
//! * `fltpolicy-procs` — applies process-connector messages to the process
//!   table (captures images at exec, keeps them briefly after exit);
//! * the audit pipeline's flush thread (owned by the caller's sink);
//! * the control socket's thread ([`crate::control::server`]).
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::facts::PolicyFacts;
use crate::marks;
use crate::procinfo::{self, ProcessTable, Users};
use crate::sink::Sink;
use crate::slot::{LoadError, LoadedPolicy, PolicySlot};
use crate::source::{notify, perm, Shared};
use crate::stats::Counters;
use crate::sys::caps::{self, Capability};
use crate::sys::fanotify::{mask, Group, GroupKind};
use crate::sys::handle::MountFds;
use crate::sys::wake::Wake;

/// Why the engine did not start (or a reload could not be applied).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the Linux engine needs the {} capability (run it as root): fanotify filesystem marks and permission events are privileged",
        .0.name()
    )]
    MissingCapability(Capability),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot create the fanotify group: {0}")]
    Init(#[source] io::Error),
    #[error(
        "this kernel cannot report file handles with names (FAN_REPORT_DFID_NAME needs Linux 5.9 or later; 5.17 or later for FAN_RENAME)"
    )]
    KernelTooOld,
    #[error("this kernel has no fanotify (CONFIG_FANOTIFY)")]
    NoFanotify,
    #[error(
        "cannot watch {}: it is on a btrfs subvolume (or another filesystem whose subvolumes report their own fsid), where the kernel refuses a filesystem-wide fanotify mark because the subvolume's fsid differs from its filesystem's (EXDEV); try --watch with the filesystem's top-level mount, or keep the policy's trees on a filesystem without subvolumes",
        path.display()
    )]
    Subvolume { path: PathBuf },
    #[error("cannot watch the filesystem of {}: {source}", path.display())]
    Mark {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        name: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Refuses, naming the capability, when this process lacks one the engine
/// needs (instead of letting a system call fail with a bare errno).
pub fn check_capabilities() -> Result<(), EngineError> {
    for cap in [Capability::SysAdmin, Capability::DacReadSearch] {
        if caps::has(cap) == Some(false) {
            return Err(EngineError::MissingCapability(cap));
        }
    }
    Ok(())
}

/// Whether this kernel would let a BPF-LSM backend enforce in the kernel
/// (the design in docs/linux-engine.md; not built): BPF must be among the
/// active LSMs (`/sys/kernel/security/lsm`, securityfs) and the kernel must
/// carry BTF (`/sys/kernel/btf/vmlinux`). A one-line answer for `run`.
pub fn bpf_lsm_support() -> String {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm");
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    match lsm {
        Err(_) => "unknown (securityfs not mounted at /sys/kernel/security)".to_string(),
        Ok(l) if !l.trim().split(',').any(|m| m == "bpf") => {
            format!("no (active LSMs: {}; boot with lsm=...,bpf)", l.trim())
        }
        Ok(_) if !btf => "no (the kernel has no BTF: /sys/kernel/btf/vmlinux)".to_string(),
        Ok(_) => "this kernel lists the BPF LSM and has BTF (whether a program may attach is only known by loading one)".to_string(),
    }
}

/// What to run.
#[derive(Debug)]
pub struct EngineConfig {
    /// The policy image (verified again here).
    pub image: Vec<u8>,
    /// Filesystems to watch instead of those holding the policy's paths.
    pub watch: Vec<PathBuf>,
    /// Where records go.
    pub sink: Arc<dyn Sink>,
}

/// Counters and identity of the active policy, as `status` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub events_seen: u64,
    pub matched: u64,
    /// Records accepted by the queue.
    pub queued: u64,
    /// Records handed to the log writer (accepted by the audit queue; the
    /// flush thread writes each or counts it as a `write_failed` drop).
    pub logged: u64,
    pub denied: u64,
    /// The audit queue's drop counters: queue full/busy, write failures,
    /// kernel overflow notices.
    pub dropped: u64,
    /// 1 while records wait in the audit queue, 0 when it is empty (the
    /// queue exposes no finer count).
    pub queue_depth: u64,
    pub kernel_overflows: u64,
    pub deadline_allows: u64,
    pub deny_unenforceable: u64,
    pub unresolved_paths: u64,
    /// Unplaceable events of directories outside every policy tree (not a
    /// loss: no rule could have matched them).
    pub unresolved_outside: u64,
    pub generation: u64,
    pub rule_count: u32,
    pub policy_hash: [u8; 32],
    /// Filesystems marked (their mark points).
    pub watching: Vec<String>,
    /// Whether permission events are requested (the policy can deny).
    pub blocking: bool,
    /// Filesystems mounted inside a policy tree that could not be marked
    /// (their activity is not seen).
    pub unwatched: Vec<String>,
    /// Event records lost because the log could not be written (disk
    /// full, I/O error): counted as they happen, written as a
    /// `write_failed` drop record once writing works again.
    pub write_failed: u64,
    /// Bytes the log writer could not write.
    pub write_failed_bytes: u64,
    /// Failed log writes (batches or pieces of them).
    pub write_failures: u64,
    /// Whether the last log write failed (and none has succeeded since).
    pub write_failing: bool,
    /// Log files found deleted, renamed away or replaced while written
    /// (each time the chain went on in a new file).
    pub log_files_lost: u64,
}

/// Marks currently in place, per filesystem.
#[derive(Debug, Default)]
struct Marker {
    watch: Vec<PathBuf>,
    /// fsid → (mark point, notification bits, permission bits).
    marked: HashMap<[i32; 2], (PathBuf, u64, u64)>,
    rename_bit: u64,
    /// Filesystems mounted inside a policy tree that could not be marked.
    unwatched: Vec<String>,
}

/// The running engine. Dropping it without [`Engine::stop`] also stops it.
#[derive(Debug)]
pub struct Engine {
    core: Arc<Core>,
    threads: Vec<JoinHandle<()>>,
    tracker_stop: Option<Arc<AtomicBool>>,
}

/// The part of the engine the control socket shares.
#[derive(Debug)]
pub struct Core {
    shared: Arc<Shared>,
    notify: Arc<Group>,
    responder: Arc<perm::Responder>,
    marker: Mutex<Marker>,
    notify_wake: Arc<Wake>,
    perm_wake: Arc<Wake>,
}

impl Engine {
    /// Verifies the policy, creates the groups, marks the filesystems and
    /// starts the threads.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        check_capabilities()?;
        let first = LoadedPolicy::new(config.image, 1)?;
        let facts = first.facts.clone();
        let init = |kind| {
            Group::init(kind).map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM) => EngineError::MissingCapability(Capability::SysAdmin),
                Some(libc::EINVAL) if kind == GroupKind::NotifyFid => EngineError::KernelTooOld,
                Some(libc::ENOSYS) => EngineError::NoFanotify,
                _ => EngineError::Init(e),
            })
        };
        let notify_group = Arc::new(init(GroupKind::NotifyFid)?);
        let perm_group = init(GroupKind::Permission)?;
        // Read before any mark exists (see `procinfo::Users`).
        let users = Arc::new(Users::load());
        let shared = Arc::new(Shared {
            slot: PolicySlot::new(first),
            counters: Counters::default(),
            sink: config.sink,
            own_pid: std::process::id(),
            users: Arc::clone(&users),
            procs: Arc::new(ProcessTable::new(users)),
            stop: AtomicBool::new(false),
            perm_ops: AtomicU8::new(0),
            mounts: RwLock::new(MountFds::default()),
            ignore_epoch: std::sync::atomic::AtomicU64::new(0),
            perm_fd: std::sync::atomic::AtomicI32::new(perm_group.as_raw_fd()),
            protected: RwLock::new(HashMap::new()),
        });
        let core = Arc::new(Core {
            shared: Arc::clone(&shared),
            notify: Arc::clone(&notify_group),
            responder: Arc::new(perm::Responder::new(perm_group)),
            marker: Mutex::new(Marker {
                watch: config.watch,
                marked: HashMap::new(),
                rename_bit: mask::RENAME,
                unwatched: Vec::new(),
            }),
            notify_wake: Arc::new(Wake::new().map_err(EngineError::Init)?),
            perm_wake: Arc::new(Wake::new().map_err(EngineError::Init)?),
        });
        let mut engine = Engine {
            core: Arc::clone(&core),
            threads: Vec::new(),
            tracker_stop: None,
        };
        // Threads first, so permission events are answered from the moment
        // a mark exists.
        let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("fltpolicy-{name}"))
                .spawn(f)
                .map_err(|source| EngineError::Thread { name, source })
        };
        {
            let (s, w) = (Arc::clone(&shared), Arc::clone(&core.notify_wake));
            let g = Arc::clone(&notify_group);
            engine
                .threads
                .push(spawn("notify", Box::new(move || notify::run(g, s, w)))?);
        }
        {
            let (r, s, w) = (
                Arc::clone(&core.responder),
                Arc::clone(&shared),
                Arc::clone(&core.perm_wake),
            );
            engine
                .threads
                .push(spawn("perm", Box::new(move || perm::run(r, s, w)))?);
        }
        {
            let (r, s) = (Arc::clone(&core.responder), Arc::clone(&shared));
            engine
                .threads
                .push(spawn("deadline", Box::new(move || perm::watchdog(r, s)))?);
        }
        {
            // The tracker polls the notification thread's wake descriptor:
            // one stop signal wakes both.
            let (t, w) = (Arc::clone(&shared.procs), Arc::clone(&core.notify_wake));
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = Arc::clone(&stop);
            engine.tracker_stop = Some(stop);
            engine.threads.push(spawn(
                "procs",
                Box::new(move || procinfo::track(t, stop2, w)),
            )?);
        }
        core.apply_marks(&facts)?;
        Ok(engine)
    }

    /// The shareable core (for the control socket).
    pub fn core(&self) -> Arc<Core> {
        Arc::clone(&self.core)
    }

    /// Stops reading, drains what the kernel has queued (every event that
    /// happened before the call is evaluated and queued), answers every
    /// pending permission event, and joins the threads. The sink's writer
    /// is drained by its owner afterwards.
    pub fn stop(mut self) -> EngineStatus {
        self.stop_threads();
        self.core.status()
    }

    fn stop_threads(&mut self) {
        self.core.shared.stop.store(true, Ordering::Release);
        if let Some(s) = &self.tracker_stop {
            s.store(true, Ordering::Release);
        }
        self.core.notify_wake.wake();
        self.core.perm_wake.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

impl Core {
    /// Counters and policy identity now.
    pub fn status(&self) -> EngineStatus {
        let c = &self.shared.counters;
        let policy = self.shared.slot.load();
        let marker = self.marker.lock().unwrap_or_else(|e| e.into_inner());
        let sink = &self.shared.sink;
        let health = sink.writer_health();
        EngineStatus {
            events_seen: Counters::get(&c.events_seen),
            matched: Counters::get(&c.matched),
            queued: Counters::get(&c.queued),
            logged: sink.written(),
            denied: Counters::get(&c.denied),
            dropped: sink.dropped(),
            queue_depth: sink.depth(),
            kernel_overflows: Counters::get(&c.kernel_overflows),
            deadline_allows: Counters::get(&c.deadline_allows),
            deny_unenforceable: Counters::get(&c.deny_unenforceable),
            unresolved_paths: Counters::get(&c.unresolved),
            unresolved_outside: Counters::get(&c.unresolved_outside),
            generation: policy.generation,
            rule_count: policy.policy().rule_count(),
            policy_hash: policy.hash,
            watching: marker
                .marked
                .values()
                .filter(|(_, nb, _)| *nb != mask::OPEN_EXEC)
                .map(|(p, _, _)| p.display().to_string())
                .collect(),
            blocking: marker.marked.values().any(|(_, _, pm)| *pm != 0),
            unwatched: marker.unwatched.clone(),
            write_failed: health.write_failed_records,
            write_failed_bytes: health.write_failed_bytes,
            write_failures: health.write_failures,
            write_failing: health.failing,
            log_files_lost: health.files_lost,
        }
    }

    /// Verifies `image` and swaps it in; then adjusts the marks to what the
    /// new policy needs. On error the running policy stays.
    pub fn load(&self, image: Vec<u8>) -> Result<Arc<LoadedPolicy>, EngineError> {
        let next = self.shared.slot.swap(image)?;
        self.apply_marks(&next.facts)?;
        Ok(next)
    }

    /// Brings the marks in line with `facts`: permission bits first (so an
    /// operation moving to the permission group is never unobserved), then
    /// notification bits.
    fn apply_marks(&self, facts: &PolicyFacts) -> Result<(), EngineError> {
        let mut marker = self.marker.lock().unwrap_or_else(|e| e.into_inner());
        let points: Vec<PathBuf> = if !marker.watch.is_empty() {
            marker.watch.iter().map(|w| marks::mark_point(w)).collect()
        } else {
            match &facts.roots {
                Some(roots) => roots
                    .iter()
                    .map(|r| marks::mark_point(Path::new(r)))
                    .collect(),
                None => vec![PathBuf::from("/")],
            }
        };
        let perm_mask = marks::permission_mask(facts.deny_ops);
        let perm_ops = marks::permission_ops(perm_mask);
        let mut notify_ops = fltpolicy_core::event::OpSet::EMPTY;
        for op in facts.recording_ops.iter() {
            if !perm_ops.contains(op) {
                notify_ops = notify_ops.with(op);
            }
        }
        // Filesystems mounted inside a policy tree are watched too (best
        // effort: one that refuses the marks is reported in `status` as
        // `unwatched`, and `run` warns).
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut nested: Vec<PathBuf> = Vec::new();
        marker.unwatched.clear();
        if marker.watch.is_empty() {
            if let Some(roots) = &facts.roots {
                for m in marks::exec_mount_points(&mountinfo) {
                    let ms = m.to_string_lossy();
                    if roots.iter().any(|r| ms != *r && marks::is_under(&ms, r)) {
                        nested.push(m);
                    }
                }
            }
        }
        let mut wanted: HashMap<[i32; 2], PathBuf> = HashMap::new();
        // Filesystems marked only for FAN_OPEN_EXEC (exec-time images).
        let mut exec_only: HashMap<[i32; 2], PathBuf> = HashMap::new();
        {
            let mut mounts = self
                .shared
                .mounts
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for p in points {
                let fsid = mounts.add(&p).map_err(|source| EngineError::Mark {
                    path: p.clone(),
                    source,
                })?;
                wanted.entry(fsid).or_insert(p);
            }
            for p in &nested {
                match mounts.add(p) {
                    Ok(fsid) => {
                        wanted.entry(fsid).or_insert_with(|| p.clone());
                    }
                    Err(_) => marker.unwatched.push(p.display().to_string()),
                }
            }
            for p in marks::exec_mount_points(&mountinfo) {
                if let Ok(fsid) = mounts.add_lazy(&p) {
                    if !wanted.contains_key(&fsid) {
                        exec_only.entry(fsid).or_insert(p);
                    }
                }
            }
        }
        // A nested filesystem that refuses a mark is reported, not fatal.
        let is_nested = |point: &PathBuf| nested.contains(point);
        let mut refused: Vec<[i32; 2]> = Vec::new();
        // Permission bits.
        for (fsid, point) in &wanted {
            let old_perm = marker.marked.get(fsid).map_or(0, |m| m.2);
            if perm_mask & !old_perm != 0 {
                if let Err(source) = self.responder.group().mark_filesystem(point, perm_mask) {
                    if is_nested(point) {
                        refused.push(*fsid);
                        continue;
                    }
                    return Err(mark_error(point, source));
                }
            }
        }
        for fsid in &refused {
            if let Some(point) = wanted.remove(fsid) {
                marker.unwatched.push(point.display().to_string());
            }
        }
        self.shared.perm_ops.store(perm_ops.0, Ordering::Release);
        // Notification bits.
        for (fsid, point) in &wanted {
            let old_notify = marker.marked.get(fsid).map_or(0, |m| m.1);
            let mut bits = marks::notify_mask(notify_ops, marker.rename_bit);
            if bits & !old_notify != 0 {
                match self.notify.mark_filesystem(point, bits) {
                    Ok(()) => {}
                    // Kernels before 5.17 have no FAN_RENAME: fall back to
                    // the source half of a move.
                    Err(e)
                        if e.raw_os_error() == Some(libc::EINVAL)
                            && marker.rename_bit == mask::RENAME =>
                    {
                        marker.rename_bit = mask::MOVED_FROM;
                        bits = marks::notify_mask(notify_ops, marker.rename_bit);
                        self.notify
                            .mark_filesystem(point, bits)
                            .map_err(|source| mark_error(point, source))?;
                    }
                    Err(_) if is_nested(point) => {
                        marker.unwatched.push(point.display().to_string());
                        continue;
                    }
                    Err(source) => return Err(mark_error(point, source)),
                }
            }
            let stale_notify = old_notify & !bits;
            if stale_notify != 0 {
                let _ = self.notify.unmark_filesystem(point, stale_notify);
            }
            let old_perm = marker.marked.get(fsid).map_or(0, |m| m.2);
            let stale_perm = old_perm & !perm_mask;
            if stale_perm != 0 {
                let _ = self.responder.group().unmark_filesystem(point, stale_perm);
            }
            marker
                .marked
                .insert(*fsid, (point.clone(), bits, perm_mask));
        }
        // Exec events elsewhere (best effort: a filesystem that refuses the
        // mark, e.g. one without file handles, is skipped; its executables
        // are then named from /proc at the exec message).
        for (fsid, point) in &exec_only {
            let (old, old_perm) = marker.marked.get(fsid).map_or((0, 0), |m| (m.1, m.2));
            if old & mask::OPEN_EXEC == 0
                && self.notify.mark_filesystem(point, mask::OPEN_EXEC).is_err()
            {
                continue;
            }
            // A policy filesystem no longer named by the policy keeps only
            // its exec bit.
            if old & !mask::OPEN_EXEC != 0 {
                let _ = self.notify.unmark_filesystem(point, old & !mask::OPEN_EXEC);
            }
            if old_perm != 0 {
                let _ = self.responder.group().unmark_filesystem(point, old_perm);
            }
            marker
                .marked
                .insert(*fsid, (point.clone(), mask::OPEN_EXEC, 0));
            wanted.insert(*fsid, point.clone());
        }
        // Filesystems no policy path needs any more.
        let gone: Vec<[i32; 2]> = marker
            .marked
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .copied()
            .collect();
        for fsid in gone {
            if let Some((point, nb, pb)) = marker.marked.remove(&fsid) {
                let _ = self.notify.unmark_filesystem(&point, nb);
                if pb != 0 {
                    let _ = self.responder.group().unmark_filesystem(&point, pb);
                }
            }
        }
        Ok(())
    }
}

fn mark_error(point: &Path, source: io::Error) -> EngineError {
    if source.raw_os_error() == Some(libc::EPERM) {
        return EngineError::MissingCapability(Capability::SysAdmin);
    }
    // fanotify_mark(FAN_MARK_FILESYSTEM) on a btrfs subvolume that is not
    // the filesystem's root: "Invalid cross-device link" means nothing to
    // an operator.
    if source.raw_os_error() == Some(libc::EXDEV) {
        return EngineError::Subvolume {
            path: point.to_path_buf(),
        };
    }
    EngineError::Mark {
        path: point.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_errors_are_explained() {
        let p = Path::new("/srv/sub");
        let e = mark_error(p, io::Error::from_raw_os_error(libc::EXDEV)).to_string();
        assert!(
            e.contains("btrfs subvolume") && e.contains("--watch"),
            "{e}"
        );
        assert!(!e.contains("cross-device"), "{e}");
        let e = mark_error(p, io::Error::from_raw_os_error(libc::EPERM)).to_string();
        assert!(e.contains("CAP_SYS_ADMIN"), "{e}");
        let e = mark_error(p, io::Error::from_raw_os_error(libc::ENOENT)).to_string();
        assert!(e.contains("/srv/sub"), "{e}");
    }
}
