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
    jump = first["global_address"] if first else None
    for n in nodes:
        v = {"ansible_host": n["global_address"] or n["internal_address"], "internal_address": n["internal_address"],
             "internal_ip": n["internal_address"], "global_address": n["global_address"], "role": n["role"],
             "index": n["index"], "cluster": cluster, "server_id": n.get("id")}
        if n["role"] == "worker" and jump:
            v["ansible_ssh_common_args"] = f"-o ProxyJump={jump}"
        if n["role"] == "router":
            v["bgp_asn"] = bgp["router_asn"]
            v["bgp_peers"] = [{"address": s["edge_address"], "asn": bgp["cluster_asn"], "bfd": s["bfd"],
                               "local_address": s["router_address"], "name": s["edge"]}
                              for s in bgp["sessions"] if s["router"] == n["name"]]
        if n["role"] == "edge":
            v["bgp_asn"] = bgp["cluster_asn"]
            v["bgp_peers"] = [{"address": s["router_address"], "asn": bgp["router_asn"], "bfd": s["bfd"],
                               "local_address": s["edge_address"], "name": s["router"]}
                              for s in bgp["sessions"] if s["edge"] == n["name"]]
        hostvars[n["name"]] = v
    inv[cluster] = {"children": [g("routers"), g("servers"), g("delegate")],
                    "vars": {"api_vip": out["api_vip"]["value"], "cluster": cluster, "env": out["env"]["value"],
                             "pools": {name: p["range"] for name, p in pools.items()}, "workspace": cluster}}
    for plural in ["delegate", "edges", "masters", "routers", "servers", "workers"]:
        inv[plural] = {"children": [g(plural)]}
    inv["_meta"] = {"hostvars": hostvars}
    json.dump(inv, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
