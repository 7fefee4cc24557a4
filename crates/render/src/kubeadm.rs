//! kubeadm v1beta4 configurations, one file per node under `<cluster>/kubeadm/`: the first master's
//! InitConfiguration + ClusterConfiguration, a JoinConfiguration for every other master (control plane, with
//! the certificate key) and every worker. Secrets (bootstrap token, certificate key, CA hash) are Ansible
//! variables the bootstrap playbook fills in; the files are rendered into place with `ansible.builtin.template`.
//!
//! Bootstrap order (playbook `ansible/kubernetes.yml`): `kubeadm init --upload-certs` on the first master, then
//! the other masters one at a time, then the workers.

use crate::{yaml, yaml_docs, Cx, RenderError, Tree};
use serde::Serialize;
use yagura_spec::model::Role;
use yagura_spec::plan::PlanNode;

/// `kubeadm.k8s.io/v1beta4`.
pub const API_VERSION: &str = "kubeadm.k8s.io/v1beta4";

/// InitConfiguration (v1beta4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitConfiguration {
    /// API version.
    pub api_version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Bootstrap tokens.
    pub bootstrap_tokens: Vec<BootstrapToken>,
    /// Key encrypting the uploaded control-plane certificates (`kubeadm init --upload-certs`).
    pub certificate_key: String,
    /// This node.
    pub node_registration: NodeRegistration,
    /// Where this node's API server listens.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
}

/// A bootstrap token.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapToken {
    /// `abcdef.0123456789abcdef`.
    pub token: String,
    /// Lifetime.
    pub ttl: String,
    /// Usages.
    pub usages: Vec<&'static str>,
    /// Groups.
    pub groups: Vec<&'static str>,
}

/// Node registration.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRegistration {
    /// Node name.
    pub name: String,
    /// CRI socket.
    pub cri_socket: &'static str,
    /// Extra kubelet flags (v1beta4: a list of name/value).
    pub kubelet_extra_args: Vec<Arg>,
    /// Taints (masters keep the default control-plane taint when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<serde_json::Value>>,
}

/// A `name`/`value` argument (v1beta4 replaced maps with lists).
#[derive(Debug, Clone, Serialize)]
pub struct Arg {
    /// Flag name without dashes.
    pub name: String,
    /// Value.
    pub value: String,
}

/// An API endpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpoint {
    /// Address.
    pub advertise_address: String,
    /// Port.
    pub bind_port: u16,
}

/// ClusterConfiguration (v1beta4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfiguration {
    /// API version.
    pub api_version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Cluster name.
    pub cluster_name: String,
    /// `v1.31.4`.
    pub kubernetes_version: String,
    /// `VIP:6443`.
    pub control_plane_endpoint: String,
    /// Networking.
    pub networking: Networking,
    /// API server.
    pub api_server: ApiServer,
}

/// Networking.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Networking {
    /// Pod CIDR.
    pub pod_subnet: String,
    /// Service CIDR.
    pub service_subnet: String,
    /// DNS domain.
    pub dns_domain: &'static str,
}

/// API server.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiServer {
    /// Extra names and addresses in its certificate.
    #[serde(rename = "certSANs")]
    pub cert_sans: Vec<String>,
}

/// JoinConfiguration (v1beta4).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinConfiguration {
    /// API version.
    pub api_version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// This node.
    pub node_registration: NodeRegistration,
    /// How to find and trust the cluster.
    pub discovery: Discovery,
    /// Present for control-plane nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<JoinControlPlane>,
}

/// Discovery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// Token discovery.
    pub bootstrap_token: DiscoveryToken,
}

/// Token discovery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryToken {
    /// `VIP:6443`.
    pub api_server_endpoint: String,
    /// Token.
    pub token: String,
    /// `sha256:…` of the cluster CA's public key.
    pub ca_cert_hashes: Vec<String>,
}

/// Control-plane part of a join.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinControlPlane {
    /// Where this node's API server listens.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    /// Decrypts the uploaded certificates.
    pub certificate_key: String,
}

