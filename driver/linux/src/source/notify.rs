//! The notification thread: create, delete, rename, write, setinfo, close
//! (and open/read when no rule can deny them), reported with directory
//! handles and names.
//!
//! Paths come from a cache of directory handle → directory path, filled
//! with `open_by_handle_at` on a miss. The cache is cleared when a
//! directory is renamed (its children's paths change) and on
//! `FAN_Q_OVERFLOW` (a rename may have been among the lost events), so a
//! cached path is never older than the last rename the thread has seen.
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::marks;
use crate::sink::UpstreamLoss;
use crate::slot::PolicyReader;
use crate::stats::Counters;
use crate::sys::fanotify::{mask, DirEntry, Events, Group};
use crate::sys::{fd, handle, wake::Wake};

use super::{decide_and_record, may_record, Shared, EVENT_BUFFER_BYTES};

/// After draining the group, the thread waits this long before it polls
/// again, so that a busy filesystem costs one wake-up and one `read` per
/// interval instead of one per event: profiles of the file-heavy benchmark
/// showed the engine's time going to context switches (poll, read of one
/// or two events, poll), not to evaluation. Nothing waits on these events —
/// the operations already happened — so the only effect is that a record
/// reaches the queue up to this much later (its time is when the engine
/// evaluated it; fanotify events carry no timestamp). 5 ms of a busy
/// filesystem (the benchmark makes ~100k events/s, i.e. ~500 per interval)
/// fits the kernel's queue (16384 events) many times over. Measured on the
/// file-heavy benchmark: 1 ms gave 10–13% overhead for a log-only policy,
/// 5 ms 7–8% with a quarter less engine CPU. The permission
/// thread never waits: a process is blocked on each of its events.
pub const COALESCE_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// Queue ring hint of this thread's records.
const THREAD_HINT: usize = 0;
/// Most directory paths cached; cleared when full (a miss only costs one
/// `open_by_handle_at`).
pub const MAX_CACHED_DIRS: usize = 65_536;

/// Directory handle → path.
#[derive(Debug, Default)]
struct DirCache {
    map: HashMap<Box<[u8]>, String>,
    key: Vec<u8>,
}

impl DirCache {
    /// Resolves `entry` to a full path in `out`. `false` when the directory
    /// cannot be opened (deleted meanwhile, or an unmarked filesystem).
    fn path_of(&mut self, shared: &Shared, entry: &DirEntry<'_>, out: &mut String) -> bool {
        entry.dir.key_into(&mut self.key);
        if let Some(dir) = self.map.get(self.key.as_slice()) {
            crate::path::join(dir, entry.name, out);
            return true;
        }
        let mut dir = String::new();
        let ok = {
            let mounts = shared.mounts.read().unwrap_or_else(|e| e.into_inner());
            handle::resolve_dir(&mounts, &entry.dir, &mut dir).is_ok()
        };
        if !ok {
            return false;
        }
        crate::path::strip_deleted(&mut dir);
        crate::path::normalize(&mut dir);
        crate::path::join(&dir, entry.name, out);
        if self.map.len() >= MAX_CACHED_DIRS {
            self.map.clear();
        }
        self.map.insert(self.key.clone().into_boxed_slice(), dir);
        true
    }

    fn clear(&mut self) {
        self.map.clear();
    }
}

/// Runs until `shared.stop` is set and the group is drained.
pub fn run(group: Arc<Group>, shared: Arc<Shared>, wake: Arc<Wake>) {
    let mut buf = vec![0u8; EVENT_BUFFER_BYTES];
    let mut procs = super::BatchProcs::new(Arc::clone(&shared.procs));
    let mut reader = PolicyReader::new(&shared.slot);
    let mut dirs = DirCache::default();
    let mut path = String::new();
    let mut new_path = String::new();
    loop {
        let stopping = shared.stopping();
        loop {
            let n = match group.read_events(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => break,
            };
            procs.new_batch();
            let policy = Arc::clone(reader.refresh(&shared.slot));
            let perm_ops = shared.perm_ops();
            for ev in Events::new(&buf[..n]) {
                if let Some(fd) = ev.fd {
                    // Descriptor-mode events are not requested; close defensively.
                    drop(fd::owned(fd));
                }
                if ev.mask & mask::Q_OVERFLOW != 0 {
                    Counters::inc(&shared.counters.kernel_overflows);
                    shared.sink.lost_upstream(UpstreamLoss::KernelQueueOverflow);
                    dirs.clear();
                    continue;
                }
                if ev.pid as u32 == shared.own_pid {
                    Counters::inc(&shared.counters.own_events);
                    continue;
                }
                let dir_moved = ev.mask & mask::ONDIR != 0
                    && ev.mask
                        & (mask::RENAME | mask::MOVED_FROM | mask::MOVED_TO | mask::MOVE_SELF)
                        != 0;
                let Some(entry) = ev.entry else {
                    if dir_moved {
                        dirs.clear();
                    }
                    continue;
                };
                let resolved = dirs.path_of(&shared, &entry, &mut path);
                if !resolved {
                    Counters::inc(&shared.counters.unresolved);
                }
                let new_resolved = match &ev.new_entry {
                    Some(new) => dirs.path_of(&shared, new, &mut new_path),
                    None => false,
                };
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
                    let candidates: [(&str, bool); 2] = [
                        (&path, resolved),
                        (
                            &new_path,
                            new_resolved && op == fltpolicy_core::event::Op::Rename,
                        ),
                    ];
                    let mut recorded = false;
                    for (p, ok) in candidates {
                        if !ok || !may_record(&policy.facts, op, p) {
                            continue;
                        }
                        let action = decide_and_record(
                            &shared,
                            &policy,
                            &mut procs,
                            THREAD_HINT,
                            op,
                            p,
                            ev.pid as u32,
                            0,
                            |_| None,
                        );
                        if action != fltpolicy_core::event::Action::None {
                            recorded = true;
                            break;
                        }
                    }
                    // The source path could not be resolved, so this
                    // operation was never evaluated on it (a rename recorded
                    // on its destination is in the log; anything else is
                    // lost): the log gets a drop record (reason
                    // `unresolved`) for it.
                    if !resolved && !recorded {
                        shared.sink.lost_upstream(UpstreamLoss::UnresolvedPath);
                    }
                }
                if dir_moved {
                    dirs.clear();
                }
            }
        }
        if stopping {
            return;
        }
        // Let events accumulate before the next read (see COALESCE_DELAY).
        std::thread::sleep(COALESCE_DELAY);
        let _ = fd::poll_readable(&[group.as_raw_fd(), wake.as_raw_fd()], -1);
    }
}
