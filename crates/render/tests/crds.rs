//! Every custom resource the example renders (Rook CephCluster and CephFilesystem, Argo CD ApplicationSet,
//! cert-manager ClusterIssuer) validates against its CRD's OpenAPI schema (excerpts in `tests/data/crds/`),
//! with unknown properties refused as a strict `kubectl apply` would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::Value;

/// Refuses unknown properties everywhere a schema lists properties.
fn strict(v: &mut Value) {
    if let Value::Object(m) = v {
        if m.contains_key("properties") && !m.contains_key("additionalProperties") {
            m.insert("additionalProperties".into(), Value::Bool(false));
        }
        m.values_mut().for_each(strict);
    } else if let Value::Array(a) = v {
        a.iter_mut().for_each(strict);
    }
}

fn schema(name: &str) -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(root().join(format!("crates/render/tests/data/crds/{name}.json")))
            .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let mut s = v["openAPIV3Schema"].take();
    strict(&mut s);
    jsonschema::validator_for(&s).unwrap()
}

fn objects(tree: &yagura_render::Tree) -> Vec<Value> {
    let mut out = Vec::new();
    for (path, f) in tree.iter() {
        if path.contains("/manifests/") {
            for doc in serde_yaml_ng::Deserializer::from_slice(&f.bytes) {
                let v: Value = serde::Deserialize::deserialize(doc).unwrap();
                if !v.is_null() {
                    out.push(v);
                }
            }
        }
    }
    out
}

#[test]
fn rendered_custom_resources_match_their_crd_schemas() {
    let tree = render_text(&example_text(), &root().join("out"));
    let objs = objects(&tree);
    let mut seen = std::collections::BTreeMap::new();
    for (kind, file) in [
        ("CephCluster", "cephcluster"),
        ("CephFilesystem", "cephfilesystem"),
        ("ApplicationSet", "applicationset"),
        ("ClusterIssuer", "clusterissuer"),
    ] {
        let v = schema(file);
        for o in objs.iter().filter(|o| o["kind"] == kind) {
            let errors: Vec<String> = v
                .iter_errors(o)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            assert!(
                errors.is_empty(),
                "{kind} {} is invalid:\n{}",
                o["metadata"]["name"],
                errors.join("\n")
            );
            *seen.entry(kind).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.get("CephCluster"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("CephFilesystem"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("ApplicationSet"), Some(&2), "{seen:?}");
    assert_eq!(seen.get("ClusterIssuer"), Some(&3), "{seen:?}");
}

#[test]
fn the_schema_check_is_real() {
    let v = schema("cephcluster");
    let bad = serde_json::json!({ "apiVersion": "ceph.rook.io/v1", "kind": "CephCluster", "metadata": { "name": "x" },
        "spec": { "mon": { "count": 3, "allowMultiplePerNod": false } } });
    assert!(!v.is_valid(&bad), "a misspelt field must be refused");
}

#[test]
fn core_objects_round_trip_through_k8s_openapi() {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
    use k8s_openapi::api::storage::v1::StorageClass;
    let tree = render_text(&example_text(), &root().join("out"));
    let objs = objects(&tree);
    for o in &objs {
        match o["kind"].as_str().unwrap() {
            "Deployment" => drop(serde_json::from_value::<Deployment>(o.clone()).unwrap()),
            "DaemonSet" => drop(serde_json::from_value::<DaemonSet>(o.clone()).unwrap()),
            "StorageClass" => {
                let sc: StorageClass = serde_json::from_value(o.clone()).unwrap();
                assert_eq!(sc.reclaim_policy.as_deref(), Some("Retain"));
            }
            _ => {}
        }
    }
    assert!(objs
        .iter()
        .any(|o| o["kind"] == "DaemonSet" && o["metadata"]["name"] == "yagura-edge"));
}
