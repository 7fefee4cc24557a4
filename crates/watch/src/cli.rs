//! `yagura watch …`: the clap arguments and what they do — run the daemon (`--config FILE`), check a config
//! (`--check`), or query a running daemon's HTTP API (`query top|flows|exporters|interfaces|syslog`) and print
//! tables or JSON.

use crate::daemon::WatchError;
use crate::WatchConfig;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// `yagura watch`: the flow and syslog collector.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WatchArgs {
    /// The daemon's config (TOML), e.g. examples/watch.toml. Runs until SIGTERM; SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only check the config and print its diagnostics (exit 0 valid, 1 invalid).
    #[arg(long, requires = "config")]
    pub check: bool,
    /// Log format on stderr.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Query a running daemon.
    #[command(subcommand)]
    pub command: Option<WatchCommand>,
}

/// `yagura watch <command>`.
#[derive(clap::Subcommand, Debug)]
pub enum WatchCommand {
    /// Query a running watch daemon over its HTTP API (see docs/watch.md).
    Query(QueryArgs),
    /// Recommend Prometheus's retention.size and retention.time for a volume (see docs/watch-guard.md).
    SizePrometheus(crate::guard::sizing::SizeArgs),
}

/// `yagura watch query …`.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The daemon's HTTP address.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9480",
        env = "YAGURA_WATCH_URL"
    )]
    pub server: String,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Window start: `15m` (ago), `now`, Unix seconds or RFC 3339. Default: an hour before `--to`.
    #[arg(long, global = true)]
    pub from: Option<String>,
    /// Window end (default now).
    #[arg(long, global = true)]
    pub to: Option<String>,
    /// What to ask.
    #[command(subcommand)]
    pub what: QueryWhat,
}

