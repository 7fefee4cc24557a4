//! Ansible inventory from Terraform state: reads a workspace's state (v4 JSON) from an S3-compatible store
//! (MinIO; path-style, `env:/<workspace>/<key>`) or from a file, and builds the groups and host variables of
//! Ansible's inventory-script protocol (`--list`, `--host NAME`).
//!
//! The state must carry the outputs `yagura render` writes (`cluster`, `env`, `api_vip`, `pools`, `nodes`,
//! `bgp`); see the crate README for the layout.
//!
//! ```
//! let state = r#"{"version": 4, "terraform_version": "1.11.0", "serial": 1, "lineage": "x", "resources": [],
//!   "outputs": {
//!     "cluster": {"value": "prd", "type": "string"}, "env": {"value": "production", "type": "string"},
//!     "api_vip": {"value": "203.0.113.11", "type": "string"}, "pools": {"value": {}, "type": "object"},
//!     "bgp": {"value": {"router_asn": 65020, "cluster_asn": 65021, "sessions": []}, "type": "object"},
//!     "nodes": {"value": [{"name": "prd-master-1", "role": "master", "index": 1, "id": "1",
//!       "global_address": "203.0.113.5", "internal_address": "192.168.100.11"}], "type": "list"}}}"#;
//! let st = yagura_inventory::parse_state("prd", state.as_bytes()).unwrap();
//! let inv = yagura_inventory::Inventory::build(&[st]);
//! assert_eq!(inv.list()["prd_masters"]["hosts"][0], "prd-master-1");
//! ```

mod source;
mod state;

pub use source::{fetch, object_key, S3Location, StateSource};
pub use state::{parse_state, Node, Session, State};

use serde_json::{json, Map, Value};

/// Why an inventory could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The bucket does not exist.
    #[error("bucket `{bucket}` does not exist at {endpoint}")]
    NoBucket {
        /// Bucket.
        bucket: String,
        /// Endpoint.
        endpoint: String,
    },
    /// No state object for the workspace.
    #[error(
        "no state at s3://{bucket}/{key} ({endpoint}): has workspace `{workspace}` been applied?"
    )]
    NoKey {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// Workspace.
        workspace: String,
        /// Endpoint.
        endpoint: String,
    },
    /// The store refused the credentials.
    #[error("{endpoint} refused the credentials for s3://{bucket}/{key}: {message}")]
    Denied {
        /// Endpoint.
        endpoint: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What the store said.
        message: String,
    },
    /// Credentials are missing.
    #[error("no S3 credentials: set {0}")]
    NoCredentials(String),
    /// Any other S3 failure (unreachable endpoint, bad URL…).
    #[error("reading s3://{bucket}/{key} from {endpoint}: {message}")]
    S3 {
        /// Endpoint.
        endpoint: String,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Cause.
        message: String,
    },
    /// A state file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The state is not JSON of the expected shape.
    #[error("state of workspace `{workspace}` is unreadable: {message}")]
    Unreadable {
        /// Workspace.
        workspace: String,
        /// Parser message.
        message: String,
    },
    /// A state format this reader does not know.
    #[error("state of workspace `{workspace}` has version {version}; only version 4 (Terraform ≥ 0.12) is supported")]
    UnsupportedVersion {
        /// Workspace.
        workspace: String,
        /// Its `version`.
        version: u64,
    },
    /// A required output is missing or malformed.
    #[error("state of workspace `{workspace}`: output `{output}` {problem} (was it applied from a configuration rendered by `yagura render`?)")]
    Output {
        /// Workspace.
        workspace: String,
        /// Output name.
        output: String,
        /// What is wrong.
        problem: String,
    },
}

/// Ansible group names are identifiers: a cluster's `-` becomes `_`.
pub fn group(cluster: &str, what: &str) -> String {
    format!("{}_{what}", cluster.replace('-', "_"))
}

/// The inventory of one or more workspaces.
#[derive(Debug, Clone)]
pub struct Inventory {
    groups: Map<String, Value>,
    hostvars: Map<String, Value>,
}

const ROLES: [(&str, &str); 4] = [
    ("router", "routers"),
    ("edge", "edges"),
    ("master", "masters"),
    ("worker", "workers"),
];

