//! Ground truth for the Linux engine: what file operations a workload
//! really performed, derived from `strace -f -y -xx -z` (a tracer that
//! follows fork, exec and every descriptor, independent of fanotify), and a
//! record-by-record comparison with what the engine logged.
//!
//! The trace is read in completion order. Paths are taken as the kernel saw
//! them at the time of each system call: `-y` prints every descriptor
//! argument, `AT_FDCWD` included, with the path it had at that moment, and
//! relative paths of the non-`at` calls are joined to the process's current
//! directory (tracked through `chdir`/`fchdir`, inherited on fork, and
//! corrected by every `AT_FDCWD<...>` strace prints). Whether an `O_CREAT`
//! open created the file is decided by a mirror of the traced namespace
//! (seeded with the tree as it was before the workload).
//!
//! The operations derived, per system call (success only, `-z`):
//!
//! | call | operation(s) |
//! |------|--------------|
//! | `open*`/`creat` with `O_CREAT` on a name that did not exist | create |
//! | `open*` with `O_TRUNC` on an existing regular file | write |
//! | `mkdir*`, `mknod*`, `symlink*`, `link*` (new name) | create |
//! | `unlink*`, `rmdir` | delete |
//! | `rename*` | rename (source and destination) |
//! | `write`, `pwrite64`, `writev`, `pwritev*` (> 0 bytes), `ftruncate`, `truncate`, `fallocate`, `copy_file_range`/`sendfile`/`splice` (destination) | write |
//! | `chmod*`, `chown*`, `utime*`, `*setxattr`, `*removexattr` | setinfo (but `utimensat` of the modification time alone: write, as the kernel reports it) |
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One operation that happened.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    pub op: &'static str,
    /// Path (rename: source), as bytes.
    pub path: Vec<u8>,
    /// Rename destination.
    pub target: Option<Vec<u8>>,
    /// Thread-group id.
    pub pid: u32,
    /// Image the process was running (resolved through `#!`).
    pub image: String,
}

/// One record the engine logged, reduced to what is compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    pub op: String,
    pub path: String,
    pub target: Option<String>,
    pub pid: u32,
    pub image: String,
}

/// A path's representation in the log: UTF-8 as is; anything
/// else escaped (`\xNN` for each byte of an invalid sequence, `\\` for a
/// backslash), which is how the engine writes a non-UTF-8 path (with its
/// `path_escaped` flag set).
pub fn log_form(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::new();
            let mut rest = bytes;
            loop {
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        out.push_str(&s.replace('\\', "\\\\"));
                        break;
                    }
                    Err(e) => {
                        let (ok, bad) = rest.split_at(e.valid_up_to());
                        out.push_str(&std::str::from_utf8(ok).unwrap().replace('\\', "\\\\"));
                        let n = e.error_len().unwrap_or(bad.len());
                        for b in &bad[..n] {
                            out.push_str(&format!("\\x{b:02x}"));
                        }
                        rest = &bad[n..];
                    }
                }
            }
            out
        }
    }
}

/// One decoded argument of a traced call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Arg {
    /// A quoted string (hex-escaped by `-xx`), decoded to bytes.
    Str(Vec<u8>),
    /// A descriptor with the path `-y` printed.
    Fd(Vec<u8>),
    /// `AT_FDCWD<cwd>`: the current directory.
    Cwd(Vec<u8>),
    /// Anything else, verbatim (flags, numbers, NULL, structures).
    Raw(String),
}

/// One completed system call.
#[derive(Clone, Debug)]
struct Call {
    tid: u32,
    name: String,
    args: Vec<Arg>,
    /// The return value's text (`3</path>` keeps its path in `ret_path`).
    ret: i64,
    ret_path: Option<Vec<u8>>,
}

