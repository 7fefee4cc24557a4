//! The platform spec as written in TOML: one file for every cluster, its networks, nodes, pools, and the
//! sections the daemons (`edge`, `gate`, `watch`) and delivery (`apps`) read. Plain data; checks live in
//! `validate`, addresses are decided in `plan`.

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;
use yagura_config::{EnvName, FilePath};

/// The whole platform.
#[derive(Debug, Clone, Deserialize)]
pub struct Spec {
    /// Name, provider, zone, Terraform state.
    pub platform: Platform,
    /// ASNs, BGP timers, BFD defaults.
    pub routing: Routing,
    /// The clusters (`prd`, `dev`, `wsp`).
    pub clusters: Vec<Cluster>,
    /// The LB + BGP nodes (`yagura edge`).
    #[serde(default)]
    pub edge: EdgeSpec,
    /// The L7 tier (`yagura gate`).
    #[serde(default)]
    pub gate: Option<GateSpec>,
    /// The NOC (`yagura watch`).
    #[serde(default)]
    pub watch: Option<WatchSpec>,
    /// Delivery through Argo CD.
    #[serde(default)]
    pub apps: Option<AppsSpec>,
}

/// `[platform]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    /// A name for the whole platform (used in tags and descriptions).
    pub name: String,
    /// Where the VMs run.
    pub provider: Provider,
    /// The provider's zone, e.g. `is1b` or `tk1b`.
    pub zone: String,
    /// The root DNS domain (gate hosts hang below it).
    #[serde(default)]
    pub domain: Option<String>,
    /// Public SSH keys put on every node (paths).
    #[serde(default)]
    pub ssh_authorized_keys_files: Vec<FilePath>,
    /// Admin users created on every server node (Ansible), each with sudo and their SSH keys.
    #[serde(default)]
    pub admins: Vec<AdminUser>,
    /// Which Terraform provider `yagura render` writes for (`sakuracloud` 2.x or `sakura` 3.x).
    #[serde(default)]
    pub terraform_provider: TerraformProvider,
    /// Where Terraform keeps its state.
    pub state: StateBackend,
}

/// `[[platform.admins]]`: a login account on every server node.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminUser {
    /// Unix user name (lower case, starts with a letter or `_`, at most 32 characters).
    pub name: String,
    /// Public SSH keys of this user (paths, relative to the spec's directory); the platform's
    /// `ssh_authorized_keys_files` are added to every admin.
    #[serde(default)]
    pub ssh_authorized_keys_files: Vec<FilePath>,
    /// Extra groups; password-less sudo is granted through a sudoers drop-in regardless.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The Terraform provider for Sakura Cloud that `yagura render` targets.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TerraformProvider {
    /// `sacloud/sakuracloud` 2.x (resources `sakuracloud_*`).
    #[default]
    Sakuracloud,
    /// `sacloud/sakura` 3.x (resources `sakura_*`).
    Sakura,
}

/// The cloud provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Sakura Cloud (`sacloud/sakuracloud` Terraform provider).
    Sakuracloud,
    /// Reserved for a local provider (VMs or namespaces on one machine); planning works, rendering does not yet.
    Lab,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Sakuracloud => "sakuracloud",
            Provider::Lab => "lab",
        })
    }
}

/// `[platform.state]`: Terraform's S3 backend (MinIO or any S3-compatible store). Credentials are named, never given.
#[derive(Debug, Clone, Deserialize)]
pub struct StateBackend {
    /// S3 endpoint URL (`endpoints.s3`).
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Object key of the state (per workspace it lives at `<prefix>/<workspace>/<key>`).
    #[serde(default = "default_state_key")]
    pub key: String,
    /// Workspace key prefix; Terraform's default is `env:`, giving `env:/<workspace>/<key>`.
    #[serde(default = "default_workspace_prefix")]
    pub workspace_key_prefix: String,
    /// Region name the S3 client signs with.
    #[serde(default = "default_region")]
    pub region: String,
    /// Environment variable with the access key id.
    #[serde(default = "default_access_env")]
    pub access_key_env: EnvName,
    /// Environment variable with the secret access key.
    #[serde(default = "default_secret_env")]
    pub secret_key_env: EnvName,
}

