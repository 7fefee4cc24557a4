//! The `yagura` command: wires the CLI to the library crates. Exit codes: 0 ok, 1 invalid spec, 2 usage or I/O.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: the daemons (the gate above all: ~12 % of its profile under load was in
/// glibc malloc/free) allocate many small, short-lived objects per request or packet.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Render every artifact of the spec into a directory: Terraform JSON, kubeadm, VyOS/FRR, Ansible, manifests.
    ///
    /// The tree is written atomically (a temp directory renamed into place) and is byte-identical for an
    /// unchanged spec. With --check nothing is written: exit 1 with a diff when DIR differs from the spec.
    /// Exit status: 0 ok (or up to date), 1 invalid spec or DIR out of date, 2 usage or I/O.
    Render(RenderArgs),
    /// Ansible inventory script: read Terraform state (v4) from S3 or a file, print groups and host vars.
    ///
    /// Use it as `ansible-inventory -i inventory.sh` (rendered per cluster) or directly. Settings come from
    /// flags or YAGURA_* variables; S3 credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the
    /// variables the spec's [platform.state] names, with --spec). Exit status: 0 ok, 2 on any error.
    Inventory(InventoryArgs),
    /// Print the JSON Schema of `yagura plan --format json` (schema "yagura.plan/v1").
    Schema,
    /// Print a shell completion script, e.g. `yagura completions bash > /etc/bash_completion.d/yagura`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The flow and syslog collector: `yagura watch --config FILE` runs it, `yagura watch query …` asks it.
    Watch(yagura_watch::cli::WatchArgs),
    /// The edge daemon (BGP + BFD VIPs with ECMP): `yagura edge --config FILE` runs it (`--check` only validates);
    /// `status`, `drain` ask it.
    Edge(yagura_edge::cli::EdgeArgs),
    /// The gate daemon (TLS ingress, GitHub/OIDC sign-in, per-route policy): `yagura gate --config FILE`.
    ///
    /// Exit status: 0 after a clean drain (SIGTERM), 1 invalid config (every problem printed), 2 on other errors.
    Gate(yagura_gate::cli::GateArgs),
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
struct RenderArgs {
    /// The platform spec (TOML).
    spec: PathBuf,
    /// Output directory (replaced as a whole).
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Compare DIR with what the spec renders to; write nothing.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    diag: DiagArgs,
}

