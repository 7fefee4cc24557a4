//! Synthetic specs of any size, for property tests and benchmarks: valid by construction on sakuracloud.

use std::fmt::Write;

/// The shape of one synthetic cluster.
#[derive(Debug, Clone)]
pub struct SynthCluster {
    /// Masters (odd).
    pub masters: u32,
    /// Edges (≥ 1).
    pub edges: u32,
    /// Workers.
    pub workers: u32,
    /// Global netmask: 26, 27 or 28.
    pub global_prefix: u8,
    /// Sizes of pools taken from the global network.
    pub from_global: Vec<u32>,
    /// Add a routed /28 pool.
    pub routed_pool: bool,
    /// Give the API VIP explicitly (the last usable address below the pools) instead of letting the planner pick.
    pub explicit_vip: bool,
}

impl SynthCluster {
    /// A cluster of `nodes` VMs: 1 router, 3 masters, 3 edges, the rest workers, on a /26 with a routed pool.
    pub fn sized(nodes: u32) -> Self {
        Self {
            masters: 3,
            edges: 3,
            workers: nodes.saturating_sub(7),
            global_prefix: 26,
            from_global: vec![4],
            routed_pool: true,
            explicit_vip: false,
        }
    }

    /// Usable global addresses on sakuracloud for this netmask.
    pub fn usable(&self) -> u32 {
        (1u32 << (32 - u32::from(self.global_prefix))) - 5
    }

    /// Global addresses this shape needs.
    pub fn needed(&self) -> u32 {
        1 + self.masters + self.edges + 1 + self.from_global.iter().sum::<u32>()
    }
}

/// A spec text with one cluster per entry (`c0`, `c1`, …). Cluster *i* gets the global network at
/// 198.18.0.0 + 64·*i*, a routed pool at 198.19.*i*.0/28 and the shared internal 192.168.100.0/24.
pub fn spec_text(clusters: &[SynthCluster]) -> String {
    let mut s = String::from(
        r#"[platform]
name = "synthetic"
provider = "sakuracloud"
zone = "is1b"

[platform.state]
endpoint = "http://127.0.0.1:9000"
bucket = "terraform"

[routing]
router_asn = 65020
cluster_asn = 4200000001
"#,
    );
    for (i, c) in clusters.iter().enumerate() {
        let base = 64 * u32::try_from(i).unwrap_or(0);
        let net =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + base);
        let _ = write!(
            s,
            r#"
[[clusters]]
name = "c{i}"
kubernetes_version = "1.31.4"
"#
        );
        if c.explicit_vip {
            let size = 1u32 << (32 - u32::from(c.global_prefix));
            let below_pools = size - 2 - c.from_global.iter().sum::<u32>();
            let vip = std::net::Ipv4Addr::from(u32::from(net) + below_pools);
            let _ = writeln!(s, "api_vip = \"{vip}\"");
        }
        let _ = write!(
            s,
            r#"
[clusters.network]
global = "{net}/{}"
internal = "192.168.100.0/24"

[clusters.nodes.router]
count = 1
cores = 2
memory_gb = 4
disk_gb = 20

[clusters.nodes.edge]
count = {}
cores = 2
memory_gb = 4
disk_gb = 20

[clusters.nodes.master]
count = {}
cores = 4
memory_gb = 8
disk_gb = 40

[clusters.nodes.worker]
count = {}
cores = 4
memory_gb = 16
disk_gb = 40
data_disk_gb = 100
"#,
            c.global_prefix, c.edges, c.masters, c.workers
        );
        for (j, n) in c.from_global.iter().enumerate() {
            let _ = write!(
                s,
                "\n[[clusters.pools]]\nname = \"g{j}\"\nfrom_global = {n}\n"
            );
        }
        if c.routed_pool {
            let _ = write!(
                s,
                "\n[[clusters.pools]]\nname = \"routed\"\ncidr = \"198.19.{i}.0/28\"\n"
            );
        }
    }
    s
}

/// `clusters` clusters of `nodes` VMs each (the benchmark's 100 × 50).
pub fn large(clusters: usize, nodes: u32) -> String {
    spec_text(&vec![SynthCluster::sized(nodes); clusters])
}
