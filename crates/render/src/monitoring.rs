//! Prometheus and Alertmanager for a cluster that runs a Prometheus named in `[[watch.prometheus]]`:
//! `prometheus.yml` (10 s scrape and evaluation; API servers, kubelets, node exporters and edges at their planned
//! addresses, blackbox ICMP and SNMP for the devices), `rules.yml` (the
//! team's rules: CPU, memory, disk, swap over 75 %, `up == 0` for 5 m, probe failures, WAL write failures, and
//! the always-firing Watchdog) and `alertmanager.yml` (grouping by alertname/cluster/service; the Watchdog
//! routed every minute to yagura watch's heartbeat, so a silent Prometheus is noticed).
//! `retention.size` is 80 % of the volume: Prometheus counts WAL and head in it but only deletes blocks.

use crate::{yaml, Cx, RenderError};
use serde_json::{json, Value};
use yagura_spec::model::{NotifierKind, Role};

/// The Prometheus of this cluster, if the spec names one.
pub fn prometheus_here<'a>(cx: &'a Cx<'_>) -> Option<&'a yagura_spec::model::GuardedPrometheus> {
    cx.spec
        .watch
        .as_ref()?
        .prometheus
        .iter()
        .find(|p| p.cluster.as_deref() == Some(cx.cluster.name.as_str()))
}

/// `--storage.tsdb.retention.size` for a volume of `volume_gb`: 80 % of it, in GB or MB (`20` → `16GB`).
pub fn retention_size(volume_gb: u32) -> String {
    let mb = u64::from(volume_gb) * 1000 * 8 / 10;
    if mb % 1000 == 0 {
        format!("{}GB", mb / 1000)
    } else {
        format!("{mb}MB")
    }
}

/// Where Alertmanager posts the Watchdog: yagura watch's Alertmanager heartbeat endpoint
/// (`POST /alertmanager/NAME`, a beat while the payload carries a firing `Watchdog`).
pub fn heartbeat_url(cx: &Cx<'_>) -> Option<String> {
    let name = crate::daemons::watchdog_heartbeat(cx)?;
    Some(format!(
        "http://yagura-watch.yagura.svc:{}/alertmanager/{name}",
        crate::daemons::WATCH_HTTP_PORT
    ))
}

/// `prometheus.yml`.
pub fn prometheus_yml(cx: &Cx<'_>) -> Result<String, RenderError> {
    let c = cx.cluster;
    // Targets from the plan's addresses (static) and in-cluster DNS: no Kubernetes service discovery, so the
    // config also passes Debian's promtool, which is built without it.
    let on = |role: Role, port: u16| -> Vec<String> {
        cx.nodes(role)
            .map(|n| format!("{}:{port}", n.internal_address))
            .collect()
    };
    let mut all_nodes = Vec::new();
    for role in [Role::Edge, Role::Master, Role::Worker] {
        all_nodes.extend(on(role, 9100));
    }
    let mut kubelets = on(Role::Master, 10250);
    kubelets.extend(on(Role::Worker, 10250));
    let sa = json!({ "credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token" });
    let mut jobs = vec![
        json!({ "job_name": "prometheus", "static_configs": [{ "targets": ["localhost:9090"] }] }),
        json!({ "job_name": "kubernetes-apiservers", "scheme": "https", "authorization": sa,
            "tls_config": { "insecure_skip_verify": true },
            "static_configs": [{ "targets": on(Role::Master, cx.spec.edge.api_port) }] }),
        json!({ "job_name": "kubelets", "scheme": "https", "authorization": sa,
            "tls_config": { "insecure_skip_verify": true },
            "static_configs": [{ "targets": kubelets }] }),
        json!({ "job_name": "nodes", "static_configs": [{ "targets": all_nodes }] }),
        json!({ "job_name": "yagura-edge", "static_configs": [{ "targets": on(Role::Edge, cx.spec.edge.metrics_port) }] }),
        json!({ "job_name": "yagura-watch", "dns_sd_configs": [{ "names": ["yagura-watch.yagura.svc.cluster.local"], "type": "A", "port": 9480 }] }),
    ];
    if let Some(w) = &cx.spec.watch {
        let devices: Vec<String> = w.devices.iter().map(|d| d.address.to_string()).collect();
        if !devices.is_empty() {
            jobs.push(json!({ "job_name": "blackbox-icmp", "metrics_path": "/probe", "params": { "module": ["icmp"] },
                "static_configs": [{ "targets": devices }],
                "relabel_configs": [
                    { "source_labels": ["__address__"], "target_label": "__param_target" },
                    { "source_labels": ["__param_target"], "target_label": "instance" },
                    { "target_label": "__address__", "replacement": "blackbox-exporter.monitoring.svc:9115" }
                ] }));
        }
        let snmp: Vec<String> = w
            .devices
            .iter()
            .filter(|d| d.snmp.is_some())
            .map(|d| d.address.to_string())
            .collect();
        if !snmp.is_empty() {
            jobs.push(json!({ "job_name": "snmp", "scrape_interval": "1m", "scrape_timeout": "50s", "metrics_path": "/snmp",
                "params": { "module": ["if_mib"] },
                "static_configs": [{ "targets": snmp }],
                "relabel_configs": [
                    { "source_labels": ["__address__"], "target_label": "__param_target" },
                    { "source_labels": ["__param_target"], "target_label": "instance" },
                    { "target_label": "__address__", "replacement": "snmp-exporter.monitoring.svc:9116" }
                ] }));
        }
    }
    let v = json!({
        "global": { "scrape_interval": "10s", "evaluation_interval": "10s", "external_labels": { "cluster": c.name } },
        "rule_files": ["rules.yml"],
        "alerting": { "alertmanagers": [{ "static_configs": [{ "targets": ["alertmanager.monitoring.svc:9093"] }] }] },
        "scrape_configs": jobs,
    });
    yaml("prometheus.yml", &v)
}

