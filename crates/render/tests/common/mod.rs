//! Helpers shared by the render tests: the example rendered in memory, tools found on PATH or in the
//! ansible venv (missing tools fail under CI=true, skip with a reason otherwise), and an s3s-fs server.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Renders `spec_text` (as if it lived in examples/) for output directory `out`.
pub fn render_text(spec_text: &str, out: &Path) -> yagura_render::Tree {
    let checked = yagura_spec::check("ictsc2020.toml", spec_text);
    assert!(!checked.has_errors(), "{}", checked.report().short());
    let opts = yagura_render::Options::new(root().join("examples"), out);
    yagura_render::render(
        checked.spec.as_ref().unwrap(),
        checked.plan.as_ref().unwrap(),
        &opts,
    )
    .unwrap()
}

pub fn example_text() -> String {
    std::fs::read_to_string(root().join("examples/ictsc2020.toml")).unwrap()
}

/// A tool by name: on PATH, or in the ansible venv. `None` (with a printed reason) when absent outside CI;
/// a panic naming it under CI=true.
pub fn tool(name: &str, installed_by: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("YAGURA_ANSIBLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/yagura/ansible-venv")
        });
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    dirs.push(venv.join("bin"));
    dirs.push(PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo/bin"));
    if let Some(p) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and `{name}` is missing: it is installed by {installed_by}");
    }
    eprintln!(
        "SKIP: `{name}` not found (installed by {installed_by}); run ./scripts/test to install it"
    );
    None
}

pub fn run(cmd: &mut Command) -> (bool, String) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// A running s3s-fs with one bucket, killed on drop.
pub struct S3 {
    child: Child,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub access: String,
    pub secret: String,
}

impl S3 {
    pub fn start(bucket: &str) -> Option<S3> {
        let bin = tool(
            "s3s-fs",
            "scripts/deps/setup.d/render.sh (cargo install s3s-fs@0.14.1)",
        )?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(bucket)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (access, secret) = ("yagura-test".to_string(), "yagura-test-secret".to_string());
        let child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                &access,
                "--secret-key",
                &secret,
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = S3 {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
            access,
            secret,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(s)
    }

    /// Puts an object through the S3 API.
    pub fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        use object_store::ObjectStore;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(&self.access)
            .with_secret_access_key(&self.secret)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(true)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(store.put(&object_store::path::Path::from(key), bytes.into()))
            .unwrap();
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Terraform v4 state in the documented layout whose outputs are the rendered `outputs.tf.json` values
/// (resource ids, which only the provider knows, become fixed numbers).
pub fn v4_state(outputs_tf_json: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(outputs_tf_json).unwrap();
    let mut outputs = serde_json::Map::new();
    let mut n = 113_700_000_000u64;
    for (name, o) in v["output"].as_object().unwrap() {
        let mut value = o["value"].clone();
        fill_ids(&mut value, &mut n);
        outputs.insert(
            name.clone(),
            serde_json::json!({ "value": value, "type": "dynamic" }),
        );
    }
    serde_json::to_vec_pretty(&serde_json::json!({
        "version": 4, "terraform_version": "1.11.0", "serial": 3, "lineage": "0b5c3f0e-6f0a-4d6e-9a55-000000000000",
        "outputs": outputs, "resources": [], "check_results": null,
    }))
    .unwrap()
}

fn fill_ids(v: &mut serde_json::Value, n: &mut u64) {
    match v {
        serde_json::Value::String(s) if s.starts_with("${") => {
            *n += 1;
            *s = n.to_string();
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| fill_ids(x, n)),
        serde_json::Value::Object(m) => m.values_mut().for_each(|x| fill_ids(x, n)),
        _ => {}
    }
}
