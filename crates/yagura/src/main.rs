//! The `yagura` command: wires the CLI to the library crates. Exit codes: 0 ok, 1 invalid spec, 2 usage or I/O.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// One spec and one binary for a Kubernetes platform on plain VMs.
///
/// yagura reads a single TOML spec describing every cluster (networks, nodes, pools, BGP, ingress, monitoring),
/// plans every address from it, and renders what the real engines take.
#[derive(Parser, Debug)]
#[command(
    name = "yagura",
    version,
    propagate_version = true,
    max_term_width = 110
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a spec and print the plan: every node's addresses, the API VIP, pools and BGP sessions.
    ///
    /// Exit status: 0 when the spec is valid, 1 when it is not (every problem is printed with file:line:col),
    /// 2 on usage or I/O errors.
    Plan(PlanArgs),
    /// Validate a spec and print only its diagnostics (exit 0 valid, 1 invalid, 2 usage or I/O).
    Check(CheckArgs),
    /// Print the JSON Schema of `yagura plan --format json` (schema "yagura.plan/v1").
    Schema,
    /// Print a shell completion script, e.g. `yagura completions bash > /etc/bash_completion.d/yagura`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    /// The platform spec (TOML), e.g. examples/ictsc2020.toml.
    spec: PathBuf,
    /// Output format: tables for people, or JSON (schema "yagura.plan/v1") for tools.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Only these clusters (repeatable).
    #[arg(long = "cluster", short = 'c', value_name = "NAME")]
    clusters: Vec<String>,
    #[command(flatten)]
    diag: DiagArgs,
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// The platform spec (TOML).
    spec: PathBuf,
    #[command(flatten)]
    diag: DiagArgs,
}

#[derive(clap::Args, Debug)]
struct DiagArgs {
    /// How diagnostics are printed (on stderr).
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    message_format: MessageFormat,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Tables.
    Text,
    /// JSON.
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum MessageFormat {
    /// A source excerpt per problem, with labels and hints.
    Human,
    /// One line per problem: `file:line:col: error[code]: message (hint: …)`.
    Short,
    /// A JSON array.
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Color {
    /// When stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`yagura plan … | head`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("yagura: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Plan(a) => plan(a),
        Command::Check(a) => {
            let checked = load(&a.spec)?;
            print_diagnostics(&checked, &a.diag)?;
            Ok(if checked.has_errors() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Schema => {
            out(&yagura_spec::Plan::json_schema())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "yagura", &mut buf);
            std::io::stdout()
                .write_all(&buf)
                .context("writing completions")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<yagura_spec::Checked> {
    yagura_spec::check_file(path).map_err(anyhow::Error::from)
}

fn print_diagnostics(checked: &yagura_spec::Checked, d: &DiagArgs) -> anyhow::Result<()> {
    if checked.diagnostics.is_empty() {
        return Ok(());
    }
    let report = checked.report();
    let text = match d.message_format {
        MessageFormat::Human => {
            let color = match d.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                }
            };
            report.human(color)
        }
        MessageFormat::Short => report.short(),
        MessageFormat::Json => {
            let mut s =
                serde_json::to_string_pretty(&report.json()).context("encoding diagnostics")?;
            s.push('\n');
            s
        }
    };
    std::io::stderr()
        .write_all(text.as_bytes())
        .context("writing diagnostics")?;
    Ok(())
}

fn out(s: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes()).context("writing to stdout")?;
    o.flush().context("writing to stdout")?;
    Ok(())
}

fn plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let checked = load(&a.spec)?;
    print_diagnostics(&checked, &a.diag)?;
    let Some(mut plan) = checked.plan else {
        return Ok(ExitCode::from(1));
    };
    if !a.clusters.is_empty() {
        let known: Vec<String> = plan.clusters.iter().map(|c| c.name.clone()).collect();
        if let Some(missing) = a.clusters.iter().find(|c| !known.contains(c)) {
            anyhow::bail!(
                "no cluster named `{missing}` in {} (clusters: {})",
                a.spec.display(),
                known.join(", ")
            );
        }
        plan.clusters.retain(|c| a.clusters.contains(&c.name));
    }
    match a.format {
        Format::Text => out(&yagura_spec::text::render(&plan))?,
        Format::Json => out(&plan.to_json())?,
    }
    Ok(ExitCode::SUCCESS)
}
