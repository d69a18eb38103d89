//! Who caused an event: the process image (`/proc/PID/exe`), parent pid and
//! user of a pid, resolved once per process and cached in a table the
//! process connector keeps current (see [`ProcessTable`]).
//!
//! Event threads take a read lock for a lookup; the write lock is held only
//! to apply connector messages, never across a `/proc` read. Reading
//! `/proc` never opens a file on a marked filesystem, so the permission
//! thread can never block on its own event.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::sys::proc_connector::{Change, ProcEvents};

/// Most processes remembered. A machine with more live processes touching
/// watched files just re-reads `/proc` for some: the table stops growing
/// (and sheds exited entries) rather than growing without bound.
pub const MAX_CACHED_PROCESSES: usize = 32_768;

/// What the engine knows about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Full path of the executable, or empty when it cannot be read (the
    /// process already exited, or a kernel thread).
    pub image: String,
    pub ppid: u64,
    /// User name from `/etc/passwd` (read once at start), else the uid.
    pub user: String,
}

/// uid → user name, read from `/etc/passwd` once at start-up (before any
/// mark exists: reading it later from the permission thread could block on
/// itself). NSS is deliberately not used: it may load modules and open
/// files at arbitrary times.
#[derive(Debug, Default, Clone)]
pub struct Users {
    names: HashMap<u32, String>,
}

impl Users {
    pub fn load() -> Users {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Users::parse(&text)
    }

    pub fn parse(text: &str) -> Users {
        let mut names = HashMap::new();
        for line in text.lines() {
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let Ok(uid) = uid.parse::<u32>() {
                names.entry(uid).or_insert_with(|| name.to_string());
            }
        }
        Users { names }
    }

    pub fn name(&self, uid: u32) -> String {
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
}

/// How long a process's entry is kept after it exits: fanotify events are
/// read asynchronously, so events of a short-lived process are often
/// evaluated after it is gone. Ten seconds covers any queue backlog the
/// engine can drain; a pid reused within that time gets a fresh entry from
/// its fork message anyway.
pub const EXIT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Entry {
    info: Arc<ProcInfo>,
    exited: Option<Instant>,
}

/// The process table shared by the event threads, kept current by the
/// process connector.
///
/// * fork: the child inherits the parent's entry (same image) with its
///   parent as ppid — no `/proc` read;
/// * exec: the new image is read from `/proc/PID/exe` at once, while the
///   process certainly exists;
/// * uid change: the user is updated;
/// * exit: the entry is kept for [`EXIT_GRACE`] so that late events still
///   name their process, then purged.
///
/// A pid with no entry (a process older than the engine) is read from
/// `/proc` on first use. Without the connector (no CAP_NET_ADMIN, or not in
/// the initial network namespace) nothing is cached and every lookup reads
/// `/proc` ([`ProcessTable::caching`] is false): correct for live
/// processes, but a process that exited before its events were read is
/// recorded with an empty image.
#[derive(Debug)]
pub struct ProcessTable {
    entries: RwLock<HashMap<u32, Entry>>,
    events: Option<Mutex<ProcEvents>>,
    users: Arc<Users>,
}

impl ProcessTable {
    pub fn new(users: Arc<Users>) -> ProcessTable {
        ProcessTable {
            entries: RwLock::new(HashMap::new()),
            events: ProcEvents::open().ok().map(Mutex::new),
            users,
        }
    }

    /// Whether entries are cached (the process connector is available).
    pub fn caching(&self) -> bool {
        self.events.is_some()
    }

    /// The connector's descriptor, for the tracker thread to poll.
    pub fn connector_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.events
            .as_ref()
            .map(|e| e.lock().unwrap_or_else(|p| p.into_inner()).as_raw_fd())
    }

