//! `fltpolicy test POLICY [--cases FILE]`: run the cases that ship beside a
//! policy and report per-rule coverage.
//!
//! Cases live in `NAME.cases.toml` beside `NAME.pol`:
//!
//! ```toml
//! target = "windows"            # optional, default windows
//!
//! [[case]]
//! name = "writes by pid 1234 under C:\\Data are logged"
//! event = { op = "write", path = 'C:\Data\q3.xlsx', pid = 1234 }
//! expect = "log"                # log | deny | allow | none
//! rule = 1                      # optional: the deciding rule (1-based)
//! tag = "app-docs"              # optional
//! ```
//!
//! Every case runs through both the VM and the reference interpreter; a
//! disagreement between them fails the case as loudly as a wrong verdict.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use fltpolicy_core::event::{Op, Target};
use serde::Deserialize;

use crate::events::Event;
use crate::policy_input::compile_source;

/// Run a policy's shipped test cases and report rule coverage.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol).
    policy: PathBuf,
    /// Cases file; default: the policy's path with `.cases.toml`.
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Fail when some rule is reached by no case.
    #[arg(long)]
    require_coverage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[serde(default)]
    target: Option<String>,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    event: Event,
    expect: String,
    #[serde(default)]
    rule: Option<u32>,
    #[serde(default)]
    tag: Option<String>,
}

/// The cases file that belongs to `policy`.
pub fn default_cases_path(policy: &Path) -> PathBuf {
    let stem = policy
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    policy.with_file_name(format!("{stem}.cases.toml"))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let cases_path = args
        .cases
        .clone()
        .unwrap_or_else(|| default_cases_path(&args.policy));
    let text = std::fs::read_to_string(&cases_path)
        .with_context(|| format!("cannot read cases {}", cases_path.display()))?;
    let file: CasesFile = toml::from_str(&text)
        .with_context(|| format!("{}: invalid cases file", cases_path.display()))?;
    let target = match file.target.as_deref() {
        None => None,
        Some("windows") => Some(Target::Windows),
        Some("linux") => Some(Target::Linux),
        Some(other) => bail!("{}: unknown target {other:?}", cases_path.display()),
    };
    let src = std::fs::read_to_string(&args.policy)
        .with_context(|| format!("cannot read {}", args.policy.display()))?;
    let compiled = compile_source(&src, &args.policy.display().to_string(), target)?;
    let policy = fltpolicy_core::image::Policy::from_bytes(&compiled.image)
        .context("compiled image failed verification")?;
    if file.cases.is_empty() {
        bail!("{}: no [[case]] entries", cases_path.display());
    }

    let mut covered = BTreeSet::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for (i, mut case) in file.cases.into_iter().enumerate() {
        case.event.parsed_op = Some(Op::from_name(&case.event.op).with_context(|| {
            format!(
                "case {} ({}): unknown op {:?}",
                i + 1,
                case.name,
                case.event.op
            )
        })?);
        let view = case.event.view();
        let vm = policy.evaluate(&view);
        let oracle = fltpolicy_compiler::oracle::evaluate(&compiled.policy, &view);
        if let Some(r) = vm.rule {
            covered.insert(r);
        }
        let mut problems = Vec::new();
        if vm.action.name() != case.expect {
            problems.push(format!(
                "expected {}, got {}",
                case.expect,
                vm.action.name()
            ));
        }
        if case.rule.is_some() && case.rule != vm.rule {
            problems.push(format!("expected rule {:?}, got {:?}", case.rule, vm.rule));
        }
        if let Some(tag) = &case.tag {
            if tag != vm.tag {
                problems.push(format!("expected tag {tag:?}, got {:?}", vm.tag));
            }
        }
        if (vm.action, vm.rule, vm.tag) != (oracle.action, oracle.rule, oracle.tag.as_str()) {
            problems.push(format!(
                "VM and reference interpreter disagree: vm {} rule {:?}, reference {} rule {:?}",
                vm.action.name(),
                vm.rule,
                oracle.action.name(),
                oracle.rule
            ));
        }
        if problems.is_empty() {
            passed += 1;
            println!("ok   {}", case.name);
        } else {
            failed += 1;
            println!("FAIL {}: {}", case.name, problems.join("; "));
        }
    }
    let uncovered: Vec<_> = compiled
        .policy
        .rules
        .iter()
        .filter(|r| !covered.contains(&r.index))
        .collect();
    let total = compiled.policy.rules.len();
    println!(
        "coverage: {}/{} rules reached by some case",
        total - uncovered.len(),
        total
    );
    for r in &uncovered {
        println!("  rule {} (line {}) is reached by no case", r.index, r.line);
    }
    println!(
        "{}: {passed} cases passed, {failed} failed",
        args.policy.display()
    );
    let ok = failed == 0 && (!args.require_coverage || uncovered.is_empty());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