fn default_state_key() -> String {
    "terraform.tfstate".into()
}
fn default_workspace_prefix() -> String {
    "env:".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_access_env() -> EnvName {
    EnvName::from_static("AWS_ACCESS_KEY_ID")
}
fn default_secret_env() -> EnvName {
    EnvName::from_static("AWS_SECRET_ACCESS_KEY")
}

/// An autonomous system number, 2- or 4-octet. Written as an integer (`65020`) or in asdot (`"64512.1"`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Asn(pub u32);

impl Asn {
    /// True inside the private-use ranges (RFC 6996): 64512–65534 and 4200000000–4294967294.
    pub fn is_private(self) -> bool {
        (64512..=65534).contains(&self.0) || (4_200_000_000..=4_294_967_294).contains(&self.0)
    }

    /// True when the number needs 4 octets.
    pub fn is_four_octet(self) -> bool {
        self.0 > 65535
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Asn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "invalid ASN {what}: use 1–4294967295 or asdot `X.Y`"
            ))
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .map(Asn)
                .ok_or_else(|| bad(&n.to_string())),
            Raw::Text(s) => {
                let (hi, lo) = s.split_once('.').ok_or_else(|| bad(&format!("`{s}`")))?;
                let hi: u16 = hi.parse().map_err(|_| bad(&format!("`{s}`")))?;
                let lo: u16 = lo.parse().map_err(|_| bad(&format!("`{s}`")))?;
                let n = (u32::from(hi) << 16) | u32::from(lo);
                if n == 0 {
                    return Err(bad(&format!("`{s}`")));
                }
                Ok(Asn(n))
            }
        }
    }
}

/// `[routing]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Routing {
    /// The ASN of each cluster's router (VyOS).
    pub router_asn: Asn,
    /// The ASN the edges speak from.
    pub cluster_asn: Asn,
    /// Which network the edge ↔ router sessions use.
    #[serde(default)]
    pub session_network: SessionNetwork,
    /// Environment variable holding the TCP MD5 password for the sessions (optional).
    #[serde(default)]
    pub md5_password_env: Option<EnvName>,
    /// BGP timers.
    #[serde(default)]
    pub bgp: BgpTimers,
    /// BFD defaults.
    #[serde(default)]
    pub bfd: BfdSettings,
}

/// The network BGP sessions run over.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SessionNetwork {
    /// The private switch shared with the router.
    #[default]
    Internal,
    /// The provider's global network.
    Global,
}

/// `[routing.bgp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BgpTimers {
    /// Hold time (0, or 3 s and more; whole seconds).
    #[serde(with = "humantime_serde")]
    pub hold_time: Duration,
    /// Keepalive interval (whole seconds, below the hold time).
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// First connect retry; later ones back off.
    #[serde(with = "humantime_serde")]
    pub connect_retry: Duration,
    /// Graceful restart (RFC 4724).
    pub graceful_restart: bool,
    /// Restart time advertised with graceful restart.
    #[serde(with = "humantime_serde")]
    pub restart_time: Duration,
}

impl Default for BgpTimers {
    fn default() -> Self {
        Self {
            hold_time: Duration::from_secs(9),
            keepalive: Duration::from_secs(3),
            connect_retry: Duration::from_secs(5),
            graceful_restart: true,
            restart_time: Duration::from_secs(120),
        }
    }
}

/// `[routing.bfd]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BfdSettings {
    /// Run BFD on every session.
    pub enabled: bool,
    /// Desired min TX interval (50 ms or more).
    #[serde(with = "humantime_serde")]
    pub min_tx: Duration,
    /// Required min RX interval (50 ms or more).
    #[serde(with = "humantime_serde")]
    pub min_rx: Duration,
    /// Detect multiplier.
    pub multiplier: u32,
}

