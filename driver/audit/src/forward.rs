//! Forwarding a live log to syslog (RFC 5424 over the local datagram
//! socket, `/dev/log` by default), for a SIEM that collects syslog: one
//! message per record as it reaches the disk, and every `anchor_every` an
//! anchor message (`seq:chain`, the chain value after the last verified
//! record) so a remote store can later prove the local log was not cut
//! short or rewritten (`fltpolicy log verify --anchor`).
//!
//! The forwarder follows the log through the one reader ([`Follower`]):
//! what it sends has passed the same checks as `log verify` (damage is
//! sent as an `err` message, never silently skipped).
//!
//! Message: `<PRI>1 TIME HOST fltpolicy PID MSGID [fltpolicy@32473 k="v"...] text`
//! with facility 13 (log audit); severity warning for `deny`, info for
//! `log`, error for drop records and damage, notice for anchors. MSGID is
//! `event`, `dropped`, `end`, `anchor` or `damage`. 32473 is the private
//! enterprise number RFC 5612 reserves for documentation.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::reader::{to_hex, DecodedRecord, Follower, ReadOptions, RecordBody};

/// Structured-data id of every message.
pub const SD_ID: &str = "fltpolicy@32473";
const FACILITY_LOG_AUDIT: u8 = 13;

/// Settings of a forwarder.
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// The syslog socket (a Unix datagram socket).
    pub socket: PathBuf,
    pub hostname: String,
    /// How often an anchor message is sent (none when zero).
    pub anchor_every: Duration,
    /// How often the log is read.
    pub poll: Duration,
    /// Key of a sealed log (to verify its chain while following).
    pub key: Option<[u8; 32]>,
    /// Message format on the socket.
    pub protocol: Protocol,
}

/// How messages are written to the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 5424 (`/dev/log`, rsyslog, syslog-ng).
    Rfc5424,
    /// journald's native protocol (`/run/systemd/journal/socket`): every
    /// record field becomes a journal field (`FLTPOLICY_PATH=...`), so
    /// `journalctl FLTPOLICY_ACTION=deny` selects on it.
    Journald,
}

/// What a forwarder did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardStats {
    pub sent: u64,
    pub anchors: u64,
    /// Messages the socket refused (syslog daemon down or overloaded).
    pub send_failed: u64,
}

/// The running forwarder thread.
#[derive(Debug)]
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<ForwardStats>,
}

impl Forwarder {
    /// Follows the log whose (current) first file is `log` and forwards it.
    pub fn start(log: &Path, cfg: ForwardConfig) -> std::io::Result<Forwarder> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(&cfg.socket)?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = log.to_path_buf();
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("fltpolicy-syslog".into())
                .spawn(move || run(&log, &cfg, &sock, &stop))?
        };
        Ok(Forwarder { stop, handle })
    }

    /// Forwards what is left, sends a last anchor and stops.
    pub fn stop(self) -> ForwardStats {
        self.stop.store(true, Ordering::Release);
        self.handle.thread().unpark();
        self.handle.join().unwrap_or_default()
    }
}

fn run(log: &Path, cfg: &ForwardConfig, sock: &UnixDatagram, stop: &AtomicBool) -> ForwardStats {
    let mut f = Follower::open(
        log,
        ReadOptions {
            key: cfg.key,
            anchor: None,
        },
    );
    let mut st = ForwardStats::default();
    let mut last_anchor = Instant::now();
    let mut anchored_seq = None;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let items = f.poll().unwrap_or_else(|e| vec![Err(e)]);
        for item in items {
            let msg = match (&item, cfg.protocol) {
                (Ok(rec), Protocol::Rfc5424) => record_message(rec, &cfg.hostname).into_bytes(),
                (Ok(rec), Protocol::Journald) => journal_record(rec),
                (Err(e), Protocol::Rfc5424) => {
                    message(3, now_ns(), &cfg.hostname, "damage", "", &e.to_string()).into_bytes()
                }
                (Err(e), Protocol::Journald) => journal(3, "damage", &[], &e.to_string()),
            };
            send(sock, &msg, &mut st);
        }
        let due = !cfg.anchor_every.is_zero() && last_anchor.elapsed() >= cfg.anchor_every;
        if due || stopping {
            if let Some(a) = f.head().filter(|a| Some(a.seq) != anchored_seq) {
                let sd = format!("seq=\"{}\" chain=\"{}\"", a.seq, to_hex(&a.chain));
                let text = format!("anchor {a} (fltpolicy log verify --anchor {a})");
                let msg = match cfg.protocol {
                    Protocol::Rfc5424 => {
                        message(5, now_ns(), &cfg.hostname, "anchor", &sd, &text).into_bytes()
                    }
                    Protocol::Journald => journal(
                        5,
                        "anchor",
                        &[("SEQ", a.seq.to_string()), ("CHAIN", to_hex(&a.chain))],
                        &text,
                    ),
                };
                send(sock, &msg, &mut st);
                st.anchors += 1;
                anchored_seq = Some(a.seq);
            }
            last_anchor = Instant::now();
        }
        if stopping {
            return st;
        }
        std::thread::park_timeout(cfg.poll);
    }
}