#[derive(clap::Args, Debug)]
struct InventoryArgs {
    /// Print every group and `_meta.hostvars` (the default).
    #[arg(long, conflicts_with = "host")]
    list: bool,
    /// Print one host's variables.
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Take the S3 settings from this spec's [platform.state] (flags and variables override them).
    #[arg(long, env = "YAGURA_SPEC", value_name = "SPEC")]
    spec: Option<PathBuf>,
    /// Read the state from this file instead of S3 (one workspace).
    #[arg(long, env = "YAGURA_STATE_FILE", value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Workspaces (= clusters) to read; comma-separated in YAGURA_WORKSPACE. Default: every cluster of --spec.
    #[arg(
        long = "workspace",
        short = 'w',
        env = "YAGURA_WORKSPACE",
        value_delimiter = ','
    )]
    workspaces: Vec<String>,
    /// S3 endpoint URL (MinIO), path-style.
    #[arg(long, env = "YAGURA_STATE_ENDPOINT")]
    endpoint: Option<String>,
    /// Bucket.
    #[arg(long, env = "YAGURA_STATE_BUCKET")]
    bucket: Option<String>,
    /// State key [default: terraform.tfstate].
    #[arg(long, env = "YAGURA_STATE_KEY")]
    key: Option<String>,
    /// Workspace key prefix [default: env:].
    #[arg(long, env = "YAGURA_STATE_PREFIX")]
    workspace_key_prefix: Option<String>,
    /// Region to sign for [default: us-east-1].
    #[arg(long, env = "YAGURA_STATE_REGION")]
    region: Option<String>,
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
        Command::Watch(a) => Ok(ExitCode::from(yagura_watch::cli::run(a)?)),
        Command::Edge(a) => Ok(ExitCode::from(yagura_edge::cli::run(a)?)),
        Command::Gate(a) => Ok(ExitCode::from(yagura_gate::cli::run(a)?)),
        Command::Check(a) => {
            let checked = load(&a.spec)?;
            print_diagnostics(&checked, &a.diag)?;
            Ok(if checked.has_errors() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Render(a) => render(a),
        Command::Inventory(a) => inventory(a),
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

fn render(a: RenderArgs) -> anyhow::Result<ExitCode> {
    let checked = load(&a.spec)?;
    print_diagnostics(&checked, &a.diag)?;
    let (Some(spec), Some(plan)) = (checked.spec.as_ref(), checked.plan.as_ref()) else {
        return Ok(ExitCode::from(1));
    };
    let spec_dir = a
        .spec
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let opts = yagura_render::Options::new(spec_dir, &a.out);
    let tree = yagura_render::render(spec, plan, &opts)
        .with_context(|| format!("rendering {}", a.spec.display()))?;
    if a.check {
        let diffs = tree.check(&a.out)?;
        if diffs.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let mut text = String::new();
        for d in &diffs {
            text.push_str(&d.to_string());
        }
        text.push_str(&format!(
            "{} is out of date: {} file(s) differ from {}; run `yagura render {} -o {}`\n",
            a.out.display(),
            diffs.len(),
            a.spec.display(),
            a.spec.display(),
            a.out.display()
        ));
        std::io::stderr()
            .write_all(text.as_bytes())
            .context("writing the diff")?;
        return Ok(ExitCode::from(1));
    }
    tree.write_atomic(&a.out)?;
    eprintln!("rendered {} files into {}", tree.len(), a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn inventory(a: InventoryArgs) -> anyhow::Result<ExitCode> {
    use yagura_inventory::{S3Location, StateSource};
    let spec_state = match &a.spec {
        Some(p) => {
            let checked = load(p)?;
            let Some(plan) = checked.plan else {
                print_diagnostics(
                    &checked,
                    &DiagArgs {
                        message_format: MessageFormat::Short,
                        color: Color::Never,
                    },
                )?;
                anyhow::bail!("{} is not a valid spec", p.display());
            };
            Some(plan.platform.state)
        }
        None => None,
    };
    let mut workspaces = a.workspaces.clone();
    workspaces.retain(|w| !w.trim().is_empty());
    if workspaces.is_empty() {
        if let Some(st) = &spec_state {
            workspaces = st.workspaces.iter().map(|w| w.workspace.clone()).collect();
        }
    }
    if workspaces.is_empty() {
        anyhow::bail!("no workspace: give --workspace NAME (or YAGURA_WORKSPACE), or --spec SPEC");
    }
    let source = if let Some(f) = &a.state_file {
        if workspaces.len() > 1 {
            anyhow::bail!(
                "--state-file holds one workspace; {} were asked for",
                workspaces.len()
            );
        }
        StateSource::File(f.clone())
    } else {
        let from_env = |name: Option<&str>| -> String {
            name.and_then(|n| std::env::var(n).ok())
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    std::env::var(if name.is_some_and(|n| n.contains("SECRET")) {
                        "AWS_SECRET_ACCESS_KEY"
                    } else {
                        "AWS_ACCESS_KEY_ID"
                    })
                    .ok()
                })
                .unwrap_or_default()
        };
        let st = spec_state.as_ref();
        let pick = |flag: &Option<String>,
                    spec: Option<String>,
                    default: &str,
                    what: &str|
         -> anyhow::Result<String> {
            match (flag, spec) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(v)) => Ok(v),
                (None, None) if !default.is_empty() => Ok(default.to_string()),
                (None, None) => anyhow::bail!("no {what}: give --{what} (or YAGURA_STATE_{}), --spec SPEC, or --state-file FILE", what.to_uppercase()),
            }
        };
        let access_env = st
            .map(|s| s.access_key_env.clone())
            .unwrap_or_else(|| "AWS_ACCESS_KEY_ID".into());
        let secret_env = st
            .map(|s| s.secret_key_env.clone())
            .unwrap_or_else(|| "AWS_SECRET_ACCESS_KEY".into());
        StateSource::S3(S3Location {
            endpoint: pick(&a.endpoint, st.map(|s| s.endpoint.clone()), "", "endpoint")?,
            bucket: pick(&a.bucket, st.map(|s| s.bucket.clone()), "", "bucket")?,
            key: pick(
                &a.key,
                st.map(|s| s.key.clone()),
                "terraform.tfstate",
                "key",
            )?,
            workspace_key_prefix: pick(
                &a.workspace_key_prefix,
                st.map(|s| s.workspace_key_prefix.clone()),
                "env:",
                "prefix",
            )?,
            region: pick(
                &a.region,
                st.map(|s| s.region.clone()),
                "us-east-1",
                "region",
            )?,
            access_key_id: from_env(Some(access_env.as_str())),
            secret_access_key: from_env(Some(secret_env.as_str())),
        })
    };
    let mut states = Vec::new();
    for w in &workspaces {
        let bytes = yagura_inventory::fetch(&source, w)?;
        states.push(yagura_inventory::parse_state(w, &bytes)?);
    }
    let inv = yagura_inventory::Inventory::build(&states);
    let v = match &a.host {
        Some(h) => inv.host(h).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "no host named `{h}` in workspace(s) {}",
                workspaces.join(", ")
            )
        })?,
        None => inv.list(),
    };
    let _ = a.list;
    let mut s = serde_json::to_string_pretty(&v).context("encoding the inventory")?;
    s.push('\n');
    out(&s)?;
    Ok(ExitCode::SUCCESS)
}
