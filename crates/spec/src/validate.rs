//! Semantic checks of a parsed [`Spec`]: every problem at once, each pointing at the key path it is about.
//! Shape problems (unknown keys, wrong types) are found earlier by `yagura_config::load`.

use crate::addr::{nth, Span};
use crate::model::*;
use crate::plan::{global_layout, internal_host};
use crate::provider::{catalogue, offers};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use yagura_config::{Diagnostic, EnvName, KeyPath};

type P = KeyPath;

struct V {
    out: Vec<Diagnostic>,
}

impl V {
    fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    fn env(&mut self, path: &P, e: &EnvName) {
        if let Err(msg) = e.check() {
            self.push(
                Diagnostic::error("secret-literal", msg)
                    .at(path)
                    .label("not a variable name")
                    .hint("put the secret in the environment (or a file) and write its NAME here, e.g. \"SNMP_COMMUNITY\""),
            );
        }
    }

    fn env_opt(&mut self, path: &P, e: &Option<EnvName>) {
        if let Some(e) = e {
            self.env(path, e);
        }
    }

    fn name(&mut self, path: &P, what: &str, s: &str) {
        if !is_dns_label(s) {
            self.push(
                Diagnostic::error("invalid-name", format!("{what} name `{s}` is not a DNS label"))
                    .at(path)
                    .hint("use lower-case letters, digits and `-`, 1–63 characters, starting and ending with a letter or digit"),
            );
        }
    }

    fn url(&mut self, path: &P, s: &str) {
        if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() < 10 {
            self.push(
                Diagnostic::error("invalid-url", format!("`{s}` is not an http(s) URL"))
                    .at(path)
                    .hint("write a full URL, e.g. \"http://prometheus.monitoring.svc:9090\""),
            );
        }
    }

    fn unique<'a>(&mut self, what: &str, items: impl IntoIterator<Item = (P, &'a str)>) {
        let mut seen: HashMap<&str, P> = HashMap::new();
        for (p, n) in items {
            if let Some(first) = seen.get(n) {
                self.push(
                    Diagnostic::error("duplicate-name", format!("{what} `{n}` is defined twice"))
                        .at(&p)
                        .label("second definition")
                        .related(first, "first defined here")
                        .hint(format!("give every {what} a distinct name")),
                );
            } else {
                seen.insert(n, p);
            }
        }
    }

    fn cluster_ref(&mut self, path: &P, name: &str, clusters: &[Cluster]) {
        if !clusters.iter().any(|c| c.name == name) {
            let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
            self.push(
                Diagnostic::error("unknown-cluster", format!("no cluster named `{name}`"))
                    .at(path)
                    .hint(format!("clusters in this spec: {}", names.join(", "))),
            );
        }
    }
}

/// True for an RFC 1123 label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks everything that the types alone do not.
pub fn validate(spec: &Spec) -> Vec<Diagnostic> {
    let mut v = V { out: Vec::new() };
    platform(&mut v, spec);
    routing(&mut v, spec);
    clusters(&mut v, spec);
    edge(&mut v, spec);
    if let Some(g) = &spec.gate {
        gate(&mut v, spec, g);
    }
    if let Some(w) = &spec.watch {
        watch(&mut v, spec, w);
    }
    if let Some(a) = &spec.apps {
        apps(&mut v, spec, a);
    }
    v.out
}

fn platform(v: &mut V, spec: &Spec) {
    let p = P::root().key("platform");
    let pl = &spec.platform;
    v.name(&p.key("name"), "platform", &pl.name);
    if pl.zone.trim().is_empty() {
        v.push(
            Diagnostic::error("missing", "zone is empty")
                .at(&p.key("zone"))
                .hint("e.g. \"is1b\" or \"tk1b\""),
        );
    }
    if pl.provider == Provider::Lab {
        v.push(
            Diagnostic::warning("provider-reserved", "provider `lab` is reserved for a local provider: planning works, rendering does not yet")
                .at(&p.key("provider")),
        );
    }
    let s = p.key("state");
    v.url(&s.key("endpoint"), &pl.state.endpoint);
    if pl.state.bucket.trim().is_empty() {
        v.push(Diagnostic::error("missing", "bucket is empty").at(&s.key("bucket")));
    }
    if pl.state.key.trim().is_empty() || pl.state.key.starts_with('/') {
        v.push(
            Diagnostic::error("invalid-value", "state key must be a relative object key")
                .at(&s.key("key"))
                .hint("e.g. \"terraform.tfstate\""),
        );
    }
    v.env(&s.key("access_key_env"), &pl.state.access_key_env);
    v.env(&s.key("secret_key_env"), &pl.state.secret_key_env);
    let a = p.key("admins");
    for (i, u) in pl.admins.iter().enumerate() {
        let up = a.index(i);
        if !is_unix_user(&u.name) {
            v.push(
                Diagnostic::error("invalid-name", format!("`{}` is not a valid user name", u.name))
                    .at(&up.key("name"))
                    .hint("lower-case letters, digits, `_` and `-`, starting with a letter or `_`, at most 32 characters"),
            );
        } else if u.name == "root" {
            v.push(
                Diagnostic::error("invalid-name", "`root` cannot be an admin user")
                    .at(&up.key("name"))
                    .hint("name a personal account; it gets password-less sudo"),
            );
        }
        for (j, g) in u.groups.iter().enumerate() {
            if !is_unix_user(g) {
                v.push(
                    Diagnostic::error("invalid-name", format!("`{g}` is not a valid group name"))
                        .at(&up.key("groups").index(j)),
                );
            }
        }
    }
    v.unique(
        "admin user",
        pl.admins
            .iter()
            .enumerate()
            .map(|(i, u)| (a.index(i).key("name"), u.name.as_str())),
    );
}

