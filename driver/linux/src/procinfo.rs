//! Who caused an event: the process image (`/proc/PID/exe`), parent pid and
//! user of a pid, resolved once per process and cached.
//!
//! A cache entry is dropped when the process connector
//! ([`crate::sys::proc_connector`]) reports that the process exec'd,
//! exited (so a reused pid is never given the old process's image) or
//! changed uid. Without the connector (no CAP_NET_ADMIN, or not in the
//! initial network namespace) nothing is cached and every event reads
//! `/proc` afresh — correct, only slower ([`ProcessTable::caching`]).
//!
//! Each event thread owns its own table: no locks on the event path.
//! Reading `/proc` never opens a file on a marked filesystem, so the
//! permission thread can never block on its own event.
use std::collections::HashMap;
use std::sync::Arc;

use crate::sys::proc_connector::{Change, ProcEvents};

/// Most processes remembered per thread. A machine with more live
/// processes touching watched files just re-reads `/proc` for some: the
/// table is cleared when full rather than growing without bound.
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

/// Per-thread process cache.
#[derive(Debug)]
pub struct ProcessTable {
    cache: HashMap<u32, Arc<ProcInfo>>,
    events: Option<ProcEvents>,
    users: Arc<Users>,
}

impl ProcessTable {
    pub fn new(users: Arc<Users>) -> ProcessTable {
        ProcessTable {
            cache: HashMap::new(),
            events: ProcEvents::open().ok(),
            users,
        }
    }

    /// Whether entries are cached (the process connector is available).
    pub fn caching(&self) -> bool {
        self.events.is_some()
    }

    /// Applies every exec/exit/uid change reported so far. Call after
    /// reading a batch of fanotify events and before resolving them.
    pub fn sync(&mut self) {
        let Some(events) = self.events.as_mut() else {
            return;
        };
        let cache = &mut self.cache;
        events.drain(|c| match c {
            Change::Invalidate(pid) => {
                cache.remove(&pid);
            }
            Change::Overflow => cache.clear(),
        });
    }

    /// Information about `pid`, from the cache or `/proc`.
    pub fn get(&mut self, pid: u32) -> Arc<ProcInfo> {
        if let Some(info) = self.cache.get(&pid) {
            return Arc::clone(info);
        }
        let info = Arc::new(read_proc(pid, &self.users));
        if self.events.is_some() {
            if self.cache.len() >= MAX_CACHED_PROCESSES {
                self.cache.clear();
            }
            self.cache.insert(pid, Arc::clone(&info));
        }
        info
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
    fn exec_invalidates_the_cached_image() {
        let mut table = ProcessTable::new(Arc::new(Users::load()));
        if !table.caching() {
            eprintln!(
                "skipped: process connector unavailable (needs CAP_NET_ADMIN in the initial netns)"
            );
            return;
        }
        // A child that execs: `sh -c 'read x; exec sleep 5'` — cache its
        // image as sh, then let it exec and check the cache follows.
        use std::io::Write;
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("read x; exec /bin/sleep 5")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let before = table.get(pid);
        assert!(
            before.image.ends_with("sh")
                || before.image.contains("dash")
                || before.image.contains("bash")
        );
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        let mut after = before.clone();
        for _ in 0..500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            table.sync();
            after = table.get(pid);
            if after.image.ends_with("/sleep") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            after.image.ends_with("/sleep"),
            "cached image after exec: {}",
            after.image
        );
    }
}
