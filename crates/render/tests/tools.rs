//! The rendered example checked by the real tools: FRR's `vtysh -C`, `promtool check config/rules`,
//! `amtool check-config`, and `ansible-playbook --syntax-check` on every playbook (ansible-core from PyPI in the
//! venv scripts/deps/setup.d/render.sh creates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::process::Command;

fn written() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("platform");
    render_text(&example_text(), &out)
        .write_atomic(&out)
        .unwrap();
    (dir, out)
}

#[test]
fn frr_accepts_every_rendered_router_config() {
    let Some(vtysh) = tool("vtysh", "scripts/deps/apt/render.txt (frr)") else {
        return;
    };
    let (_d, out) = written();
    for c in ["prd", "dev", "wsp"] {
        let f = out.join(c).join("router/frr.conf");
        let (ok, text) = run(Command::new(&vtysh).arg("-C").arg("-f").arg(&f));
        assert!(ok, "vtysh -C rejected {}:\n{text}", f.display());
    }
    // And the check is real: a broken line is refused.
    let bad = out.join("prd/router/frr.conf");
    let text = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("maximum-paths 3", "maximum-paths lots");
    std::fs::write(&bad, text).unwrap();
    let (ok, _) = run(Command::new(&vtysh).arg("-C").arg("-f").arg(&bad));
    assert!(!ok, "vtysh -C accepted a broken config");
}

#[test]
fn promtool_and_amtool_accept_the_monitoring_config() {
    let Some(promtool) = tool("promtool", "scripts/deps/apt/render.txt (prometheus)") else {
        return;
    };
    let Some(amtool) = tool(
        "amtool",
        "scripts/deps/apt/render.txt (prometheus-alertmanager)",
    ) else {
        return;
    };
    let (_d, out) = written();
    let m = out.join("wsp/monitoring");
    // --syntax-only: the service-account token file it references exists only inside the pod.
    let (ok, text) = run(Command::new(&promtool)
        .args(["check", "config", "--syntax-only"])
        .arg(m.join("prometheus.yml")));
    assert!(ok, "{text}");
    let (ok, text) = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(m.join("rules.yml")));
    assert!(ok, "{text}");
    assert!(text.contains("9 rules found"), "{text}");
    let (ok, text) = run(Command::new(&amtool)
        .arg("check-config")
        .arg(m.join("alertmanager.yml")));
    assert!(ok, "{text}");
    // The Watchdog goes to watch's heartbeat, every minute.
    let am = std::fs::read_to_string(m.join("alertmanager.yml")).unwrap();
    assert!(
        am.contains("http://yagura-watch.yagura.svc:9480/alertmanager/wsp-watchdog"),
        "{am}"
    );
    assert!(am.contains("repeat_interval: 1m"), "{am}");
}

#[test]
fn ansible_playbook_syntax_check_of_every_playbook() {
    let Some(ap) = tool(
        "ansible-playbook",
        "scripts/deps/setup.d/render.sh (ansible-core venv)",
    ) else {
        return;
    };
    let (d, out) = written();
    for c in ["prd", "dev", "wsp"] {
        let dir = out.join(c).join("ansible");
        for pb in [
            "site.yml",
            "router.yml",
            "servers.yml",
            "edge.yml",
            "kubernetes.yml",
        ] {
            let (ok, text) = run(Command::new(&ap)
                .current_dir(&dir)
                .env("ANSIBLE_LOCAL_TEMP", d.path().join("ansible-tmp"))
                .env("ANSIBLE_HOME", d.path().join("ansible-home"))
                .args(["--syntax-check", "-i", "localhost,", pb]));
            assert!(ok, "{c}/{pb}: {text}");
        }
    }
}
