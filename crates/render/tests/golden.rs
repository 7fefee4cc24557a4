//! Golden test: the example spec renders to exactly the tree under `tests/golden/ictsc2020/`, twice over
//! (deterministic). Regenerate after an intended change with `YAGURA_BLESS=1 cargo test -p yagura-render`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn example_renders_to_the_golden_tree() {
    let golden = root().join("crates/render/tests/golden/ictsc2020");
    let tree = render_text(&example_text(), &golden);
    assert_eq!(
        tree,
        render_text(&example_text(), &golden),
        "rendering is not deterministic"
    );
    if std::env::var_os("YAGURA_BLESS").is_some() {
        tree.write_atomic(&golden).unwrap();
    }
    let diffs = tree.check(&golden).unwrap();
    let text: String = diffs.iter().map(ToString::to_string).collect();
    assert!(
        diffs.is_empty(),
        "rendered tree differs from the golden one (YAGURA_BLESS=1 to accept):\n{text}"
    );
}

#[test]
fn facts_in_the_rendered_example() {
    let tree = render_text(&example_text(), &root().join("out"));
    let backend: serde_json::Value =
        serde_json::from_str(tree.get("prd/terraform/backend.tf.json").unwrap()).unwrap();
    let s3 = &backend["terraform"]["backend"]["s3"];
    assert_eq!(s3["endpoints"]["s3"], "https://minio.ictsc.net:9000");
    for k in [
        "use_path_style",
        "skip_credentials_validation",
        "skip_region_validation",
        "skip_requesting_account_id",
        "use_lockfile",
    ] {
        assert_eq!(s3[k], true, "{k}");
    }
    assert_eq!(s3["workspace_key_prefix"], "env:");
    let main: serde_json::Value =
        serde_json::from_str(tree.get("prd/terraform/main.tf.json").unwrap()).unwrap();
    let r = &main["resource"];
    assert_eq!(r["sakuracloud_internet"]["global"]["netmask"], 27);
    assert_eq!(
        r["sakuracloud_subnet"]["pool-global"]["next_hop"],
        "203.0.113.4"
    );
    assert_eq!(r["sakuracloud_subnet"]["pool-global"]["netmask"], 28);
    assert!(
        r["sakuracloud_subnet"].get("pool-private").is_none(),
        "a VPN pool is not a provider subnet"
    );
    let m1 = &r["sakuracloud_server"]["prd-master-1"];
    assert_eq!(m1["disk_edit_parameter"]["ip_address"], "203.0.113.5");
    assert_eq!(m1["disk_edit_parameter"]["netmask"], 27);
    assert_eq!(m1["disk_edit_parameter"]["gateway"], "203.0.113.1");
    let w1 = &r["sakuracloud_server"]["prd-worker-1"];
    assert_eq!(
        w1["disks"].as_array().unwrap().len(),
        2,
        "system + Ceph data disk"
    );
    assert_eq!(w1["disk_edit_parameter"]["gateway"], "192.168.100.1");
    assert_eq!(r["sakuracloud_disk"]["prd-worker-1-data"]["size"], 100);
    assert_eq!(
        r["sakuracloud_disk"]["prd-master-3"]["distant_from"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The key path is relative, so the tree is the same on every checkout.
    let key = main["locals"]["ssh_keys"][0].as_str().unwrap();
    assert!(
        key.contains("${path.module}/../../../examples/keys/admin.pub"),
        "{key}"
    );

    let init = tree.get("prd/kubeadm/prd-master-1.yaml").unwrap();
    assert!(
        init.contains("kind: InitConfiguration") && init.contains("kind: ClusterConfiguration"),
        "{init}"
    );
    assert!(
        init.contains("controlPlaneEndpoint: 203.0.113.11:6443"),
        "{init}"
    );
    assert!(
        init.contains("podSubnet: 10.244.0.0/16") && init.contains("kubernetesVersion: v1.31.4"),
        "{init}"
    );
    let w = tree.get("prd/kubeadm/prd-worker-2.yaml").unwrap();
    assert!(
        w.contains("kind: JoinConfiguration") && !w.contains("controlPlane:"),
        "{w}"
    );
    assert!(w.contains("value: 192.168.100.22"), "node-ip: {w}");

    let frr = tree.get("prd/router/frr.conf").unwrap();
    assert!(
        frr.contains("maximum-paths 3") && frr.contains("ip route 198.51.100.0/28 blackhole"),
        "{frr}"
    );
    assert!(
        frr.contains("ip prefix-list EDGES-IN seq 10 permit 203.0.113.11/32"),
        "{frr}"
    );
    assert_eq!(frr.matches("peer-group EDGES").count(), 3, "{frr}");
    let vyos = tree.get("prd/router/vyos.commands").unwrap();
    assert!(
        vyos.contains("set protocols bgp neighbor 192.168.100.33 bfd profile 'edges'"),
        "{vyos}"
    );
    assert!(vyos.contains("maximum-paths ebgp '3'"), "{vyos}");

    let servers = tree.get("prd/ansible/servers.yml").unwrap();
    assert!(
        servers.contains("SystemdCgroup = true")
            && servers.contains("--node-ip={{ internal_address }}"),
        "{servers}"
    );
    let vars = tree.get("prd/ansible/group_vars/all.yml").unwrap();
    assert!(
        vars.contains("name: noc") && vars.contains("../../../examples/keys/noc.pub"),
        "{vars}"
    );
    assert!(tree
        .get("prd/ansible/files/yagura-edge.service")
        .unwrap()
        .contains("yagura edge --config"));

    let mon = tree.get("wsp/manifests/50-monitoring.yaml").unwrap();
    assert!(
        mon.contains("--storage.tsdb.retention.size=16GB"),
        "80 % of 20 GB: {mon}"
    );
    assert!(
        tree.get("prd/manifests/50-monitoring.yaml").is_none(),
        "Prometheus runs in wsp only"
    );
    let apps = tree
        .get("wsp/manifests/70-argocd-applicationsets.yaml")
        .unwrap();
    let steps = &apps[apps.find("rollingSync:").unwrap()..];
    let dev = steps.find("- development").unwrap();
    let prd = steps.find("- production").unwrap();
    assert!(dev < prd, "dev syncs before prd: {apps}");
}