fn unhex(s: &str) -> Vec<u8> {
    // "\x2f\x74..." (every byte escaped by -xx); tolerate plain characters.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b.get(i + 1) == Some(&b'x') {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        if b[i] == b'\\' && i + 1 < b.len() {
            out.push(match b[i + 1] {
                b'n' => b'\n',
                b't' => b'\t',
                other => other,
            });
            i += 2;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Splits the argument list at top-level commas.
fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut start) = (0i32, false, 0usize);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' | b'<' => depth += 1,
                b')' | b']' | b'}' | b'>' => depth -= 1,
                b',' if depth == 0 => {
                    out.push(s[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

fn parse_arg(a: &str) -> Arg {
    let a = a.trim();
    if let Some(rest) = a.strip_prefix('"') {
        let end = rest.rfind('"').unwrap_or(rest.len());
        return Arg::Str(unhex(&rest[..end]));
    }
    // `3</path>` or `AT_FDCWD</path>`
    if let Some(lt) = a.find('<') {
        let head = &a[..lt];
        if a.ends_with('>')
            && (head == "AT_FDCWD"
                || (!head.is_empty() && head.bytes().all(|c| c.is_ascii_digit())))
        {
            let p = unhex(&a[lt + 1..a.len() - 1]);
            return if head == "AT_FDCWD" {
                Arg::Cwd(p)
            } else {
                Arg::Fd(p)
            };
        }
    }
    Arg::Raw(a.to_string())
}

/// Finds the `)` closing the argument list that starts after `name(`.
fn close_paren(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let (mut depth, mut in_str) = (1i32, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Parses `strace -f -y -xx -z -o FILE` output into completed calls, in
/// completion order (an `<unfinished ...>` line is joined with its
/// `<... resumed>` line).
fn parse_calls(text: &str) -> Vec<Call> {
    let mut pending: HashMap<u32, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(tid) = tid.trim().parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(tid, head.trim_end().to_string());
            continue;
        } else if rest.starts_with("<... ") {
            let Some(idx) = rest.find(" resumed>") else {
                continue;
            };
            let tail = &rest[idx + " resumed>".len()..];
            match pending.remove(&tid) {
                Some(head) => format!("{head}{tail}"),
                None => continue,
            }
        } else {
            rest.to_string()
        };
        if full.starts_with("---") || full.starts_with("+++") {
            continue;
        }
        let Some(open) = full.find('(') else {
            continue;
        };
        let name = full[..open].to_string();
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            continue;
        }
        let body = &full[open + 1..];
        let Some(close) = close_paren(body) else {
            continue;
        };
        let args = split_args(&body[..close])
            .into_iter()
            .map(parse_arg)
            .collect();
        let after = body[close + 1..].trim_start();
        let Some(ret) = after.strip_prefix('=') else {
            continue;
        };
        let ret = ret.trim_start();
        let ret_tok = ret.split(' ').next().unwrap_or("");
        let (num, ret_path) = match ret_tok.find('<') {
            Some(lt) if ret_tok.ends_with('>') => (
                &ret_tok[..lt],
                Some(unhex(&ret_tok[lt + 1..ret_tok.len() - 1])),
            ),
            _ => (ret_tok, None),
        };
        let ret = if let Some(h) = num.strip_prefix("0x") {
            i64::from_str_radix(h, 16).unwrap_or(0)
        } else {
            num.parse::<i64>().unwrap_or(-1)
        };
        calls.push(Call {
            tid,
            name,
            args,
            ret,
            ret_path,
        });
    }
    calls
}

/// Lexical normalization: `.`, `..`, doubled and trailing `/`.
fn normalize(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::new();
    for c in parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn join(dir: &[u8], rel: &[u8]) -> Vec<u8> {
    if rel.first() == Some(&b'/') {
        return normalize(rel);
    }
    let mut v = dir.to_vec();
    v.push(b'/');
    v.extend_from_slice(rel);
    normalize(&v)
}

fn under(path: &[u8], root: &[u8]) -> bool {
    path == root || (path.starts_with(root) && path.get(root.len()) == Some(&b'/'))
}

/// The image `/proc/PID/exe` names after `execve(path)`: the file itself,
/// or a script's interpreter, with symbolic links resolved.
fn image_of(path: &[u8]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    let mut target = p.to_path_buf();
    if let Ok(bytes) = std::fs::read(p) {
        if bytes.starts_with(b"#!") {
            let line = bytes[2..].split(|&b| b == b'\n').next().unwrap_or(b"");
            let interp = String::from_utf8_lossy(line);
            if let Some(first) = interp.split_whitespace().next() {
                target = first.into();
            }
        }
    }
    std::fs::canonicalize(&target)
        .unwrap_or(target)
        .to_string_lossy()
        .into_owned()
}

/// The namespace under the traced tree: which names exist (and which are
/// directories), moved by renames.
#[derive(Debug, Default)]
struct Names {
    exists: HashSet<Vec<u8>>,
}

/// Every path under `root` (itself included) that exists now.
pub fn snapshot(root: &Path) -> HashSet<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    fn walk(p: &Path, out: &mut HashSet<Vec<u8>>) {
        out.insert(p.as_os_str().as_bytes().to_vec());
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                } else {
                    out.insert(e.path().as_os_str().as_bytes().to_vec());
                }
            }
        }
    }
    let mut out = HashSet::new();
    walk(root, &mut out);
    out
}