    /// Applies every fork/exec/exit/uid change reported so far. The tracker
    /// thread calls it when the connector is readable; event threads call
    /// it after reading a batch, so the batch sees every change that
    /// happened before it.
    pub fn sync(&self) {
        let Some(events) = self.events.as_ref() else {
            return;
        };
        let mut events = events.lock().unwrap_or_else(|p| p.into_inner());
        let mut changes = Vec::new();
        events.drain(|c| changes.push(c));
        drop(events);
        if changes.is_empty() {
            return;
        }
        // Exec'd images are read before taking the write lock.
        let execs: HashMap<u32, ProcInfo> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Exec(pid) => Some((*pid, read_proc(*pid, &self.users))),
                _ => None,
            })
            .collect();
        let parents: HashMap<u32, ProcInfo> = {
            let known = self.entries.read().unwrap_or_else(|p| p.into_inner());
            changes
                .iter()
                .filter_map(|c| match c {
                    Change::Fork { parent, .. } if !known.contains_key(parent) => Some(*parent),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|p| (p, read_proc(p, &self.users)))
                .filter(|(_, i)| !i.image.is_empty())
                .collect()
        };
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for c in changes {
            match c {
                Change::Fork { parent, child } => {
                    // A parent the table never saw (older than the engine,
                    // or its own fork message was lost) is read now, while
                    // it certainly exists (it is the one forking).
                    if let (std::collections::hash_map::Entry::Vacant(v), Some(info)) =
                        (map.entry(parent), parents.get(&parent))
                    {
                        v.insert(Entry {
                            info: Arc::new(info.clone()),
                            exited: None,
                        });
                    }
                    let inherited = map.get(&parent).map(|e| {
                        let mut info = (*e.info).clone();
                        info.ppid = u64::from(parent);
                        info
                    });
                    match inherited {
                        Some(info) => {
                            map.insert(
                                child,
                                Entry {
                                    info: Arc::new(info),
                                    exited: None,
                                },
                            );
                        }
                        None => {
                            map.remove(&child);
                        }
                    }
                }
                Change::Exec(pid) => {
                    if let Some(info) = execs.get(&pid) {
                        if info.image.is_empty() {
                            // Gone before it could be read: keep what the
                            // table has (the image the fanotify exec event
                            // set, see `set_image`, or the pre-exec one).
                        } else {
                            map.insert(
                                pid,
                                Entry {
                                    info: Arc::new(info.clone()),
                                    exited: None,
                                },
                            );
                        }
                    }
                }
                Change::Uid { pid, euid } => {
                    if let Some(e) = map.get_mut(&pid) {
                        let mut info = (*e.info).clone();
                        info.user = self.users.name(euid);
                        e.info = Arc::new(info);
                    }
                }
                Change::Exit(pid) => {
                    if let Some(e) = map.get_mut(&pid) {
                        e.exited = Some(Instant::now());
                    }
                }
                Change::Overflow => map.clear(),
            }
        }
        if map.len() >= MAX_CACHED_PROCESSES {
            map.retain(|_, e| e.exited.is_none());
        }
    }

    /// The process `pid` executed `image`, as a fanotify `FAN_OPEN_EXEC`
    /// event says — in the order of the file events, so the events it
    /// caused before the exec keep the old image and those after get the
    /// new one, however short-lived the process. Parent and user come from
    /// the entry the fork message made (or `/proc`, while it lives).
    pub fn set_image(&self, pid: u32, image: &str) {
        self.sync();
        let base = {
            let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
            map.get(&pid).map(|e| (*e.info).clone())
        };
        let mut info = base.unwrap_or_else(|| read_proc(pid, &self.users));
        if info.image == image {
            return;
        }
        info.image = image.to_string();
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_PROCESSES && !map.contains_key(&pid) {
            return;
        }
        let exited = map.get(&pid).and_then(|e| e.exited);
        map.insert(
            pid,
            Entry {
                info: Arc::new(info),
                exited,
            },
        );
    }

    /// Drops entries of processes that exited more than [`EXIT_GRACE`] ago.
    pub fn purge(&self) {
        let now = Instant::now();
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| e.exited.is_none_or(|t| now.duration_since(t) < EXIT_GRACE));
    }

    /// Information about `pid`, from the table or `/proc`.
    pub fn get(&self, pid: u32) -> Arc<ProcInfo> {
        if let Some(e) = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
        {
            return Arc::clone(&e.info);
        }
        let info = Arc::new(read_proc(pid, &self.users));
        if self.caching() && !info.image.is_empty() {
            let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
            if map.len() < MAX_CACHED_PROCESSES {
                map.entry(pid).or_insert_with(|| Entry {
                    info: Arc::clone(&info),
                    exited: None,
                });
            }
        }
        info
    }
}

