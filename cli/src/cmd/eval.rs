//! `fltpolicy eval POLICY_OR_IMAGE --events FILE.jsonl | --event JSON`
//!
//! One JSON line per event: `{"action", "rule", "line", "tag"}`. The VM
//! evaluates; `--engine reference` uses the reference interpreter instead.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use fltpolicy_core::image::Policy;
use serde_json::json;

use crate::events::{read_jsonl, Event};
use crate::policy_input::{load, Loaded, TargetArg};

/// Which evaluator runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// The verified bytecode VM (what the enforcement points run).
    Vm,
    /// The reference interpreter over the checked policy (needs source).
    Reference,
}

/// Evaluate events against a policy.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol) or image (.fpi).
    policy: PathBuf,
    /// Events, one JSON object per line.
    #[arg(long, conflicts_with = "event", required_unless_present = "event")]
    events: Option<PathBuf>,
    /// A single event as JSON.
    #[arg(long)]
    event: Option<String>,
    #[arg(long, value_enum, default_value = "vm")]
    engine: Engine,
    /// Target when compiling a source.
    /// (default: the file's `target` statement, else windows)
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
}

/// The verdict of one engine as the JSON line `eval` prints.
/// `policy` is verified once by the caller, not per event.
pub fn verdict_json(
    policy: &Policy<'_>,
    loaded: &Loaded,
    engine: Engine,
    ev: &Event,
) -> Result<serde_json::Value> {
    let view = ev.view();
    let oracle;
    let (action, rule, line, tag) = match engine {
        Engine::Vm => {
            let v = policy.evaluate(&view);
            (v.action, v.rule, v.line, v.tag)
        }
        Engine::Reference => {
            let Some(ir) = &loaded.ir else {
                bail!("the reference engine needs the policy source, not an image");
            };
            oracle = fltpolicy_compiler::oracle::evaluate(ir, &view);
            (oracle.action, oracle.rule, oracle.line, oracle.tag.as_str())
        }
    };
    Ok(json!({
        "action": action.name(),
        "rule": rule,
        "line": rule.map(|_| line),
        "tag": (!tag.is_empty()).then_some(tag),
    }))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let loaded = load(&args.policy, args.target.map(Into::into))?;
    let events = match (&args.events, &args.event) {
        (Some(path), _) => read_jsonl(path)?,
        (None, Some(json)) => vec![Event::parse(json)?],
        (None, None) => bail!("give --events FILE.jsonl or --event JSON"),
    };
    if args.engine == Engine::Reference && loaded.ir.is_none() {
        bail!("the reference engine needs the policy source (.pol), not an image");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let policy = loaded.policy();
    for ev in &events {
        writeln!(out, "{}", verdict_json(&policy, &loaded, args.engine, ev)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
