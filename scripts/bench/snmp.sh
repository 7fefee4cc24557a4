#!/usr/bin/env bash
# SNMP polling benchmark (BENCHMARKS.md, section "SNMP polling"): run as root on a Debian machine with snmpd,
# snmp (snmpbulkwalk) and, for the second anchor, prometheus-snmp-exporter and curl. Not part of CI.
#
# 100 devices = AGENTS net-snmp agents × PORTS_PER_AGENT UDP ports each on 127.0.0.1, inside a network namespace
# that has IFPAIRS veth pairs (2 × IFPAIRS + lo interfaces, 49 by default) so every device reports a realistic
# interface table. One "round" polls every device once: sysUpTime, sysName and the IF-MIB columns yagura uses.
#   - yagura: crates/snmp/examples/poll.rs (yagura_snmp::poller::poll_round, the daemon's code), v2c and v3
#     authPriv (SHA/AES), CONCURRENCY devices at a time;
#   - anchor 1: net-snmp's snmpbulkwalk of ifTable + ifXTable per device (+ snmpget of the scalars), run with
#     xargs -P CONCURRENCY (the tools walk one subtree per call, so they fetch every column of both tables);
#   - anchor 2: prometheus snmp_exporter 0.21 (Debian) with a module walking the same columns yagura walks,
#     scraped for every device with curl, CONCURRENCY at a time.
# Reported per tool: median wall time of a full round and CPU seconds per round (user + system).
# Bounded: ROUNDS rounds per tool, every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."
AGENTS=${AGENTS:-10}
PORTS_PER_AGENT=${PORTS_PER_AGENT:-10}
IFPAIRS=${IFPAIRS:-24}
ROUNDS=${ROUNDS:-10}
CONCURRENCY=${CONCURRENCY:-32}
BASE_PORT=${BASE_PORT:-21000}
OUT=${OUT:-target/bench-snmp}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for t in snmpd snmpbulkwalk snmpget ip; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install snmpd snmp iproute2)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespace)" >&2; exit 1; }
export MIBS=""

NS=ygsnmpbench$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

cargo build --release -q -p yagura-snmp --example poll
POLL=$CARGO_TARGET_DIR/release/examples/poll

echo "== namespace $NS with $((IFPAIRS * 2 + 1)) interfaces, $AGENTS agents × $PORTS_PER_AGENT ports"
ip netns add "$NS"
ip -n "$NS" link set lo up
for i in $(seq 1 "$IFPAIRS"); do
    ip -n "$NS" link add "yb${i}a" type veth peer name "yb${i}b"
    ip -n "$NS" link set "yb${i}a" up
    ip -n "$NS" link set "yb${i}b" up
done
ADDRS=()
for a in $(seq 0 $((AGENTS - 1))); do
    d=$OUT/agent$a; rm -rf "$d"; mkdir -p "$d/persist"
    cat >"$d/snmpd.conf" <<EOF
rocommunity public 127.0.0.1
createUser bench SHA "bench-auth-pass" AES "bench-priv-pass"
rouser bench priv
EOF
    eps=()
    for p in $(seq 0 $((PORTS_PER_AGENT - 1))); do
        port=$((BASE_PORT + a * PORTS_PER_AGENT + p))
        eps+=("udp:127.0.0.1:$port"); ADDRS+=("127.0.0.1:$port")
    done
    SNMP_PERSISTENT_DIR=$d/persist ip netns exec "$NS" snmpd -f -Lf "$d/log" -C -m "" -M "$d/nomibs" \
        -c "$d/snmpd.conf" -p "$d/pid" "$(IFS=,; echo "${eps[*]}")" &
    PIDS+=($!)
done
deadline=$((SECONDS + 30))
for addr in "${ADDRS[@]}"; do
    until ip netns exec "$NS" snmpget -v2c -c public -t 0.5 -r 0 "$addr" 1.3.6.1.2.1.1.3.0 >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "agent $addr did not start" >&2; exit 1; }
        sleep 0.2
    done
