//! `fltpolicy load IMAGE_OR_POL [--control SOCKET]`: hands a policy to the
//! running enforcement point, which verifies it and swaps it in atomically.
//! Linux: the engine's control socket. Windows: the driver's control device.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use fltpolicy_core::event::Target;

/// Load a policy into the running enforcement point (hot reload).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy source (.pol, compiled here for this platform) or image (.fpi).
    policy: PathBuf,
    /// The engine's control socket (Linux; as given to `fltpolicy run --control`).
    #[arg(long)]
    control: Option<PathBuf>,
}

/// The platform policies are compiled for here.
const HOST_TARGET: Target = if cfg!(windows) {
    Target::Windows
} else {
    Target::Linux
};

/// What a successful load reports, on either platform.
struct Loaded {
    generation: u64,
    rule_count: u32,
    policy_hash: [u8; 32],
}

pub fn run(args: Args) -> Result<ExitCode> {
    let loaded = crate::policy_input::load(&args.policy, Some(HOST_TARGET))?;
    let reply = send(&args, loaded.image)?;
    let hash: String = reply.policy_hash[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    eprintln!(
        "loaded {}: generation {}, {} rules, sha256 {hash}…",
        args.policy.display(),
        reply.generation,
        reply.rule_count
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
fn send(args: &Args, image: Vec<u8>) -> Result<Loaded> {
    let Some(socket) = &args.control else {
        anyhow::bail!(
            "--control SOCKET is required: the socket given to `fltpolicy run --control`"
        );
    };
    let r = fltpolicy_linux::control::client::load(socket, image)?;
    Ok(Loaded {
        generation: r.generation,
        rule_count: r.rule_count,
        policy_hash: r.policy_hash,
    })
}

#[cfg(windows)]
fn send(_args: &Args, image: Vec<u8>) -> Result<Loaded> {
    let r = crate::cmd::control_windows::load_policy(&image)?;
    Ok(Loaded {
        generation: r.generation,
        rule_count: r.rule_count,
        policy_hash: r.policy_hash,
    })
}

#[cfg(not(any(target_os = "linux", windows)))]
fn send(_args: &Args, _image: Vec<u8>) -> Result<Loaded> {
    anyhow::bail!("no enforcement point on this platform")
}
