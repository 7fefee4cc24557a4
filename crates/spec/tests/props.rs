//! Property tests of the planner over generated specs: distinct addresses, each inside its network,
//! deterministic output, and adding a worker moves nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use yagura_spec::addr::to_u128;
use yagura_spec::synth::{spec_text, SynthCluster};
use yagura_spec::Plan;

fn cluster() -> impl Strategy<Value = SynthCluster> {
    (
        26u8..=28,
        prop::sample::select(vec![1u32, 3, 5]),
        1u32..=4,
        0u32..=40,
        prop::collection::vec(1u32..=4, 0..=2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(prefix, masters, edges, workers, from_global, routed_pool, explicit_vip)| {
                SynthCluster {
                    masters,
                    edges,
                    workers,
                    global_prefix: prefix,
                    from_global,
                    routed_pool,
                    explicit_vip,
                }
            },
        )
        .prop_filter("fits its global network", |c| c.needed() <= c.usable())
}

fn plan_of(text: &str) -> Plan {
    let checked = yagura_spec::check("gen.toml", text);
    assert!(
        !checked.has_errors(),
        "generated spec invalid:\n{}\n{text}",
        checked.report().short()
    );
    checked.plan.unwrap()
}

fn in_net(a: Ipv4Addr, net: ipnet::Ipv4Net) -> bool {
    net.contains(&a) && a != net.network() && a != net.broadcast()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn addresses_are_distinct_and_inside_their_networks(clusters in prop::collection::vec(cluster(), 1..=4)) {
        let plan = plan_of(&spec_text(&clusters));
        let mut all_global: HashSet<u128> = HashSet::new();
        for c in &plan.clusters {
            let g = &c.networks.global;
            let mut internal = HashSet::new();
            let mut global = HashSet::new();
            for n in &c.nodes {
                prop_assert!(in_net(n.internal_address, c.networks.internal.cidr), "{} internal {}", n.name, n.internal_address);
                prop_assert!(internal.insert(n.internal_address), "internal {} twice", n.internal_address);
                if let Some(a) = n.global_address {
                    prop_assert!(g.first_usable <= a && a <= g.last_usable, "{} global {} outside usable", n.name, a);
                    prop_assert!(global.insert(u128::from(u32::from(a))), "global {} twice", a);
                }
            }
            prop_assert!(g.first_usable <= c.api_vip && c.api_vip <= g.last_usable);
            prop_assert!(global.insert(u128::from(u32::from(c.api_vip))), "VIP {} collides", c.api_vip);
            for p in &c.pools {
                let (lo, hi) = (to_u128(p.first), to_u128(p.last));
                prop_assert!(lo <= hi);
                if let Some(cidr) = p.cidr {
                    prop_assert!(cidr.contains(&p.first) && cidr.contains(&p.last));
                } else if let (IpAddr::V4(f), IpAddr::V4(l)) = (p.first, p.last) {
                    prop_assert!(g.first_usable <= f && l <= g.last_usable, "pool {} outside usable", p.range);
                }
                for x in lo..=hi {
                    prop_assert!(global.insert(x), "pool {} address collides", p.name);
                }
            }
            prop_assert_eq!(u128::from(g.free) + global.len() as u128
                - c.pools.iter().filter(|p| p.cidr.is_some()).map(|p| to_u128(p.last) - to_u128(p.first) + 1).sum::<u128>(),
                u128::from(u32::from(g.last_usable) - u32::from(g.first_usable) + 1));
            for x in &global {
                prop_assert!(all_global.insert(*x), "address used by two clusters");
            }
        }
    }

    #[test]
    fn planning_is_deterministic(clusters in prop::collection::vec(cluster(), 1..=3)) {
        let text = spec_text(&clusters);
        let a = plan_of(&text).to_json();
        let b = plan_of(&text).to_json();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn adding_a_worker_moves_nothing_else(clusters in prop::collection::vec(cluster(), 1..=3), which in any::<prop::sample::Index>()) {
        let before = plan_of(&spec_text(&clusters));
        let mut grown = clusters.clone();
        let i = which.index(grown.len());
        grown[i].workers += 1;
        let after = plan_of(&spec_text(&grown));
        for (b, a) in before.clusters.iter().zip(&after.clusters) {
            prop_assert_eq!(&b.networks.internal, &a.networks.internal);
            prop_assert_eq!(b.api_vip, a.api_vip);
            prop_assert_eq!(&b.pools, &a.pools);
            prop_assert_eq!(&b.bgp_sessions, &a.bgp_sessions);
            prop_assert_eq!(&b.networks.global.cidr, &a.networks.global.cidr);
            prop_assert_eq!(&b.nodes[..], &a.nodes[..b.nodes.len()], "existing nodes moved");
            let extra = a.nodes.len() - b.nodes.len();
            if b.name == format!("c{i}") {
                prop_assert_eq!(extra, 1);
                prop_assert_eq!(a.nodes.last().map(|n| n.role), Some(yagura_spec::model::Role::Worker));
            } else {
                prop_assert_eq!(extra, 0);
                prop_assert_eq!(b, a);
            }
        }
    }
}