done
echo "$(ip netns exec "$NS" snmpbulkwalk -v2c -c public -Cr25 "${ADDRS[0]}" 1.3.6.1.2.1.31.1.1.1.1 | wc -l) interfaces per device"

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
AGENT_PIDS=("${PIDS[@]}")
# CPU the agents spent (what polling costs the devices), in seconds per round since the last call.
agents_mark() { AGENTS_T0=0; for p in "${AGENT_PIDS[@]}"; do AGENTS_T0=$((AGENTS_T0 + $(cpu_of "$p"))); done; }
agents_report() {
    local t=0; for p in "${AGENT_PIDS[@]}"; do t=$((t + $(cpu_of "$p"))); done
    awk -v d=$((t - AGENTS_T0)) -v hz="$HZ" -v r="$ROUNDS" 'BEGIN {printf "agents (snmpd) cpu per round: %.3f s\n", d / hz / r}'
}

echo "== yagura (v2c), $ROUNDS rounds, concurrency $CONCURRENCY"
agents_mark
/usr/bin/time -f "%U %S" -o "$OUT/yagura-v2c.time" ip netns exec "$NS" "$POLL" --community public \
    --rounds "$ROUNDS" --concurrency "$CONCURRENCY" "${ADDRS[@]}" | tee "$OUT/yagura-v2c.txt" | tail -2
echo "cpu per round: $(awk -v r="$ROUNDS" '{printf "%.3f s", ($1 + $2) / r}' "$OUT/yagura-v2c.time")"
agents_report

echo "== yagura (v3 authPriv SHA/AES), $ROUNDS rounds"
agents_mark
/usr/bin/time -f "%U %S" -o "$OUT/yagura-v3.time" ip netns exec "$NS" "$POLL" \
    --v3 bench:bench-auth-pass:bench-priv-pass --rounds "$ROUNDS" --concurrency "$CONCURRENCY" "${ADDRS[@]}" \
    | tee "$OUT/yagura-v3.txt" | tail -2
echo "cpu per round: $(awk -v r="$ROUNDS" '{printf "%.3f s", ($1 + $2) / r}' "$OUT/yagura-v3.time")"
agents_report

echo "== anchor 1: snmpbulkwalk ifTable + ifXTable per device, xargs -P $CONCURRENCY, $ROUNDS rounds"
cat >"$OUT/walk-one.sh" <<'EOF'
#!/bin/sh
snmpget -v2c -c public -On "$1" 1.3.6.1.2.1.1.3.0 1.3.6.1.2.1.1.5.0 >/dev/null &&
snmpbulkwalk -v2c -c public -On -Cr25 "$1" 1.3.6.1.2.1.2.2 >/dev/null &&
snmpbulkwalk -v2c -c public -On -Cr25 "$1" 1.3.6.1.2.1.31.1.1 >/dev/null
EOF
chmod +x "$OUT/walk-one.sh"
: >"$OUT/snmpbulkwalk.txt"
agents_mark
for r in $(seq 1 "$ROUNDS"); do
    /usr/bin/time -f "%e %U %S" -a -o "$OUT/snmpbulkwalk.txt" ip netns exec "$NS" \
        sh -c "printf '%s\n' $(printf '%q ' "${ADDRS[@]}") | xargs -P $CONCURRENCY -n 1 $OUT/walk-one.sh"
done
sort -n "$OUT/snmpbulkwalk.txt" | awk -v r="$ROUNDS" '{w[NR]=$1; c+=$2+$3} END {printf "median round %.3f s, cpu per round %.3f s\n", w[int((NR+1)/2)], c/r}'
agents_report

