//! Terraform state v4 (the JSON Terraform ≥ 0.12 writes): the envelope is checked, then the outputs
//! `yagura render` defines are read into a [`State`].

use crate::InventoryError;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The v4 envelope (only what is checked or read).
#[derive(Deserialize)]
struct Envelope {
    version: u64,
    #[serde(default)]
    outputs: BTreeMap<String, OutputValue>,
}

#[derive(Deserialize)]
struct OutputValue {
    value: Value,
}

/// A node as listed in the `nodes` output.
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    /// `<cluster>-<role>-<i>`.
    pub name: String,
    /// `router`, `edge`, `master`, `worker`.
    pub role: String,
    /// 1-based index within the role.
    pub index: u32,
    /// The provider's server id.
    #[serde(default)]
    pub id: Option<String>,
    /// Global address (none for workers).
    #[serde(default)]
    pub global_address: Option<String>,
    /// Internal address.
    pub internal_address: String,
}

/// An edge ↔ router session from the `bgp` output.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// Router node.
    pub router: String,
    /// Router address.
    pub router_address: String,
    /// Edge node.
    pub edge: String,
    /// Edge address.
    pub edge_address: String,
    /// BFD on.
    #[serde(default)]
    pub bfd: bool,
}

#[derive(Deserialize)]
struct Bgp {
    router_asn: u32,
    cluster_asn: u32,
    #[serde(default)]
    sessions: Vec<Session>,
}

#[derive(Deserialize)]
struct Pool {
    range: String,
}

/// What the inventory needs from one workspace's state.
#[derive(Debug, Clone)]
pub struct State {
    /// Workspace name.
    pub workspace: String,
    /// Cluster name.
    pub cluster: String,
    /// Env label.
    pub env: String,
    /// API VIP.
    pub api_vip: String,
    /// Pools: name → `first-last`, in name order.
    pub pools: Vec<(String, String)>,
    /// Nodes in output order.
    pub nodes: Vec<Node>,
    /// Router ASN.
    pub router_asn: u32,
    /// Edge ASN.
    pub cluster_asn: u32,
    /// BGP sessions.
    pub sessions: Vec<Session>,
}

/// Parses a state document of `workspace`.
pub fn parse_state(workspace: &str, bytes: &[u8]) -> Result<State, InventoryError> {
    let unreadable = |message: String| InventoryError::Unreadable {
        workspace: workspace.to_string(),
        message,
    };
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| unreadable(e.to_string()))?;
    match raw.get("version").and_then(Value::as_u64) {
        Some(4) => {}
        Some(version) => {
            return Err(InventoryError::UnsupportedVersion {
                workspace: workspace.to_string(),
                version,
            })
        }
        None => {
            return Err(unreadable(
                "no `version` field: not a Terraform state".into(),
            ))
        }
    }
    let env: Envelope = serde_json::from_value(raw).map_err(|e| unreadable(e.to_string()))?;
    debug_assert_eq!(env.version, 4);
    let out = |name: &str| -> Result<&Value, InventoryError> {
        env.outputs
            .get(name)
            .map(|o| &o.value)
            .ok_or_else(|| InventoryError::Output {
                workspace: workspace.to_string(),
                output: name.to_string(),
                problem: "is missing".into(),
            })
    };
    fn typed<T: serde::de::DeserializeOwned>(
        ws: &str,
        name: &str,
        v: &Value,
    ) -> Result<T, InventoryError> {
        serde_json::from_value(v.clone()).map_err(|e| InventoryError::Output {
            workspace: ws.to_string(),
            output: name.to_string(),
            problem: format!("has the wrong shape: {e}"),
        })
    }
    let nodes: Vec<Node> = typed(workspace, "nodes", out("nodes")?)?;
    let bgp: Bgp = typed(workspace, "bgp", out("bgp")?)?;
    let pools: BTreeMap<String, Pool> = typed(workspace, "pools", out("pools")?)?;
    Ok(State {
        workspace: workspace.to_string(),
        cluster: typed(workspace, "cluster", out("cluster")?)?,
        env: typed(workspace, "env", out("env")?)?,
        api_vip: typed(workspace, "api_vip", out("api_vip")?)?,
        pools: pools.into_iter().map(|(n, p)| (n, p.range)).collect(),
        nodes,
        router_asn: bgp.router_asn,
        cluster_asn: bgp.cluster_asn,
        sessions: bgp.sessions,
    })
}
