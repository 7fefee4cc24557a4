//! Golden tests: the bundled example's plan (text and JSON) and the published JSON Schema of the plan.
//! Regenerate after an intended change with `YAGURA_BLESS=1 cargo test -p yagura-spec --test golden`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden(path: &Path, actual: &str) {
    if std::env::var_os("YAGURA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with YAGURA_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  - {a}\n  + {b}", i + 1))
            .collect();
        panic!(
            "{} differs from the plan ({} vs {} lines):\n{}\nrun with YAGURA_BLESS=1 if the change is intended",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

fn example() -> yagura_spec::Plan {
    let path = root().join("examples/ictsc2020.toml");
    let checked = yagura_spec::check_file(&path).unwrap();
    assert!(
        checked.diagnostics.is_empty(),
        "{}",
        checked.report().short()
    );
    checked.plan.unwrap()
}

#[test]
fn example_plan_text() {
    let plan = example();
    golden(
        &root().join("crates/spec/tests/golden/ictsc2020.plan.txt"),
        &yagura_spec::text::render(&plan),
    );
}

#[test]
fn example_plan_json() {
    let plan = example();
    let json = plan.to_json();
    golden(
        &root().join("crates/spec/tests/golden/ictsc2020.plan.json"),
        &json,
    );
    // The JSON reads back into the same plan, and has the fields other tools rely on.
    let back: yagura_spec::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema"], "yagura.plan/v1");
    let prd = &v["clusters"][0];
    assert_eq!(prd["name"], "prd");
    assert_eq!(prd["api_vip"], "203.0.113.11");
    assert_eq!(prd["nodes"][0]["name"], "prd-router-1");
    assert_eq!(prd["nodes"][0]["role"], "router");
    assert_eq!(prd["nodes"][0]["global_address"], "203.0.113.4");
    assert_eq!(prd["nodes"][0]["internal_address"], "192.168.100.1");
    assert_eq!(prd["pools"][0]["name"], "global");
    assert_eq!(prd["pools"][0]["range"], "198.51.100.0-198.51.100.15");
    assert_eq!(prd["bgp_sessions"].as_array().unwrap().len(), 3);
    assert_eq!(v["clusters"].as_array().unwrap().len(), 3);
}

#[test]
fn example_facts_match_ictsc2020() {
    let plan = example();
    assert_eq!(plan.routing.router_asn, 65020);
    assert_eq!(plan.routing.cluster_asn, 65021);
    let names: Vec<&str> = plan.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["prd", "dev", "wsp"]);
    for c in &plan.clusters {
        let count = |r: &str| c.nodes.iter().filter(|n| n.role.as_str() == r).count();
        assert_eq!(
            (
                count("router"),
                count("edge"),
                count("master"),
                count("worker")
            ),
            (1, 3, 3, 3),
            "{}",
            c.name
        );
        assert_eq!(c.networks.global.netmask, 27);
        assert!(c
            .nodes
            .iter()
            .filter(|n| n.role.as_str() == "worker")
            .all(|n| n.data_disk_gb.is_some()));
        assert_eq!(
            c.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["global", "private"]
        );
        assert!(c.pools[1].avoid_buggy_ips);
        // masters .1x, workers .2x, edges .3x
        let octet = |n: &yagura_spec::plan::PlanNode| n.internal_address.octets()[3];
        for n in &c.nodes {
            let o = octet(n);
            match n.role.as_str() {
                "master" => assert!((11..20).contains(&o)),
                "worker" => assert!((21..30).contains(&o)),
                "edge" => assert!((31..40).contains(&o)),
                _ => assert_eq!(o, 1),
            }
        }
        assert_eq!(c.bgp_sessions.len(), 3);
        assert!(c
            .bgp_sessions
            .iter()
            .all(|s| s.bfd && s.router_asn == 65020 && s.edge_asn == 65021));
    }
    let ws: Vec<&str> = plan
        .platform
        .state
        .workspaces
        .iter()
        .map(|w| w.object_key.as_str())
        .collect();
    assert_eq!(
        ws,
        [
            "env:/prd/terraform.tfstate",
            "env:/dev/terraform.tfstate",
            "env:/wsp/terraform.tfstate"
        ]
    );
}

#[test]
fn published_schema_is_current() {
    golden(
        &root().join("docs/plan.schema.json"),
        &yagura_spec::Plan::json_schema(),
    );
}
