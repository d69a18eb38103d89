//! `fltpolicy run POLICY --log LOG [--control SOCKET] [--watch PATH...]`:
//! the Linux engine in the foreground (fanotify), until SIGINT/SIGTERM.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

/// Run the Linux engine in the foreground until Ctrl-C / SIGTERM.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol, compiled here for linux) or compiled image (.fpi).
    policy: PathBuf,
    /// Audit log to write (rotated files continue as LOG.1, LOG.2, ...);
    /// a directory means DIR/audit.fplog. An existing log is continued: its
    /// tail is checked (a torn record is cut off and recorded as lost) and
    /// the chain goes on in the next file.
    #[arg(long)]
    log: PathBuf,
    /// Keep at most this many MiB of log files: at each rotation the
    /// oldest files are removed (never the one being written).
    #[arg(long, value_name = "MIB")]
    retain_mib: Option<u64>,
    /// Remove log files last written more than this many days ago (at
    /// rotation).
    #[arg(long, value_name = "DAYS")]
    retain_days: Option<u64>,
    /// Size of the audit queue in MiB (split over 16 rings; each ring a
    /// power of two of at least 8 KiB). Bigger absorbs longer bursts.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    queue_mib: u32,
    /// Forward every record, as it is written, to syslog (RFC 5424 with the
    /// record's fields as structured data) on this Unix datagram socket.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = "/dev/log")]
    syslog: Option<PathBuf>,
    /// With --syslog: send an anchor (`seq:chain`, for `log verify
    /// --anchor`) this often, in seconds, so a remote store can prove the
    /// local log was not cut or rewritten.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    anchor_every: u64,
    /// With --syslog: write journald's native protocol (each record field
    /// a journal field) instead of RFC 5424; give the journal's socket
    /// (`--syslog /run/systemd/journal/socket`).
    #[arg(long)]
    journald: bool,
    /// Control socket for `fltpolicy load` and `fltpolicy status` (root only).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Watch the filesystems holding these paths instead of those holding
    /// the policy's paths.
    #[arg(long, num_args = 1..)]
    watch: Vec<PathBuf>,
}

#[cfg(not(target_os = "linux"))]
pub fn run(_args: Args) -> Result<ExitCode> {
    anyhow::bail!(
        "`fltpolicy run` runs the Linux engine; on Windows the minifilter driver enforces policies (send one with `fltpolicy load`)"
    )
}