impl Names {
    fn rename(&mut self, from: &[u8], to: &[u8], exchange: bool) {
        let moved: Vec<Vec<u8>> = self
            .exists
            .iter()
            .filter(|p| under(p, from))
            .cloned()
            .collect();
        let other: Vec<Vec<u8>> = if exchange {
            self.exists
                .iter()
                .filter(|p| under(p, to))
                .cloned()
                .collect()
        } else {
            // The replaced destination (and, for a directory, its now-gone
            // subtree) disappears.
            self.exists
                .iter()
                .filter(|p| under(p, to))
                .cloned()
                .collect()
        };
        for p in moved.iter().chain(other.iter()) {
            self.exists.remove(p);
        }
        for p in moved {
            let mut n = to.to_vec();
            n.extend_from_slice(&p[from.len()..]);
            self.exists.insert(n);
        }
        if exchange {
            for p in other {
                let mut n = from.to_vec();
                n.extend_from_slice(&p[to.len()..]);
                self.exists.insert(n);
            }
        }
    }
}

/// Derives the operations under `root` a workload performed from its
/// trace. `seeded` is the set of paths that existed before the workload
/// ([`snapshot`]), `cwd` the workload's starting directory.
pub fn derive(trace: &str, root: &[u8], seeded: HashSet<Vec<u8>>, cwd: &[u8]) -> Vec<Op> {
    let calls = parse_calls(trace);
    // First pass: each new task's parent and whether it is a thread.
    let mut parent: HashMap<u32, (u32, bool)> = HashMap::new();
    for c in &calls {
        if matches!(c.name.as_str(), "clone" | "clone3" | "fork" | "vfork") && c.ret > 0 {
            let thread = c
                .args
                .iter()
                .any(|a| matches!(a, Arg::Raw(r) if r.contains("CLONE_THREAD")));
            parent.insert(c.ret as u32, (c.tid, thread));
        }
    }
    let mut names = Names { exists: seeded };
    let mut tgid: HashMap<u32, u32> = HashMap::new();
    let mut cwds: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut images: HashMap<u32, String> = HashMap::new();
    // (tgid, fd) → path the descriptor was opened at, for the
    // `/proc/self/fd/N` spelling (tar's `chmod("/proc/self/fd/3")`).
    let mut fds: HashMap<(u32, i64), Vec<u8>> = HashMap::new();
    let mut ops = Vec::new();
    for c in &calls {
        // A task seen for the first time inherits from its parent.
        if !tgid.contains_key(&c.tid) {
            match parent.get(&c.tid) {
                Some(&(p, thread)) => {
                    let ptg = *tgid.get(&p).unwrap_or(&p);
                    let tg = if thread { ptg } else { c.tid };
                    tgid.insert(c.tid, tg);
                    let pcwd = cwds.get(&p).cloned().unwrap_or_else(|| cwd.to_vec());
                    cwds.insert(c.tid, pcwd);
                    if !thread {
                        let img = images.get(&ptg).cloned().unwrap_or_default();
                        images.insert(tg, img);
                    }
                }
                None => {
                    tgid.insert(c.tid, c.tid);
                    cwds.insert(c.tid, cwd.to_vec());
                }
            }
        }
        let tg = tgid[&c.tid];
        // Every `AT_FDCWD<...>` names the caller's directory right now.
        for a in &c.args {
            if let Arg::Cwd(p) = a {
                cwds.insert(c.tid, p.clone());
            }
        }
        let my_cwd = cwds.get(&c.tid).cloned().unwrap_or_else(|| cwd.to_vec());
        if let Some(p) = &c.ret_path {
            fds.insert((tg, c.ret), p.clone());
        }
        let via_proc = |p: Vec<u8>| -> Vec<u8> {
            for prefix in [&b"/proc/self/fd/"[..], format!("/proc/{tg}/fd/").as_bytes()] {
                if let Some(n) = p.strip_prefix(prefix) {
                    if let Some(fdp) = std::str::from_utf8(n)
                        .ok()
                        .and_then(|n| n.parse::<i64>().ok())
                        .and_then(|n| fds.get(&(tg, n)))
                    {
                        return fdp.clone();
                    }
                }
            }
            p
        };
        // Path of argument `i` relative to dirfd argument `d` (or cwd).
        let at = |d: Option<usize>, i: usize| -> Option<Vec<u8>> {
            let rel = match c.args.get(i)? {
                Arg::Str(s) => s.clone(),
                _ => return None,
            };
            let base = match d.and_then(|d| c.args.get(d)) {
                Some(Arg::Fd(p) | Arg::Cwd(p)) => p.clone(),
                _ => my_cwd.clone(),
            };
            Some(via_proc(join(&base, &rel)))
        };
        let fd_path = |i: usize| -> Option<Vec<u8>> {
            match c.args.get(i)? {
                Arg::Fd(p) => Some(p.clone()),
                _ => None,
            }
        };
        let image = images.get(&tg).cloned().unwrap_or_default();
        let mut push = |op: &'static str, path: Vec<u8>, target: Option<Vec<u8>>| {
            let inside = under(&path, root) || target.as_ref().is_some_and(|t| under(t, root));
            if inside {
                ops.push(Op {
                    op,
                    path,
                    target,
                    pid: tg,
                    image: image.clone(),
                });
            }
        };
        let raw_has = |i: usize, flag: &str| -> bool {
            matches!(c.args.get(i), Some(Arg::Raw(r)) if r.contains(flag))
        };
        match c.name.as_str() {
            "execve" | "execveat" => {
                let p = if c.name == "execve" {
                    at(None, 0)
                } else {
                    at(Some(0), 1)
                };
                if let Some(p) = p {
                    images.insert(tg, image_of(&p));
                }
            }
            "chdir" => {
                if let Some(p) = at(None, 0) {
                    cwds.insert(c.tid, p);
                }
            }
            "fchdir" => {
                if let Some(p) = fd_path(0) {
                    cwds.insert(c.tid, p);
                }
            }
            "open" | "creat" | "openat" | "openat2" => {
                let (path_i, flags_i) = match c.name.as_str() {
                    "open" => (0, 1),
                    "creat" => (0, usize::MAX),
                    _ => (1, 2),
                };
                let creat = c.name == "creat" || raw_has(flags_i, "O_CREAT");
                let trunc = c.name == "creat" || raw_has(flags_i, "O_TRUNC");
                let dirfd = if c.name.starts_with("openat") {
                    Some(0)
                } else {
                    None
                };
                let path = c.ret_path.clone().or_else(|| at(dirfd, path_i));
                if let Some(path) = path {
                    let path = normalize(&path);
                    let existed = names.exists.contains(&path);
                    if creat && !existed {
                        names.exists.insert(path.clone());
                        push("create", path, None);
                    } else if trunc && existed && !raw_has(flags_i, "O_DIRECTORY") {
                        push("write", path, None);
                    }
                }
            }
            "mkdir" | "mknod" => {
                if let Some(p) = at(None, 0) {
                    names.exists.insert(p.clone());
                    push("create", p, None);
                }
            }
            "mkdirat" | "mknodat" => {
                if let Some(p) = at(Some(0), 1) {
                    names.exists.insert(p.clone());
                    push("create", p, None);
                }
            }
            "symlink" | "link" => {
                if let Some(p) = at(None, 1) {
                    names.exists.insert(p.clone());
                    push("create", p, None);
                }
            }
            "symlinkat" => {
                if let Some(p) = at(Some(1), 2) {
                    names.exists.insert(p.clone());
                    push("create", p, None);
                }
            }
            "linkat" => {
                if let Some(p) = at(Some(2), 3) {
                    names.exists.insert(p.clone());
                    push("create", p, None);
                }
            }
            "unlink" | "rmdir" => {
                if let Some(p) = at(None, 0) {
                    names.exists.remove(&p);
                    push("delete", p, None);
                }
            }
            "unlinkat" => {
                if let Some(p) = at(Some(0), 1) {
                    names.exists.remove(&p);
                    push("delete", p, None);
                }
            }
            "rename" | "renameat" | "renameat2" => {
                let (from, to) = if c.name == "rename" {
                    (at(None, 0), at(None, 1))
                } else {
                    (at(Some(0), 1), at(Some(2), 3))
                };
                if let (Some(from), Some(to)) = (from, to) {
                    let exchange = raw_has(4, "RENAME_EXCHANGE");
                    names.rename(&from, &to, exchange);
                    push("rename", from, Some(to));
                }
            }
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" | "sendfile" if c.ret > 0 => {
                if let Some(p) = fd_path(0) {
                    push("write", p, None);
                }
            }
            "ftruncate" | "fallocate" => {
                if let Some(p) = fd_path(0) {
                    push("write", p, None);
                }
            }
            "truncate" => {
                if let Some(p) = at(None, 0) {
                    push("write", p, None);
                }
            }
            "copy_file_range" | "splice" if c.ret > 0 => {
                if let Some(p) = fd_path(2) {
                    push("write", p, None);
                }
            }
            "chmod" | "chown" | "lchown" | "utime" | "utimes" | "setxattr" | "lsetxattr"
            | "removexattr" | "lremovexattr" => {
                if let Some(p) = at(None, 0) {
                    push("setinfo", p, None);
                }
            }
            "fchmod" | "fchown" | "fsetxattr" | "fremovexattr" => {
                if let Some(p) = fd_path(0) {
                    push("setinfo", p, None);
                }
            }
            "fchmodat" | "fchmodat2" | "fchownat" | "futimesat" | "utimensat" => {
                let p = match c.args.get(1) {
                    Some(Arg::Str(_)) => at(Some(0), 1),
                    _ => fd_path(0),
                };
                // The kernel reports a timestamp change as FAN_ATTRIB only
                // when both times change; the modification time alone is
                // FAN_MODIFY (a write), the access time alone FAN_ACCESS
                // (fsnotify_change).
                let op = match c.args.get(2) {
                    Some(Arg::Raw(t)) if c.name == "utimensat" && t.starts_with('[') => {
                        let omit = t.matches("UTIME_OMIT").count();
                        match (omit, t.trim_start_matches('[').starts_with("UTIME_OMIT")) {
                            (1, true) => Some("write"),
                            (1, false) => None,
                            (2, _) => None,
                            _ => Some("setinfo"),
                        }
                    }
                    _ => Some("setinfo"),
                };
                if let (Some(p), Some(op)) = (p, op) {
                    push(op, p, None);
                }
            }
            _ => {}
        }
    }
    ops
}

