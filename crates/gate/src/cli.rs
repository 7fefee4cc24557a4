//! The `yagura gate` command line: `yagura gate --config FILE` runs the daemon; `--check` only validates the file.

use crate::config::GateConfig;
use crate::server::{run_blocking, GateError};
use std::path::PathBuf;
use yagura_daemon::log::LogFormat;
use yagura_daemon::ConfigError;

/// `yagura gate` arguments.
#[derive(clap::Args, Debug)]
pub struct GateArgs {
    /// The gate config (TOML), e.g. examples/gate.toml.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Only check the config (every problem with file:line:col), then exit: 0 valid, 1 invalid, 2 unreadable.
    /// The files it names (certificates, keys, secrets) are not opened: they exist where the daemon runs.
    #[arg(long)]
    pub check: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    pub log_format: String,
}

/// Why the command failed (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The daemon could not start or run.
    #[error(transparent)]
    Gate(GateError),
}

/// Runs the command; `Ok(1)` for an invalid config (already printed), `Ok(0)` otherwise.
pub fn run(a: GateArgs) -> Result<u8, CliError> {
    let format: LogFormat = a.log_format.parse().map_err(CliError::Usage)?;
    if a.check {
        return match yagura_daemon::config::load::<GateConfig>(&a.config) {
            Ok(l) => {
                eprint!("{}", l.warnings);
                Ok(0)
            }
            Err(e @ ConfigError::Invalid { .. }) => {
                eprintln!("{}", e.human());
                Ok(1)
            }
            Err(e) => Err(CliError::Gate(GateError::Config(e))),
        };
    }
    match run_blocking(&a.config, format) {
        Ok(()) => Ok(0),
        Err(GateError::Config(e @ ConfigError::Invalid { .. })) => {
            eprintln!("{}", e.human());
            Ok(1)
        }
        Err(e) => Err(CliError::Gate(e)),
    }
}