fn send(sock: &UnixDatagram, msg: &[u8], st: &mut ForwardStats) {
    match sock.send(msg) {
        Ok(_) => st.sent += 1,
        Err(_) => st.send_failed += 1,
    }
}

fn now_ns() -> u64 {
    crate::writer::now_ns()
}

/// An SD-PARAM value: `"`, `\` and `]` escaped (RFC 5424 6.3.3), and
/// control characters written as `\n`, `\t`, `\r`, `\xNN` — a raw newline
/// would split the message in a line-based store (a forged entry).
pub fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// RFC 3339 with at most 6 fractional digits (RFC 5424 TIME-SECFRAC).
fn timestamp(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_micros(ns / 1000);
    humantime::format_rfc3339_micros(t).to_string()
}

fn message(severity: u8, time_ns: u64, host: &str, msgid: &str, sd: &str, text: &str) -> String {
    let pri = FACILITY_LOG_AUDIT * 8 + severity;
    let host = if host.is_empty() { "-" } else { host };
    let sd = if sd.is_empty() {
        "-".to_owned()
    } else {
        format!("[{SD_ID} {sd}]")
    };
    // Control characters would end or forge a line in a text store.
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!(
        "<{pri}>1 {} {host} fltpolicy {} {msgid} {sd} {text}",
        timestamp(time_ns),
        std::process::id()
    )
}

/// A journald native message: `KEY=value` lines, or for a value holding a
/// newline `KEY`, newline, its length (u64 LE), the bytes, newline.
pub fn journal(severity: u8, msgid: &str, fields: &[(&str, String)], text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |k: &str, v: &str| {
        if v.contains('\n') {
            out.extend_from_slice(k.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        } else {
            out.extend_from_slice(format!("{k}={v}\n").as_bytes());
        }
    };
    field("MESSAGE", text);
    field("PRIORITY", &severity.to_string());
    field("SYSLOG_FACILITY", &FACILITY_LOG_AUDIT.to_string());
    field("SYSLOG_IDENTIFIER", "fltpolicy");
    field("FLTPOLICY_MSGID", msgid);
    for (k, v) in fields {
        field(&format!("FLTPOLICY_{k}"), v);
    }
    out
}

/// One record as a journald native message.
pub fn journal_record(r: &DecodedRecord) -> Vec<u8> {
    let (severity, msgid, fields, text) = record_fields(r);
    let fields: Vec<(String, String)> = fields
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect();
    let refs: Vec<(&str, String)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    journal(severity, msgid, &refs, &text)
}

/// One record as an RFC 5424 message.
pub fn record_message(r: &DecodedRecord, host: &str) -> String {
    let (severity, msgid, sd, text) = record_fields(r);
    let sd: Vec<String> = sd
        .into_iter()
        .map(|(k, v)| format!("{k}=\"{}\"", sd_escape(&v)))
        .collect();
    message(severity, r.time_ns, host, msgid, &sd.join(" "), &text)
}

/// Severity, MSGID, fields and text of a record.
fn record_fields(r: &DecodedRecord) -> (u8, &'static str, Vec<(&'static str, String)>, String) {
    let mut sd = vec![("seq", r.seq.to_string())];
    let (severity, msgid, text) = match &r.body {
        RecordBody::Event(e) => {
            sd.extend([
                ("op", e.op_name().to_owned()),
                ("action", e.action.name().to_owned()),
                ("path", e.path.clone()),
                ("pid", e.pid.to_string()),
                ("ppid", e.ppid.to_string()),
                ("image", e.image.clone()),
                ("user", e.user.clone()),
                ("rule", e.rule.map_or_else(String::new, |n| n.to_string())),
                ("tag", e.tag.clone()),
                ("policy", to_hex(&e.policy.hash)),
            ]);
            let deny = e.action.action() == Some(fltpolicy_core::event::Action::Deny);
            (
                if deny { 4 } else { 6 },
                "event",
                format!(
                    "{} {} {} by {} (pid {})",
                    e.action.name(),
                    e.op_name(),
                    e.path,
                    e.process(),
                    e.pid
                ),
            )
        }
        RecordBody::Dropped(d) => {
            sd.extend([
                ("count", d.count.to_string()),
                ("reason", d.reason.name().to_owned()),
                ("after_seq", d.after_seq.to_string()),
            ]);
            (
                3,
                "dropped",
                format!(
                    "{} records dropped between seq {} and {} ({})",
                    d.count,
                    d.after_seq,
                    d.seq,
                    d.reason.name()
                ),
            )
        }
        RecordBody::End(e) => (
            6,
            "end",
            format!(
                "end of log file ({})",
                match e.reason {
                    fltpolicy_core::record::EndReason::Rotated => "rotated",
                    fltpolicy_core::record::EndReason::Shutdown => "shutdown",
                }
            ),
        ),
    };
    (severity, msgid, sd, text)
}