/// The queries.
#[derive(clap::Subcommand, Debug)]
pub enum QueryWhat {
    /// Top talkers, destinations, conversations, ports, exporters or interfaces by bytes, packets or flows.
    Top {
        /// src, dst, conversation, port, exporter or interface.
        #[arg(long, default_value = "src")]
        by: String,
        /// bytes, packets or flows.
        #[arg(long, default_value = "bytes")]
        order: String,
        /// Only this exporter.
        #[arg(long)]
        exporter: Option<String>,
        /// Rows.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Raw flow records, newest first.
    Flows {
        /// Source address.
        #[arg(long)]
        src: Option<String>,
        /// Destination address.
        #[arg(long)]
        dst: Option<String>,
        /// Either address.
        #[arg(long)]
        host: Option<String>,
        /// Either port.
        #[arg(long)]
        port: Option<u16>,
        /// IP protocol number (6 TCP, 17 UDP).
        #[arg(long)]
        proto: Option<u8>,
        /// Exporter address.
        #[arg(long)]
        exporter: Option<String>,
        /// Input or output ifIndex.
        #[arg(long)]
        if_index: Option<u32>,
        /// Wire protocol: sflow, netflow_v5, netflow_v9, ipfix.
        #[arg(long)]
        kind: Option<String>,
        /// Rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Exporters by traffic.
    Exporters,
    /// Interfaces from sFlow counter samples: latest counters and rates.
    Interfaces {
        /// Only this exporter.
        #[arg(long)]
        exporter: Option<String>,
    },
    /// Syslog messages, newest first.
    Syslog {
        /// HOSTNAME.
        #[arg(long)]
        host: Option<String>,
        /// Sender address.
        #[arg(long)]
        peer: Option<String>,
        /// APP-NAME / tag.
        #[arg(long)]
        app: Option<String>,
        /// This severity or worse (emerg … debug, or 0–7).
        #[arg(long)]
        severity: Option<String>,
        /// Facility (auth, daemon, local0, …).
        #[arg(long)]
        facility: Option<String>,
        /// Words that must all appear in the message.
        #[arg(long)]
        text: Option<String>,
        /// Rows.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The daemon answered with an error.
    #[error("{status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The daemon could not be reached or the answer was not JSON.
    #[error("{0}")]
    Transport(String),
}

fn push(params: &mut Vec<(&'static str, String)>, k: &'static str, v: Option<impl ToString>) {
    if let Some(v) = v {
        params.push((k, v.to_string()));
    }
}

/// The path and parameters of a query.
pub fn request(a: &QueryArgs) -> (&'static str, Vec<(&'static str, String)>) {
    let mut p = Vec::new();
    push(&mut p, "from", a.from.as_ref());
    push(&mut p, "to", a.to.as_ref());
    let path = match &a.what {
        QueryWhat::Top {
            by,
            order,
            exporter,
            limit,
        } => {
            push(&mut p, "by", Some(by));
            push(&mut p, "order", Some(order));
            push(&mut p, "exporter", exporter.as_ref());
            push(&mut p, "limit", Some(limit));
            "/api/v1/flows/top"
        }
        QueryWhat::Flows {
            src,
            dst,
            host,
            port,
            proto,
            exporter,
            if_index,
            kind,
            limit,
        } => {
            push(&mut p, "src", src.as_ref());
            push(&mut p, "dst", dst.as_ref());
            push(&mut p, "host", host.as_ref());
            push(&mut p, "port", *port);
            push(&mut p, "proto", *proto);
            push(&mut p, "exporter", exporter.as_ref());
            push(&mut p, "if_index", *if_index);
            push(&mut p, "kind", kind.as_ref());
            push(&mut p, "limit", Some(limit));
            "/api/v1/flows"
        }
        QueryWhat::Exporters => "/api/v1/exporters",
        QueryWhat::Interfaces { exporter } => {
            push(&mut p, "exporter", exporter.as_ref());
            "/api/v1/interfaces"
        }
        QueryWhat::Syslog {
            host,
            peer,
            app,
            severity,
            facility,
            text,
            limit,
        } => {
            push(&mut p, "host", host.as_ref());
            push(&mut p, "peer", peer.as_ref());
            push(&mut p, "app", app.as_ref());
            push(&mut p, "severity", severity.as_ref());
            push(&mut p, "facility", facility.as_ref());
            push(&mut p, "text", text.as_ref());
            push(&mut p, "limit", Some(limit));
            "/api/v1/syslog"
        }
    };
    (path, p)
}

/// GETs `server` + `path` with `params` and returns the JSON answer.
pub fn get(server: &str, path: &str, params: &[(&str, String)]) -> Result<Value, QueryError> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut req = agent.get(&format!("{}{}", server.trim_end_matches('/'), path));
    for (k, v) in params {
        req = req.query(k, v);
    }
    match req.call() {
        Ok(r) => r
            .into_json()
            .map_err(|e| QueryError::Transport(e.to_string())),
        Err(ureq::Error::Status(status, r)) => {
            let message = r
                .into_json::<Value>()
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "error".to_string());
            Err(QueryError::Status { status, message })
        }
        Err(e) => Err(QueryError::Transport(format!("{server}: {e}"))),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders an answer's rows as an aligned text table (columns from the first row, in order).
pub fn table(answer: &Value) -> String {
    let rows = answer
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(Value::Object(first)) = rows.first() else {
        return "(no rows)\n".into();
    };
    let cols: Vec<String> = first
        .keys()
        .filter(|k| k.as_str() != "raw")
        .cloned()
        .collect();
    let mut cells: Vec<Vec<String>> = vec![cols.clone()];
    for r in &rows {
        cells.push(
            cols.iter()
                .map(|c| cell(r.get(c).unwrap_or(&Value::Null)))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &cells {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == r.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `yagura watch …`; returns the process exit code (0 ok, 1 invalid config, 2 usage/I/O).
pub fn run(args: WatchArgs) -> Result<u8, WatchError> {
    if let Some(WatchCommand::SizePrometheus(a)) = &args.command {
        let mut out = Vec::new();
        let code = crate::guard::sizing::run(a, &mut out, &mut std::io::stderr());
        print_out(&String::from_utf8_lossy(&out))?;
        return Ok(code);
    }
    if let Some(WatchCommand::Query(q)) = &args.command {
        let (path, params) = request(q);
        return match get(&q.server, path, &params) {
            Ok(v) => {
                let text = if q.json {
                    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
                } else {
                    table(&v)
                };
                print_out(&text)?;
                Ok(0)
            }
            Err(e) => {
                eprintln!("yagura watch query: {e}");
                Ok(2)
            }
        };
    }
    let Some(config) = &args.config else {
        eprintln!("yagura watch: give --config FILE to run the daemon, or `yagura watch query …`");
        return Ok(2);
    };
    if args.check {
        return match yagura_daemon::config::load::<WatchConfig>(config) {
            Ok(l) => {
                eprint!("{}", l.warnings);
                Ok(0)
            }
            Err(e @ yagura_daemon::ConfigError::Invalid { .. }) => {
                eprintln!("{}", e.human());
                Ok(1)
            }
            Err(e) => Err(e.into()),
        };
    }
    let format = args.log_format.parse().unwrap_or_default();
    match crate::daemon::run_blocking(config, format) {
        Ok(()) => Ok(0),
        Err(WatchError::Config(e @ yagura_daemon::ConfigError::Invalid { .. })) => {
            eprintln!("{e}");
            Ok(1)
        }
        Err(e) => Err(e),
    }
}

fn print_out(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}
