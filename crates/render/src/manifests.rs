//! Kubernetes manifests for one cluster (`<cluster>/manifests/`, applied in name order) and the platform's
//! Argo CD ApplicationSets (in the Argo CD cluster). Core objects are `k8s-openapi` structs, so they are
//! schema-valid by construction; custom resources come from [`crate::crds`].

use crate::crds::{self, Meta, Object};
use crate::{daemons, monitoring, yaml, yaml_docs, Cx, RenderError, Tree};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HostPathVolumeSource, Namespace, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, SecretEnvSource, SecretVolumeSource, Service, ServicePort, ServiceSpec,
    Toleration, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use yagura_spec::model::Role;

/// The container image of yagura's daemons (tagged with this crate's version).
pub fn image() -> String {
    format!(
        "ghcr.io/yagura-platform/yagura:{}",
        env!("CARGO_PKG_VERSION")
    )
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.to_string()),
        (
            "app.kubernetes.io/part-of".to_string(),
            "yagura".to_string(),
        ),
    ])
}

fn meta(name: &str, ns: Option<&str>, app: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: ns.map(str::to_string),
        labels: Some(labels(app)),
        ..Default::default()
    }
}

fn config_map(name: &str, ns: &str, files: &[(&str, String)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, Some(ns), name),
        data: Some(
            files
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn port(name: &str, p: i32, proto: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: p,
        protocol: Some(proto.to_string()),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..Default::default()
    }
}

fn cm_volume(name: &str, cm: &str) -> Volume {
    Volume {
        name: name.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: cm.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where the daemons' ConfigMaps are mounted (a directory of its own: Secrets and host files the configs name
/// live beside it under `/etc/yagura`, never inside the read-only ConfigMap volume).
pub const CONFIG_DIR: &str = "/etc/yagura/config";

/// A daemon container: `yagura <sub> --config CONFIG_DIR/<file>`, the ConfigMap at [`CONFIG_DIR`], and the
/// environment variables the config names (`…_env`) from the optional Secret `yagura-<sub>-env`.
fn daemon_container(name: &str, sub: &str, file: &str, ports: Vec<ContainerPort>) -> Container {
    Container {
        name: name.to_string(),
        image: Some(image()),
        args: Some(vec![
            sub.to_string(),
            "--config".to_string(),
            format!("{CONFIG_DIR}/{file}"),
        ]),
        ports: Some(ports),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: format!("yagura-{sub}-env"),
                optional: Some(true),
            }),
            ..Default::default()
        }]),
        volume_mounts: Some(vec![mount("config", CONFIG_DIR)]),
        ..Default::default()
    }
}

/// A single file of a volume mounted at `path` (`subPath`).
fn file_mount(volume: &str, path: &str, key: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        sub_path: Some(key.to_string()),
        read_only: Some(true),
        ..Default::default()
    }
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

fn template(app: &str, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(app)),
            ..Default::default()
        }),
        spec: Some(spec),
    }
}

fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "app.kubernetes.io/name".to_string(),
            app.to_string(),
        )])),
        ..Default::default()
    }
}

