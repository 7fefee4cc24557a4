//! Terraform JSON (`*.tf.json`) for one cluster on Sakura Cloud: the global network, the internal switch, a
//! disk and a server per node (a Ceph data disk per worker), the routed pool subnets, a packet filter, the S3
//! backend for MinIO, and the outputs `yagura inventory` reads back from the state.
//!
//! Addresses are the planned ones, written literally; a postcondition on the provider's network (and on each
//! routed subnet) stops `apply` when the provider hands out a different block than the spec says, and a guard
//! refuses to apply a cluster in another cluster's workspace.

use crate::{json, Cx, RenderError, Tree};
use serde_json::{json, Map, Value};
use yagura_spec::model::{Role, TerraformProvider};

/// The outputs every rendered configuration defines and `yagura inventory` reads.
pub const OUTPUTS: &[&str] = &[
    "cluster", "env", "api_vip", "pools", "nodes", "bgp", "networks",
];

/// Renders `<cluster>/terraform/*.tf.json`.
pub fn render(cx: &Cx<'_>, tree: &mut Tree) -> Result<(), RenderError> {
    let c = cx.cluster;
    let dir = cx.path("terraform");
    let tp = cx.spec.platform.terraform_provider;
    let (pname, source, version) = match tp {
        TerraformProvider::Sakuracloud => ("sakuracloud", "sacloud/sakuracloud", "~> 2.25"),
        TerraformProvider::Sakura => ("sakura", "sacloud/sakura", "~> 3.0"),
    };
    let r = |kind: &str| format!("{pname}_{kind}");

    tree.add(
        format!("{dir}/backend.tf.json"),
        json("backend", &backend(cx))?,
    );
    tree.add(
        format!("{dir}/versions.tf.json"),
        json(
            "versions",
            &json!({
                "terraform": {
                    "required_version": ">= 1.10",
                    "required_providers": { pname: { "source": source, "version": version } }
                },
                "provider": { pname: { "zone": cx.plan.platform.zone } }
            }),
        )?,
    );

    let tags = |role: Option<Role>| -> Value {
        let mut t = vec![json!("k8s"), json!(c.name), json!(format!("env={}", c.env))];
        if let Some(role) = role {
            t.push(json!(format!("role={role}")));
        }
        Value::Array(t)
    };
    let g = &c.networks.global;
    let mut resources: Map<String, Value> = Map::new();
    let mut put = |kind: String, name: &str, v: Value| {
        let e = resources.entry(kind).or_insert_with(|| json!({}));
        if let Some(m) = e.as_object_mut() {
            m.insert(name.to_string(), v);
        }
    };

    put(
        "terraform_data".into(),
        "workspace_guard",
        json!({
            "input": c.name,
            "lifecycle": { "precondition": [{
                "condition": format!("${{terraform.workspace == \"{}\"}}", c.name),
                "error_message": format!("cluster {0} must be applied in workspace {0}: terraform workspace select -or-create {0}", c.name)
            }]}
        }),
    );
    put(
        r("internet"),
        "global",
        json!({
            "name": format!("{}-global", c.name),
            "netmask": g.netmask,
            "band_width": 100,
            "tags": tags(None),
            "lifecycle": { "postcondition": [{
                "condition": format!("${{self.network_address == \"{}\"}}", g.cidr.network()),
                "error_message": format!("the provider assigned ${{self.network_address}}/{0}; set clusters.network.global of {1} to that block in the spec and render again", g.netmask, c.name)
            }]}
        }),
    );
    put(
        r("switch"),
        "internal",
        json!({ "name": format!("{}-internal", c.name), "tags": tags(None) }),
    );
    put(
        r("packet_filter"),
        "global",
        json!({
            "name": format!("{}-global", c.name),
            "description": "masters and edges: ssh, API, HTTP(S), ICMP and return traffic",
            "expression": packet_filter(),
        }),
    );

    let mut archives: Map<String, Value> = Map::new();
    let ssh_keys: Vec<Value> = cx
        .spec
        .platform
        .ssh_authorized_keys_files
        .iter()
        .map(|f| {
            let rel = cx.opts.spec_path_from(&dir, &f.to_string());
            json!(format!("${{chomp(file(\"${{path.module}}/{rel}\"))}}"))
        })
        .collect();

    let masters: Vec<String> = cx.nodes(Role::Master).map(|n| n.name.clone()).collect();
    for n in &c.nodes {
        let arch = archive_name(&n.os);
        archives.entry(arch.clone()).or_insert_with(|| {
            if n.os == "ubuntu" {
                json!({ "os_type": "ubuntu2204" })
            } else {
                json!({ "filter": { "names": [n.os] } })
            }
        });
        let mut disk = json!({
            "name": n.name,
            "plan": "ssd",
            "size": n.disk_gb,
            "source_archive_id": format!("${{data.{}.{arch}.id}}", r("archive")),
            "tags": tags(Some(n.role)),
        });
        if n.role == Role::Master {
            // Keep master disks on different storage: each is distant from the ones before it.
            let before: Vec<Value> = masters
                .iter()
                .take_while(|m| **m != n.name)
                .map(|m| json!(format!("${{{}.{m}.id}}", r("disk"))))
                .collect();
            if !before.is_empty() {
                disk["distant_from"] = Value::Array(before);
            }
        }
        put(r("disk"), &n.name, disk);
        let mut disks = vec![json!(format!("${{{}.{}.id}}", r("disk"), n.name))];
        if let (Role::Worker, Some(gb)) = (n.role, n.data_disk_gb) {
            let data = format!("{}-data", n.name);
            put(
                r("disk"),
                &data,
                json!({
                    "name": data,
                    "plan": "ssd",
                    "size": gb,
                    "description": "Ceph OSD (Rook)",
                    "tags": tags(Some(n.role)),
                }),
            );
            disks.push(json!(format!("${{{}.{data}.id}}", r("disk"))));
        }
        let internal_nic = json!({
            "upstream": format!("${{{}.internal.id}}", r("switch")),
            "user_ip_address": n.internal_address.to_string(),
        });
        let (nics, edit) = match n.global_address {
            Some(ga) => {
                let mut nic = json!({
                    "upstream": format!("${{{}.global.switch_id}}", r("internet")),
                    "user_ip_address": ga.to_string(),
                });
                if n.role != Role::Router {
                    nic["packet_filter_id"] =
                        json!(format!("${{{}.global.id}}", r("packet_filter")));
                }
                (
                    vec![nic, internal_nic],
                    json!({
                        "hostname": n.name,
                        "ip_address": ga.to_string(),
                        "gateway": g.gateway.to_string(),
                        "netmask": g.netmask,
                        "ssh_keys": ssh_keys,
                        "disable_pw_auth": true,
                    }),
                )
            }
            None => (
                vec![internal_nic],
                json!({
                    "hostname": n.name,
                    "ip_address": n.internal_address.to_string(),
                    "gateway": c.networks.internal.gateway.to_string(),
                    "netmask": c.networks.internal.cidr.prefix_len(),
                    "ssh_keys": ssh_keys,
                    "disable_pw_auth": true,
                }),
            ),
        };
        let mut server = json!({
            "name": n.name,
            "core": n.cores,
            "memory": n.memory_gb,
            "disks": disks,
            "network_interface": nics,
            "tags": tags(Some(n.role)),
        });
        if n.role == Role::Router {
            // The VyOS image cannot be edited by the provider: it is configured with router/vyos.commands.
            server["description"] = json!("VyOS: configure with router/vyos.commands");
        } else {
            server["disk_edit_parameter"] = edit;
        }
        put(r("server"), &n.name, server);
    }
    for p in c.pools.iter() {
        if let (Some(hop), Some(net)) = (p.next_hop, p.cidr) {
            put(
                r("subnet"),
                &format!("pool-{}", p.name),
                json!({
                    "internet_id": format!("${{{}.global.id}}", r("internet")),
                    "next_hop": hop.to_string(),
                    "netmask": net.prefix_len(),
                    "lifecycle": { "postcondition": [{
                        "condition": format!("${{self.network_address == \"{}\"}}", net.network()),
                        "error_message": format!("the provider routed ${{self.network_address}}/{}; set pool {} of {} to that block in the spec and render again", net.prefix_len(), p.name, c.name)
                    }]}
                }),
            );
        }
    }
    let main = json!({
        "//": format!("cluster {} of {}: rendered by yagura render from the spec; do not edit", c.name, cx.plan.platform.name),
        "locals": { "ssh_keys": ssh_keys },
        "data": { r("archive"): archives },
        "resource": resources,
    });
    tree.add(format!("{dir}/main.tf.json"), json("main", &main)?);
    tree.add(
        format!("{dir}/outputs.tf.json"),
        json("outputs", &outputs(cx, &r))?,
    );
    tree.add(format!("{dir}/README.md"), readme(cx));
    Ok(())
}