/// True for a portable Unix user or group name (`useradd`'s default rule).
pub fn is_unix_user(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_lowercase() || f == '_')
        && s.len() <= 32
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn routing(v: &mut V, spec: &Spec) {
    let p = P::root().key("routing");
    let r = &spec.routing;
    for (k, asn) in [("router_asn", r.router_asn), ("cluster_asn", r.cluster_asn)] {
        if !asn.is_private() {
            v.push(
                Diagnostic::error("asn-range", format!("AS{asn} is not a private ASN"))
                    .at(&p.key(k))
                    .hint("use a private ASN (RFC 6996): 64512–65534, or 4200000000–4294967294"),
            );
        }
    }
    if r.router_asn == r.cluster_asn {
        v.push(
            Diagnostic::error(
                "asn-equal",
                format!(
                    "router and clusters share AS{}: the edge ↔ router sessions are eBGP",
                    r.router_asn
                ),
            )
            .at(&p.key("cluster_asn"))
            .related(&p.key("router_asn"), "the router's ASN")
            .hint("give the edges their own ASN, e.g. router 65020 and clusters 65021"),
        );
    }
    v.env_opt(&p.key("md5_password_env"), &r.md5_password_env);
    let b = p.key("bgp");
    let hold = r.bgp.hold_time;
    if hold.subsec_nanos() != 0
        || (hold.as_secs() != 0 && hold.as_secs() < 3)
        || hold.as_secs() > 65535
    {
        v.push(
            Diagnostic::error(
                "timer",
                format!(
                    "hold time {} is not allowed",
                    humantime::format_duration(hold)
                ),
            )
            .at(&b.key("hold_time"))
            .hint("BGP hold time is 0 or whole seconds from 3 to 65535 (RFC 4271 §4.2)"),
        );
    }
    let ka = r.bgp.keepalive;
    if ka.subsec_nanos() != 0 || ka.as_secs() == 0 || (hold.as_secs() > 0 && ka >= hold) {
        v.push(
            Diagnostic::error(
                "timer",
                "keepalive must be whole seconds, at least 1 s and below the hold time",
            )
            .at(&b.key("keepalive"))
            .hint("the usual choice is a third of the hold time, e.g. hold 9s, keepalive 3s"),
        );
    } else if hold.as_secs() > 0 && ka.as_secs() * 3 > hold.as_secs() {
        v.push(
            Diagnostic::warning("timer", "keepalive is more than a third of the hold time")
                .at(&b.key("keepalive"))
                .hint("one lost keepalive should not drop the session: keepalive ≤ hold/3"),
        );
    }
    if r.bgp.connect_retry.is_zero() {
        v.push(
            Diagnostic::error("timer", "connect_retry must be more than 0")
                .at(&b.key("connect_retry")),
        );
    }
    let f = p.key("bfd");
    for (k, d) in [("min_tx", r.bfd.min_tx), ("min_rx", r.bfd.min_rx)] {
        if d.as_millis() < 50 || d.as_secs() > 60 {
            v.push(
                Diagnostic::error(
                    "timer",
                    format!(
                        "BFD {k} {} is outside 50ms–60s",
                        humantime::format_duration(d)
                    ),
                )
                .at(&f.key(k))
                .hint("300ms × 3 is the usual default; 50ms is the floor"),
            );
        }
    }
    if !(1..=255).contains(&r.bfd.multiplier) {
        v.push(Diagnostic::error("timer", "BFD multiplier must be 1–255").at(&f.key("multiplier")));
    }
}

/// A network or range of a cluster, for overlap checks.
struct Item {
    path: P,
    what: String,
    span: Span,
    /// Must be unique across clusters (global networks and pools are routed to the outside).
    platform_unique: bool,
}

fn cluster_items(i: usize, c: &Cluster) -> Vec<Item> {
    let p = P::root().key("clusters").index(i);
    let n = p.key("network");
    let mut items = vec![
        Item {
            path: n.key("global"),
            what: format!("global network of {}", c.name),
            span: Span::net(c.network.global.into()),
            platform_unique: true,
        },
        Item {
            path: n.key("internal"),
            what: format!("internal network of {}", c.name),
            span: Span::net(c.network.internal.into()),
            platform_unique: false,
        },
        Item {
            path: n.key("pod"),
            what: format!("pod network of {}", c.name),
            span: Span::net(c.network.pod),
            platform_unique: false,
        },
        Item {
            path: n.key("service"),
            what: format!("service network of {}", c.name),
            span: Span::net(c.network.service),
            platform_unique: false,
        },
    ];
    for (j, pool) in c.pools.iter().enumerate() {
        let pp = p.key("pools").index(j);
        let (path, span) = match (pool.range, pool.cidr) {
            (Some(r), _) => (pp.key("range"), Span::range(r)),
            (None, Some(n)) => (pp.key("cidr"), Span::net(n)),
            (None, None) => continue,
        };
        items.push(Item {
            path,
            what: format!("pool {} of {}", pool.name, c.name),
            span,
            platform_unique: true,
        });
    }
    items
}

