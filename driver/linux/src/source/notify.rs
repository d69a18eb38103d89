//! The notification thread: create, delete, rename, write, setinfo, close
//! (and open/read when no rule can deny them), reported with directory
//! handles and names.
//!
//! Paths come from the namespace mirror ([`crate::mirror`]): every event is
//! resolved against the directory tree as it was when the kernel queued
//! the event, then the event's own directory create/rename/delete is
//! applied. `open_by_handle_at` is used only for a directory the mirror
//! has never seen (outside the scanned policy trees). An event that still
//! cannot be placed is a loss (`unresolved` drop record) only if it could
//! lie inside a policy tree.
use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::marks;
use crate::mirror::Mirror;
use crate::sink::UpstreamLoss;
use crate::slot::PolicyReader;
use crate::stats::Counters;
use crate::sys::fanotify::{mask, DirEntry, Events, Group};
use crate::sys::{fd, handle, wake::Wake};

use super::{decide_and_record, may_record, Shared, TwoPaths, EVENT_BUFFER_BYTES};

/// After draining the group, the thread waits this long before it polls
/// again, so that a busy filesystem costs one wake-up and one `read` per
/// interval instead of one per event: profiles of the file-heavy benchmark
/// showed the engine's time going to context switches (poll, read of one
/// or two events, poll), not to evaluation. Nothing waits on these events —
/// the operations already happened — so the only effect is that a record
/// reaches the queue up to this much later. Its time is not when it was
/// evaluated: fanotify events carry no timestamp, so a record carries the
/// earliest time its event can have happened — when the thread, idle,
/// was woken by it, or, for events that queued up during the coalescing
/// sleep, the start of that sleep (the previous drain had emptied the
/// queue). It is at most `COALESCE_DELAY` early, and never later than the
/// operation, so a create is not logged after the denied open of the file
/// it created (the permission thread's records carry the time the kernel
/// handed it the event, while the process waits). 5 ms of a busy
/// filesystem (the benchmark makes ~100k events/s, i.e. ~500 per interval)
/// fits the kernel's queue (16384 events) many times over. Measured on the
/// file-heavy benchmark: 1 ms gave 10–13% overhead for a log-only policy,
/// 5 ms 7–8% with a quarter less engine CPU. The permission
/// thread never waits: a process is blocked on each of its events.
pub const COALESCE_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// A poll that returned later than this waited for its first event.
const POLL_WAITED_NS: u64 = 200_000;

/// Queue ring hint of this thread's records.
const THREAD_HINT: usize = 0;

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Resolved; `true` when the path is in the escaped (non-UTF-8) form.
    Known { escaped: bool },
    /// Not placeable: its directory is gone and was never seen.
    Unknown,
}

/// The mirror plus scratch buffers.
#[derive(Debug, Default)]
struct Resolver {
    mirror: Mirror,
    key: Vec<u8>,
    bytes: Vec<u8>,
    /// The current event's source path, as bytes (for [`Resolver::apply`]).
    old: Vec<u8>,
    /// Roots the mirror was scanned for.
    scanned: Option<Option<Vec<String>>>,
    /// Permission roots whose files were scanned into `Shared::protected`.
    protected_for: Option<Option<Vec<String>>>,
}

impl Resolver {
    /// Scans the policy's trees when they changed (start, reload) or the
    /// mirror was cleared (overflow).
    fn ensure_scanned(&mut self, roots: &Option<Vec<String>>) {
        if self.scanned.as_ref() == Some(roots) {
            return;
        }
        self.mirror.clear();
        if let Some(r) = roots {
            self.mirror.scan(r);
        }
        self.scanned = Some(roots.clone());
    }

