//! Typed structs for the custom resources yagura renders: Rook's CephCluster and CephFilesystem, Argo CD's
//! ApplicationSet and cert-manager's ClusterIssuer. Only the fields yagura sets are modelled; the tests check
//! every rendered object against the CRDs' published OpenAPI schemas (excerpts vendored under
//! `tests/data/crds/`), with unknown fields refused.

use serde::Serialize;
use std::collections::BTreeMap;

/// Object metadata of a custom resource (name, namespace, labels).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Meta {
    /// Name.
    pub name: String,
    /// Namespace (absent for cluster-scoped objects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A custom resource: apiVersion, kind, metadata, spec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    /// API version.
    pub api_version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Metadata.
    pub metadata: Meta,
    /// Spec.
    pub spec: S,
}

/// `ceph.rook.io/v1` CephCluster spec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CephClusterSpec {
    /// Ceph image.
    pub ceph_version: CephVersion,
    /// Where mons keep their data on the host.
    pub data_dir_host_path: String,
    /// Monitors.
    pub mon: MonSpec,
    /// Managers.
    pub mgr: MgrSpec,
    /// Dashboard.
    pub dashboard: DashboardSpec,
    /// Which disks become OSDs.
    pub storage: StorageScopeSpec,
}

/// Ceph image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CephVersion {
    /// e.g. `quay.io/ceph/ceph:v18.2.4`.
    pub image: String,
}

/// Monitors.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonSpec {
    /// Count (odd).
    pub count: u32,
    /// One per node.
    pub allow_multiple_per_node: bool,
}

/// Managers.
#[derive(Debug, Clone, Serialize)]
pub struct MgrSpec {
    /// Count.
    pub count: u32,
}

/// Dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardSpec {
    /// Enabled.
    pub enabled: bool,
}

/// Storage selection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageScopeSpec {
    /// Use every node.
    pub use_all_nodes: bool,
    /// Use every device.
    pub use_all_devices: bool,
    /// The nodes and their devices.
    pub nodes: Vec<StorageNode>,
}

/// A node's devices.
#[derive(Debug, Clone, Serialize)]
pub struct StorageNode {
    /// Node name.
    pub name: String,
    /// Devices.
    pub devices: Vec<Device>,
}

/// A device.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// Device name (`vdb`).
    pub name: String,
}

/// `ceph.rook.io/v1` CephFilesystem spec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CephFilesystemSpec {
    /// Metadata pool.
    pub metadata_pool: PoolSpec,
    /// Data pools.
    pub data_pools: Vec<NamedPoolSpec>,
    /// Keep the filesystem when the CR is deleted.
    pub preserve_filesystem_on_delete: bool,
    /// MDS.
    pub metadata_server: MetadataServerSpec,
}

/// A pool.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// Replication.
    pub replicated: ReplicatedSpec,
    /// Failure domain (`host`).
    pub failure_domain: String,
}

/// A named pool.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedPoolSpec {
    /// Name.
    pub name: String,
    /// Replication.
    pub replicated: ReplicatedSpec,
    /// Failure domain.
    pub failure_domain: String,
}

/// Replication.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedSpec {
    /// Copies.
    pub size: u32,
    /// Refuse size 1.
    pub require_safe_replica_size: bool,
}

/// MDS.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataServerSpec {
    /// Active MDS count.
    pub active_count: u32,
    /// Standby replay.
    pub active_standby: bool,
}

/// `argoproj.io/v1alpha1` ApplicationSet spec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// Go templates in the template.
    pub go_template: bool,
    /// Go template options.
    pub go_template_options: Vec<String>,
    /// Generators.
    pub generators: Vec<Generator>,
    /// Progressive sync.
    pub strategy: Strategy,
    /// The Application template.
    pub template: AppTemplate,
}

/// A cluster generator.
#[derive(Debug, Clone, Serialize)]
pub struct Generator {
    /// Clusters selected by label.
    pub clusters: ClusterGenerator,
}

/// Cluster generator.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterGenerator {
    /// Selector.
    pub selector: LabelSelector,
}

/// A label selector.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Expressions.
    pub match_expressions: Vec<Requirement>,
}

/// A selector requirement.
#[derive(Debug, Clone, Serialize)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// `In`.
    pub operator: String,
    /// Values.
    pub values: Vec<String>,
}

/// Rollout strategy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// `RollingSync`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Steps.
    pub rolling_sync: RollingSync,
}

/// Steps of a rolling sync.
#[derive(Debug, Clone, Serialize)]
pub struct RollingSync {
    /// In order.
    pub steps: Vec<Step>,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Applications of this step.
    pub match_expressions: Vec<Requirement>,
}

/// The Application template.
#[derive(Debug, Clone, Serialize)]
pub struct AppTemplate {
    /// Metadata (templated).
    pub metadata: Meta,
    /// Spec.
    pub spec: AppSpec,
}

/// Application spec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// Project.
    pub project: String,
    /// Source.
    pub source: AppSource,
    /// Destination.
    pub destination: AppDestination,
    /// Sync policy.
    pub sync_policy: SyncPolicy,
}

/// Source.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSource {
    /// Repository URL.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Revision.
    pub target_revision: String,
    /// Path.
    pub path: String,
}

/// Destination.
#[derive(Debug, Clone, Serialize)]
pub struct AppDestination {
    /// Cluster name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// Sync policy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Automated sync.
    pub automated: Automated,
    /// Options.
    pub sync_options: Vec<String>,
}

/// Automated sync.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    /// Prune.
    pub prune: bool,
    /// Self-heal.
    pub self_heal: bool,
}

/// `cert-manager.io/v1` ClusterIssuer spec (ACME).
#[derive(Debug, Clone, Serialize)]
pub struct IssuerSpec {
    /// ACME.
    pub acme: Acme,
}

/// ACME issuer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acme {
    /// Directory URL.
    pub server: String,
    /// Account e-mail.
    pub email: String,
    /// Secret keeping the account key.
    pub private_key_secret_ref: SecretKeySelector,
    /// Solvers.
    pub solvers: Vec<Solver>,
}

/// A secret reference.
#[derive(Debug, Clone, Serialize)]
pub struct SecretKeySelector {
    /// Secret name.
    pub name: String,
}

/// A solver.
#[derive(Debug, Clone, Serialize)]
pub struct Solver {
    /// HTTP-01.
    pub http01: Http01,
}

/// HTTP-01 solver.
#[derive(Debug, Clone, Serialize)]
pub struct Http01 {
    /// Through an ingress class.
    pub ingress: Http01Ingress,
}

/// Ingress for HTTP-01.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Http01Ingress {
    /// Ingress class name.
    pub ingress_class_name: String,
}