fn overlap(v: &mut V, a: &Item, b: &Item) {
    if a.span.overlaps(&b.span) {
        v.push(
            Diagnostic::error("overlap", format!("{} overlaps {}", b.what, a.what))
                .at(&b.path)
                .label(format!("overlaps {}", a.what))
                .related(&a.path, a.what.clone())
                .hint("every network and pool needs its own addresses; choose disjoint ranges"),
        );
    }
}

fn clusters(v: &mut V, spec: &Spec) {
    if spec.clusters.is_empty() {
        v.push(
            Diagnostic::error("missing", "the spec has no clusters")
                .at(&P::root())
                .hint("add a [[clusters]] table per cluster"),
        );
    }
    let cp = P::root().key("clusters");
    v.unique(
        "cluster",
        spec.clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (cp.index(i).key("name"), c.name.as_str())),
    );
    v.unique(
        "cluster env label",
        spec.clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.env.is_some())
            .map(|(i, c)| (cp.index(i).key("env"), c.env_label())),
    );
    let mut all_items = Vec::new();
    for (i, c) in spec.clusters.iter().enumerate() {
        cluster(v, spec, i, c);
        let items = cluster_items(i, c);
        for (x, b) in items.iter().enumerate() {
            for a in &items[..x] {
                overlap(v, a, b);
            }
        }
        all_items.push(items);
    }
    for (j, later) in all_items.iter().enumerate() {
        for earlier in &all_items[..j] {
            for b in later {
                for a in earlier {
                    if a.platform_unique || b.platform_unique {
                        overlap(v, a, b);
                    }
                }
            }
        }
    }
}