impl Default for BfdSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_tx: Duration::from_millis(300),
            min_rx: Duration::from_millis(300),
            multiplier: 3,
        }
    }
}

/// `[[clusters]]`: one Kubernetes cluster and its VMs.
#[derive(Debug, Clone, Deserialize)]
pub struct Cluster {
    /// Short name (`prd`); also the Terraform workspace.
    pub name: String,
    /// Environment label Argo CD selects on (defaults to the name).
    #[serde(default)]
    pub env: Option<String>,
    /// Kubernetes version, e.g. `1.31.4` (kubeadm v1beta4 needs 1.31 or later).
    pub kubernetes_version: String,
    /// The networks.
    pub network: ClusterNetwork,
    /// VMs by role.
    pub nodes: NodeGroups,
    /// The API server VIP; the planner picks one after the edges when absent.
    #[serde(default)]
    pub api_vip: Option<Ipv4Addr>,
    /// LoadBalancer pools.
    #[serde(default)]
    pub pools: Vec<Pool>,
}

impl Cluster {
    /// The Argo CD environment label.
    pub fn env_label(&self) -> &str {
        self.env.as_deref().unwrap_or(&self.name)
    }
}

/// `[clusters.network]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterNetwork {
    /// The global network on the provider's router+switch (sakuracloud: /26, /27 or /28).
    pub global: Ipv4Net,
    /// The private switch shared by every node and the router.
    pub internal: Ipv4Net,
    /// Pod CIDR.
    #[serde(default = "default_pod")]
    pub pod: IpNet,
    /// Service CIDR.
    #[serde(default = "default_service")]
    pub service: IpNet,
}

fn default_pod() -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16))
}
fn default_service() -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 12))
}

/// `[clusters.nodes]`: one group per role.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeGroups {
    /// The VyOS router (on both networks; gateway of the internal one).
    pub router: NodeGroup,
    /// LB + BGP nodes running `yagura edge`.
    pub edge: NodeGroup,
    /// Control-plane nodes (odd count for etcd quorum).
    pub master: NodeGroup,
    /// Workers (internal network only), each with a data disk for Ceph.
    pub worker: NodeGroup,
}

/// A role's node group.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeGroup {
    /// How many.
    pub count: u32,
    /// vCPUs.
    pub cores: u32,
    /// Memory, GB.
    pub memory_gb: u32,
    /// System disk, GB.
    pub disk_gb: u32,
    /// Extra data disk, GB (workers: Ceph OSD).
    #[serde(default)]
    pub data_disk_gb: Option<u32>,
    /// OS image name (router default `vyos`, others `ubuntu`).
    #[serde(default)]
    pub os: Option<String>,
    /// Host number of the first node on the internal network (node *i* gets offset + *i* − 1).
    #[serde(default)]
    pub internal_offset: Option<u32>,
}

/// A role.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// VyOS router.
    Router,
    /// Kubernetes control plane.
    Master,
    /// LB + BGP node.
    Edge,
    /// Kubernetes worker.
    Worker,
}

