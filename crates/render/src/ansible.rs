//! Ansible for one cluster (`<cluster>/ansible/`): `site.yml` runs, in order, the router play (VyOS commands),
//! the server plays (admin users, internal NIC, kernel modules and sysctls, containerd with `SystemdCgroup`,
//! kubeadm/kubelet pinned to the cluster's version with `--node-ip`), `yagura edge` as a systemd unit on the
//! edges (each with its own `files/edge/<node>.toml`, checked with `yagura edge --check` before it is installed,
//! and the cluster CA its API health check verifies against), and the kubeadm bootstrap (init with upload-certs,
//! join masters one by one, join workers).
//! `inventory.sh` runs `yagura inventory` for the cluster's workspace. Only `ansible.builtin` modules are used,
//! so plain ansible-core runs it.

use crate::{yaml, Cx, RenderError, Tree};
use serde_json::{json, Value};

/// The Ansible group name of a cluster's role (`prd_masters`); see `yagura-inventory`.
pub fn group(cluster: &str, what: &str) -> String {
    format!("{}_{what}", cluster.replace('-', "_"))
}

fn play(name: String, hosts: String, tasks: Vec<Value>) -> Value {
    json!({ "name": name, "hosts": hosts, "become": true, "tasks": tasks })
}

fn task(name: &str, module: &str, args: Value) -> Value {
    let mut t = json!({ "name": name });
    t[module] = args;
    t
}

