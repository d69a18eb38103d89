//! `fltpolicy bench POLICY --events FILE.jsonl [--engine vm|reference] [--json]`
//!
//! Evaluates the events repeatedly and reports the median nanoseconds per
//! event over several timed runs (each run long enough to swamp timer
//! resolution). With `--json` the last line is an object with
//! `ns_per_event`.
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use super::eval::Engine;
use crate::events::read_jsonl;
use crate::policy_input::{load, TargetArg};

/// Measure evaluation cost per event.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol) or image (.fpi).
    policy: PathBuf,
    /// Events to evaluate, one JSON object per line.
    #[arg(long)]
    events: PathBuf,
    #[arg(long, value_enum, default_value = "vm")]
    engine: Engine,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 9)]
    runs: usize,
    /// Minimum duration of one run, in milliseconds.
    #[arg(long, default_value_t = 100)]
    run_ms: u64,
    /// Passes over the events per run; default: calibrated so that a run
    /// lasts `--run-ms`. Fix it to count instructions (callgrind).
    #[arg(long)]
    passes: Option<u64>,
    /// Print a JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// (default: the file's `target` statement, else windows)
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let loaded = load(&args.policy, args.target.map(Into::into))?;
    let events = read_jsonl(&args.events)?;
    if events.is_empty() {
        bail!("{}: no events", args.events.display());
    }
    let views: Vec<_> = events.iter().map(|e| e.view()).collect();
    let policy = loaded.policy();
    let ir = match (args.engine, &loaded.ir) {
        (Engine::Reference, None) => {
            bail!("the reference engine needs the policy source (.pol), not an image")
        }
        (_, ir) => ir.clone(),
    };
    let pass = || match args.engine {
        Engine::Vm => {
            for v in &views {
                black_box(policy.evaluate(black_box(v)));
            }
        }
        Engine::Reference => {
            let ir = ir.as_ref().expect("checked above");
            for v in &views {
                black_box(fltpolicy_compiler::oracle::evaluate(ir, black_box(v)));
            }
        }
    };
    // Calibrate: passes per run so that a run lasts at least run_ms.
    let min_run = Duration::from_millis(args.run_ms.max(1));
    let mut passes: u64 = 1;
    while args.passes.is_none() {
        let t = Instant::now();
        for _ in 0..passes {
            pass();
        }
        if t.elapsed() >= min_run / 4 || passes >= 1 << 30 {
            let per = t.elapsed().as_nanos().max(1) as f64 / passes as f64;
            passes = ((min_run.as_nanos() as f64 / per).ceil() as u64).max(1);
            break;
        }
        passes *= 4;
    }
    if let Some(p) = args.passes {
        passes = p.max(1);
    }
    let runs = args.runs.max(1);
    let mut ns: Vec<f64> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..passes {
            pass();
        }
        let el = t.elapsed().as_nanos() as f64;
        ns.push(el / (passes as f64 * views.len() as f64));
    }
    let mut sorted = ns.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[sorted.len() / 2];
    let engine = match args.engine {
        Engine::Vm => "vm",
        Engine::Reference => "reference",
    };
    println!(
        "{engine}: median {median:.1} ns/event over {runs} runs (min {:.1}, max {:.1}); {} events x {passes} passes per run; {} rules",
        sorted[0],
        sorted[sorted.len() - 1],
        views.len(),
        policy.rule_count()
    );
    if args.json {
        println!(
            "{}",
            json!({
                "engine": engine,
                "ns_per_event": median,
                "runs_ns_per_event": ns,
                "events": views.len(),
                "passes_per_run": passes,
                "rules": policy.rule_count(),
                "worst_case_insns": policy.worst_case(),
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