impl Role {
    /// All roles in allocation order.
    pub const ALL: [Role; 4] = [Role::Router, Role::Master, Role::Edge, Role::Worker];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Master => "master",
            Role::Edge => "edge",
            Role::Worker => "worker",
        }
    }

    /// Default host number of the first node of this role on the internal network.
    pub fn default_internal_offset(self) -> u32 {
        match self {
            Role::Router => 1,
            Role::Master => 11,
            Role::Edge => 31,
            Role::Worker => 101,
        }
    }

    /// True for roles that get a global address.
    pub fn has_global_address(self) -> bool {
        !matches!(self, Role::Worker)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NodeGroups {
    /// The group of a role.
    pub fn get(&self, role: Role) -> &NodeGroup {
        match role {
            Role::Router => &self.router,
            Role::Master => &self.master,
            Role::Edge => &self.edge,
            Role::Worker => &self.worker,
        }
    }
}

/// `[[clusters.pools]]`: addresses handed to LoadBalancer Services and announced by the edges.
#[derive(Debug, Clone, Deserialize)]
pub struct Pool {
    /// Name (`global`, `private`), chosen per Service by annotation.
    pub name: String,
    /// Who can reach it.
    #[serde(default)]
    pub access: PoolAccess,
    /// A block (for `public` on sakuracloud: a routed provider subnet whose next hop is the router).
    #[serde(default)]
    pub cidr: Option<IpNet>,
    /// An explicit `first-last` range (inside `cidr` when both are given).
    #[serde(default)]
    pub range: Option<AddrRange>,
    /// Take this many addresses from the top of the cluster's global network.
    #[serde(default)]
    pub from_global: Option<u32>,
    /// Skip addresses ending in .0 and .255 (buggy clients and CPEs).
    #[serde(default)]
    pub avoid_buggy_ips: bool,
    /// Services get addresses from this pool without asking for it.
    #[serde(default = "yes")]
    pub auto_assign: bool,
}

fn yes() -> bool {
    true
}

/// Reachability of a pool.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PoolAccess {
    /// Reachable from the Internet.
    #[default]
    Public,
    /// Reachable only over the site-to-site VPN.
    Vpn,
}

/// An inclusive address range written `"198.51.100.10-198.51.100.20"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub start: IpAddr,
    /// Last address (same family, not before `start`).
    pub end: IpAddr,
}

