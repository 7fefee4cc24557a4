//! The `yagura edge` command line: `yagura edge --config FILE` runs the daemon; `status`, `drain`, `announce`,
//! `withdraw` talk to a running one through its control API; `--check` (or `check`) validates a config. The
//! binary only wires [`EdgeArgs`] in and maps [`run`]'s result to an exit code (0 ok, 1 invalid config, 2 usage
//! or I/O).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use yagura_daemon::log::{self, LogFormat};

use crate::config::EdgeConfig;
use crate::control;
use crate::instance::EdgeError;

/// BGP + BFD speaker announcing VIPs to the routers (ECMP), with a control API.
///
/// `yagura edge --config FILE` runs the daemon (SIGHUP reloads, SIGTERM drains). The subcommands talk to a
/// running daemon through its control API (the `control` address of --config, or --control).
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = false)]
pub struct EdgeArgs {
    #[command(subcommand)]
    action: Option<EdgeAction>,
    /// The edge config (TOML), e.g. examples/edge.toml.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The control API address of a running daemon (default: `control` from --config, else 127.0.0.1:9179).
    #[arg(long, global = true, value_name = "ADDR")]
    control: Option<SocketAddr>,
    /// Only check the config (like `nginx -t`): parse and validate it as the daemon does at start, print every
    /// problem with file:line:col, exit 0 valid / 1 invalid / 2 unreadable. Files it names (CA bundle, MD5
    /// password file) are not opened: they live on the host that runs the daemon.
    #[arg(long, requires = "config")]
    check: bool,
    /// Log format of the daemon: text or json.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    log_format: String,
}

#[derive(Subcommand, Debug)]
enum EdgeAction {
    /// Show sessions (state, uptime, BFD, prefixes) and VIPs of a running daemon.
    Status {
        /// Print the JSON document instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Drain a running daemon: withdraw every VIP, wait `drain_wait`, close the sessions, exit.
    Drain,
    /// Announce a VIP whose condition is `hook`.
    Announce {
        /// The VIP's name.
        vip: String,
    },
    /// Withdraw a VIP whose condition is `hook`.
    Withdraw {
        /// The VIP's name.
        vip: String,
    },
    /// Validate the config given with --config and exit (0 valid, 1 invalid); the same as --check.
    Check,
}

/// Why `yagura edge` failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage.
    #[error("{0}")]
    Usage(String),
    /// The daemon failed.
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// The control API failed.
    #[error(transparent)]
    Control(#[from] control::ClientError),
    /// The runtime could not start.
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

fn control_addr(a: &EdgeArgs) -> Result<SocketAddr, CliError> {
    if let Some(c) = a.control {
        return Ok(c);
    }
    if let Some(path) = &a.config {
        let loaded = yagura_daemon::config::load::<EdgeConfig>(path).map_err(EdgeError::from)?;
        return Ok(loaded.config.control);
    }
    Ok(SocketAddr::from(([127, 0, 0, 1], 9179)))
}

/// Runs `yagura edge …`; returns the exit code (0 ok, 1 invalid config).
pub fn run(a: EdgeArgs) -> Result<u8, CliError> {
    let action = if a.check {
        Some(&EdgeAction::Check)
    } else {
        a.action.as_ref()
    };
    match action {
        None => {
            let Some(path) = a.config.clone() else {
                return Err(CliError::Usage(
                    "`yagura edge` needs --config FILE (or a subcommand: status, drain, announce, withdraw, check)"
                        .into(),
                ));
            };
            let format: LogFormat = a.log_format.parse().map_err(CliError::Usage)?;
            log::init(format);
            match runtime()?.block_on(crate::instance::run(&path)) {
                Ok(()) => Ok(0),
                Err(EdgeError::Config(e)) => {
                    eprintln!("{}", e.human());
                    Ok(1)
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(EdgeAction::Check) => {
            let Some(path) = &a.config else {
                return Err(CliError::Usage(
                    "`yagura edge --check` needs --config FILE".into(),
                ));
            };
            match yagura_daemon::config::load::<EdgeConfig>(path) {
                Ok(l) => {
                    eprint!("{}", l.warnings);
                    Ok(0)
                }
                Err(e @ yagura_daemon::ConfigError::Invalid { .. }) => {
                    eprintln!("{}", e.human());
                    Ok(1)
                }
                Err(e) => Err(EdgeError::from(e).into()),
            }
        }
        Some(action) => {
            let addr = control_addr(&a)?;
            let (method, path) = match action {
                EdgeAction::Status { .. } => ("GET", "/v1/status".to_string()),
                EdgeAction::Drain => ("POST", "/v1/drain".to_string()),
                EdgeAction::Announce { vip } => ("POST", format!("/v1/vips/{vip}/announce")),
                EdgeAction::Withdraw { vip } => ("POST", format!("/v1/vips/{vip}/withdraw")),
                EdgeAction::Check => ("GET", "/v1/status".to_string()),
            };
            let v = runtime()?.block_on(control::request(addr, method, &path))?;
            match action {
                EdgeAction::Status { json: false } => print!("{}", control::format_status(&v)),
                EdgeAction::Drain => {
                    println!("draining: VIPs withdrawn, sessions close after drain_wait")
                }
                _ => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
            }
            Ok(0)
        }
    }
}