fn cluster(v: &mut V, spec: &Spec, i: usize, c: &Cluster) {
    let p = P::root().key("clusters").index(i);
    let cat = catalogue(spec.platform.provider);
    v.name(&p.key("name"), "cluster", &c.name);
    if let Some(e) = &c.env {
        v.name(&p.key("env"), "env label", e);
    }
    kubernetes_version(v, &p.key("kubernetes_version"), &c.kubernetes_version);

    // Networks: written as networks, not hosts.
    let n = p.key("network");
    let nets: [(&str, ipnet::IpNet); 4] = [
        ("global", c.network.global.into()),
        ("internal", c.network.internal.into()),
        ("pod", c.network.pod),
        ("service", c.network.service),
    ];
    for (k, net) in nets {
        if net.trunc() != net {
            v.push(
                Diagnostic::error("host-bits", format!("`{net}` has host bits set"))
                    .at(&n.key(k))
                    .hint(format!("did you mean \"{}\"?", net.trunc())),
            );
        }
    }
    if let Some(masks) = cat.global_netmasks {
        let len = c.network.global.prefix_len();
        if !masks.contains(&len) {
            v.push(
                Diagnostic::error(
                    "size-not-offered",
                    format!(
                        "{} does not offer a /{len} global network",
                        spec.platform.provider
                    ),
                )
                .at(&n.key("global"))
                .hint(format!(
                    "netmasks offered: {}",
                    masks
                        .iter()
                        .map(|m| format!("/{m}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
    }
    if c.network.internal.prefix_len() > 29 {
        v.push(
            Diagnostic::error(
                "network-too-small",
                "the internal network must be /29 or larger",
            )
            .at(&n.key("internal")),
        );
    }

    // Node groups.
    let np = p.key("nodes");
    for role in Role::ALL {
        let g = c.nodes.get(role);
        let gp = np.key(role.as_str());
        for (k, val, offer) in [
            ("cores", g.cores, cat.cores),
            ("memory_gb", g.memory_gb, cat.memory_gb),
            ("disk_gb", g.disk_gb, cat.disk_gb),
        ] {
            size(v, spec, &gp.key(k), k, val, offer);
        }
        if let Some(d) = g.data_disk_gb {
            if role == Role::Worker {
                size(
                    v,
                    spec,
                    &gp.key("data_disk_gb"),
                    "data_disk_gb",
                    d,
                    cat.disk_gb,
                );
            } else {
                v.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("only workers take a data disk, not {role} nodes"),
                    )
                    .at_key(&gp.key("data_disk_gb"))
                    .hint("remove it; workers' data disks are Ceph's OSDs"),
                );
            }
        }
    }
    let m = &c.nodes.master;
    if m.count == 0 || m.count.is_multiple_of(2) {
        v.push(
            Diagnostic::error("etcd-quorum", format!("{} masters cannot keep an etcd quorum well", m.count))
                .at(&np.key("master").key("count"))
                .label(if m.count == 0 { "no control plane" } else { "even count" })
                .hint("use an odd number of masters: 1, 3 or 5 (an even count adds a failure point without adding tolerance)"),
        );
    }
    if c.nodes.router.count == 0 {
        v.push(
            Diagnostic::error("invalid-value", "a cluster needs its router")
                .at(&np.key("router").key("count"))
                .hint("count = 1"),
        );
    }
    if c.nodes.edge.count == 0 {
        v.push(
            Diagnostic::error(
                "invalid-value",
                "a cluster needs at least one edge to carry the API VIP",
            )
            .at(&np.key("edge").key("count"))
            .hint("3 edges give ECMP over three paths"),
        );
    } else if c.nodes.edge.count == 1 {
        v.push(
            Diagnostic::warning(
                "no-redundancy",
                "one edge: losing it loses the API VIP and every pool",
            )
            .at(&np.key("edge").key("count")),
        );
    }
    let w = &c.nodes.worker;
    if w.count > 0 && w.data_disk_gb.is_none() {
        v.push(
            Diagnostic::warning(
                "no-data-disk",
                "workers have no data disk: Rook-Ceph will have no OSDs",
            )
            .at(&np.key("worker"))
            .hint("add data_disk_gb, e.g. 100"),
        );
    }

    // The global network must hold every node, the VIP and the pools carved from it.
    let layout = global_layout(spec.platform.provider, c);
    let usable = u64::from(layout.last.saturating_sub(layout.first)) + 1;
    let usable = if layout.last < layout.first {
        0
    } else {
        usable
    };
    if layout.used > usable {
        let from_pools: u64 = c
            .pools
            .iter()
            .filter_map(|p| p.from_global)
            .map(u64::from)
            .sum();
        v.push(
            Diagnostic::error(
                "network-too-small",
                format!(
                    "global network {} is too small: {} addresses needed, {} usable",
                    c.network.global, layout.used, usable
                ),
            )
            .at(&n.key("global"))
            .label(format!(
                "router {}, masters {}, edges {}, VIP {}, pools {}",
                c.nodes.router.count,
                c.nodes.master.count,
                c.nodes.edge.count,
                u8::from(c.api_vip.is_none()),
                from_pools
            ))
            .hint(format!(
                "{} keeps {} address(es) after the network address and the broadcast; use a larger network or fewer nodes",
                spec.platform.provider,
                catalogue(spec.platform.provider).reserved_low
            )),
        );
    }
    if let Some(vip) = c.api_vip {
        let g = c.network.global;
        let first = nth(g, layout.first);
        let last = nth(g, layout.last);
        let inside = match (first, last) {
            (Some(f), Some(l)) => f <= vip && vip <= l,
            _ => false,
        };
        if !inside {
            v.push(
                Diagnostic::error("outside-network", format!("API VIP {vip} is not a usable address of the global network {g}"))
                    .at(&p.key("api_vip"))
                    .related(&n.key("global"), "the global network")
                    .hint(match (first, last) {
                        (Some(f), Some(l)) => format!("pick an address from {f} to {l}, or remove api_vip to let the planner choose"),
                        _ => "remove api_vip to let the planner choose".to_string(),
                    }),
            );
        } else {
            let h = u32::from(vip) - u32::from(g.network());
            if let Some((role, idx, _)) = layout.nodes.iter().find(|(_, _, nh)| *nh == h) {
                v.push(
                    Diagnostic::error(
                        "address-conflict",
                        format!("API VIP {vip} is the address of {}-{role}-{idx}", c.name),
                    )
                    .at(&p.key("api_vip"))
                    .hint("remove api_vip to let the planner choose a free address"),
                );
            }
            if layout
                .pools
                .iter()
                .any(|(_, lo, hi)| (*lo..=*hi).contains(&h))
            {
                v.push(
                    Diagnostic::error(
                        "address-conflict",
                        format!("API VIP {vip} lies inside a pool taken from the global network"),
                    )
                    .at(&p.key("api_vip")),
                );
            }
        }
    }

    // Internal blocks per role.
    let size_internal: u64 = 1u64 << (32 - u32::from(c.network.internal.prefix_len()));
    let mut blocks: Vec<(Role, u64, u64)> = Vec::new();
    for role in Role::ALL {
        let g = c.nodes.get(role);
        if g.count == 0 {
            continue;
        }
        let lo = internal_host(c, role, 1);
        let hi = internal_host(c, role, g.count);
        let gp = np.key(role.as_str());
        let at = if g.internal_offset.is_some() {
            gp.key("internal_offset")
        } else {
            gp.key("count")
        };
        if lo == 0 || hi + 1 >= size_internal {
            v.push(
                Diagnostic::error(
                    "network-too-small",
                    format!(
                        "internal network {} cannot hold {} {role} node(s) from host .{lo}",
                        c.network.internal, g.count
                    ),
                )
                .at(&at)
                .hint(format!("host numbers must stay within 1–{}; lower internal_offset or widen the network", size_internal.saturating_sub(2))),
            );
            continue;
        }
        for (other, olo, ohi) in &blocks {
            if lo <= *ohi && *olo <= hi {
                v.push(
                    Diagnostic::error(
                        "address-conflict",
                        format!("{role} internal addresses (hosts {lo}–{hi}) overlap the {other} block (hosts {olo}–{ohi})"),
                    )
                    .at(&at)
                    .hint(format!("set nodes.{role}.internal_offset past {ohi}, or move the {other} block")),
                );
            }
        }
        blocks.push((role, lo, hi));
    }

    // Pools.
    let pp = p.key("pools");
    v.unique(
        "pool",
        c.pools
            .iter()
            .enumerate()
            .map(|(j, x)| (pp.index(j).key("name"), x.name.as_str())),
    );
    for (j, pool) in c.pools.iter().enumerate() {
        let q = pp.index(j);
        v.name(&q.key("name"), "pool", &pool.name);
        let given = [
            pool.cidr.is_some(),
            pool.range.is_some(),
            pool.from_global.is_some(),
        ];
        let count = given.iter().filter(|b| **b).count();
        let cidr_and_range =
            pool.cidr.is_some() && pool.range.is_some() && pool.from_global.is_none();
        if count == 0 {
            v.push(
                Diagnostic::error("missing", format!("pool `{}` has no addresses", pool.name))
                    .at(&q)
                    .hint("give one of cidr = \"…/28\", range = \"FIRST-LAST\" or from_global = N"),
            );
            continue;
        }
        if count > 1 && !cidr_and_range {
            v.push(
                Diagnostic::error(
                    "conflict",
                    format!("pool `{}` gives its addresses more than one way", pool.name),
                )
                .at(&q.key(if pool.from_global.is_some() {
                    "from_global"
                } else {
                    "range"
                }))
                .hint("use one of cidr, range (optionally inside cidr) or from_global"),
            );
            continue;
        }
        if let Some(n) = pool.cidr {
            if n.trunc() != n {
                v.push(
                    Diagnostic::error("host-bits", format!("`{n}` has host bits set"))
                        .at(&q.key("cidr"))
                        .hint(format!("did you mean \"{}\"?", n.trunc())),
                );
            }
            if let (Some(masks), PoolAccess::Public, ipnet::IpNet::V4(_), None) =
                (cat.global_netmasks, pool.access, n, pool.range)
            {
                if !masks.contains(&n.prefix_len()) {
                    v.push(
                        Diagnostic::error(
                            "size-not-offered",
                            format!(
                                "{} does not route a /{} subnet",
                                spec.platform.provider,
                                n.prefix_len()
                            ),
                        )
                        .at(&q.key("cidr"))
                        .hint(format!(
                            "routed subnets offered: {}",
                            masks
                                .iter()
                                .map(|m| format!("/{m}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                }
            }
        }
        if let (Some(r), Some(n)) = (pool.range, pool.cidr) {
            if !Span::net(n).contains(&Span::range(r)) {
                v.push(
                    Diagnostic::error(
                        "outside-network",
                        format!(
                            "range {r} of pool `{}` is not inside its cidr {n}",
                            pool.name
                        ),
                    )
                    .at(&q.key("range"))
                    .related(&q.key("cidr"), "the pool's block"),
                );
            }
        }
        if pool.from_global == Some(0) {
            v.push(
                Diagnostic::error("invalid-value", "from_global must be at least 1")
                    .at(&q.key("from_global")),
            );
        }
        let span = match (pool.range, pool.cidr) {
            (Some(r), _) => Some(Span::range(r)),
            (None, Some(n)) => Some(Span::net(n)),
            _ => None,
        };
        if let Some(s) = span {
            if s.usable(pool.avoid_buggy_ips) == 0 {
                v.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("pool `{}` has no assignable address", pool.name),
                    )
                    .at(&q)
                    .hint("with avoid_buggy_ips, .0 and .255 are skipped"),
                );
            }
        }
        if pool.access == PoolAccess::Public
            && spec.edge.announce == AnnounceMode::L2
            && pool.cidr.is_some()
            && pool.range.is_none()
        {
            v.push(
                Diagnostic::warning(
                    "announce-mode",
                    format!(
                        "pool `{}` is a routed block, which L2 announcement cannot serve",
                        pool.name
                    ),
                )
                .at(&q.key("cidr"))
                .hint("use edge.announce = \"bgp\" or a from_global pool"),
            );
        }
    }
}

fn kubernetes_version(v: &mut V, path: &P, s: &str) {
    let t = s.strip_prefix('v').unwrap_or(s);
    let parts: Vec<&str> = t.split('.').collect();
    let nums: Option<Vec<u32>> = parts.iter().map(|x| x.parse().ok()).collect();
    match nums.as_deref() {
        Some([1, minor, _patch]) if *minor >= 31 => {}
        Some([1, minor, _]) => v.push(
            Diagnostic::error(
                "invalid-version",
                format!(
                    "Kubernetes 1.{minor} is too old: kubeadm's v1beta4 config needs 1.31 or later"
                ),
            )
            .at(path)
            .hint("e.g. \"1.31.4\""),
        ),
        _ => v.push(
            Diagnostic::error(
                "invalid-version",
                format!("`{s}` is not a Kubernetes version"),
            )
            .at(path)
            .hint("write MAJOR.MINOR.PATCH, e.g. \"1.31.4\""),
        ),
    }
}

fn size(v: &mut V, spec: &Spec, path: &P, what: &str, val: u32, offer: Option<&'static [u32]>) {
    if val == 0 {
        v.push(Diagnostic::error("size-not-offered", format!("{what} cannot be 0")).at(path));
        return;
    }
    if let Some(list) = offer {
        if !list.contains(&val) {
            let nearest = list
                .iter()
                .copied()
                .min_by_key(|x| x.abs_diff(val))
                .unwrap_or(val);
            v.push(
                Diagnostic::error(
                    "size-not-offered",
                    format!("{} does not offer {what} = {val}", spec.platform.provider),
                )
                .at(path)
                .hint(format!(
                    "nearest offered: {nearest}; offered: {}",
                    offers(list)
                )),
            );
        }
    }
}

fn edge(v: &mut V, spec: &Spec) {
    let p = P::root().key("edge");
    let e = &spec.edge;
    let h = p.key("api_health");
    let hc = &e.api_health;
    if hc.interval.is_zero() || hc.timeout.is_zero() || hc.timeout > hc.interval {
        v.push(
            Diagnostic::error(
                "timer",
                "health check timeout must be above 0 and not above the interval",
            )
            .at(&h.key("timeout"))
            .hint("e.g. interval = \"2s\", timeout = \"1s\""),
        );
    }
    if hc.rise == 0 || hc.fall == 0 {
        v.push(Diagnostic::error("invalid-value", "rise and fall must be at least 1").at(&h));
    }
    if hc.ca_file.is_some() && hc.insecure_skip_verify {
        v.push(
            Diagnostic::error(
                "conflict",
                "ca_file and insecure_skip_verify together make no sense",
            )
            .at(&h.key("insecure_skip_verify"))
            .hint("keep ca_file (the cluster CA) and remove insecure_skip_verify"),
        );
    }
    if hc.kind != HealthKind::Tcp && !hc.path.starts_with('/') {
        v.push(
            Diagnostic::error("invalid-value", "health check path must start with `/`")
                .at(&h.key("path")),
        );
    }
    if e.min_healthy == 0 {
        v.push(
            Diagnostic::error(
                "invalid-value",
                "min_healthy must be at least 1: a VIP with no healthy backend must be withdrawn",
            )
            .at(&p.key("min_healthy")),
        );
    }
    for (i, c) in spec.clusters.iter().enumerate() {
        if c.nodes.master.count > 0 && e.min_healthy > c.nodes.master.count {
            v.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("min_healthy {} is more than cluster {}'s {} masters: its VIP would never be announced", e.min_healthy, c.name, c.nodes.master.count),
                )
                .at(&p.key("min_healthy"))
                .related(&P::root().key("clusters").index(i).key("nodes").key("master").key("count"), "masters"),
            );
        }
    }
    if e.api_port == 0 || e.metrics_port == 0 || e.api_port == e.metrics_port {
        v.push(
            Diagnostic::error(
                "invalid-value",
                "api_port and metrics_port must be distinct and non-zero",
            )
            .at(&p.key("metrics_port")),
        );
    }
}

fn gate(v: &mut V, spec: &Spec, g: &GateSpec) {
    let p = P::root().key("gate");
    for (i, c) in g.clusters.iter().enumerate() {
        v.cluster_ref(&p.key("clusters").index(i), c, &spec.clusters);
    }
    if g.auth_host.trim().is_empty() || g.auth_host.contains('/') {
        v.push(
            Diagnostic::error("invalid-value", "auth_host must be a host name")
                .at(&p.key("auth_host"))
                .hint("e.g. \"authenticate.example.net\" (the OAuth callback is https://HOST/oauth2/callback)"),
        );
    }
    if g.session_ttl.is_zero()
        || g.membership_recheck.is_zero()
        || g.membership_recheck > g.session_ttl
    {
        v.push(
            Diagnostic::error("timer", "membership_recheck must be above 0 and not above session_ttl")
                .at(&p.key("membership_recheck"))
                .hint("membership is re-read during a session so a removed member loses access within this interval"),
        );
    }
    if let Some(gh) = &g.github {
        let gp = p.key("github");
        secret_pair(
            v,
            &gp,
            "client_secret",
            &gh.client_secret_env,
            gh.client_secret_file.is_some(),
        );
        v.url(&gp.key("api_url"), &gh.api_url);
        v.url(&gp.key("web_url"), &gh.web_url);
        if gh.org.trim().is_empty() {
            v.push(Diagnostic::error("missing", "github.org is empty").at(&gp.key("org")));
        }
    }
    if let Some(o) = &g.oidc {
        let op = p.key("oidc");
        secret_pair(
            v,
            &op,
            "client_secret",
            &o.client_secret_env,
            o.client_secret_file.is_some(),
        );
        v.url(&op.key("issuer"), &o.issuer);
    }
    let rp = p.key("routes");
    v.unique(
        "route",
        g.routes
            .iter()
            .enumerate()
            .map(|(i, r)| (rp.index(i).key("name"), r.name.as_str())),
    );
    let mut seen: BTreeMap<(String, &str, &str), P> = BTreeMap::new();
    for (i, r) in g.routes.iter().enumerate() {
        let q = rp.index(i);
        v.cluster_ref(&q.key("cluster"), &r.cluster, &spec.clusters);
        if !g.clusters.is_empty()
            && !g.clusters.contains(&r.cluster)
            && spec.clusters.iter().any(|c| c.name == r.cluster)
        {
            v.push(
                Diagnostic::error(
                    "unknown-cluster",
                    format!("gate does not run in cluster `{}`", r.cluster),
                )
                .at(&q.key("cluster"))
                .related(&p.key("clusters"), "gate's clusters"),
            );
        }
        if r.host.trim().is_empty() || r.host.contains('/') || r.host.contains(':') {
            v.push(
                Diagnostic::error("invalid-value", "host must be a bare host name")
                    .at(&q.key("host")),
            );
        }
        if !r.path.starts_with('/') {
            v.push(
                Diagnostic::error("invalid-value", "path must start with `/`").at(&q.key("path")),
            );
        }
        v.url(&q.key("upstream"), &r.upstream);
        if let Some(first) = seen.get(&(r.cluster.clone(), r.host.as_str(), r.path.as_str())) {
            v.push(
                Diagnostic::error(
                    "duplicate-name",
                    format!("route {}{} is defined twice", r.host, r.path),
                )
                .at(&q.key("path"))
                .related(first, "first defined here"),
            );
        } else {
            seen.insert(
                (r.cluster.clone(), r.host.as_str(), r.path.as_str()),
                q.key("path"),
            );
        }
        let lists =
            r.allow_users.len() + r.allow_orgs.len() + r.allow_teams.len() + r.allow_groups.len();
        match r.access {
            Access::Allow if lists == 0 => v.push(
                Diagnostic::error("missing", format!("route `{}` allows nobody", r.name))
                    .at(&q)
                    .hint("list allow_users, allow_orgs, allow_teams (\"org:team\") or allow_groups, or set access = \"signed_in\" or \"public\""),
            ),
            Access::Public | Access::SignedIn if lists > 0 => v.push(
                Diagnostic::warning("ignored", format!("route `{}` lists who is allowed but access is not \"allow\"", r.name))
                    .at(&q.key("access")),
            ),
            _ => {}
        }
        if r.access != Access::Public && g.github.is_none() && g.oidc.is_none() {
            v.push(
                Diagnostic::error(
                    "missing",
                    format!(
                        "route `{}` needs sign-in but no identity provider is configured",
                        r.name
                    ),
                )
                .at(&q.key("access"))
                .hint("add [gate.github] or [gate.oidc]"),
            );
        }
        for (k, t) in r.allow_teams.iter().enumerate() {
            let ok = t
                .split_once(':')
                .is_some_and(|(o, tm)| !o.is_empty() && !tm.is_empty() && !tm.contains(':'));
            if !ok {
                v.push(
                    Diagnostic::error("invalid-value", format!("`{t}` is not a team"))
                        .at(&q.key("allow_teams").index(k))
                        .hint("write teams as \"org:team-slug\", e.g. \"ictsc:ictsc_infra\""),
                );
            }
        }
        if !r.allow_groups.is_empty() && g.oidc.is_none() {
            v.push(
                Diagnostic::error("missing", "allow_groups needs [gate.oidc]")
                    .at(&q.key("allow_groups")),
            );
        }
    }
}

fn secret_pair(v: &mut V, p: &P, base: &str, env: &Option<EnvName>, file: bool) {
    match (env, file) {
        (Some(e), false) => v.env(&p.key(format!("{base}_env")), e),
        (None, true) => {}
        (Some(_), true) => v.push(
            Diagnostic::error(
                "conflict",
                format!("{base}_env and {base}_file are both given"),
            )
            .at(&p.key(format!("{base}_file")))
            .hint("keep one"),
        ),
        (None, false) => v.push(
            Diagnostic::error("missing", format!("no {base}"))
                .at(p)
                .hint(format!(
                    "add {base}_env = \"NAME\" or {base}_file = \"/path\""
                )),
        ),
    }
}

fn watch(v: &mut V, spec: &Spec, w: &WatchSpec) {
    let p = P::root().key("watch");
    v.cluster_ref(&p.key("cluster"), &w.cluster, &spec.clusters);
    let pe = p.key("peers");
    v.unique(
        "peer",
        w.peers
            .iter()
            .enumerate()
            .map(|(i, x)| (pe.index(i).key("name"), x.name.as_str())),
    );
    for (i, x) in w.peers.iter().enumerate() {
        v.url(&pe.index(i).key("url"), &x.url);
    }
    if w.retention.max_disk_gb == 0 {
        v.push(
            Diagnostic::error("invalid-value", "max_disk_gb must be at least 1")
                .at(&p.key("retention").key("max_disk_gb")),
        );
    }
    let dp = p.key("devices");
    v.unique(
        "device",
        w.devices
            .iter()
            .enumerate()
            .map(|(i, d)| (dp.index(i).key("name"), d.name.as_str())),
    );
    let addrs: Vec<(P, String)> = w
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (dp.index(i).key("address"), d.address.to_string()))
        .collect();
    v.unique(
        "device address",
        addrs.iter().map(|(p, a)| (p.clone(), a.as_str())),
    );
    for (i, d) in w.devices.iter().enumerate() {
        let q = dp.index(i);
        if d.address.is_unspecified()
            || d.address.is_multicast()
            || matches!(d.address, IpAddr::V4(a) if a.is_broadcast())
        {
            v.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("{} is not a device address", d.address),
                )
                .at(&q.key("address")),
            );
        }
        if let Some(s) = &d.snmp {
            snmp(v, &q.key("snmp"), s);
        }
    }
    let pp = p.key("prometheus");
    v.unique(
        "prometheus",
        w.prometheus
            .iter()
            .enumerate()
            .map(|(i, x)| (pp.index(i).key("name"), x.name.as_str())),
    );
    for (i, x) in w.prometheus.iter().enumerate() {
        v.url(&pp.index(i).key("url"), &x.url);
        if let Some(c) = &x.cluster {
            v.cluster_ref(&pp.index(i).key("cluster"), c, &spec.clusters);
        }
        if x.volume_gb == Some(0) {
            v.push(
                Diagnostic::error("invalid-value", "volume_gb must be at least 1")
                    .at(&pp.index(i).key("volume_gb")),
            );
        }
    }
    let ap = p.key("alertmanager");
    v.unique(
        "alertmanager",
        w.alertmanager
            .iter()
            .enumerate()
            .map(|(i, x)| (ap.index(i).key("name"), x.name.as_str())),
    );
    for (i, x) in w.alertmanager.iter().enumerate() {
        v.url(&ap.index(i).key("url"), &x.url);
    }
    let hp = p.key("heartbeats");
    v.unique(
        "heartbeat",
        w.heartbeats
            .iter()
            .enumerate()
            .map(|(i, x)| (hp.index(i).key("name"), x.name.as_str())),
    );
    for (i, x) in w.heartbeats.iter().enumerate() {
        if x.period.is_zero() {
            v.push(
                Diagnostic::error("timer", "a heartbeat period must be above 0")
                    .at(&hp.index(i).key("period")),
            );
        }
        if !x
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || x.name.is_empty()
        {
            v.push(
                Diagnostic::error(
                    "invalid-name",
                    format!("heartbeat name `{}` cannot be a URL path segment", x.name),
                )
                .at(&hp.index(i).key("name"))
                .hint("letters, digits, `-` and `_` (it becomes /ping/NAME)"),
            );
        }
    }
    let op = p.key("notify");
    v.unique(
        "notifier",
        w.notify
            .iter()
            .enumerate()
            .map(|(i, x)| (op.index(i).key("name"), x.name.as_str())),
    );
    for (i, x) in w.notify.iter().enumerate() {
        let q = op.index(i);
        match x.kind {
            NotifierKind::Alertmanager => match &x.url {
                Some(u) => v.url(&q.key("url"), u),
                None => v.push(
                    Diagnostic::error("missing", "an alertmanager receiver needs url").at(&q),
                ),
            },
            _ => {
                if x.url.is_some() {
                    v.push(
                        Diagnostic::error(
                            "secret-literal",
                            "a webhook URL carries its token: it is a secret",
                        )
                        .at(&q.key("url"))
                        .hint("put it in an environment variable and write url_env = \"NAME\""),
                    );
                }
                match &x.url_env {
                    Some(e) => v.env(&q.key("url_env"), e),
                    None if x.url.is_none() => v.push(
                        Diagnostic::error("missing", "a webhook receiver needs url_env").at(&q),
                    ),
                    None => {}
                }
            }
        }
    }
}

fn snmp(v: &mut V, p: &P, s: &Snmp) {
    let v3_fields = s.user.is_some()
        || s.auth_protocol.is_some()
        || s.auth_password_env.is_some()
        || s.privacy_protocol.is_some()
        || s.privacy_password_env.is_some();
    match s.version {
        SnmpVersion::V2c => {
            match &s.community_env {
                Some(e) => v.env(&p.key("community_env"), e),
                None => v.push(
                    Diagnostic::error("missing", "SNMP v2c needs community_env")
                        .at(p)
                        .hint("community_env = \"SNMP_COMMUNITY\" (the variable holding the community)"),
                ),
            }
            if v3_fields {
                v.push(
                    Diagnostic::error("conflict", "SNMPv3 settings given with version = \"2c\"")
                        .at(&p.key("version"))
                        .hint("set version = \"3\" or remove user/auth/privacy"),
                );
            }
        }
        SnmpVersion::V3 => {
            if s.community_env.is_some() {
                v.push(
                    Diagnostic::error("conflict", "community_env is for v2c")
                        .at_key(&p.key("community_env")),
                );
            }
            let missing: Vec<&str> = [
                ("user", s.user.is_none()),
                ("auth_protocol", s.auth_protocol.is_none()),
                ("auth_password_env", s.auth_password_env.is_none()),
                ("privacy_protocol", s.privacy_protocol.is_none()),
                ("privacy_password_env", s.privacy_password_env.is_none()),
            ]
            .into_iter()
            .filter_map(|(k, m)| m.then_some(k))
            .collect();
            if !missing.is_empty() {
                v.push(
                    Diagnostic::error("missing", format!("SNMPv3 authPriv needs {}", missing.join(", ")))
                        .at(p)
                        .hint("e.g. user = \"yagura\", auth_protocol = \"sha\", auth_password_env = \"SNMP_AUTH\", privacy_protocol = \"aes\", privacy_password_env = \"SNMP_PRIV\""),
                );
            }
            v.env_opt(&p.key("auth_password_env"), &s.auth_password_env);
            v.env_opt(&p.key("privacy_password_env"), &s.privacy_password_env);
        }
    }
}

fn apps(v: &mut V, spec: &Spec, a: &AppsSpec) {
    let p = P::root().key("apps");
    v.cluster_ref(&p.key("argocd_cluster"), &a.argocd_cluster, &spec.clusters);
    if !(a.repo.starts_with("https://")
        || a.repo.starts_with("ssh://")
        || a.repo.starts_with("git@"))
    {
        v.push(
            Diagnostic::error(
                "invalid-url",
                format!("`{}` is not a Git repository URL", a.repo),
            )
            .at(&p.key("repo"))
            .hint("e.g. \"https://github.com/ORG/REPO.git\""),
        );
    }
    let envs: Vec<&str> = spec.clusters.iter().map(Cluster::env_label).collect();
    for (i, e) in a.sync_order.iter().enumerate() {
        if !envs.contains(&e.as_str()) {
            v.push(
                Diagnostic::error("unknown-cluster", format!("no cluster has env label `{e}`"))
                    .at(&p.key("sync_order").index(i))
                    .hint(format!("env labels in this spec: {}", envs.join(", "))),
            );
        }
    }
    v.unique(
        "sync_order entry",
        a.sync_order
            .iter()
            .enumerate()
            .map(|(i, e)| (p.key("sync_order").index(i), e.as_str())),
    );
    let ap = p.key("applications");
    v.unique(
        "application",
        a.applications
            .iter()
            .enumerate()
            .map(|(i, x)| (ap.index(i).key("name"), x.name.as_str())),
    );
    for (i, x) in a.applications.iter().enumerate() {
        let q = ap.index(i);
        v.name(&q.key("name"), "application", &x.name);
        if x.clusters.is_empty() {
            v.push(
                Diagnostic::error(
                    "missing",
                    format!("application `{}` goes to no cluster", x.name),
                )
                .at(&q.key("clusters")),
            );
        }
        for (k, c) in x.clusters.iter().enumerate() {
            v.cluster_ref(&q.key("clusters").index(k), c, &spec.clusters);
        }
    }
}