impl FromStr for AddrRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').ok_or_else(|| {
            format!("`{s}` is not a range: write `FIRST-LAST`, e.g. `198.51.100.10-198.51.100.20`")
        })?;
        let start: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not an IP address", a.trim()))?;
        let end: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not an IP address", b.trim()))?;
        if start.is_ipv4() != end.is_ipv4() {
            return Err(format!("range `{s}` mixes IPv4 and IPv6"));
        }
        if crate::addr::to_u128(start) > crate::addr::to_u128(end) {
            return Err(format!("range `{s}` ends before it starts"));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl<'de> Deserialize<'de> for AddrRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[edge]`: how the LB + BGP nodes announce VIPs and balance the API server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EdgeSpec {
    /// Announce VIPs by BGP (ECMP across edges) or by L2 (ARP/NDP).
    pub announce: AnnounceMode,
    /// Backend selection for the API server listener.
    pub balance: Balance,
    /// API server port on the VIP and on the masters.
    pub api_port: u16,
    /// Withdraw the API VIP when fewer masters than this are healthy.
    pub min_healthy: u32,
    /// How long SIGTERM waits for connections after withdrawing.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Port of `/metrics` and the control API.
    pub metrics_port: u16,
    /// Health check of each master's API server.
    pub api_health: HealthCheck,
}

impl Default for EdgeSpec {
    fn default() -> Self {
        Self {
            announce: AnnounceMode::Bgp,
            balance: Balance::Maglev,
            api_port: 6443,
            min_healthy: 1,
            drain_timeout: Duration::from_secs(30),
            metrics_port: 9470,
            api_health: HealthCheck::default(),
        }
    }
}

/// How VIPs are made reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceMode {
    /// BGP with BFD towards the router; ECMP over every healthy edge.
    Bgp,
    /// Gratuitous ARP / unsolicited NA from one edge at a time.
    L2,
}

/// Backend selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// In turn.
    RoundRobin,
    /// Fewest active connections.
    LeastConn,
    /// Consistent hash of the client address: every edge picks the same backend.
    Maglev,
}

/// An active health check.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// TCP connect, HTTP or HTTPS GET.
    pub kind: HealthKind,
    /// Path for HTTP(S).
    pub path: String,
    /// Expected status for HTTP(S).
    pub expect_status: u16,
    /// Between checks.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Per check.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Successes before up.
    pub rise: u32,
    /// Failures before down.
    pub fall: u32,
    /// CA bundle for HTTPS (the cluster CA).
    pub ca_file: Option<FilePath>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            kind: HealthKind::Https,
            path: "/readyz".into(),
            expect_status: 200,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
            ca_file: None,
            insecure_skip_verify: false,
        }
    }
}

/// Kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    /// TCP connect.
    Tcp,
    /// HTTP GET.
    Http,
    /// HTTPS GET.
    Https,
}

/// `[gate]`: TLS ingress and GitHub / OIDC sign-in.
#[derive(Debug, Clone, Deserialize)]
pub struct GateSpec {
    /// Clusters gate runs in (all when empty).
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Host serving the sign-in callback (`authenticate.example.net`).
    pub auth_host: String,
    /// File with the key that signs session cookies.
    pub cookie_secret_file: FilePath,
    /// Session lifetime.
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How often membership is re-read from the identity provider during a session.
    #[serde(default = "default_recheck", with = "humantime_serde")]
    pub membership_recheck: Duration,
    /// ACME account e-mail for the cert-manager ClusterIssuer.
    #[serde(default)]
    pub acme_email: Option<String>,
    /// GitHub OAuth app.
    #[serde(default)]
    pub github: Option<GithubAuth>,
    /// A generic OIDC provider (Dex, Keycloak).
    #[serde(default)]
    pub oidc: Option<OidcAuth>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<GateRoute>,
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}
fn default_recheck() -> Duration {
    Duration::from_secs(300)
}

/// `[gate.github]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubAuth {
    /// The organization whose members may sign in.
    pub org: String,
    /// OAuth app client id (public).
    pub client_id: String,
    /// Environment variable with the client secret.
    #[serde(default)]
    pub client_secret_env: Option<EnvName>,
    /// File with the client secret.
    #[serde(default)]
    pub client_secret_file: Option<FilePath>,
    /// REST API base (GitHub Enterprise: `https://HOST/api/v3`).
    #[serde(default = "default_github_api")]
    pub api_url: String,
    /// Web base for the OAuth flow.
    #[serde(default = "default_github_web")]
    pub web_url: String,
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}
fn default_github_web() -> String {
    "https://github.com".into()
}

/// `[gate.oidc]`.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcAuth {
    /// Issuer URL (discovery at `/.well-known/openid-configuration`).
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Environment variable with the client secret.
    #[serde(default)]
    pub client_secret_env: Option<EnvName>,
    /// File with the client secret.
    #[serde(default)]
    pub client_secret_file: Option<FilePath>,
    /// Claim with the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// `[[gate.routes]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GateRoute {
    /// Name.
    pub name: String,
    /// Cluster serving it.
    pub cluster: String,
    /// Host.
    pub host: String,
    /// Path prefix.
    #[serde(default = "default_path")]
    pub path: String,
    /// Upstream URL (`http://svc.ns.svc:port`).
    pub upstream: String,
    /// Who may pass.
    #[serde(default)]
    pub access: Access,
    /// GitHub users allowed (`access = "allow"`).
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// GitHub orgs whose active members are allowed.
    #[serde(default)]
    pub allow_orgs: Vec<String>,
    /// GitHub teams allowed, `org:team`.
    #[serde(default)]
    pub allow_teams: Vec<String>,
    /// OIDC groups allowed.
    #[serde(default)]
    pub allow_groups: Vec<String>,
}

fn default_path() -> String {
    "/".into()
}

/// Access policy of a route.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// No sign-in.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Only the users, orgs, teams or groups listed.
    #[default]
    Allow,
}