/// The tracker thread: applies connector messages as they arrive (so an
/// exec'd image is captured while the process runs) and purges exited
/// entries. Returns when `stop` is set and `wake` is signalled.
pub fn track(
    table: Arc<ProcessTable>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    wake: Arc<crate::sys::wake::Wake>,
) {
    use std::os::fd::AsRawFd;
    let Some(fd) = table.connector_fd() else {
        return;
    };
    let mut last_purge = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let _ = crate::sys::fd::poll_readable(&[fd, wake.as_raw_fd()], 1000);
        table.sync();
        if last_purge.elapsed() >= Duration::from_secs(1) {
            table.purge();
            last_purge = Instant::now();
        }
    }
}

/// Reads `/proc/PID/exe` and `/proc/PID/status` (PPid, Uid).
pub fn read_proc(pid: u32, users: &Users) -> ProcInfo {
    let image = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| {
            let mut s = p.to_string_lossy().into_owned();
            crate::path::strip_deleted(&mut s);
            s
        })
        .unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let (ppid, uid) = parse_status(&status);
    ProcInfo {
        image,
        ppid,
        user: uid.map(|u| users.name(u)).unwrap_or_default(),
    }
}

/// `PPid:` and the effective uid (second field of `Uid:`).
fn parse_status(status: &str) -> (u64, Option<u32>) {
    let mut ppid = 0;
    let mut uid = None;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("PPid:") {
            ppid = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Uid:") {
            uid = v.split_whitespace().nth(1).and_then(|u| u.parse().ok());
        }
    }
    (ppid, uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let users = Users::load();
        let me = read_proc(std::process::id(), &users);
        assert_eq!(me.image, std::env::current_exe().unwrap().to_string_lossy());
        assert!(me.ppid > 0);
        assert!(!me.user.is_empty());
    }

    #[test]
    fn parses_passwd_and_status() {
        let u = Users::parse(
            "root:x:0:0:root:/root:/bin/sh\nbad line\nalice:x:1000:1000::/home/a:/bin/sh\n",
        );
        assert_eq!(u.name(0), "root");
        assert_eq!(u.name(1000), "alice");
        assert_eq!(u.name(5), "5");
        assert_eq!(parse_status("PPid:\t12\nUid:\t1\t2\t3\t4\n"), (12, Some(2)));
    }

    #[test]
    fn exec_updates_and_exit_keeps_the_image() {
        let table = ProcessTable::new(Arc::new(Users::load()));
        if !table.caching() {
            eprintln!(
                "skipped: process connector unavailable (needs CAP_NET_ADMIN in the initial netns)"
            );
            return;
        }
        use std::io::Write;
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("read x; exec /bin/sleep 0.3")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let before = table.get(pid);
        assert!(!before.image.ends_with("/sleep"), "{}", before.image);
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        let mut after = before.clone();
        for _ in 0..1000 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            table.sync();
            after = table.get(pid);
            if after.image.ends_with("/sleep") {
                break;
            }
        }
        assert!(
            after.image.ends_with("/sleep"),
            "image after exec: {}",
            after.image
        );
        child.wait().unwrap();
        // Gone from /proc, still named by the table.
        table.sync();
        assert!(std::fs::read_link(format!("/proc/{pid}/exe")).is_err());
        assert!(table.get(pid).image.ends_with("/sleep"));
    }
}