if command -v prometheus-snmp-exporter >/dev/null && command -v curl >/dev/null; then
    echo "== anchor 2: snmp_exporter $(prometheus-snmp-exporter --version 2>&1 | head -1 | awk '{print $3}'), same columns, curl -P $CONCURRENCY, $ROUNDS rounds"
    # Numeric OIDs: Debian cannot ship the MIBs the generator needs. Same walk as yagura's primary columns.
    {
        echo "if_mib:"
        echo "  version: 2"
        echo "  max_repetitions: 25"
        echo "  retries: 1"
        echo "  timeout: 2s"
        echo "  auth: {community: public}"
        echo "  get: [1.3.6.1.2.1.1.3.0, 1.3.6.1.2.1.1.5.0]"
        echo "  walk:"
        for c in 7 8 13 14 19 20; do echo "  - 1.3.6.1.2.1.2.2.1.$c"; done
        for c in 1 6 7 8 9 10 11 12 13 15 18 19; do echo "  - 1.3.6.1.2.1.31.1.1.1.$c"; done
        echo "  metrics:"
        echo "  - {name: sysUpTime, oid: 1.3.6.1.2.1.1.3, type: gauge}"
        for m in "2.2.1.7 ifAdminStatus gauge" "2.2.1.8 ifOperStatus gauge" "2.2.1.13 ifInDiscards counter" \
            "2.2.1.14 ifInErrors counter" "2.2.1.19 ifOutDiscards counter" "2.2.1.20 ifOutErrors counter" \
            "31.1.1.1.6 ifHCInOctets counter" "31.1.1.1.7 ifHCInUcastPkts counter" \
            "31.1.1.1.8 ifHCInMulticastPkts counter" "31.1.1.1.9 ifHCInBroadcastPkts counter" \
            "31.1.1.1.10 ifHCOutOctets counter" "31.1.1.1.11 ifHCOutUcastPkts counter" \
            "31.1.1.1.12 ifHCOutMulticastPkts counter" "31.1.1.1.13 ifHCOutBroadcastPkts counter" \
            "31.1.1.1.15 ifHighSpeed gauge" "31.1.1.1.19 ifCounterDiscontinuityTime gauge"; do
            set -- $m
            echo "  - name: $2"
            echo "    oid: 1.3.6.1.2.1.$1"
            echo "    type: $3"
            echo "    indexes: [{labelname: ifIndex, type: gauge}]"
            echo "    lookups:"
            echo "    - {labels: [ifIndex], labelname: ifName, oid: 1.3.6.1.2.1.31.1.1.1.1, type: DisplayString}"
            echo "    - {labels: [ifIndex], labelname: ifAlias, oid: 1.3.6.1.2.1.31.1.1.1.18, type: DisplayString}"
        done
    } >"$OUT/snmp.yml"
    EXPORTER_PORT=$((BASE_PORT - 1))
    ip netns exec "$NS" prometheus-snmp-exporter --config.file="$OUT/snmp.yml" \
        --web.listen-address="127.0.0.1:$EXPORTER_PORT" --log.level=warn 2>"$OUT/exporter.log" &
    EXP_NETNS_PID=$!; PIDS+=($EXP_NETNS_PID)
    deadline=$((SECONDS + 20))
    until ip netns exec "$NS" curl -sf "http://127.0.0.1:$EXPORTER_PORT/" >/dev/null; do
        [ $SECONDS -lt $deadline ] || { cat "$OUT/exporter.log" >&2; echo "snmp_exporter did not start" >&2; exit 1; }
        sleep 0.2
    done
    EXP_PID=$(pgrep -n -f "prometheus-snmp-exporter --config.file=$OUT/snmp.yml")
    n=$(ip netns exec "$NS" curl -sf "http://127.0.0.1:$EXPORTER_PORT/snmp?module=if_mib&target=${ADDRS[0]}" | grep -c '^ifHCInOctets{')
    echo "$n ifHCInOctets series per device"
    : >"$OUT/snmp_exporter.txt"
    agents_mark
    for r in $(seq 1 "$ROUNDS"); do
        before=$(cpu_of "$EXP_PID")
        /usr/bin/time -f "%e %U %S" -o "$OUT/round.time" ip netns exec "$NS" sh -c \
            "printf '%s\n' $(printf '%q ' "${ADDRS[@]}") | xargs -P $CONCURRENCY -I{} curl -sf -o /dev/null 'http://127.0.0.1:$EXPORTER_PORT/snmp?module=if_mib&target={}'"
        after=$(cpu_of "$EXP_PID")
        # exporter CPU only (curl's own CPU is not counted against it)
        echo "$(cut -d' ' -f1 "$OUT/round.time") $(( after - before ))" >>"$OUT/snmp_exporter.txt"
    done
    sort -n "$OUT/snmp_exporter.txt" | awk -v r="$ROUNDS" -v hz="$HZ" '{w[NR]=$1; c+=$2} END {printf "median round %.3f s, exporter cpu per round %.3f s\n", w[int((NR+1)/2)], c/hz/r}'
    agents_report
else
    echo "== anchor 2 skipped: prometheus-snmp-exporter or curl not installed"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