fn deployment(name: &str, ns: &str, replicas: i32, pod: PodSpec) -> Deployment {
    Deployment {
        metadata: meta(name, Some(ns), name),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: selector(name),
            template: template(name, pod),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(name: &str, ns: &str, kind: &str, ports: &[(&str, i32, i32, &str)]) -> Service {
    Service {
        metadata: meta(name, Some(ns), name),
        spec: Some(ServiceSpec {
            type_: Some(kind.to_string()),
            selector: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                name.to_string(),
            )])),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, t, proto)| ServicePort {
                        name: Some(n.to_string()),
                        port: *p,
                        target_port: Some(IntOrString::Int(*t)),
                        protocol: Some(proto.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Renders `<cluster>/manifests/*.yaml` and, when the cluster runs Prometheus, `<cluster>/monitoring/*.yml`.
pub fn render(cx: &Cx<'_>, tree: &mut Tree) -> Result<(), RenderError> {
    let dir = cx.path("manifests");
    let f = |n: &str| format!("{dir}/{n}");
    let prom = monitoring::prometheus_here(cx);
    let mut nss = vec![
        yaml("ns", &namespace("yagura"))?,
        yaml("ns", &namespace("rook-ceph"))?,
    ];
    if prom.is_some() {
        nss.push(yaml("ns", &namespace("monitoring"))?);
    }
    tree.add(f("00-namespaces.yaml"), yaml_docs(&nss));

    // edge: the same configs as the systemd units, for edges that are cluster nodes; each pod reads the one
    // named after its node.
    let edge_files: Vec<(String, String)> = daemons::edges(cx)?
        .into_iter()
        .map(|(node, text)| (format!("{node}.toml"), text))
        .collect();
    let edge_refs: Vec<(&str, String)> = edge_files
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let edge_cm = config_map("yagura-edge", "yagura", &edge_refs);
    let mut edge_c = daemon_container(
        "edge",
        "edge",
        "$(NODE_NAME).toml",
        vec![port("metrics", i32::from(cx.spec.edge.metrics_port), "TCP")],
    );
    edge_c.env = Some(vec![EnvVar {
        name: "NODE_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "spec.nodeName".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    let mut edge_volumes = vec![cm_volume("config", "yagura-edge")];
    if let Some(ca) = daemons::edge_ca_file(cx) {
        if let Some(v) = edge_c.volume_mounts.as_mut() {
            v.push(mount("kubernetes-ca", &ca));
        }
        edge_volumes.push(Volume {
            name: "kubernetes-ca".into(),
            host_path: Some(HostPathVolumeSource {
                path: ca,
                type_: Some("File".into()),
            }),
            ..Default::default()
        });
    }
    edge_c.security_context = Some(k8s_openapi::api::core::v1::SecurityContext {
        capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
            add: Some(vec![
                "NET_ADMIN".into(),
                "NET_BIND_SERVICE".into(),
                "NET_RAW".into(),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let edge_ds = DaemonSet {
        metadata: meta("yagura-edge", Some("yagura"), "yagura-edge"),
        spec: Some(DaemonSetSpec {
            selector: selector("yagura-edge"),
            template: template(
                "yagura-edge",
                PodSpec {
                    host_network: Some(true),
                    node_selector: Some(BTreeMap::from([(
                        "node-role.yagura.dev/edge".to_string(),
                        "true".to_string(),
                    )])),
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Default::default()
                    }]),
                    termination_grace_period_seconds: Some(
                        i64::try_from(cx.spec.edge.drain_timeout.as_secs()).unwrap_or(30) + 10,
                    ),
                    containers: vec![edge_c],
                    volumes: Some(edge_volumes),
                    ..Default::default()
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    tree.add(
        f("10-edge.yaml"),
        yaml_docs(&[yaml("edge", &edge_cm)?, yaml("edge", &edge_ds)?]),
    );

    if let Some(text) = daemons::gate(cx)? {
        let cm = config_map("yagura-gate", "yagura", &[("gate.toml", text)]);
        let (https, http, metrics) = daemons::GATE_PORTS;
        let mut c = daemon_container(
            "gate",
            "gate",
            "gate.toml",
            vec![
                port("https", i32::from(https), "TCP"),
                port("http", i32::from(http), "TCP"),
                port("metrics", i32::from(metrics), "TCP"),
            ],
        );
        if let Some(v) = c.volume_mounts.as_mut() {
            // The cookie key: key `<file name>` of the Secret `yagura-gate`, at the spec's path.
            if let Some(cookie) = daemons::gate_cookie_file(cx) {
                v.push(file_mount("secrets", &cookie, &base_name(&cookie)));
            }
            v.push(mount("tls", daemons::GATE_TLS_DIR));
        }
        let secret = |name: &str, secret: &str| Volume {
            name: name.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let dep = deployment(
            "yagura-gate",
            "yagura",
            2,
            PodSpec {
                containers: vec![c],
                volumes: Some(vec![
                    cm_volume("config", "yagura-gate"),
                    secret("secrets", "yagura-gate"),
                    secret("tls", "yagura-gate-tls"),
                ]),
                ..Default::default()
            },
        );
        let svc = service(
            "yagura-gate",
            "yagura",
            "LoadBalancer",
            &[
                ("http", 80, i32::from(http), "TCP"),
                ("https", 443, i32::from(https), "TCP"),
            ],
        );
        tree.add(
            f("20-gate.yaml"),
            yaml_docs(&[yaml("gate", &cm)?, yaml("gate", &dep)?, yaml("gate", &svc)?]),
        );
        if let Some(email) = cx.spec.gate.as_ref().and_then(|g| g.acme_email.clone()) {
            let issuer = Object {
                api_version: "cert-manager.io/v1",
                kind: "ClusterIssuer",
                metadata: Meta {
                    name: "letsencrypt".into(),
                    ..Default::default()
                },
                spec: crds::IssuerSpec {
                    acme: crds::Acme {
                        server: "https://acme-v02.api.letsencrypt.org/directory".into(),
                        email,
                        private_key_secret_ref: crds::SecretKeySelector {
                            name: "letsencrypt-account".into(),
                        },
                        solvers: vec![crds::Solver {
                            http01: crds::Http01 {
                                ingress: crds::Http01Ingress {
                                    ingress_class_name: "yagura-gate".into(),
                                },
                            },
                        }],
                    },
                },
            };
            tree.add(
                f("60-cert-manager.yaml"),
                yaml_docs(&[yaml("issuer", &issuer)?]),
            );
        }
    }

    if let Some(text) = daemons::watch(cx)? {
        let cm = config_map("yagura-watch", "yagura", &[("watch.toml", text)]);
        let mut c = daemon_container(
            "watch",
            "watch",
            "watch.toml",
            vec![
                port("http", i32::from(daemons::WATCH_HTTP_PORT), "TCP"),
                port("sflow", 6343, "UDP"),
                port("netflow", 2055, "UDP"),
                port("ipfix", 4739, "UDP"),
                port("syslog", 514, "UDP"),
                port("syslog-tcp", 514, "TCP"),
            ],
        );
        if let Some(v) = c.volume_mounts.as_mut() {
            v.push(VolumeMount {
                name: "data".into(),
                mount_path: daemons::WATCH_DATA_DIR.into(),
                ..Default::default()
            });
        }
        let dep = deployment(
            "yagura-watch",
            "yagura",
            1,
            PodSpec {
                containers: vec![c],
                volumes: Some(vec![
                    cm_volume("config", "yagura-watch"),
                    Volume {
                        name: "data".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
        );
        let svc = service(
            "yagura-watch",
            "yagura",
            "LoadBalancer",
            &[
                ("http", 9480, 9480, "TCP"),
                ("sflow", 6343, 6343, "UDP"),
                ("netflow", 2055, 2055, "UDP"),
                ("ipfix", 4739, 4739, "UDP"),
                ("syslog", 514, 514, "UDP"),
                ("syslog-tcp", 514, 514, "TCP"),
            ],
        );
        tree.add(
            f("30-watch.yaml"),
            yaml_docs(&[
                yaml("watch", &cm)?,
                yaml("watch", &dep)?,
                yaml("watch", &svc)?,
            ]),
        );
    }

    tree.add(f("40-rook-ceph.yaml"), rook(cx)?);

    if let Some(p) = prom {
        let m = cx.path("monitoring");
        let prom_yml = monitoring::prometheus_yml(cx)?;
        let rules = monitoring::rules_yml()?;
        let am = monitoring::alertmanager_yml(cx)?;
        tree.add(format!("{m}/prometheus.yml"), prom_yml.clone());
        tree.add(format!("{m}/rules.yml"), rules.clone());
        tree.add(format!("{m}/alertmanager.yml"), am.clone());
        let volume = p.volume_gb.unwrap_or(20);
        let pvc = PersistentVolumeClaim {
            metadata: meta("prometheus-data", Some("monitoring"), "prometheus"),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: Some("csi-cephfs".into()),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(format!("{volume}Gi")),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let prom_c = Container {
            name: "prometheus".into(),
            image: Some("quay.io/prometheus/prometheus:v2.53.2".into()),
            args: Some(vec![
                "--config.file=/etc/prometheus/prometheus.yml".into(),
                "--storage.tsdb.path=/prometheus".into(),
                "--storage.tsdb.retention.time=30d".into(),
                format!(
                    "--storage.tsdb.retention.size={}",
                    monitoring::retention_size(volume)
                ),
            ]),
            ports: Some(vec![port("web", 9090, "TCP")]),
            volume_mounts: Some(vec![
                mount("config", "/etc/prometheus"),
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/prometheus".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let prom_dep = deployment(
            "prometheus",
            "monitoring",
            1,
            PodSpec {
                containers: vec![prom_c],
                volumes: Some(vec![
                    cm_volume("config", "prometheus"),
                    Volume {
                        name: "data".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: "prometheus-data".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
        );
        let am_c = Container {
            name: "alertmanager".into(),
            image: Some("quay.io/prometheus/alertmanager:v0.27.0".into()),
            args: Some(vec![
                "--config.file=/etc/alertmanager/alertmanager.yml".into()
            ]),
            ports: Some(vec![port("web", 9093, "TCP")]),
            volume_mounts: Some(vec![
                mount("config", "/etc/alertmanager"),
                mount("secrets", "/etc/alertmanager/secrets"),
            ]),
            ..Default::default()
        };
        let am_dep = deployment(
            "alertmanager",
            "monitoring",
            1,
            PodSpec {
                containers: vec![am_c],
                volumes: Some(vec![
                    cm_volume("config", "alertmanager"),
                    Volume {
                        name: "secrets".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some("alertmanager-receivers".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
        );
        tree.add(
            f("50-monitoring.yaml"),
            yaml_docs(&[
                yaml(
                    "monitoring",
                    &config_map(
                        "prometheus",
                        "monitoring",
                        &[("prometheus.yml", prom_yml), ("rules.yml", rules)],
                    ),
                )?,
                yaml("monitoring", &pvc)?,
                yaml("monitoring", &prom_dep)?,
                yaml(
                    "monitoring",
                    &service(
                        "prometheus",
                        "monitoring",
                        "ClusterIP",
                        &[("web", 9090, 9090, "TCP")],
                    ),
                )?,
                yaml(
                    "monitoring",
                    &config_map("alertmanager", "monitoring", &[("alertmanager.yml", am)]),
                )?,
                yaml("monitoring", &am_dep)?,
                yaml(
                    "monitoring",
                    &service(
                        "alertmanager",
                        "monitoring",
                        "ClusterIP",
                        &[("web", 9093, 9093, "TCP")],
                    ),
                )?,
            ]),
        );
    }
    Ok(())
}

/// Rook-Ceph on the workers' data disks: a CephCluster (3 mons), a CephFilesystem and the `csi-cephfs`
/// StorageClass (reclaim Retain).
fn rook(cx: &Cx<'_>) -> Result<String, RenderError> {
    let workers: Vec<_> = cx
        .nodes(Role::Worker)
        .filter(|n| n.data_disk_gb.is_some())
        .collect();
    let copies = u32::try_from(workers.len()).unwrap_or(3).clamp(1, 3);
    let cluster = Object {
        api_version: "ceph.rook.io/v1",
        kind: "CephCluster",
        metadata: Meta {
            name: "rook-ceph".into(),
            namespace: Some("rook-ceph".into()),
            ..Default::default()
        },
        spec: crds::CephClusterSpec {
            ceph_version: crds::CephVersion {
                image: "quay.io/ceph/ceph:v18.2.4".into(),
            },
            data_dir_host_path: "/var/lib/rook".into(),
            mon: crds::MonSpec {
                count: 3,
                allow_multiple_per_node: false,
            },
            mgr: crds::MgrSpec { count: 2 },
            dashboard: crds::DashboardSpec { enabled: true },
            storage: crds::StorageScopeSpec {
                use_all_nodes: false,
                use_all_devices: false,
                nodes: workers
                    .iter()
                    .map(|n| crds::StorageNode {
                        name: n.name.clone(),
                        devices: vec![crds::Device { name: "vdb".into() }],
                    })
                    .collect(),
            },
        },
    };
    let replicated = || crds::ReplicatedSpec {
        size: copies,
        require_safe_replica_size: copies > 1,
    };
    let fs = Object {
        api_version: "ceph.rook.io/v1",
        kind: "CephFilesystem",
        metadata: Meta {
            name: "cephfs".into(),
            namespace: Some("rook-ceph".into()),
            ..Default::default()
        },
        spec: crds::CephFilesystemSpec {
            metadata_pool: crds::PoolSpec {
                replicated: replicated(),
                failure_domain: "host".into(),
            },
            data_pools: vec![crds::NamedPoolSpec {
                name: "data0".into(),
                replicated: replicated(),
                failure_domain: "host".into(),
            }],
            preserve_filesystem_on_delete: true,
            metadata_server: crds::MetadataServerSpec {
                active_count: 1,
                active_standby: true,
            },
        },
    };
    let sc = StorageClass {
        metadata: ObjectMeta {
            name: Some("csi-cephfs".into()),
            ..Default::default()
        },
        provisioner: "rook-ceph.cephfs.csi.ceph.com".into(),
        reclaim_policy: Some("Retain".into()),
        allow_volume_expansion: Some(true),
        parameters: Some(BTreeMap::from([
            ("clusterID".to_string(), "rook-ceph".to_string()),
            ("fsName".to_string(), "cephfs".to_string()),
            ("pool".to_string(), "cephfs-data0".to_string()),
            (
                "csi.storage.k8s.io/provisioner-secret-name".to_string(),
                "rook-csi-cephfs-provisioner".to_string(),
            ),
            (
                "csi.storage.k8s.io/provisioner-secret-namespace".to_string(),
                "rook-ceph".to_string(),
            ),
            (
                "csi.storage.k8s.io/controller-expand-secret-name".to_string(),
                "rook-csi-cephfs-provisioner".to_string(),
            ),
            (
                "csi.storage.k8s.io/controller-expand-secret-namespace".to_string(),
                "rook-ceph".to_string(),
            ),
            (
                "csi.storage.k8s.io/node-stage-secret-name".to_string(),
                "rook-csi-cephfs-node".to_string(),
            ),
            (
                "csi.storage.k8s.io/node-stage-secret-namespace".to_string(),
                "rook-ceph".to_string(),
            ),
        ])),
        ..Default::default()
    };
    Ok(yaml_docs(&[
        yaml("rook", &cluster)?,
        yaml("rook", &fs)?,
        yaml("rook", &sc)?,
    ]))
}

/// The platform's Argo CD ApplicationSets (one per application), in the Argo CD cluster's manifests: clusters
/// selected by their `env` label, synced step by step in `apps.sync_order` (canary first).
pub fn render_platform(
    spec: &yagura_spec::Spec,
    plan: &yagura_spec::Plan,
    tree: &mut Tree,
) -> Result<(), RenderError> {
    let Some(apps) = &spec.apps else {
        return Ok(());
    };
    let mut docs = Vec::new();
    for app in &apps.applications {
        let envs: Vec<String> = plan
            .clusters
            .iter()
            .filter(|c| app.clusters.contains(&c.name))
            .map(|c| c.env.clone())
            .collect();
        let mut order: Vec<String> = apps
            .sync_order
            .iter()
            .filter(|e| envs.contains(e))
            .cloned()
            .collect();
        let rest: Vec<String> = envs
            .iter()
            .filter(|e| !order.contains(e))
            .cloned()
            .collect();
        order.extend(rest);
        let req = |values: Vec<String>| crds::Requirement {
            key: "env".into(),
            operator: "In".into(),
            values,
        };
        let set = Object {
            api_version: "argoproj.io/v1alpha1",
            kind: "ApplicationSet",
            metadata: Meta {
                name: app.name.clone(),
                namespace: Some("argocd".into()),
                ..Default::default()
            },
            spec: crds::ApplicationSetSpec {
                go_template: true,
                go_template_options: vec!["missingkey=error".into()],
                generators: vec![crds::Generator {
                    clusters: crds::ClusterGenerator {
                        selector: crds::LabelSelector {
                            match_expressions: vec![req(envs.clone())],
                        },
                    },
                }],
                strategy: crds::Strategy {
                    kind: "RollingSync".into(),
                    rolling_sync: crds::RollingSync {
                        steps: order
                            .iter()
                            .map(|e| crds::Step {
                                match_expressions: vec![req(vec![e.clone()])],
                            })
                            .collect(),
                    },
                },
                template: crds::AppTemplate {
                    metadata: Meta {
                        name: format!("{}-{{{{.name}}}}", app.name),
                        namespace: None,
                        labels: BTreeMap::from([(
                            "env".to_string(),
                            "{{index .metadata.labels \"env\"}}".to_string(),
                        )]),
                    },
                    spec: crds::AppSpec {
                        project: "default".into(),
                        source: crds::AppSource {
                            repo_url: apps.repo.clone(),
                            target_revision: apps.revision.clone(),
                            path: app.path.clone(),
                        },
                        destination: crds::AppDestination {
                            name: "{{.name}}".into(),
                            namespace: app.namespace.clone().unwrap_or_else(|| app.name.clone()),
                        },
                        sync_policy: crds::SyncPolicy {
                            automated: crds::Automated {
                                prune: true,
                                self_heal: true,
                            },
                            sync_options: vec!["CreateNamespace=true".into()],
                        },
                    },
                },
            },
        };
        docs.push(yaml("applicationset", &set)?);
    }
    if !docs.is_empty() {
        tree.add(
            format!(
                "{}/manifests/70-argocd-applicationsets.yaml",
                apps.argocd_cluster
            ),
            yaml_docs(&docs),
        );
    }
    Ok(())
}