/// The `strace` options the derivation expects (followed by `-o FILE --
/// COMMAND...`): follow forks, print descriptor paths, hex-escape every
/// string, successful calls only, full strings. (`fchmodat2`, Linux 6.6,
/// is unknown to Debian 12's strace 6.1; coreutils does not use it.)
pub const STRACE_ARGS: &[&str] = &[
    "-f",
    "-qq",
    "-y",
    "-z",
    "-xx",
    "-s",
    "8192",
    "-e",
    "signal=none",
    "--seccomp-bpf",
    "-e",
    TRACED,
];

/// Only the calls the derivation reads: with `--seccomp-bpf` the traced
/// processes stop for nothing else, which keeps them close to their
/// untraced speed (the races the engine must survive stay races).
const TRACED: &str = "trace=open,openat,openat2,creat,mkdir,mkdirat,mknod,mknodat,symlink,\
symlinkat,link,linkat,unlink,unlinkat,rmdir,rename,renameat,renameat2,chdir,fchdir,truncate,\
ftruncate,fallocate,chmod,fchmod,fchmodat,chown,lchown,fchown,fchownat,utime,utimes,utimensat,\
futimesat,setxattr,lsetxattr,fsetxattr,removexattr,lremovexattr,fremovexattr,execve,execveat,\
clone,clone3,fork,vfork,write,pwrite64,writev,pwritev,pwritev2,copy_file_range,sendfile,splice";