#[cfg(target_os = "linux")]
pub fn run(args: Args) -> Result<ExitCode> {
    use anyhow::Context;
    use fltpolicy_core::event::Target;
    use fltpolicy_core::image::Policy;
    use fltpolicy_linux::pipeline::{Pipeline, PipelineConfig, PipelineError};
    use fltpolicy_linux::sys::signals::TerminationSignals;
    use fltpolicy_linux::EngineError;

    let loaded = crate::policy_input::load(&args.policy, Some(Target::Linux))?;
    let policy = Policy::from_bytes(&loaded.image).context("policy image failed verification")?;
    if policy.target() != Target::Linux {
        anyhow::bail!(
            "{}: this image was compiled for {}; compile the policy with --target linux",
            args.policy.display(),
            policy.target().name()
        );
    }
    let rules = policy.rule_count();
    let mut log = absolute(&args.log);
    if log.is_dir() {
        log = log.join("audit.fplog");
    }
    let retention = (args.retain_mib.is_some() || args.retain_days.is_some()).then(|| {
        fltpolicy_audit::writer::Retention {
            max_bytes: args.retain_mib.map_or(u64::MAX, |m| m << 20),
            max_age: args
                .retain_days
                .map(|d| std::time::Duration::from_secs(d * 86_400)),
        }
    });
    // Before any thread exists, so every thread inherits the blocked mask
    // and the signals wait for `wait` below.
    let signals = TerminationSignals::block().context("cannot block SIGINT/SIGTERM")?;
    let flush = fltpolicy_audit::writer::FlushConfig {
        ring_words: fltpolicy_audit::writer::ring_words_for_mib(args.queue_mib),
        notify: Some(fltpolicy_audit::writer::Notifier(std::sync::Arc::new(
            |msg| eprintln!("fltpolicy: {msg}"),
        ))),
        ..Default::default()
    };
    let pipeline = match Pipeline::start(PipelineConfig {
        image: loaded.image.clone(),
        log: log.clone(),
        control: args.control.clone(),
        watch: args.watch.clone(),
        flush: Some(flush),
        retention,
    }) {
        Ok(p) => p,
        Err(PipelineError::Engine(e @ EngineError::MissingCapability(_))) => {
            anyhow::bail!("{e}")
        }
        Err(e) => return Err(anyhow::Error::new(e).context("cannot start the Linux engine")),
    };
    let status = pipeline.status().unwrap_or_default();
    let hash: String = status.policy_hash[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    eprintln!(
        "fltpolicy: enforcing {} ({rules} rules, sha256 {hash}…){}",
        args.policy.display(),
        if status.blocking {
            ", blocking denied opens/reads"
        } else {
            ", log only"
        }
    );
    if status.watching.is_empty() {
        eprintln!(
            "fltpolicy: watching nothing: no rule of this policy records or denies an operation"
        );
    } else {
        eprintln!(
            "fltpolicy: watching the filesystems of {}",
            status.watching.join(", ")
        );
    }
    for m in &status.unwatched {
        eprintln!(
            "fltpolicy: warning: {m} is a filesystem mounted inside a policy tree that cannot be watched (fanotify refused its mark): its activity is not seen"
        );
    }
    eprintln!(
        "fltpolicy: in-kernel enforcement (BPF LSM, not built yet; docs/linux-engine.md): {}",
        fltpolicy_linux::engine::bpf_lsm_support()
    );
    match pipeline.continuation() {
        None => eprintln!("fltpolicy: audit log: {}", log.display()),
        Some(c) => {
            eprintln!(
                "fltpolicy: audit log: {} exists; continuing its chain in {} from seq {} (previous file {} {})",
                log.display(),
                pipeline.log_file().display(),
                c.first_seq,
                c.previous.display(),
                match c.previous_end {
                    Some(e) => format!("ended cleanly ({e})"),
                    None => "has no end record: the previous run did not stop cleanly".to_owned(),
                }
            );
            if let Some((off, bytes)) = c.truncated {
                eprintln!(
                    "fltpolicy: cut a torn record of {bytes} bytes at offset {off} off {}; recorded as log_lost",
                    c.previous.display()
                );
            }
        }
    }
    eprintln!(
        "fltpolicy: view it with: fltpolicy log view {}",
        log.display()
    );
    if let Some(c) = &args.control {
        eprintln!(
            "fltpolicy: control socket: {} (fltpolicy status --control {0}; fltpolicy load POLICY --control {0})",
            c.display()
        );
    }
    let forwarder = match &args.syslog {
        None => None,
        Some(sock) => {
            let f = fltpolicy_audit::forward::Forwarder::start(
                pipeline.log_file(),
                fltpolicy_audit::forward::ForwardConfig {
                    socket: sock.clone(),
                    hostname: fltpolicy_audit::writer::host_name(),
                    anchor_every: std::time::Duration::from_secs(args.anchor_every),
                    poll: std::time::Duration::from_millis(200),
                    key: None,
                    protocol: if args.journald {
                        fltpolicy_audit::forward::Protocol::Journald
                    } else {
                        fltpolicy_audit::forward::Protocol::Rfc5424
                    },
                },
            )
            .with_context(|| format!("cannot forward to syslog at {}", sock.display()))?;
            eprintln!(
                "fltpolicy: forwarding records to syslog at {} (anchor every {} s)",
                sock.display(),
                args.anchor_every
            );
            Some(f)
        }
    };
    eprintln!("fltpolicy: running; stop with Ctrl-C or SIGTERM");
    let sig = signals.wait().context("waiting for SIGINT/SIGTERM")?;
    let name = if sig == 2 { "SIGINT" } else { "SIGTERM" };
    eprintln!("fltpolicy: {name}: draining events and closing the log");
    let summary = pipeline.stop();
    if let Some(f) = forwarder {
        let st = f.stop();
        eprintln!(
            "fltpolicy: syslog: {} messages sent ({} anchors), {} refused by the socket",
            st.sent, st.anchors, st.send_failed
        );
    }
    let s = &summary.status;
    eprintln!(
        "fltpolicy: stopped: {} events seen, {} matched, {} records queued, {} denied, {} dropped, {} kernel overflows",
        s.events_seen, s.matched, s.queued, s.denied, s.dropped, s.kernel_overflows
    );
    match &summary.writer {
        Ok(w) => eprintln!("fltpolicy: log closed: {} ({w:?})", log.display()),
        Err(e) => {
            eprintln!("fltpolicy: the log writer failed at the end: {e}");
            return Ok(ExitCode::from(1));
        }
    }
    eprintln!(
        "fltpolicy: view: fltpolicy log view {0}    verify: fltpolicy log verify {0}",
        log.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf())
}