fn rule(name: &str, expr: &str, for_: &str, severity: &str, summary: &str) -> Value {
    let mut r = json!({ "alert": name, "expr": expr, "labels": { "severity": severity }, "annotations": { "summary": summary } });
    if !for_.is_empty() {
        r["for"] = json!(for_);
    }
    r
}

/// `rules.yml`.
pub fn rules_yml() -> Result<String, RenderError> {
    let fs = r#"fstype!~"tmpfs|overlay|squashfs""#;
    let v = json!({ "groups": [
        { "name": "yagura-hosts", "rules": [
            rule("HostCpuHigh", r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 75"#, "5m", "warning", "CPU of {{ $labels.instance }} over 75 %"),
            rule("HostMemoryHigh", "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 75", "5m", "warning", "memory of {{ $labels.instance }} over 75 %"),
            rule("HostDiskHigh", &format!("100 * (1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}) > 75"), "2m", "warning", "disk {{ $labels.mountpoint }} of {{ $labels.instance }} over 75 %"),
            rule("HostSwapHigh", "100 * (1 - node_memory_SwapFree_bytes / node_memory_SwapTotal_bytes) > 75 and node_memory_SwapTotal_bytes > 0", "2m", "warning", "swap of {{ $labels.instance }} over 75 %"),
        ]},
        { "name": "yagura-targets", "rules": [
            rule("TargetDown", "up == 0", "5m", "critical", "{{ $labels.job }} {{ $labels.instance }} down for 5 minutes"),
            rule("ProbeFailed", "probe_success == 0", "2m", "critical", "probe of {{ $labels.instance }} failing"),
        ]},
        { "name": "yagura-prometheus", "rules": [
            rule("PrometheusWalWritesFailing", "increase(prometheus_tsdb_wal_writes_failed_total[5m]) > 0", "", "critical", "Prometheus cannot write its WAL (disk full or quota): samples are being dropped"),
            rule("PrometheusNotIngesting", "rate(prometheus_tsdb_head_samples_appended_total[5m]) == 0", "5m", "critical", "Prometheus appends no samples"),
            rule("Watchdog", "vector(1)", "", "none", "always firing: proves the alert path to yagura watch's heartbeat"),
        ]},
    ]});
    yaml("rules.yml", &v)
}

/// `alertmanager.yml`.
pub fn alertmanager_yml(cx: &Cx<'_>) -> Result<String, RenderError> {
    // yagura watch takes no Alertmanager notifications but the Watchdog's (its `/api/v1/alerts` is GET only).
    let mut default = json!({ "name": "default" });
    if let Some(w) = &cx.spec.watch {
        if let Some(n) = w.notify.iter().find(|n| n.kind == NotifierKind::Slack) {
            default["slack_configs"] = json!([{ "api_url_file": format!("/etc/alertmanager/secrets/{}", n.name), "send_resolved": true, "channel": "#alerts" }]);
        }
    }
    let mut receivers = vec![default];
    let mut routes = vec![];
    if let Some(url) = heartbeat_url(cx) {
        receivers.push(json!({ "name": "watchdog", "webhook_configs": [{ "url": url, "send_resolved": false }] }));
        routes.push(json!({ "receiver": "watchdog", "matchers": ["alertname=\"Watchdog\""], "group_wait": "0s", "group_interval": "1m", "repeat_interval": "1m" }));
    }
    let v = json!({
        "route": { "receiver": "default", "group_by": ["alertname", "cluster", "service"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h", "routes": routes },
        "receivers": receivers,
    });
    yaml("alertmanager.yml", &v)
}
