//! One module per subcommand.
pub mod bench;
pub mod check;
pub mod compile;
#[cfg(windows)]
pub mod control_windows;
pub mod disasm;
pub mod eval;
pub mod fmt;
pub mod import;
pub mod load;
pub mod log;
pub mod replay;
pub mod run;
pub mod set_log_path;
pub mod status;
pub mod test;
pub mod view;