/// Ansible variables the bootstrap playbook sets (never rendered as values).
pub const TOKEN: &str = "{{ kubeadm_token }}";
/// See [`TOKEN`].
pub const CERT_KEY: &str = "{{ kubeadm_certificate_key }}";
/// See [`TOKEN`].
pub const CA_HASH: &str = "{{ kubeadm_ca_cert_hash }}";

fn registration(n: &PlanNode) -> NodeRegistration {
    NodeRegistration {
        name: n.name.clone(),
        cri_socket: "unix:///var/run/containerd/containerd.sock",
        kubelet_extra_args: vec![Arg {
            name: "node-ip".into(),
            value: n.internal_address.to_string(),
        }],
        taints: None,
    }
}

/// The ClusterConfiguration of a cluster.
pub fn cluster_configuration(cx: &Cx<'_>) -> ClusterConfiguration {
    let c = cx.cluster;
    let mut sans = vec![c.api_vip.to_string()];
    for n in cx.nodes(Role::Master) {
        sans.push(n.name.clone());
        sans.extend(n.global_address.map(|a| a.to_string()));
        sans.push(n.internal_address.to_string());
    }
    if let Some(d) = &cx.spec.platform.domain {
        sans.push(format!("api.{}.{d}", c.name));
    }
    ClusterConfiguration {
        api_version: API_VERSION,
        kind: "ClusterConfiguration",
        cluster_name: c.name.clone(),
        kubernetes_version: format!("v{}", c.kubernetes_version),
        control_plane_endpoint: c.api_endpoint.clone(),
        networking: Networking {
            pod_subnet: c.networks.pod.to_string(),
            service_subnet: c.networks.service.to_string(),
            dns_domain: "cluster.local",
        },
        api_server: ApiServer { cert_sans: sans },
    }
}

/// Renders `<cluster>/kubeadm/<node>.yaml` for every master and worker.
pub fn render(cx: &Cx<'_>, tree: &mut Tree) -> Result<(), RenderError> {
    let c = cx.cluster;
    let port = cx.spec.edge.api_port;
    let delegate = cx.delegate().map(|n| n.name.clone());
    for n in c
        .nodes
        .iter()
        .filter(|n| matches!(n.role, Role::Master | Role::Worker))
    {
        let path = cx.path(&format!("kubeadm/{}.yaml", n.name));
        let endpoint = ApiEndpoint {
            advertise_address: n.internal_address.to_string(),
            bind_port: port,
        };
        let text = if Some(&n.name) == delegate.as_ref() {
            let init = InitConfiguration {
                api_version: API_VERSION,
                kind: "InitConfiguration",
                bootstrap_tokens: vec![BootstrapToken {
                    token: TOKEN.into(),
                    ttl: "2h0m0s".into(),
                    usages: vec!["signing", "authentication"],
                    groups: vec!["system:bootstrappers:kubeadm:default-node-token"],
                }],
                certificate_key: CERT_KEY.into(),
                node_registration: registration(n),
                local_api_endpoint: endpoint,
            };
            yaml_docs(&[
                yaml(&path, &init)?,
                yaml(&path, &cluster_configuration(cx))?,
            ])
        } else {
            let join = JoinConfiguration {
                api_version: API_VERSION,
                kind: "JoinConfiguration",
                node_registration: registration(n),
                discovery: Discovery {
                    bootstrap_token: DiscoveryToken {
                        api_server_endpoint: c.api_endpoint.clone(),
                        token: TOKEN.into(),
                        ca_cert_hashes: vec![CA_HASH.into()],
                    },
                },
                control_plane: (n.role == Role::Master).then(|| JoinControlPlane {
                    local_api_endpoint: endpoint,
                    certificate_key: CERT_KEY.into(),
                }),
            };
            yaml_docs(&[yaml(&path, &join)?])
        };
        tree.add(path, text);
    }
    Ok(())
}