/// Renders `<cluster>/ansible/…`.
pub fn render(cx: &Cx<'_>, tree: &mut Tree) -> Result<(), RenderError> {
    let c = cx.cluster;
    let dir = cx.path("ansible");
    let g = |w: &str| group(&c.name, w);
    let minor: String = c
        .kubernetes_version
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");

    // group_vars/all.yml: facts every play reads.
    let platform_keys: Vec<String> = cx
        .spec
        .platform
        .ssh_authorized_keys_files
        .iter()
        .map(|f| cx.opts.spec_path_from(&dir, &f.to_string()))
        .collect();
    let admins: Vec<Value> = cx
        .spec
        .platform
        .admins
        .iter()
        .map(|a| {
            let mut keys = platform_keys.clone();
            keys.extend(
                a.ssh_authorized_keys_files
                    .iter()
                    .map(|f| cx.opts.spec_path_from(&dir, &f.to_string())),
            );
            json!({ "name": a.name, "groups": a.groups, "key_files": keys })
        })
        .collect();
    let vars = json!({
        "cluster": c.name,
        "env": c.env,
        "kubernetes_version": c.kubernetes_version,
        "kubernetes_minor": minor,
        "api_vip": c.api_vip.to_string(),
        "api_endpoint": c.api_endpoint,
        "internal_network": c.networks.internal.cidr.to_string(),
        "internal_prefix": c.networks.internal.cidr.prefix_len(),
        "internal_gateway": c.networks.internal.gateway.to_string(),
        "pod_subnet": c.networks.pod.to_string(),
        "service_subnet": c.networks.service.to_string(),
        "yagura_admins": admins,
    });
    tree.add(
        format!("{dir}/group_vars/all.yml"),
        format!("---\n{}", yaml("group_vars", &vars)?),
    );

    tree.add(
        format!("{dir}/ansible.cfg"),
        "[defaults]\ninventory = inventory.sh\nhost_key_checking = False\ninterpreter_python = auto_silent\n",
    );
    let st = &cx.plan.platform.state;
    tree.add_executable(
        format!("{dir}/inventory.sh"),
        format!(
            "#!/bin/sh\n\
             # Ansible inventory script for cluster {c}: reads the workspace's Terraform state through yagura.\n\
             # Credentials: ${access} / ${secret} (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).\n\
             : \"${{YAGURA_STATE_ENDPOINT:={endpoint}}}\"\n\
             : \"${{YAGURA_STATE_BUCKET:={bucket}}}\"\n\
             : \"${{YAGURA_STATE_KEY:={key}}}\"\n\
             : \"${{YAGURA_STATE_PREFIX:={prefix}}}\"\n\
             : \"${{YAGURA_STATE_REGION:={region}}}\"\n\
             : \"${{YAGURA_WORKSPACE:={c}}}\"\n\
             : \"${{AWS_ACCESS_KEY_ID:=${{{access}:-}}}}\"\n\
             : \"${{AWS_SECRET_ACCESS_KEY:=${{{secret}:-}}}}\"\n\
             export YAGURA_STATE_ENDPOINT YAGURA_STATE_BUCKET YAGURA_STATE_KEY YAGURA_STATE_PREFIX YAGURA_STATE_REGION \\\n\
             \x20   YAGURA_WORKSPACE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY\n\
             exec \"${{YAGURA:-yagura}}\" inventory \"$@\"\n",
            c = c.name,
            endpoint = st.endpoint,
            bucket = st.bucket,
            key = st.key,
            prefix = st.workspace_key_prefix,
            region = st.region,
            access = st.access_key_env,
            secret = st.secret_key_env,
        ),
    );

    // Router: VyOS set commands through vbash's script template.
    let router = vec![json!({
        "name": format!("Configure the router of {}", c.name),
        "hosts": g("routers"),
        "gather_facts": false,
        "tasks": [
            task("Copy the rendered VyOS commands", "ansible.builtin.copy", json!({
                "src": "../router/vyos{{ '' if (index | default(1)) == 1 else '-' ~ index }}.commands",
                "dest": "/config/scripts/yagura.commands", "mode": "0644",
            })),
            {
                "name": "Load, commit and save",
                "ansible.builtin.command": "/bin/vbash -c 'source /opt/vyatta/etc/functions/script-template; configure; source /config/scripts/yagura.commands; commit; save'",
                "register": "vyos_load",
                "changed_when": "'No configuration changes to commit' not in vyos_load.stdout",
            }
        ],
    })];
    tree.add(
        format!("{dir}/router.yml"),
        format!("---\n{}", yaml("router.yml", &router)?),
    );

    // Servers: everything but the router.
    let base = play(
        format!("Prepare the servers of {}", c.name),
        g("servers"),
        vec![
            json!({ "name": "Admin users", "ansible.builtin.user": { "name": "{{ item.name }}", "groups": "{{ item.groups }}", "append": true, "shell": "/bin/bash" }, "loop": "{{ yagura_admins }}" }),
            json!({ "name": "Admin .ssh directories", "ansible.builtin.file": { "path": "/home/{{ item.name }}/.ssh", "state": "directory", "owner": "{{ item.name }}", "mode": "0700" }, "loop": "{{ yagura_admins }}" }),
            json!({ "name": "Admin SSH keys", "ansible.builtin.copy": {
                "dest": "/home/{{ item.name }}/.ssh/authorized_keys", "owner": "{{ item.name }}", "mode": "0600",
                "content": "{% for f in item.key_files %}{{ lookup('ansible.builtin.file', playbook_dir ~ '/' ~ f) }}\n{% endfor %}",
            }, "loop": "{{ yagura_admins }}" }),
            task(
                "Password-less sudo for admins",
                "ansible.builtin.copy",
                json!({
                    "dest": "/etc/sudoers.d/yagura-admins", "mode": "0440", "validate": "visudo -cf %s",
                    "content": "{% for u in yagura_admins %}{{ u.name }} ALL=(ALL) NOPASSWD:ALL\n{% endfor %}",
                }),
            ),
            json!({ "name": "Internal network on the second NIC", "when": "global_address | default(none) is not none",
                "ansible.builtin.copy": { "dest": "/etc/netplan/60-yagura-internal.yaml", "mode": "0600",
                    "content": "network:\n  version: 2\n  ethernets:\n    eth1:\n      addresses: [\"{{ internal_address }}/{{ internal_prefix }}\"]\n" },
                "notify": "Apply netplan" }),
            task(
                "Kernel modules at boot",
                "ansible.builtin.copy",
                json!({ "dest": "/etc/modules-load.d/yagura.conf", "content": "overlay\nbr_netfilter\n", "mode": "0644" }),
            ),
            json!({ "name": "Kernel modules now", "ansible.builtin.command": "modprobe {{ item }}", "loop": ["overlay", "br_netfilter"], "changed_when": false }),
            json!({ "name": "Sysctls", "ansible.builtin.copy": { "dest": "/etc/sysctl.d/90-yagura.conf", "mode": "0644",
                "content": "net.ipv4.ip_forward = 1\nnet.ipv4.ip_nonlocal_bind = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n" },
                "notify": "Reload sysctls" }),
        ],
    );
    let mut base = base;
    base["handlers"] = json!([
        { "name": "Apply netplan", "ansible.builtin.command": "netplan apply" },
        { "name": "Reload sysctls", "ansible.builtin.command": "sysctl --system" },
    ]);
    let mut kube = play(
        format!(
            "Container runtime, kubeadm and kubelet on the nodes of {}",
            c.name
        ),
        format!("{}:{}", g("masters"), g("workers")),
        vec![
            task(
                "containerd",
                "ansible.builtin.apt",
                json!({ "name": ["containerd", "apt-transport-https", "gpg"], "update_cache": true }),
            ),
            json!({ "name": "containerd default config", "ansible.builtin.shell": "containerd config default > /etc/containerd/config.toml", "args": { "creates": "/etc/containerd/config.toml" } }),
            json!({ "name": "containerd uses the systemd cgroup driver", "ansible.builtin.replace": { "path": "/etc/containerd/config.toml", "regexp": "SystemdCgroup = false", "replace": "SystemdCgroup = true" }, "notify": "Restart containerd" }),
            task(
                "Kubernetes package repository",
                "ansible.builtin.deb822_repository",
                json!({
                    "name": "kubernetes",
                    "uris": "https://pkgs.k8s.io/core:/stable:/v{{ kubernetes_minor }}/deb/",
                    "suites": "/",
                    "signed_by": "https://pkgs.k8s.io/core:/stable:/v{{ kubernetes_minor }}/deb/Release.key",
                }),
            ),
            task(
                "kubeadm, kubelet and kubectl at the cluster's version",
                "ansible.builtin.apt",
                json!({
                    "name": ["kubelet={{ kubernetes_version }}-*", "kubeadm={{ kubernetes_version }}-*", "kubectl={{ kubernetes_version }}-*"],
                    "update_cache": true,
                }),
            ),
            json!({ "name": "Hold them", "ansible.builtin.dpkg_selections": { "name": "{{ item }}", "selection": "hold" }, "loop": ["kubelet", "kubeadm", "kubectl"] }),
            task(
                "kubelet --node-ip is the internal address",
                "ansible.builtin.copy",
                json!({ "dest": "/etc/default/kubelet", "mode": "0644", "content": "KUBELET_EXTRA_ARGS=--node-ip={{ internal_address }}\n" }),
            ),
        ],
    );
    kube["handlers"] = json!([{ "name": "Restart containerd", "ansible.builtin.systemd_service": { "name": "containerd", "state": "restarted" } }]);
    tree.add(
        format!("{dir}/servers.yml"),
        format!("---\n{}", yaml("servers.yml", &vec![base, kube])?),
    );

    // Edges: yagura edge as a systemd unit, one config per edge (its own router ID and sessions), checked by
    // the binary before it replaces the old one. The HTTPS health check of the API servers needs the cluster
    // CA before the first master exists (the edges carry `kubeadm init`'s traffic to the VIP), so the first
    // master makes the CA now (`kubeadm init` later keeps an existing one) and the edges get a copy.
    let delegate = g("delegate");
    let mut edge_plays = Vec::new();
    let ca = crate::daemons::edge_ca_file(cx);
    if ca.is_some() {
        edge_plays.push(play(
            format!("Cluster CA of {} for the edges' API health check", c.name),
            delegate.clone(),
            vec![
                task(
                    "PKI directory",
                    "ansible.builtin.file",
                    json!({ "path": "/etc/kubernetes/pki", "state": "directory", "mode": "0755" }),
                ),
                json!({ "name": "Cluster CA (kubeadm init keeps it)", "ansible.builtin.command": "kubeadm init phase certs ca", "args": { "creates": "/etc/kubernetes/pki/ca.crt" } }),
                json!({ "name": "Read the CA certificate", "ansible.builtin.slurp": { "src": "/etc/kubernetes/pki/ca.crt" }, "register": "kubernetes_ca" }),
            ],
        ));
    }
    let mut edge_tasks = vec![
        task(
            "yagura binary",
            "ansible.builtin.copy",
            json!({ "src": "{{ yagura_binary | default(playbook_dir ~ '/yagura') }}", "dest": "/usr/local/bin/yagura", "mode": "0755" }),
        ),
        task(
            "Config directory",
            "ansible.builtin.file",
            json!({ "path": "/etc/yagura", "state": "directory", "mode": "0755" }),
        ),
    ];
    if let Some(ca) = &ca {
        let parent = std::path::Path::new(ca)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        if parent != "/etc/yagura" {
            edge_tasks.push(task(
                "CA directory",
                "ansible.builtin.file",
                json!({ "path": parent, "state": "directory", "mode": "0755" }),
            ));
        }
        edge_tasks.push(json!({ "name": "Cluster CA for the API health check", "ansible.builtin.copy": {
            "content": format!("{{{{ hostvars[groups['{delegate}'][0]].kubernetes_ca.content | b64decode }}}}"),
            "dest": ca, "mode": "0644",
        }, "notify": "Restart yagura-edge" }));
    }
    if let Some(env) = &cx.plan.routing.md5_password_env {
        // The BGP MD5 password goes from the operator's environment to the unit's, never into the tree.
        edge_tasks.push(
            json!({ "name": format!("BGP MD5 password (${env} of the machine running Ansible)"),
            "ansible.builtin.copy": {
                "content": format!("{env}={{{{ lookup('ansible.builtin.env', '{env}') }}}}\n"),
                "dest": "/etc/yagura/edge.env", "mode": "0600",
            }, "no_log": true, "notify": "Restart yagura-edge" }),
        );
    }
    edge_tasks.extend([
        json!({ "name": "edge config of this node (checked by yagura edge --check)", "ansible.builtin.copy": {
            "src": "files/edge/{{ inventory_hostname }}.toml", "dest": "/etc/yagura/edge.toml", "mode": "0644",
            "validate": "/usr/local/bin/yagura edge --check --config %s",
        }, "notify": "Reload yagura-edge" }),
        json!({ "name": "systemd unit", "ansible.builtin.copy": { "src": "files/yagura-edge.service", "dest": "/etc/systemd/system/yagura-edge.service", "mode": "0644" }, "notify": "Restart yagura-edge" }),
        task(
            "Running and enabled",
            "ansible.builtin.systemd_service",
            json!({ "name": "yagura-edge", "state": "started", "enabled": true, "daemon_reload": true }),
        ),
    ]);
    let mut edge = play(
        format!("yagura edge on the edges of {}", c.name),
        g("edges"),
        edge_tasks,
    );
    edge["handlers"] = json!([
        { "name": "Reload yagura-edge", "ansible.builtin.systemd_service": { "name": "yagura-edge", "state": "reloaded" } },
        { "name": "Restart yagura-edge", "ansible.builtin.systemd_service": { "name": "yagura-edge", "state": "restarted", "daemon_reload": true } },
    ]);
    edge_plays.push(edge);
    tree.add(
        format!("{dir}/edge.yml"),
        format!("---\n{}", yaml("edge.yml", &edge_plays)?),
    );
    for (node, text) in crate::daemons::edges(cx)? {
        tree.add(format!("{dir}/files/edge/{node}.toml"), text);
    }
    tree.add(
        format!("{dir}/files/yagura-edge.service"),
        "[Unit]\nDescription=yagura edge: BGP + BFD VIPs and the API server load balancer\n\
         After=network-online.target\nWants=network-online.target\n\n\
         [Service]\nExecStartPre=/usr/local/bin/yagura edge --check --config /etc/yagura/edge.toml\n\
         ExecStart=/usr/local/bin/yagura edge --config /etc/yagura/edge.toml\n\
         EnvironmentFile=-/etc/yagura/edge.env\nExecReload=/bin/kill -HUP $MAINPID\nKillSignal=SIGTERM\nTimeoutStopSec=60\n\
         Restart=always\nRestartSec=2\nAmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW\n\
         LimitNOFILE=1048576\n\n[Install]\nWantedBy=multi-user.target\n",
    );

    // kubeadm: init, join masters one at a time, join workers.
    let from_delegate = json!({ "name": "Join facts from the first master", "ansible.builtin.set_fact": {
        "kubeadm_token": format!("{{{{ hostvars[groups['{delegate}'][0]].kubeadm_token }}}}"),
        "kubeadm_certificate_key": format!("{{{{ hostvars[groups['{delegate}'][0]].kubeadm_certificate_key }}}}"),
        "kubeadm_ca_cert_hash": format!("{{{{ hostvars[groups['{delegate}'][0]].kubeadm_ca_cert_hash }}}}"),
    }});
    let config = task(
        "kubeadm configuration of this node",
        "ansible.builtin.template",
        json!({ "src": "../kubeadm/{{ inventory_hostname }}.yaml", "dest": "/etc/kubernetes/kubeadm.yaml", "mode": "0600" }),
    );
    let init = play(
        format!("kubeadm init on the first master of {}", c.name),
        delegate.clone(),
        vec![
            json!({ "name": "Bootstrap token", "ansible.builtin.command": "kubeadm token generate", "register": "token", "changed_when": false }),
            json!({ "name": "Certificate key", "ansible.builtin.command": "kubeadm certs certificate-key", "register": "certkey", "changed_when": false }),
            task(
                "Keep them",
                "ansible.builtin.set_fact",
                json!({ "kubeadm_token": "{{ token.stdout }}", "kubeadm_certificate_key": "{{ certkey.stdout }}" }),
            ),
            config.clone(),
            json!({ "name": "kubeadm init --upload-certs", "ansible.builtin.command": "kubeadm init --config /etc/kubernetes/kubeadm.yaml --upload-certs", "args": { "creates": "/etc/kubernetes/admin.conf" } }),
            json!({ "name": "Token for joins (valid 2 h, like the uploaded certificates)", "ansible.builtin.command": "kubeadm token create {{ kubeadm_token }} --ttl 2h", "register": "tc", "failed_when": "tc.rc != 0 and 'already exists' not in tc.stderr", "changed_when": "tc.rc == 0" }),
            json!({ "name": "Upload certificates under the key", "ansible.builtin.command": "kubeadm init phase upload-certs --upload-certs --certificate-key {{ kubeadm_certificate_key }}", "changed_when": true }),
            json!({ "name": "CA public key hash", "ansible.builtin.shell": "openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1", "register": "cahash", "changed_when": false }),
            task(
                "Keep it",
                "ansible.builtin.set_fact",
                json!({ "kubeadm_ca_cert_hash": "sha256:{{ cahash.stdout }}" }),
            ),
        ],
    );
    let mut masters = play(
        format!("Join the other masters of {} one at a time", c.name),
        format!("{}:!{delegate}", g("masters")),
        vec![
            from_delegate.clone(),
            config.clone(),
            json!({ "name": "kubeadm join (control plane)", "ansible.builtin.command": "kubeadm join --config /etc/kubernetes/kubeadm.yaml", "args": { "creates": "/etc/kubernetes/kubelet.conf" } }),
        ],
    );
    masters["serial"] = json!(1);
    let workers = play(
        format!("Join the workers of {}", c.name),
        g("workers"),
        vec![
            from_delegate,
            config,
            json!({ "name": "kubeadm join", "ansible.builtin.command": "kubeadm join --config /etc/kubernetes/kubeadm.yaml", "args": { "creates": "/etc/kubernetes/kubelet.conf" } }),
        ],
    );
    tree.add(
        format!("{dir}/kubernetes.yml"),
        format!(
            "---\n{}",
            yaml("kubernetes.yml", &vec![init, masters, workers])?
        ),
    );

    let site = json!([
        { "ansible.builtin.import_playbook": "router.yml" },
        { "ansible.builtin.import_playbook": "servers.yml" },
        { "ansible.builtin.import_playbook": "edge.yml" },
        { "ansible.builtin.import_playbook": "kubernetes.yml" },
    ]);
    tree.add(
        format!("{dir}/site.yml"),
        format!("---\n{}", yaml("site.yml", &site)?),
    );
    Ok(())
}