/// `[watch]`: flows, syslog, SNMP, heartbeats, disk guard and alerting.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchSpec {
    /// The cluster watch runs in.
    pub cluster: String,
    /// Other `yagura watch` instances guarding this one, and guarded by it.
    #[serde(default)]
    pub peers: Vec<WatchPeer>,
    /// Storage retention.
    #[serde(default)]
    pub retention: Retention,
    /// Network devices.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Prometheus instances to guard.
    #[serde(default)]
    pub prometheus: Vec<GuardedPrometheus>,
    /// Alertmanager instances to guard.
    #[serde(default)]
    pub alertmanager: Vec<GuardedAlertmanager>,
    /// Heartbeats expected.
    #[serde(default)]
    pub heartbeats: Vec<Heartbeat>,
    /// Where alerts go.
    #[serde(default)]
    pub notify: Vec<Notifier>,
}

/// `[[watch.peers]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchPeer {
    /// Name.
    pub name: String,
    /// Base URL of the peer's HTTP API.
    pub url: String,
}

/// `[watch.retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Retention {
    /// Raw flow records.
    #[serde(with = "humantime_serde")]
    pub flows_raw: Duration,
    /// Per-minute flow rollups.
    #[serde(with = "humantime_serde")]
    pub flows_rollup: Duration,
    /// Syslog.
    #[serde(with = "humantime_serde")]
    pub logs: Duration,
    /// Hard cap on the store, GB.
    pub max_disk_gb: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            flows_raw: Duration::from_secs(2 * 86400),
            flows_rollup: Duration::from_secs(90 * 86400),
            logs: Duration::from_secs(30 * 86400),
            max_disk_gb: 16,
        }
    }
}

/// `[[watch.devices]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    /// Name.
    pub name: String,
    /// Management address.
    pub address: IpAddr,
    /// SNMP polling.
    #[serde(default)]
    pub snmp: Option<Snmp>,
    /// Exports sFlow.
    #[serde(default)]
    pub sflow: bool,
    /// Exports NetFlow / IPFIX.
    #[serde(default)]
    pub netflow: bool,
    /// Sends syslog.
    #[serde(default)]
    pub syslog: bool,
}

/// SNMP settings of a device.
#[derive(Debug, Clone, Deserialize)]
pub struct Snmp {
    /// `2c` or `3`.
    pub version: SnmpVersion,
    /// v2c: environment variable with the community.
    #[serde(default)]
    pub community_env: Option<EnvName>,
    /// v3: user name.
    #[serde(default)]
    pub user: Option<String>,
    /// v3: authentication protocol.
    #[serde(default)]
    pub auth_protocol: Option<SnmpAuth>,
    /// v3: environment variable with the authentication pass phrase.
    #[serde(default)]
    pub auth_password_env: Option<EnvName>,
    /// v3: privacy protocol.
    #[serde(default)]
    pub privacy_protocol: Option<SnmpPrivacy>,
    /// v3: environment variable with the privacy pass phrase.
    #[serde(default)]
    pub privacy_password_env: Option<EnvName>,
    /// UDP port.
    #[serde(default = "default_snmp_port")]
    pub port: u16,
    /// Poll interval.
    #[serde(default = "default_snmp_interval", with = "humantime_serde")]
    pub interval: Duration,
}

fn default_snmp_port() -> u16 {
    161
}
fn default_snmp_interval() -> Duration {
    Duration::from_secs(60)
}

/// SNMP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
pub enum SnmpVersion {
    /// Community-based v2c.
    #[serde(rename = "2c")]
    V2c,
    /// User-based v3.
    #[serde(rename = "3")]
    V3,
}

/// SNMPv3 authentication protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnmpAuth {
    /// HMAC-SHA-96.
    Sha,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

/// SNMPv3 privacy protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnmpPrivacy {
    /// AES-128-CFB.
    Aes,
    /// AES-256-CFB (Blumenthal).
    Aes256,
}

/// `[[watch.prometheus]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GuardedPrometheus {
    /// Name.
    pub name: String,
    /// Base URL of its HTTP API.
    pub url: String,
    /// Cluster it runs in.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Size of its volume, GB (for `retention.size` and the disk guard).
    #[serde(default)]
    pub volume_gb: Option<u32>,
}

