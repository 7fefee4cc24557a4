//! Renders a planned yagura platform into the artifacts the real engines take, as one deterministic tree of
//! files: Terraform JSON with the S3 backend, kubeadm v1beta4 configurations, VyOS commands and an FRR config for
//! the router, Ansible playbooks, and Kubernetes manifests (core objects from `k8s-openapi`, CRD objects from
//! the typed structs in [`crds`]). [`Tree::write_atomic`] writes it all or nothing; [`Tree::check`] compares it
//! with a tree on disk (`yagura render --check`).
//!
//! ```
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ictsc2020.toml");
//! let checked = yagura_spec::check_file(std::path::Path::new(path)).unwrap();
//! let (spec, plan) = (checked.spec.unwrap(), checked.plan.unwrap());
//! let opts = yagura_render::Options::new("examples", "out");
//! let tree = yagura_render::render(&spec, &plan, &opts).unwrap();
//! assert!(tree.get("prd/terraform/backend.tf.json").is_some());
//! ```

pub mod ansible;
pub mod crds;
pub mod daemons;
pub mod kubeadm;
pub mod manifests;
pub mod monitoring;
pub mod router;
pub mod terraform;
mod tree;

pub use tree::{Diff, DiffKind, File, Tree};

use std::path::{Component, Path, PathBuf};
use yagura_spec::model::{Provider, Spec};
use yagura_spec::plan::PlanCluster;
use yagura_spec::Plan;

/// Why rendering or writing failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The spec names a provider that has no renderer yet.
    #[error("provider `{0}` cannot be rendered yet (only sakuracloud)")]
    Provider(Provider),
    /// The spec asks for something the daemons cannot do yet.
    #[error("cannot be rendered: {0}")]
    Unsupported(String),
    /// A spec and its plan disagree (the plan was not made from this spec).
    #[error("the plan does not match the spec: {0}")]
    Mismatch(String),
    /// An object could not be encoded.
    #[error("encoding {what}: {message}")]
    Encode {
        /// The file being encoded.
        what: String,
        /// The encoder's message.
        message: String,
    },
    /// Reading or writing the tree failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output directory cannot be replaced safely.
    #[error("{0}")]
    Target(String),
}

/// Where the spec and the output live. Paths in the spec (SSH keys) are relative to the spec's directory; the
/// rendered files refer to them by a path relative to themselves, so the tree is the same on every checkout.
#[derive(Debug, Clone)]
pub struct Options {
    spec_dir: PathBuf,
    out_dir: PathBuf,
}

impl Options {
    /// `spec_dir`: the directory holding the spec; `out_dir`: the directory the tree is written to.
    pub fn new(spec_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        Self {
            spec_dir: absolute(&spec_dir.into()),
            out_dir: absolute(&out_dir.into()),
        }
    }

    /// The path of a spec-relative `file` as seen from the tree directory `from` (e.g. `prd/terraform`).
    pub fn spec_path_from(&self, from: &str, file: &str) -> String {
        if Path::new(file).is_absolute() {
            return file.to_string();
        }
        let here = self.out_dir.join(from);
        let rel = relative(&self.spec_dir.join(file), &here);
        rel.to_string_lossy().replace('\\', "/")
    }
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// `target` relative to the directory `base` (both absolute and normalised).
fn relative(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

/// Renders every artifact of every cluster of `plan` (made from `spec`).
pub fn render(spec: &Spec, plan: &Plan, opts: &Options) -> Result<Tree, RenderError> {
    if spec.platform.provider != Provider::Sakuracloud {
        return Err(RenderError::Provider(spec.platform.provider));
    }
    if spec.clusters.len() != plan.clusters.len() {
        return Err(RenderError::Mismatch(format!(
            "{} clusters in the spec, {} in the plan",
            spec.clusters.len(),
            plan.clusters.len()
        )));
    }
    let mut tree = Tree::default();
    tree.add("README.md", top_readme(plan));
    for (sc, pc) in spec.clusters.iter().zip(&plan.clusters) {
        if sc.name != pc.name {
            return Err(RenderError::Mismatch(format!(
                "cluster `{}` in the spec, `{}` in the plan",
                sc.name, pc.name
            )));
        }
        let cx = Cx {
            spec,
            plan,
            cluster: pc,
            opts,
        };
        terraform::render(&cx, &mut tree)?;
        kubeadm::render(&cx, &mut tree)?;
        router::render(&cx, &mut tree);
        ansible::render(&cx, &mut tree)?;
        manifests::render(&cx, &mut tree)?;
    }
    manifests::render_platform(spec, plan, &mut tree)?;
    Ok(tree)
}

/// What every renderer of one cluster needs.
pub struct Cx<'a> {
    /// The spec (daemon, delivery and admin sections).
    pub spec: &'a Spec,
    /// The whole plan.
    pub plan: &'a Plan,
    /// The cluster being rendered.
    pub cluster: &'a PlanCluster,
    /// Paths.
    pub opts: &'a Options,
}

impl Cx<'_> {
    /// `<cluster>/<rest>`.
    pub fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.cluster.name)
    }

    /// The nodes of a role.
    pub fn nodes(
        &self,
        role: yagura_spec::model::Role,
    ) -> impl Iterator<Item = &yagura_spec::plan::PlanNode> {
        self.cluster.nodes.iter().filter(move |n| n.role == role)
    }

    /// The first master: it runs `kubeadm init`.
    pub fn delegate(&self) -> Option<&yagura_spec::plan::PlanNode> {
        self.nodes(yagura_spec::model::Role::Master).next()
    }
}

/// A YAML document from any serializable value.
pub(crate) fn yaml<T: serde::Serialize>(what: &str, v: &T) -> Result<String, RenderError> {
    serde_yaml_ng::to_string(v).map_err(|e| RenderError::Encode {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// Several YAML documents in one file.
pub(crate) fn yaml_docs(docs: &[String]) -> String {
    docs.iter()
        .map(|d| format!("---\n{d}"))
        .collect::<Vec<_>>()
        .join("")
}

/// Pretty JSON with a trailing newline.
pub(crate) fn json(what: &str, v: &serde_json::Value) -> Result<String, RenderError> {
    serde_json::to_string_pretty(v)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| RenderError::Encode {
            what: what.to_string(),
            message: e.to_string(),
        })
}

fn top_readme(plan: &Plan) -> String {
    let mut s = format!(
        "# {} — rendered by `yagura render`\n\nDo not edit: change the spec and render again \
         (`yagura render SPEC -o DIR`; `--check` in CI).\n\n\
         One directory per cluster (each is a Terraform workspace of the same name):\n\n",
        plan.platform.name
    );
    for c in &plan.clusters {
        s.push_str(&format!(
            "- `{0}/` — env `{1}`, API `{2}`\n",
            c.name, c.env, c.api_endpoint
        ));
    }
    s.push_str(
        "\nIn each: `terraform/` (Sakura Cloud, state in S3), `kubeadm/` (per-node v1beta4 configs, Ansible \
         templates), `router/` (VyOS `set` commands and `frr.conf`), `ansible/` (playbooks; `inventory.sh` \
         calls `yagura inventory`), `manifests/` (apply in name order).\n\n\
         Order: `terraform apply` in the cluster's workspace → `ansible-playbook -i inventory.sh site.yml` \
         (router, servers, edges, then kubeadm init / join masters / join workers) → `kubectl apply -f manifests/`.\n",
    );
    s
}