/// Per-operation comparison counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub expected: usize,
    pub matched: usize,
    /// Expected, absent from the log (not explained as mispathed).
    pub missed: usize,
    /// Logged, not expected (not explained as mispathed).
    pub extra: usize,
    /// Logged for the right process and operation at another path (or,
    /// for renames, without both paths).
    pub mispathed: usize,
    /// Matched records naming another pid.
    pub wrong_pid: usize,
    /// Matched records with an empty image.
    pub empty_image: usize,
    /// Matched records with a non-empty image other than the traced one.
    pub wrong_image: usize,
}

/// The comparison of a run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub per_op: Vec<(&'static str, Counts)>,
    /// Records whose path (and target) lie outside the policy's tree.
    pub outside: usize,
    /// Drop records, summed counts, by reason name.
    pub drops: Vec<(String, u64)>,
    /// A few examples of each kind of mismatch, for the failure message.
    pub examples: Vec<String>,
}

impl Report {
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for (_, c) in &self.per_op {
            t.expected += c.expected;
            t.matched += c.matched;
            t.missed += c.missed;
            t.extra += c.extra;
            t.mispathed += c.mispathed;
            t.wrong_pid += c.wrong_pid;
            t.empty_image += c.empty_image;
            t.wrong_image += c.wrong_image;
        }
        t
    }
    pub fn dropped(&self) -> u64 {
        self.drops.iter().map(|(_, n)| n).sum()
    }
    /// Whether the log is exactly the ground truth: nothing missed, extra,
    /// mispathed or misattributed, nothing outside, no drop records.
    pub fn exact(&self) -> bool {
        let t = self.total();
        t.missed == 0
            && t.extra == 0
            && t.mispathed == 0
            && t.wrong_pid == 0
            && t.empty_image == 0
            && t.wrong_image == 0
            && self.outside == 0
            && self.dropped() == 0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<8} {:>8} {:>8} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "op",
            "expected",
            "matched",
            "missed",
            "extra",
            "mispathed",
            "wrong_pid",
            "empty_img",
            "wrong_img"
        )?;
        for (op, c) in self.per_op.iter().chain([("TOTAL", self.total())].iter()) {
            writeln!(
                f,
                "{:<8} {:>8} {:>8} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9}",
                op,
                c.expected,
                c.matched,
                c.missed,
                c.extra,
                c.mispathed,
                c.wrong_pid,
                c.empty_image,
                c.wrong_image
            )?;
        }
        writeln!(f, "records outside the tree: {}", self.outside)?;
        writeln!(f, "drop records: {:?}", self.drops)?;
        for e in self.examples.iter().take(12) {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Compares the engine's records with the derived operations, for the
/// operations in `ops`. Create, delete and rename are compared as
/// multisets of (path, target); write and setinfo as sets of (path, pid)
/// (the kernel merges repeated modifications of one file).
pub fn compare(expected: &[Op], got: &[Got], root: &[u8], ops: &[&'static str]) -> Report {
    let mut rep = Report::default();
    let root_s = log_form(root);
    let inside = |p: &str| p == root_s || p.starts_with(&format!("{root_s}/"));
    rep.outside = got
        .iter()
        .filter(|g| !inside(&g.path) && !g.target.as_deref().is_some_and(inside))
        .count();
    for &op in ops {
        let set_like = op == "write" || op == "setinfo";
        let mut exp: Vec<(String, Option<String>, u32, String)> = expected
            .iter()
            .filter(|e| e.op == op)
            .map(|e| {
                (
                    log_form(&e.path),
                    e.target.as_deref().map(log_form),
                    e.pid,
                    e.image.clone(),
                )
            })
            .collect();
        let mut act: Vec<(String, Option<String>, u32, String)> = got
            .iter()
            .filter(|g| g.op == op)
            .map(|g| (g.path.clone(), g.target.clone(), g.pid, g.image.clone()))
            .collect();
        if set_like {
            let mut seen = HashSet::new();
            exp.retain(|e| seen.insert((e.0.clone(), e.2)));
            let mut seen = HashSet::new();
            act.retain(|e| seen.insert((e.0.clone(), e.2)));
        }
        let mut c = Counts {
            expected: exp.len(),
            ..Counts::default()
        };
        // Exact (path, target) matches, preferring the same pid.
        let mut pool: HashMap<(String, Option<String>), Vec<usize>> = HashMap::new();
        for (i, a) in act.iter().enumerate() {
            pool.entry((a.0.clone(), a.1.clone())).or_default().push(i);
        }
        let mut used = vec![false; act.len()];
        let mut missing = Vec::new();
        for e in &exp {
            let key = (e.0.clone(), e.1.clone());
            let cands = pool.get_mut(&key);
            let pick = cands.and_then(|v| {
                let pos = v
                    .iter()
                    .position(|&i| act[i].2 == e.2)
                    .or(if set_like { None } else { Some(0) })
                    .filter(|&p| p < v.len())?;
                Some(v.remove(pos))
            });
            match pick {
                Some(i) => {
                    used[i] = true;
                    c.matched += 1;
                    let a = &act[i];
                    if a.2 != e.2 {
                        c.wrong_pid += 1;
                        rep.examples
                            .push(format!("{op} {} pid {} logged as {}", e.0, e.2, a.2));
                    } else if a.3.is_empty() {
                        c.empty_image += 1;
                        rep.examples.push(format!(
                            "{op} {} pid {}: empty image (was {})",
                            e.0, e.2, e.3
                        ));
                    } else if a.3 != e.3 {
                        c.wrong_image += 1;
                        rep.examples.push(format!(
                            "{op} {} pid {}: image {} (was {})",
                            e.0, e.2, a.3, e.3
                        ));
                    }
                }
                None => missing.push(e),
            }
        }
        // Mispathed: a leftover record of the same process and operation.
        let mut extra: Vec<usize> = (0..act.len()).filter(|&i| !used[i]).collect();
        for e in missing {
            if let Some(pos) = extra.iter().position(|&i| act[i].2 == e.2) {
                let a = &act[extra.remove(pos)];
                c.mispathed += 1;
                rep.examples.push(format!(
                    "{op} mispathed: {} -> {:?} logged as {} -> {:?}",
                    e.0, e.1, a.0, a.1
                ));
            } else {
                c.missed += 1;
                rep.examples
                    .push(format!("{op} missed: {} {:?} pid {}", e.0, e.1, e.2));
            }
        }
        for &i in &extra {
            rep.examples.push(format!(
                "{op} extra: {} {:?} pid {}",
                act[i].0, act[i].1, act[i].2
            ));
        }
        c.extra = extra.len();
        rep.per_op.push((op, c));
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_at_calls_renames_and_resumed_lines() {
        let t = "\
100 execve(\"\\x2f\\x62\\x69\\x6e\\x2f\\x73\\x68\", [\"\\x73\\x68\"], 0x0 /* 1 var */) = 0
100 mkdir(\"\\x64\", 0777) = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
101 openat(AT_FDCWD<\\x2f\\x77>, \"\\x64\\x2f\\x66\", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3<\\x2f\\x77\\x2f\\x64\\x2f\\x66>
100 <... clone resumed>, child_tidptr=0x7f) = 101
101 write(3<\\x2f\\x77\\x2f\\x64\\x2f\\x66>, \"\\x68\\x69\", 2) = 2
101 renameat2(AT_FDCWD<\\x2f\\x77>, \"\\x64\", AT_FDCWD<\\x2f\\x77>, \"\\x65\", RENAME_NOREPLACE) = 0
101 unlinkat(3<\\x2f\\x77\\x2f\\x65>, \"\\x66\", 0) = 0
";
        let root = b"/w";
        let ops = derive(t, root, HashSet::new(), b"/w");
        let got: Vec<_> = ops
            .iter()
            .map(|o| {
                (
                    o.op,
                    log_form(&o.path),
                    o.target.as_deref().map(log_form),
                    o.pid,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("create", "/w/d".into(), None, 100),
                ("create", "/w/d/f".into(), None, 101),
                ("write", "/w/d/f".into(), None, 101),
                ("rename", "/w/d".into(), Some("/w/e".into()), 101),
                ("delete", "/w/e/f".into(), None, 101),
            ]
        );
        assert!(ops[1].image.ends_with("sh") || ops[1].image.ends_with("dash"));
    }

    #[test]
    fn non_utf8_names_have_one_escaped_form() {
        assert_eq!(log_form(b"/a/b"), "/a/b");
        assert_eq!(log_form(b"/a/\xff\\x"), "/a/\\xff\\\\x");
    }

    #[test]
    fn compare_counts_missed_extra_and_mispathed() {
        let e = |op, p: &str| Op {
            op,
            path: p.as_bytes().to_vec(),
            target: None,
            pid: 1,
            image: "/bin/x".into(),
        };
        let g = |op: &str, p: &str| Got {
            op: op.into(),
            path: p.into(),
            target: None,
            pid: 1,
            image: "/bin/x".into(),
        };
        let rep = compare(
            &[
                e("create", "/w/a"),
                e("create", "/w/b"),
                e("delete", "/w/c"),
            ],
            &[
                g("create", "/w/a"),
                g("create", "/w/z"),
                g("delete", "/x/q"),
            ],
            b"/w",
            &["create", "delete"],
        );
        let t = rep.total();
        assert_eq!((t.matched, t.mispathed, t.missed, t.extra), (1, 2, 0, 0));
        assert_eq!(rep.outside, 1);
        assert!(!rep.exact());
    }
}
