//! The shared runtime of yagura's daemons: config loading and reload with diagnostics ([`config`]), logs
//! ([`log`]), SIGHUP/SIGTERM handling and draining ([`signals`]), and the HTTP endpoints every daemon has
//! (`/metrics`, `/healthz`, `/readyz`) ([`http`]).

pub mod config;
pub mod http;
pub mod log;
pub mod metrics;
pub mod signals;

pub use config::{ConfigError, DaemonConfig, Loaded};
pub use metrics::RuntimeMetrics;
pub use signals::{drain, Signals};
pub use tokio_util::sync::CancellationToken;
