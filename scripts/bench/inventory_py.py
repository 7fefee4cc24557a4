#!/usr/bin/env python3
"""The talk's approach, for the side-by-side benchmark: read a Terraform v4 state (here from a file; the 2020
script fetched it from MinIO) and print the same Ansible inventory JSON as `yagura inventory --list`."""
import json
import sys


def main(path: str) -> None:
    with open(path) as f:
        state = json.load(f)
    if state.get("version") != 4:
        sys.exit(f"unsupported state version {state.get('version')}")
    out = state["outputs"]
    cluster = out["cluster"]["value"]
    nodes = out["nodes"]["value"]
    bgp = out["bgp"]["value"]
    pools = out["pools"]["value"]
    g = lambda w: f"{cluster.replace('-', '_')}_{w}"
    inv, hostvars = {}, {}
    for role, plural in [("router", "routers"), ("edge", "edges"), ("master", "masters"), ("worker", "workers")]:
        vars_ = {}
        if role == "router":
            vars_ = {"bgp_address": [p["range"] for p in pools.values()], "bgp_asn": bgp["router_asn"]}
        if role == "edge":
            vars_ = {"vip": out["api_vip"]["value"], "bgp_asn": bgp["cluster_asn"]}
        inv[g(plural)] = {"hosts": [n["name"] for n in nodes if n["role"] == role], "vars": vars_}
    inv[g("servers")] = {"children": [g("edges"), g("masters"), g("workers")]}
    first = next((n for n in nodes if n["role"] == "master"), None)
    inv[g("delegate")] = {"hosts": [first["name"]] if first else [], "vars": {"workspace": cluster}}
    for n in nodes:
        v = {"ansible_host": n["global_address"] or n["internal_address"], "internal_address": n["internal_address"],
             "internal_ip": n["internal_address"], "global_address": n["global_address"], "role": n["role"],
             "index": n["index"], "cluster": cluster, "server_id": n.get("id")}
        if n["role"] in ("router", "edge"):
            v["bgp_peers"] = [s for s in bgp["sessions"] if n["name"] in (s["edge"], s["router"])]
        hostvars[n["name"]] = v
    inv["_meta"] = {"hostvars": hostvars}
    json.dump(inv, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
