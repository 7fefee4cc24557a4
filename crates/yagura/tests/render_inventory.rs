//! `yagura render` and `yagura inventory` as users run them: `render --check` and its diff, and the rendered
//! `inventory.sh` driven by `ansible-inventory` against a real S3 server (s3s-fs) holding state that
//! `terraform` wrote through the rendered backend settings (or, without terraform on the machine, a state
//! file in the documented v4 layout), plus the errors: missing bucket, missing key, refused credentials,
//! unsupported state version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../render/tests/common/mod.rs"]
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn yagura() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yagura"));
    c.env("NO_COLOR", "1")
        .env_remove("YAGURA_SPEC")
        .env_remove("YAGURA_WORKSPACE");
    c
}

#[test]
fn render_writes_a_tree_and_check_reports_drift() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("platform");
    let spec = root().join("examples/ictsc2020.toml");
    let (ok, text) = run(yagura().arg("render").arg(&spec).arg("-o").arg(&out));
    assert!(ok, "{text}");
    let (ok, text) = run(yagura()
        .arg("render")
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .arg("--check"));
    assert!(ok, "fresh tree reported out of date: {text}");
    // Drift: an edited file, a stray file and a deleted file are all reported, with a diff.
    let f = out.join("prd/router/frr.conf");
    let edited = std::fs::read_to_string(&f)
        .unwrap()
        .replace("maximum-paths 3", "maximum-paths 1");
    std::fs::write(&f, edited).unwrap();
    std::fs::write(out.join("prd/stray.txt"), "x").unwrap();
    std::fs::remove_file(out.join("dev/kubeadm/dev-worker-1.yaml")).unwrap();
    let o = yagura()
        .arg("render")
        .arg(&spec)
        .arg("-o")
        .arg(&out)
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("changed: prd/router/frr.conf"), "{err}");
    assert!(
        err.contains("-  maximum-paths 1") && err.contains("+  maximum-paths 3"),
        "{err}"
    );
    assert!(err.contains("extra:   prd/stray.txt"), "{err}");
    assert!(
        err.contains("missing: dev/kubeadm/dev-worker-1.yaml"),
        "{err}"
    );
    assert!(err.contains("3 file(s) differ"), "{err}");
    // Rendering again replaces the whole tree (the stray file goes too).
    let (ok, text) = run(yagura().arg("render").arg(&spec).arg("-o").arg(&out));
    assert!(ok, "{text}");
    assert!(!out.join("prd/stray.txt").exists());
    assert!(
        run(yagura()
            .arg("render")
            .arg(&spec)
            .arg("-o")
            .arg(&out)
            .arg("--check"))
        .0
    );
    // An invalid spec renders nothing and exits 1.
    let bad = root().join("crates/spec/tests/invalid/admin-names.toml");
    let o = yagura()
        .arg("render")
        .arg(&bad)
        .arg("-o")
        .arg(d.path().join("nothing"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(!d.path().join("nothing").exists());
}

/// Writes the prd workspace's state into the S3 server: with terraform through the rendered backend (a
/// configuration of `terraform_data` and the same outputs), else the documented v4 layout via the S3 API.
fn put_state(s3: &S3, tree_dir: &Path, outputs_tf: &str) -> &'static str {
    if let Some(tf) = which("terraform") {
        let w = tree_dir.join("tf-prd");
        std::fs::create_dir_all(&w).unwrap();
        std::fs::copy(
            tree_dir.join("platform/prd/terraform/backend.tf.json"),
            w.join("backend.tf.json"),
        )
        .unwrap();
        // Same outputs as rendered, with the provider's ids replaced by a built-in resource's id.
        let mut outputs: serde_json::Value = serde_json::from_str(outputs_tf).unwrap();
        replace_ids(&mut outputs);
        std::fs::write(w.join("outputs.tf.json"), outputs.to_string()).unwrap();
        std::fs::write(
            w.join("main.tf.json"),
            r#"{"resource": {"terraform_data": {"servers": {"input": "prd"}}}}"#,
        )
        .unwrap();
        let tf_cmd = |args: &[&str]| {
            let mut c = Command::new(&tf);
            c.current_dir(&w)
                .args(args)
                .env("AWS_ACCESS_KEY_ID", &s3.access)
                .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
                .env("TF_IN_AUTOMATION", "1")
                .env("TF_DATA_DIR", w.join(".terraform"))
                .env("CHECKPOINT_DISABLE", "1");
            let (ok, text) = run(&mut c);
            assert!(ok, "terraform {args:?}: {text}");
        };
        tf_cmd(&["init", "-input=false", "-no-color"]);
        tf_cmd(&["workspace", "new", "-no-color", "prd"]);
        tf_cmd(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert!(
            s3.dir
                .path()
                .join("terraform/env:/prd/terraform.tfstate")
                .exists(),
            "terraform wrote no state where expected"
        );
        "terraform"
    } else {
        eprintln!("terraform not on PATH: writing the state in the documented v4 layout instead");
        s3.put(
            "terraform",
            "env:/prd/terraform.tfstate",
            v4_state(outputs_tf),
        );
        "v4 file"
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn replace_ids(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.starts_with("${") && s.ends_with(".id}") => {
            *s = "${terraform_data.servers.id}".into();
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(replace_ids),
        serde_json::Value::Object(m) => m.values_mut().for_each(replace_ids),
        _ => {}
    }
}

#[test]
fn ansible_inventory_reads_the_state_from_s3_through_the_rendered_script() {
    let Some(s3) = S3::start("terraform") else {
        return;
    };
    let Some(ai) = tool(
        "ansible-inventory",
        "scripts/deps/setup.d/render.sh (ansible-core venv)",
    ) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // The example, with its state endpoint pointing at the test's S3 server.
    let spec_text = example_text().replace("https://minio.ictsc.net:9000", &s3.endpoint);
    let spec = root()
        .join("examples")
        .join(format!(".render-inventory-{}.toml", std::process::id()));
    std::fs::write(&spec, &spec_text).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(spec.clone());
    let out = d.path().join("platform");
    let (ok, text) = run(yagura().arg("render").arg(&spec).arg("-o").arg(&out));
    assert!(ok, "{text}");
    let outputs_tf = std::fs::read_to_string(out.join("prd/terraform/outputs.tf.json")).unwrap();
    let how = put_state(&s3, d.path(), &outputs_tf);

    let script = out.join("prd/ansible/inventory.sh");
    let (ok, text) = run(Command::new(&ai)
        .arg("-i")
        .arg(&script)
        .arg("--list")
        .env("YAGURA", env!("CARGO_BIN_EXE_yagura"))
        .env("MINIO_ACCESS_KEY", &s3.access)
        .env("MINIO_SECRET_KEY", &s3.secret)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("ANSIBLE_LOCAL_TEMP", d.path().join("ansible-tmp"))
        .env("ANSIBLE_HOME", d.path().join("ansible-home")));
    assert!(ok, "ansible-inventory ({how}): {text}");
    let json_start = text.find('{').unwrap();
    let v: serde_json::Value = serde_json::Deserializer::from_str(&text[json_start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let hv = &v["_meta"]["hostvars"];
    assert_eq!(hv["prd-master-1"]["ansible_host"], "203.0.113.5", "{v}");
    assert_eq!(hv["prd-worker-1"]["internal_address"], "192.168.100.21");
    assert_eq!(hv["prd-worker-1"]["ansible_host"], "192.168.100.21");
    assert_eq!(hv["prd-edge-2"]["bgp_peers"][0]["address"], "192.168.100.1");
    assert_eq!(hv["prd-router-1"]["bgp_peers"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["prd_masters"]["hosts"].as_array().unwrap().len(),
        3,
        "{v}"
    );
    assert_eq!(v["prd_delegate"]["hosts"][0], "prd-master-1");
    // ansible-inventory folds group vars into the hosts.
    assert_eq!(hv["prd-edge-1"]["vip"], "203.0.113.11", "{v}");
    assert!(v["prd"]["children"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("prd_servers")));

    // --host through the same script.
    let o = Command::new(&script)
        .args(["--host", "prd-edge-1"])
        .env("YAGURA", env!("CARGO_BIN_EXE_yagura"))
        .env("AWS_ACCESS_KEY_ID", &s3.access)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h["role"], "edge");

    // Errors, each clear and non-zero.
    let inv = |args: &[&str], access: &str| {
        let o = yagura()
            .arg("inventory")
            .args(["--endpoint", &s3.endpoint])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", access)
            .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = inv(&["--bucket", "nope", "-w", "prd"], &s3.access);
    assert_eq!(code, Some(2));
    assert!(err.contains("bucket `nope` does not exist"), "{err}");
    let (code, err) = inv(&["--bucket", "terraform", "-w", "stg"], &s3.access);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no state at s3://terraform/env:/stg/terraform.tfstate"),
        "{err}"
    );
    let (code, err) = inv(&["--bucket", "terraform", "-w", "prd"], "wrong-key");
    assert_eq!(code, Some(2));
    assert!(err.contains("refused the credentials"), "{err}");
    s3.put(
        "terraform",
        "env:/old/terraform.tfstate",
        br#"{"version": 3, "serial": 1}"#.to_vec(),
    );
    let (code, err) = inv(&["--bucket", "terraform", "-w", "old"], &s3.access);
    assert_eq!(code, Some(2));
    assert!(err.contains("has version 3; only version 4"), "{err}");
    s3.put(
        "terraform",
        "env:/junk/terraform.tfstate",
        b"not json".to_vec(),
    );
    let (code, err) = inv(&["--bucket", "terraform", "-w", "junk"], &s3.access);
    assert_eq!(code, Some(2));
    assert!(err.contains("unreadable"), "{err}");
}

#[test]
fn inventory_from_a_state_file_and_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let tree = render_text(&example_text(), &d.path().join("out"));
    let state = d.path().join("prd.tfstate");
    std::fs::write(
        &state,
        v4_state(tree.get("prd/terraform/outputs.tf.json").unwrap()),
    )
    .unwrap();
    let o = yagura()
        .args(["inventory", "--list", "-w", "prd", "--state-file"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["masters"]["children"][0], "prd_masters");
    let o = yagura()
        .args(["inventory", "--host", "nobody", "-w", "prd", "--state-file"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = yagura()
        .args([
            "inventory",
            "--list",
            "-w",
            "prd",
            "--state-file",
            "/does/not/exist",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/does/not/exist"));
    let o = yagura().args(["inventory", "--list"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no workspace"));
}
