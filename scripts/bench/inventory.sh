#!/usr/bin/env bash
# Side-by-side: `yagura inventory --list` vs the Python script (the talk's approach) on a 1,000-host state.
# Usage: scripts/bench/inventory.sh [RUNS]   (builds the release binary first; needs python3 and hyperfine)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-50}"
cargo build --release -q -p yagura
bin="${CARGO_TARGET_DIR:-target}/release/yagura"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
python3 - "$dir/state.json" <<'PY'
import json, sys
nodes = [{"name": "big-router-1", "role": "router", "index": 1, "id": "1", "global_address": "198.18.0.4", "internal_address": "10.0.0.1"}]
for i in range(1, 1000):
    role = "master" if i <= 3 else "edge" if i <= 6 else "worker"
    nodes.append({"name": f"big-{role}-{i}", "role": role, "index": i, "id": str(1000 + i),
                  "global_address": f"198.18.{i // 250}.{i % 250 + 5}" if role != "worker" else None,
                  "internal_address": f"10.0.{i // 250}.{i % 250 + 10}"})
sessions = [{"router": "big-router-1", "router_address": "10.0.0.1", "edge": n["name"], "edge_address": n["internal_address"], "bfd": True} for n in nodes if n["role"] == "edge"]
out = {"cluster": "big", "env": "big", "api_vip": "198.18.3.250", "pools": {"global": {"range": "198.19.0.0-198.19.0.255", "access": "public", "cidr": "198.19.0.0/24"}},
       "nodes": nodes, "bgp": {"router_asn": 65020, "cluster_asn": 65021, "sessions": sessions}, "networks": {}}
state = {"version": 4, "terraform_version": "1.11.0", "serial": 1, "lineage": "bench", "resources": [],
         "outputs": {k: {"value": v, "type": "dynamic"} for k, v in out.items()}}
json.dump(state, open(sys.argv[1], "w"))
PY
# Both commands must print the same groups and _meta.hostvars; then hyperfine times them side by side
# (process start included).
"$bin" inventory --list -w big --state-file "$dir/state.json" >"$dir/yagura.json"
python3 scripts/bench/inventory_py.py "$dir/state.json" >"$dir/python.json"
python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(0 if a == b else "outputs differ")' \
    "$dir/yagura.json" "$dir/python.json"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
hyperfine -N --warmup 3 --runs "$runs" \
    -n yagura "$bin inventory --list -w big --state-file $dir/state.json" \
    -n python "python3 scripts/bench/inventory_py.py $dir/state.json"