/// `[[watch.alertmanager]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GuardedAlertmanager {
    /// Name.
    pub name: String,
    /// Base URL.
    pub url: String,
}

/// `[[watch.heartbeats]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Heartbeat {
    /// Name (`/ping/NAME`).
    pub name: String,
    /// Expected period.
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    /// Extra time before a missing beat alerts.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

/// `[[watch.notify]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Notifier {
    /// Name.
    pub name: String,
    /// Kind of receiver.
    pub kind: NotifierKind,
    /// Environment variable with the webhook URL (it carries a token, so it is a secret).
    #[serde(default)]
    pub url_env: Option<EnvName>,
    /// Plain URL (Alertmanager's API only).
    #[serde(default)]
    pub url: Option<String>,
}

/// Receiver kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// Slack-compatible incoming webhook.
    Slack,
    /// Discord webhook.
    Discord,
    /// Generic JSON webhook.
    Webhook,
    /// Alertmanager v2 API.
    Alertmanager,
}

/// `[apps]`: delivery through Argo CD.
#[derive(Debug, Clone, Deserialize)]
pub struct AppsSpec {
    /// Git repository with the applications.
    pub repo: String,
    /// Revision to track.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Cluster running Argo CD.
    pub argocd_cluster: String,
    /// Environment labels in sync order (canary first), e.g. `["dev", "prd"]`.
    #[serde(default)]
    pub sync_order: Vec<String>,
    /// Applications.
    #[serde(default)]
    pub applications: Vec<App>,
}

fn default_revision() -> String {
    "HEAD".into()
}

/// `[[apps.applications]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct App {
    /// Name.
    pub name: String,
    /// Path in the repository.
    pub path: String,
    /// Clusters it goes to.
    pub clusters: Vec<String>,
    /// Target namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The keys valid at a place in the spec, for "did you mean" on unknown keys.
pub fn fields_at(path: &yagura_config::KeyPath) -> &'static [&'static str] {
    use yagura_config::fields_of as f;
    match path.shape().as_slice() {
        [] => f::<Spec>(),
        ["platform"] => f::<Platform>(),
        ["platform", "state"] => f::<StateBackend>(),
        ["platform", "admins"] => f::<AdminUser>(),
        ["routing"] => f::<Routing>(),
        ["routing", "bgp"] => f::<BgpTimers>(),
        ["routing", "bfd"] => f::<BfdSettings>(),
        ["clusters"] => f::<Cluster>(),
        ["clusters", "network"] => f::<ClusterNetwork>(),
        ["clusters", "nodes"] => f::<NodeGroups>(),
        ["clusters", "nodes", _] => f::<NodeGroup>(),
        ["clusters", "pools"] => f::<Pool>(),
        ["edge"] => f::<EdgeSpec>(),
        ["edge", "api_health"] => f::<HealthCheck>(),
        ["gate"] => f::<GateSpec>(),
        ["gate", "github"] => f::<GithubAuth>(),
        ["gate", "oidc"] => f::<OidcAuth>(),
        ["gate", "routes"] => f::<GateRoute>(),
        ["watch"] => f::<WatchSpec>(),
        ["watch", "peers"] => f::<WatchPeer>(),
        ["watch", "retention"] => f::<Retention>(),
        ["watch", "devices"] => f::<Device>(),
        ["watch", "devices", "snmp"] => f::<Snmp>(),
        ["watch", "prometheus"] => f::<GuardedPrometheus>(),
        ["watch", "alertmanager"] => f::<GuardedAlertmanager>(),
        ["watch", "heartbeats"] => f::<Heartbeat>(),
        ["watch", "notify"] => f::<Notifier>(),
        ["apps"] => f::<AppsSpec>(),
        ["apps", "applications"] => f::<App>(),
        _ => &[],
    }
}
