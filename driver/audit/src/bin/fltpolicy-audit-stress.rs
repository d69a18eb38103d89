//! Writes a deterministic stream of events through the real flush thread
//! until killed (or until `COUNT` events per producer). Used by the SIGKILL
//! crash test (`tests/kill.rs`) and handy for soak runs:
//!
//! `fltpolicy-audit-stress LOG PRODUCERS COUNT MAX_FILE_BYTES`
//!
//! Event `i` of producer `p` has `pid = p`, `size = i` and path
//! `/stress/p<p>/<i>`: a reader can check every record it finds.
use std::time::Duration;

use fltpolicy_audit::writer::{FileSink, FlushConfig, FlushThread};
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::record::{EventData, PolicyId};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: {} LOG PRODUCERS COUNT MAX_FILE_BYTES", args[0]);
        std::process::exit(2);
    }
    let producers: u64 = args[2].parse().unwrap_or(2);
    let count: u64 = args[3].parse().unwrap_or(u64::MAX);
    let max_file_bytes: u64 = args[4].parse().unwrap_or(1 << 20);
    let sink = match FileSink::create(&args[1]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            std::process::exit(1);
        }
    };
    let ft = match FlushThread::start(
        sink,
        FlushConfig {
            max_file_bytes,
            interval: Duration::from_millis(2),
            ..FlushConfig::default()
        },
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let hs: Vec<_> = (0..producers)
        .map(|p| {
            let q = ft.producer();
            std::thread::spawn(move || {
                let mut path = String::new();
                for i in 0..count {
                    path.clear();
                    use std::fmt::Write;
                    let _ = write!(path, "/stress/p{p}/{i}");
                    let ev = EventData {
                        time_ns: i,
                        op: Some(Op::Write),
                        action: Action::Log.into(),
                        pid: p,
                        size: i,
                        rule: Some(1),
                        policy: PolicyId::new(&[1; 32], 1),
                        path: &path,
                        image: "/usr/bin/stress",
                        ..Default::default()
                    };
                    let _ = q.push_waiting(&ev);
                }
            })
        })
        .collect();
    for h in hs {
        let _ = h.join();
    }
    match ft.shutdown() {
        Ok((_, s)) => println!(
            "{} {}",
            s.events_written,
            s.drops_recorded.iter().sum::<u64>()
        ),
        Err((_, _, e)) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