fn archive_name(os: &str) -> String {
    os.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The S3 backend for an S3-compatible store (MinIO): path-style, no AWS account or region checks, lock file
/// in the bucket. Credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` at init time.
pub fn backend(cx: &Cx<'_>) -> Value {
    let st = &cx.plan.platform.state;
    json!({
        "terraform": { "backend": { "s3": {
            "bucket": st.bucket,
            "key": st.key,
            "workspace_key_prefix": st.workspace_key_prefix,
            "region": st.region,
            "endpoints": { "s3": st.endpoint },
            "use_path_style": true,
            "skip_credentials_validation": true,
            "skip_region_validation": true,
            "skip_requesting_account_id": true,
            "skip_metadata_api_check": true,
            "skip_s3_checksum": true,
            "use_lockfile": true,
        }}}
    })
}

fn packet_filter() -> Value {
    let rule = |proto: &str, port: Option<&str>, desc: &str| {
        let mut e = json!({ "protocol": proto, "allow": true, "description": desc });
        if let Some(p) = port {
            e["destination_port"] = json!(p);
        }
        e
    };
    json!([
        rule("tcp", Some("22"), "ssh"),
        rule("tcp", Some("6443"), "Kubernetes API (VIP on the edges)"),
        rule("tcp", Some("80"), "HTTP (gate)"),
        rule("tcp", Some("443"), "HTTPS (gate)"),
        rule("icmp", None, "ping"),
        rule("fragment", None, "fragments"),
        rule("tcp", Some("32768-61000"), "return traffic"),
        rule("udp", Some("32768-61000"), "return traffic"),
        { "protocol": "ip", "allow": false, "description": "everything else" }
    ])
}

fn outputs(cx: &Cx<'_>, r: &dyn Fn(&str) -> String) -> Value {
    let c = cx.cluster;
    let nodes: Vec<Value> = c
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "role": n.role,
                "index": n.index,
                "id": format!("${{{}.{}.id}}", r("server"), n.name),
                "global_address": n.global_address.map(|a| a.to_string()),
                "internal_address": n.internal_address.to_string(),
            })
        })
        .collect();
    let pools: Map<String, Value> = c
        .pools
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                json!({ "range": p.range, "access": p.access, "cidr": p.cidr.map(|n| n.to_string()) }),
            )
        })
        .collect();
    let routing = &cx.plan.routing;
    let sessions: Vec<Value> = c
        .bgp_sessions
        .iter()
        .map(|s| {
            json!({
                "router": s.router, "router_address": s.router_address.to_string(),
                "edge": s.edge, "edge_address": s.edge_address.to_string(), "bfd": s.bfd,
            })
        })
        .collect();
    let out = |v: Value, d: &str| json!({ "value": v, "description": d });
    json!({ "output": {
        "cluster": out(json!(c.name), "cluster name (also the workspace)"),
        "env": out(json!(c.env), "Argo CD environment label"),
        "api_vip": out(json!(c.api_vip.to_string()), "API server VIP"),
        "pools": out(Value::Object(pools), "LoadBalancer pools by name"),
        "nodes": out(json!(nodes), "every VM: name, role, index, id, global and internal address"),
        "bgp": out(json!({
            "router_asn": routing.router_asn, "cluster_asn": routing.cluster_asn, "sessions": sessions,
        }), "edge ↔ router BGP sessions"),
        "networks": out(json!({
            "global": c.networks.global.cidr.to_string(),
            "gateway": c.networks.global.gateway.to_string(),
            "internal": c.networks.internal.cidr.to_string(),
            "internal_gateway": c.networks.internal.gateway.to_string(),
        }), "networks"),
    }})
}

fn readme(cx: &Cx<'_>) -> String {
    let st = &cx.plan.platform.state;
    let c = &cx.cluster.name;
    format!(
        "# Terraform for cluster {c}\n\n\
         State: `s3://{bucket}/{prefix}/{c}/{key}` at {endpoint} (workspace `{c}`).\n\n\
         ```sh\n\
         export AWS_ACCESS_KEY_ID=\"${access}\" AWS_SECRET_ACCESS_KEY=\"${secret}\"\n\
         terraform init\n\
         terraform workspace select -or-create {c}\n\
         terraform apply\n\
         ```\n",
        bucket = st.bucket,
        prefix = st.workspace_key_prefix.trim_end_matches('/'),
        key = st.key,
        endpoint = st.endpoint,
        access = st.access_key_env,
        secret = st.secret_key_env,
    )
}
