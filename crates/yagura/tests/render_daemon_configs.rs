//! Every daemon config `yagura render` writes is one the daemon accepts: the example spec (and a variant with
//! other routing and health-check choices) is rendered with the binary, then each edge config (the Ansible
//! `files/edge/<node>.toml` and the `yagura-edge` ConfigMap entries), the `yagura-gate` and the `yagura-watch`
//! ConfigMaps go through `yagura edge|gate|watch --check --config FILE`, which must exit 0 without a warning.
//! The negative cases: a broken rendered config exits 1 naming `file:line:col`, an unreadable one exits 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yagura() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yagura"));
    c.env("NO_COLOR", "1");
    c
}

/// `yagura <daemon> --check --config <file>`: (exit code, stderr).
fn check(daemon: &str, file: &Path) -> (Option<i32>, String) {
    let o = yagura()
        .arg(daemon)
        .arg("--check")
        .arg("--config")
        .arg(file)
        .output()
        .unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn render(spec: &Path, out: &Path) {
    let o = yagura()
        .arg("render")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The daemon configs of a rendered tree as (daemon, file to check), the ConfigMap entries written out to
/// `scratch` (named `<cluster>-<configmap>-<key>`).
fn daemon_configs(tree: &Path, scratch: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    let mut clusters: Vec<PathBuf> = std::fs::read_dir(tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    clusters.sort();
    for c in clusters {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        let edge_dir = c.join("ansible/files/edge");
        let mut edges: Vec<PathBuf> = std::fs::read_dir(&edge_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", edge_dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        edges.sort();
        out.extend(edges.into_iter().map(|p| ("edge", p)));
        let mut manifests: Vec<PathBuf> = std::fs::read_dir(c.join("manifests"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        manifests.sort();
        for m in manifests {
            let text = std::fs::read_to_string(&m).unwrap();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc).unwrap();
                if v["kind"].as_str() != Some("ConfigMap") {
                    continue;
                }
                let cm = v["metadata"]["name"].as_str().unwrap_or_default();
                let daemon = match cm {
                    "yagura-edge" => "edge",
                    "yagura-gate" => "gate",
                    "yagura-watch" => "watch",
                    _ => continue,
                };
                let data = v["data"].as_mapping().expect("ConfigMap data");
                for (k, text) in data {
                    let f = scratch.join(format!("{name}-{cm}-{}", k.as_str().unwrap()));
                    std::fs::write(&f, text.as_str().unwrap()).unwrap();
                    out.push((daemon, f));
                }
            }
        }
    }
    out
}

fn assert_all_accepted(configs: &[(&'static str, PathBuf)]) {
    let mut failures = Vec::new();
    for (daemon, f) in configs {
        let (code, text) = check(daemon, f);
        if code != Some(0) || text.contains("warning") {
            failures.push(format!(
                "yagura {daemon} --check --config {}: exit {code:?}\n{text}",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rendered_daemon_config_passes_its_daemons_check() {
    let d = tempfile::tempdir().unwrap();
    let (tree, scratch) = (d.path().join("tree"), d.path().join("scratch"));
    std::fs::create_dir(&scratch).unwrap();
    render(&root().join("examples/ictsc2020.toml"), &tree);
    let configs = daemon_configs(&tree, &scratch);
    let count = |d: &str| configs.iter().filter(|(x, _)| *x == d).count();
    // 3 clusters × 3 edges, twice (Ansible files and the ConfigMaps); gate in every cluster; watch in wsp.
    assert_eq!(
        (count("edge"), count("gate"), count("watch")),
        (18, 3, 1),
        "{configs:?}"
    );
    // The DaemonSet and the systemd unit run the same config on a node.
    let a = std::fs::read_to_string(tree.join("prd/ansible/files/edge/prd-edge-2.toml")).unwrap();
    let k = std::fs::read_to_string(scratch.join("prd-yagura-edge-prd-edge-2.toml")).unwrap();
    assert_eq!(a, k);
    assert!(a.contains("router_id = \"192.168.100.32\""), "{a}");
    assert_all_accepted(&configs);
}

#[test]
fn a_variant_spec_renders_accepted_configs_too() {
    // BFD off, an MD5 password, a plain HTTP health check, an OIDC provider, no Prometheus guard, no notifiers.
    let text = std::fs::read_to_string(root().join("examples/ictsc2020.toml"))
        .unwrap()
        .replace(
            "[routing.bfd]\nenabled = true",
            "[routing.bfd]\nenabled = false",
        )
        .replace(
            "session_network = \"internal\"",
            "session_network = \"internal\"\nmd5_password_env = \"BGP_MD5\"",
        )
        .replace("kind = \"https\"", "kind = \"http\"")
        .replace("ca_file = \"/etc/yagura/kubernetes-ca.crt\"\n", "")
        .replace(
            "[gate.github]",
            "[gate.oidc]\nissuer = \"https://dex.ictsc.net\"\nclient_id = \"yagura\"\nclient_secret_file = \"/etc/yagura/gate/oidc.secret\"\n\n[gate.github]",
        )
        .replace("name = \"slack\"\nkind = \"slack\"", "name = \"hook\"\nkind = \"webhook\"");
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("variant.toml");
    std::fs::write(&spec, text).unwrap();
    let (tree, scratch) = (d.path().join("tree"), d.path().join("scratch"));
    std::fs::create_dir(&scratch).unwrap();
    render(&spec, &tree);
    let configs = daemon_configs(&tree, &scratch);
    let edge =
        std::fs::read_to_string(tree.join("dev/ansible/files/edge/dev-edge-1.toml")).unwrap();
    assert!(edge.contains("md5_password_env = \"BGP_MD5\""), "{edge}");
    // The unit gets the variable from a file the playbook writes from the operator's environment.
    let play = std::fs::read_to_string(tree.join("dev/ansible/edge.yml")).unwrap();
    assert!(
        play.contains("BGP_MD5={{ lookup('ansible.builtin.env', 'BGP_MD5') }}"),
        "{play}"
    );
    assert!(
        edge.contains("kind = \"http\"") && !edge.contains("ca_file"),
        "{edge}"
    );
    assert_all_accepted(&configs);
}

/// `(line, column)` (1-based) of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {text}"));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, col)
}

#[test]
fn a_broken_rendered_config_fails_its_check_with_file_line_col() {
    let d = tempfile::tempdir().unwrap();
    let (tree, scratch) = (d.path().join("tree"), d.path().join("scratch"));
    std::fs::create_dir(&scratch).unwrap();
    render(&root().join("examples/ictsc2020.toml"), &tree);
    let configs = daemon_configs(&tree, &scratch);
    let first = |daemon: &str| {
        configs
            .iter()
            .find(|(x, _)| *x == daemon)
            .map(|(_, p)| std::fs::read_to_string(p).unwrap())
            .unwrap()
    };
    // (daemon, what to replace, replacement, the text the error points at)
    let cases = [
        (
            "edge",
            "router_id = \"",
            "router_id = \"0.0.0.0\"\n#\"",
            "\"0.0.0.0\"",
        ),
        (
            "edge",
            "[[pools.backends]]",
            "[[pools.backend]]",
            "backend]]",
        ),
        ("gate", "auth_host =", "auth_hots =", "auth_hots"),
        (
            "watch",
            "max_size = \"16GB\"",
            "max_size = \"10kB\"",
            "\"10kB\"",
        ),
    ];
    for (i, (daemon, from, to, at)) in cases.into_iter().enumerate() {
        let broken = first(daemon).replacen(from, to, 1);
        let f = scratch.join(format!("broken-{i}-{daemon}.toml"));
        std::fs::write(&f, &broken).unwrap();
        let (line, col) = position(&broken, at);
        let (code, text) = check(daemon, &f);
        assert_eq!(code, Some(1), "yagura {daemon} --check on {broken}: {text}");
        let want = format!("{}:{line}:{col}: error", f.display());
        assert!(text.contains(&want), "want `{want}` in:\n{text}");
    }
    // Unreadable: exit 2, for every daemon.
    for daemon in ["edge", "gate", "watch"] {
        let (code, text) = check(daemon, &scratch.join("missing.toml"));
        assert_eq!(
            code,
            Some(2),
            "yagura {daemon} --check on a missing file: {text}"
        );
    }
}