impl Inventory {
    /// Builds the groups and host variables of every state, in the order given.
    ///
    /// Per cluster `c`: `c_routers`, `c_edges`, `c_masters`, `c_workers`, `c_delegate` (the first master),
    /// `c_servers` (children edges, masters, workers) and `c` (children routers, servers; cluster facts as vars).
    /// Across clusters: `routers`, `edges`, `masters`, `workers`, `servers`, `delegate` with the per-cluster
    /// groups as children.
    pub fn build(states: &[State]) -> Self {
        let mut groups = Map::new();
        let mut hostvars = Map::new();
        let mut across: Vec<(&str, Vec<Value>)> = [
            "routers", "edges", "masters", "workers", "servers", "delegate",
        ]
        .into_iter()
        .map(|g| (g, Vec::new()))
        .collect();
        for st in states {
            let c = &st.cluster;
            let g = |w: &str| group(c, w);
            let delegate = st.nodes.iter().find(|n| n.role == "master");
            let pools: Vec<Value> = st.pools.iter().map(|(_, r)| json!(r)).collect();
            for (role, plural) in ROLES {
                let hosts: Vec<Value> = st
                    .nodes
                    .iter()
                    .filter(|n| n.role == role)
                    .map(|n| json!(n.name))
                    .collect();
                let vars = match role {
                    "router" => json!({ "bgp_address": pools, "bgp_asn": st.router_asn }),
                    "edge" => json!({ "vip": st.api_vip, "bgp_asn": st.cluster_asn }),
                    _ => json!({}),
                };
                groups.insert(g(plural), json!({ "hosts": hosts, "vars": vars }));
            }
            groups.insert(
                g("servers"),
                json!({ "children": [g("edges"), g("masters"), g("workers")] }),
            );
            groups.insert(
                g("delegate"),
                json!({ "hosts": delegate.map(|d| vec![d.name.clone()]).unwrap_or_default(), "vars": { "workspace": st.workspace } }),
            );
            groups.insert(
                c.replace('-', "_"),
                json!({
                    "children": [g("routers"), g("servers"), g("delegate")],
                    "vars": { "cluster": c, "env": st.env, "api_vip": st.api_vip, "workspace": st.workspace,
                              "pools": st.pools.iter().map(|(n, r)| (n.clone(), json!(r))).collect::<Map<_, _>>() },
                }),
            );
            for (name, list) in across.iter_mut() {
                list.push(json!(g(name)));
            }
            let jump = delegate.and_then(|d| d.global_address.clone());
            for n in &st.nodes {
                let peers: Vec<Value> = st
                    .sessions
                    .iter()
                    .filter_map(|s| {
                        if s.edge == n.name {
                            Some(json!({ "name": s.router, "address": s.router_address, "asn": st.router_asn, "bfd": s.bfd, "local_address": s.edge_address }))
                        } else if s.router == n.name {
                            Some(json!({ "name": s.edge, "address": s.edge_address, "asn": st.cluster_asn, "bfd": s.bfd, "local_address": s.router_address }))
                        } else {
                            None
                        }
                    })
                    .collect();
                let mut v = json!({
                    "ansible_host": n.global_address.clone().unwrap_or_else(|| n.internal_address.clone()),
                    "internal_address": n.internal_address,
                    "internal_ip": n.internal_address,
                    "global_address": n.global_address,
                    "role": n.role,
                    "index": n.index,
                    "cluster": c,
                    "server_id": n.id,
                });
                if matches!(n.role.as_str(), "router" | "edge") {
                    v["bgp_asn"] = json!(if n.role == "router" {
                        st.router_asn
                    } else {
                        st.cluster_asn
                    });
                    v["bgp_peers"] = json!(peers);
                }
                if n.global_address.is_none() {
                    if let Some(j) = &jump {
                        v["ansible_ssh_common_args"] = json!(format!("-o ProxyJump={j}"));
                    }
                }
                hostvars.insert(n.name.clone(), v);
            }
        }
        for (name, children) in across {
            groups.insert(name.to_string(), json!({ "children": children }));
        }
        Self { groups, hostvars }
    }

    /// `--list`: every group plus `_meta.hostvars` (so Ansible never calls `--host`).
    pub fn list(&self) -> Value {
        let mut m = self.groups.clone();
        m.insert("_meta".into(), json!({ "hostvars": self.hostvars }));
        Value::Object(m)
    }

    /// `--host NAME`: that host's variables.
    pub fn host(&self, name: &str) -> Option<&Value> {
        self.hostvars.get(name)
    }

    /// Every host name.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hostvars.keys().map(String::as_str)
    }
}
