//! The `yagura` command as a user runs it: exit codes, output formats, diagnostics, completions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yagura(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yagura"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn plan_example_as_text() {
    let o = yagura(&["plan", "examples/ictsc2020.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("cluster prd"), "{out}");
    assert!(out.contains("prd-master-1  master  203.0.113.5"), "{out}");
    assert!(out.contains("API VIP 203.0.113.11"), "{out}");
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn plan_example_as_json_is_byte_identical_across_runs() {
    let a = yagura(&["plan", "--format", "json", "examples/ictsc2020.toml"]);
    let b = yagura(&["plan", "-f", "json", "examples/ictsc2020.toml"]);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["schema"], "yagura.plan/v1");
    let golden =
        std::fs::read(root().join("crates/spec/tests/golden/ictsc2020.plan.json")).unwrap();
    assert_eq!(a.stdout, golden);
}

#[test]
fn cluster_filter() {
    let o = yagura(&[
        "plan",
        "-f",
        "json",
        "--cluster",
        "wsp",
        "examples/ictsc2020.toml",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(v["clusters"][0]["name"], "wsp");
    let o = yagura(&["plan", "--cluster", "nope", "examples/ictsc2020.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no cluster named `nope`"));
}

#[test]
fn invalid_spec_exits_1_with_every_diagnostic() {
    let f = root().join("crates/spec/tests/invalid/secret-literal.toml");
    let o = yagura(&["plan", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = text(&o.stderr);
    assert!(
        err.contains("secret-literal.toml:16:18: error[secret-literal]"),
        "{err}"
    );
    assert!(
        err.contains("secret-literal.toml:114:65: error[secret-literal]"),
        "{err}"
    );
    assert!(err.contains("5 errors, 0 warnings"), "{err}");
    assert!(
        !err.contains("minio123") && !err.contains("hunter22"),
        "secrets echoed: {err}"
    );
    let o = yagura(&["check", "--message-format", "short", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stderr).lines().count(), 5);
    let o = yagura(&["check", "--message-format", "json", f.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(v[0]["line"], 16);
    assert_eq!(v[0]["col"], 18);
    assert_eq!(v[0]["code"], "secret-literal");
}

#[test]
fn check_valid_spec_is_silent() {
    let o = yagura(&["check", "examples/ictsc2020.toml"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
}

#[test]
fn io_and_usage_errors_exit_2() {
    let o = yagura(&["plan", "does/not/exist.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("cannot read does/not/exist.toml"),
        "{}",
        text(&o.stderr)
    );
    let o = yagura(&["plan"]);
    assert_eq!(o.status.code(), Some(2));
    let o = yagura(&["plan", "--format", "yaml", "examples/ictsc2020.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let o = yagura(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_on_every_subcommand() {
    for sub in ["plan", "check", "schema", "completions"] {
        let o = yagura(&[sub, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{sub}");
        let out = text(&o.stdout);
        assert!(out.contains("Usage: yagura"), "{sub}: {out}");
    }
    let out = text(&yagura(&["plan", "--help"]).stdout);
    assert!(out.contains("Exit status"), "{out}");
}

#[test]
fn completions_and_schema() {
    for shell in ["bash", "zsh", "fish"] {
        let o = yagura(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0));
        assert!(text(&o.stdout).contains("plan"), "{shell}");
    }
    let o = yagura(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let published = std::fs::read(root().join("docs/plan.schema.json")).unwrap();
    assert_eq!(o.stdout, published);
}

#[test]
fn a_spec_in_a_temp_dir_with_a_warning_still_plans() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(root().join("examples/ictsc2020.toml"))
        .unwrap()
        .replacen(
            "[clusters.nodes.edge]\ncount = 3",
            "[clusters.nodes.edge]\ncount = 1",
            1,
        );
    let p = dir.path().join("one-edge.toml");
    std::fs::write(&p, spec).unwrap();
    let o = yagura(&["plan", "-f", "json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let err = text(&o.stderr);
    assert!(err.contains("warning[no-redundancy]"), "{err}");
    assert!(err.contains("0 errors, 1 warning"), "{err}");
}