    /// Fills `shared.protected` with the files inside the permission trees
    /// (when those changed: start, reload).
    fn ensure_protected(&mut self, shared: &Shared, perm_roots: &Option<Vec<String>>) {
        if self.protected_for.as_ref() == Some(perm_roots) {
            return;
        }
        self.protected_for = Some(perm_roots.clone());
        let mut map = std::collections::HashMap::new();
        if let Some(roots) = perm_roots {
            let mut budget = crate::mirror::MAX_SCAN;
            let mut key = Vec::new();
            for r in roots {
                scan_files(std::path::Path::new(r), &mut map, &mut key, &mut budget);
            }
        }
        *shared.protected.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    fn rescan(&mut self) {
        self.scanned = None;
    }

    /// The path of `entry` into `out`.
    fn place(&mut self, shared: &Shared, entry: &DirEntry<'_>, out: &mut String) -> Place {
        entry.dir.key_into(&mut self.key);
        if !self.mirror.path_of(&self.key, &mut self.bytes) {
            let gone = {
                let mounts = shared.mounts.read().unwrap_or_else(|e| e.into_inner());
                handle::resolve_dir_checked(&mounts, &entry.dir, &mut self.bytes)
            };
            match gone {
                Ok(gone) => {
                    if gone {
                        crate::path::strip_deleted_bytes(&mut self.bytes);
                    } else {
                        crate::path::normalize_bytes(&mut self.bytes);
                        self.mirror.anchor(&self.key, &self.bytes);
                    }
                }
                Err(_) => return Place::Unknown,
            }
        }
        if entry.name != b"." && !entry.name.is_empty() {
            if self.bytes.last() != Some(&b'/') {
                self.bytes.push(b'/');
            }
            self.bytes.extend_from_slice(entry.name);
        }
        crate::path::normalize_bytes(&mut self.bytes);
        Place::Known {
            escaped: crate::path::from_bytes(&self.bytes, out),
        }
    }

    /// Applies a directory create / rename / delete to the mirror, after
    /// the event itself was resolved. `new_path` is the rename's
    /// destination as resolved.
    /// `old_known`: the source was placed (its path is in `self.old`).
    fn apply(&mut self, ev: &crate::sys::fanotify::Event<'_>, old_known: bool) {
        if ev.mask & mask::ONDIR == 0 {
            return;
        }
        let Some(obj) = ev.object else {
            // No target handles (kernel < 5.17): a moved directory's
            // descendants are re-resolved from the kernel when next seen.
            if ev.mask & (mask::RENAME | mask::MOVED_FROM | mask::DELETE) != 0 {
                self.mirror.clear();
                self.scanned = None;
            }
            return;
        };
        let mut obj_key = Vec::new();
        obj.key_into(&mut obj_key);
        if ev.mask & mask::CREATE != 0 {
            if let Some(e) = ev.entry {
                e.dir.key_into(&mut self.key);
                let key = std::mem::take(&mut self.key);
                self.mirror.link(&key, e.name, &obj_key);
                self.key = key;
            }
        }
        if ev.mask & mask::RENAME != 0 {
            if let Some(n) = ev.new_entry {
                let known = self.mirror.knows(&obj_key);
                n.dir.key_into(&mut self.key);
                let key = std::mem::take(&mut self.key);
                let linked = self.mirror.link(&key, n.name, &obj_key);
                self.key = key;
                if old_known {
                    let old = std::mem::take(&mut self.old);
                    self.mirror.forget_anchors_under(&old);
                    self.old = old;
                }
                if linked && !known {
                    // A tree the mirror never saw moved in: read it now.
                    self.mirror.scan_subtree(&obj_key);
                }
                if !linked {
                    self.mirror.forget(&obj_key);
                }
            }
        }
        if ev.mask & mask::DELETE != 0 {
            self.mirror.unlink(&obj_key);
        }
    }
}

/// Whether `path` is the ELF program interpreter (the dynamic loader,
/// `ld-linux-x86-64.so.2`, `ld-musl-*.so.1`, `ld.so`), which `execve` also
/// opens for execution (a second `FAN_OPEN_EXEC` after the program's own):
/// the process's image stays the program. (A `#!` script's interpreter is
/// a program: its exec event comes after the script's and wins, like
/// `/proc/PID/exe`.)
fn is_program_interpreter(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.starts_with("ld-") || name.starts_with("ld.so")) && name.contains(".so")
}

/// Records every file below `dir` (same filesystem) by handle key.
fn scan_files(
    dir: &std::path::Path,
    map: &mut std::collections::HashMap<Box<[u8]>, String>,
    key: &mut Vec<u8>,
    budget: &mut usize,
) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return;
    };
    let Ok(fsid) = handle::fsid_of_path(&c) else {
        return;
    };
    let mut stack = vec![(dir.to_path_buf(), fsid)];
    while let Some((d, fsid)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let p = e.path();
            let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
                continue;
            };
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                // A filesystem mounted inside the tree is scanned too
                // (the engine marks it), with its own fsid.
                if let Ok(here) = handle::fsid_of_path(&c) {
                    stack.push((p, here));
                }
                continue;
            }
            if handle::key_of_path(&c, fsid, key).is_ok() {
                let mut s = String::new();
                crate::path::from_bytes(p.as_os_str().as_bytes(), &mut s);
                map.insert(key.as_slice().into(), s);
            }
        }
    }
}

/// Keeps `Shared::protected` current for one event: a file created or
/// moved into a permission tree is recorded, one moved out forgotten.
fn track_protected(
    shared: &Shared,
    perm_roots: &Option<Vec<String>>,
    ev: &crate::sys::fanotify::Event<'_>,
    path: &str,
    new_path: &str,
) {
    let Some(roots) = perm_roots else {
        return;
    };
    if ev.mask & mask::ONDIR != 0 {
        return;
    }
    let Some(obj) = ev.object else {
        return;
    };
    let inside = |p: &str| !p.is_empty() && roots.iter().any(|r| marks::is_under(p, r));
    let mut key = Vec::new();
    obj.key_into(&mut key);
    if ev.mask & mask::CREATE != 0 && inside(path) {
        shared
            .protected
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone().into(), path.to_string());
    }
    if ev.mask & mask::RENAME != 0 {
        let mut map = shared.protected.write().unwrap_or_else(|e| e.into_inner());
        if inside(new_path) {
            map.insert(key.into(), new_path.to_string());
        } else if inside(path) {
            map.remove(key.as_slice());
        }
    }
}

/// Runs until `shared.stop` is set and the group is drained.
pub fn run(group: Arc<Group>, shared: Arc<Shared>, wake: Arc<Wake>) {
    let mut buf = vec![0u8; EVENT_BUFFER_BYTES];
    let mut procs = super::BatchProcs::new(Arc::clone(&shared.procs));
    let mut reader = PolicyReader::new(&shared.slot);
    let mut res = Resolver::default();
    {
        let facts = reader.refresh(&shared.slot).facts.clone();
        res.ensure_scanned(&facts.roots);
        res.ensure_protected(&shared, &facts.perm_roots);
    }
    let mut path = String::new();
    let mut new_path = String::new();
    // Earliest time the events of the next read can have happened.
    let mut since_ns = super::now_ns();
    loop {
        let stopping = shared.stopping();
        // Every event of this drain queued after `since_ns` (a read that
        // fills the buffer leaves older ones for the next read).
        let batch_ns = since_ns;
        loop {
            let n = match group.read_events(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => break,
            };
            procs.new_batch();
            let policy = Arc::clone(reader.refresh(&shared.slot));
            res.ensure_scanned(&policy.facts.roots);
            res.ensure_protected(&shared, &policy.facts.perm_roots);
            let perm_ops = shared.perm_ops();
            for ev in Events::new(&buf[..n]) {
                if let Some(fd) = ev.fd {
                    // Descriptor-mode events are not requested; close defensively.
                    drop(fd::owned(fd));
                }
                if ev.mask & mask::Q_OVERFLOW != 0 {
                    Counters::inc(&shared.counters.kernel_overflows);
                    shared.sink.lost_upstream(UpstreamLoss::KernelQueueOverflow);
                    res.rescan();
                    res.ensure_scanned(&policy.facts.roots);
                    continue;
                }
                let Some(entry) = ev.entry else {
                    continue;
                };
                let mut place = res.place(&shared, &entry, &mut path);
                res.old.clone_from(&res.bytes);
                let mut new_place = match &ev.new_entry {
                    Some(new) => res.place(&shared, new, &mut new_path),
                    None => Place::Unknown,
                };
                // An unplaceable side is recorded as an empty path, never a
                // stale one.
                if place == Place::Unknown {
                    path.clear();
                }
                if new_place == Place::Unknown {
                    new_path.clear();
                }
                // One escape flag covers both paths of a rename: if either
                // needed the escaped form, both are written in it.
                if let (Place::Known { escaped: a }, Place::Known { escaped: b }) =
                    (place, new_place)
                {
                    if a != b {
                        if !a {
                            crate::path::escaped_always(&res.old, &mut path);
                        } else {
                            crate::path::escaped_always(&res.bytes, &mut new_path);
                        }
                        place = Place::Known { escaped: true };
                        new_place = Place::Known { escaped: true };
                    }
                }
                if ev.pid as u32 == shared.own_pid {
                    Counters::inc(&shared.counters.own_events);
                    res.apply(&ev, place != Place::Unknown);
                    continue;
                }
                // An exec: the process's image from here on (in queue order,
                // so its earlier events kept the old one).
                if ev.mask & mask::OPEN_EXEC != 0 {
                    if let Place::Known { .. } = place {
                        if !is_program_interpreter(&path) {
                            shared.procs.set_image(ev.pid as u32, &path);
                        }
                    }
                    if ev.mask & !(mask::OPEN_EXEC | mask::ONDIR) == 0 {
                        continue;
                    }
                }
                if place == Place::Unknown {
                    Counters::inc(&shared.counters.unresolved);
                }
                for op in marks::ops_of_notification(ev.mask) {
                    if perm_ops.contains(op) {
                        continue;
                    }
                    // One kernel event can carry several merged operations;
                    // each counts as one event seen.
                    Counters::inc(&shared.counters.events_seen);
                    // A rename is evaluated on its source path, and on its
                    // destination when the source matches nothing: moving a
                    // file into or out of a watched tree are both renames
                    // there.
                    let candidates = [
                        (&path, place),
                        (
                            &new_path,
                            if op == fltpolicy_core::event::Op::Rename {
                                new_place
                            } else {
                                Place::Unknown
                            },
                        ),
                    ];
                    let mut recorded = false;
                    let is_rename = op == fltpolicy_core::event::Op::Rename;
                    for (side, (p, pl)) in candidates.into_iter().enumerate() {
                        let Place::Known { escaped } = pl else {
                            continue;
                        };
                        if !may_record(&policy.facts, op, p) {
                            continue;
                        }
                        let action = decide_and_record(
                            &shared,
                            &policy,
                            &mut procs,
                            THREAD_HINT,
                            batch_ns,
                            op,
                            p,
                            ev.pid as u32,
                            0,
                            escaped,
                            (is_rename && new_place != Place::Unknown).then_some(TwoPaths {
                                source: &path,
                                target: &new_path,
                                on_target: side == 1,
                            }),
                            |_| None,
                        );
                        if action != fltpolicy_core::event::Action::None {
                            recorded = true;
                            break;
                        }
                    }
                    // The source path could not be resolved, so this
                    // operation was never evaluated on it (a rename recorded
                    // on its destination is in the log). It is a loss only
                    // if a rule records this operation and the directory
                    // could lie in a policy tree; the mirror knows every
                    // directory in those trees, so an unknown one is
                    // outside them (counted apart, not a loss).
                    if place == Place::Unknown
                        && !recorded
                        && policy.facts.recording_ops.contains(op)
                    {
                        let could_match = policy.facts.roots.is_none() || !res.mirror.complete();
                        if could_match {
                            shared.sink.lost_upstream(UpstreamLoss::UnresolvedPath);
                        } else {
                            Counters::inc(&shared.counters.unresolved_outside);
                        }
                    }
                }
                track_protected(&shared, &policy.facts.perm_roots, &ev, &path, &new_path);
                // A directory moving into (or above) a permission tree may
                // now hold files the permission thread stopped being asked
                // about: it drops its ignore marks.
                if ev.mask & mask::ONDIR != 0 && ev.mask & mask::RENAME != 0 {
                    let into = match &policy.facts.perm_roots {
                        None => false,
                        Some(roots) => {
                            new_place == Place::Unknown
                                || roots.iter().any(|r| {
                                    marks::is_under(&new_path, r) || marks::is_under(r, &new_path)
                                })
                        }
                    };
                    if into {
                        // Dropped here, as the rename is processed: the
                        // permission thread would only notice at its next
                        // event, and the moved directory's opens produce
                        // none while its mark stands.
                        let fd = shared.perm_fd.load(std::sync::atomic::Ordering::Acquire);
                        if fd >= 0 {
                            let _ = crate::sys::fanotify::flush_inode_marks_of(fd);
                        }
                        shared
                            .ignore_epoch
                            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    }
                }
                res.apply(&ev, place != Place::Unknown);
            }
        }
        if stopping {
            return;
        }
        // Let events accumulate before the next read (see COALESCE_DELAY).
        let sleep_start = super::now_ns();
        std::thread::sleep(COALESCE_DELAY);
        let before_poll = super::now_ns();
        let _ = fd::poll_readable(&[group.as_raw_fd(), wake.as_raw_fd()], -1);
        let after_poll = super::now_ns();
        // Events that arrived while we slept happened after the sleep
        // began; if poll had to wait, the first event woke it.
        since_ns = if after_poll.saturating_sub(before_poll) > POLL_WAITED_NS {
            after_poll
        } else {
            sleep_start
        };
    }
}

#[cfg(test)]
mod tests {
    use super::is_program_interpreter;

    #[test]
    fn the_dynamic_loader_is_not_an_image() {
        for p in [
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "/lib/ld-musl-x86_64.so.1",
            "/usr/lib/ld.so",
        ] {
            assert!(is_program_interpreter(p), "{p}");
        }
        for p in [
            "/usr/bin/ld",
            "/usr/bin/ld.bfd",
            "/usr/bin/dash",
            "/opt/ld-tool",
        ] {
            assert!(!is_program_interpreter(p), "{p}");
        }
    }
}
