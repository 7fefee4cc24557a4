#!/usr/bin/env bash
# Side-by-side benchmarks of `yagura watch` (BENCHMARKS.md, section "watch"): run as root on a Debian machine
# with pmacct, rsyslog, tcpdump, hyperfine and python3. Not part of CI.
#
#   1. capture: pmacctd (sfprobe at 1:1, nfprobe v9) in a network namespace exports real sFlow v5 and
#      NetFlow v9 for generated traffic (many flows); tcpdump records the datagrams into pcap files;
#   2. flows: the same capture replayed through yagura (decode + per-minute rollup + SQLite store, one thread)
#      and through pmacct sfacctd / nfacctd (pcap_savefile, print plugin aggregating the same keys), timed by
#      hyperfine; samples per CPU-second of each;
#   3. syslog: the same message file parsed and stored in-process by yagura, and streamed over TCP into a
#      running `yagura watch` and into rsyslogd writing to a file; messages per second, CPU, peak resident memory
#      (VmHWM) and bytes stored of each (SYSLOG_LINES=1000000 for finer CPU figures);
#   4. memory: resident set of `yagura watch` under a 20 s UDP flood of the sFlow capture, with what it dropped.
#
# Figures land in $OUT (default target/bench-watch). Bounded: every loop has a count or a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-target/bench-watch}
REPEAT_SFLOW=${REPEAT_SFLOW:-20}
REPEAT_NETFLOW=${REPEAT_NETFLOW:-400}
SYSLOG_LINES=${SYSLOG_LINES:-200000}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for t in pmacctd sfacctd nfacctd rsyslogd tcpdump hyperfine python3 ip; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install pmacct rsyslog tcpdump hyperfine python3 iproute2)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespace)" >&2; exit 1; }

SECTIONS=${SECTIONS:-1234}
cargo build --release -q -p yagura-watch --example watch_bench
BENCH=$CARGO_TARGET_DIR/release/examples/watch_bench
# `watch_bench daemon CONFIG` runs yagura_watch::daemon::run_blocking, the same code as `yagura watch --config`.
YAGURA_WATCH="$BENCH daemon"

NS=ywbench$$; HOSTIF=ywb$$h; NSIF=ywb$$n; H=198.18.250.1; N=198.18.250.2
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$HOSTIF" 2>/dev/null || true
}
trap cleanup EXIT

# The capture feeds parts 2 and 4 only.
if [[ $SECTIONS == *2* || $SECTIONS == *4* ]] && { [ ! -s "$OUT/sflow.pcap" ] || [ ! -s "$OUT/netflow.pcap" ]; }; then
    echo "== 1. capture real sFlow v5 and NetFlow v9 from pmacctd"
    ip netns add "$NS"
    ip link add "$HOSTIF" type veth peer name "$NSIF"
    ip link set "$NSIF" netns "$NS"
    ip addr add $H/30 dev "$HOSTIF"; ip link set "$HOSTIF" up
    ip netns exec "$NS" ip addr add $N/30 dev "$NSIF"
    ip netns exec "$NS" ip link set "$NSIF" up
    ip netns exec "$NS" ip link set lo up
    cat >"$OUT/pmacctd.conf" <<EOF
daemonize: false
pidfile: $OUT/pmacctd.pid
logfile: $OUT/pmacctd.log
pcap_interface: $NSIF
pcap_filter: udp and dst host $N and not port 6343 and not port 2055
plugins: sfprobe[sf], nfprobe[nf]
sampling_rate: 1
sfprobe_receiver[sf]: $H:6343
sfprobe_agentip[sf]: $N
nfprobe_receiver[nf]: $H:2055
nfprobe_version[nf]: 9
nfprobe_timeouts[nf]: udp=3:general=3:maxlife=30:expint=1
EOF
    tcpdump -q -i "$HOSTIF" -w "$OUT/sflow.pcap" udp dst port 6343 2>/dev/null & PIDS+=($!)
    tcpdump -q -i "$HOSTIF" -w "$OUT/netflow.pcap" udp dst port 2055 2>/dev/null & PIDS+=($!)
    ip netns exec "$NS" pmacctd -f "$OUT/pmacctd.conf" & PIDS+=($!)
    sleep 2
    # Sinks for the exports (so no ICMP unreachable goes back) and 30,000 packets over ~4,000 flows.
    python3 - "$H" "$N" <<'EOF'
import random, socket, sys, time
h, n = sys.argv[1], sys.argv[2]
sinks = []
for p in (6343, 2055):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((h, p)); s.setblocking(False); sinks.append(s)
senders = []
for i in range(40):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((h, 0)); senders.append(s)
random.seed(7)
for i in range(30000):
    s = random.choice(senders)
    s.sendto(b"x" * random.choice((64, 200, 512, 1200)), (n, 1000 + random.randrange(100)))
    if i % 200 == 199:
        time.sleep(0.01)
        for k in sinks:
            try:
                while True: k.recv(65535)
            except BlockingIOError:
                pass
end = time.time() + 12  # nfprobe exports after its 3 s idle timeout
while time.time() < end:
    for k in sinks:
        try:
            while True: k.recv(65535)
        except BlockingIOError:
            pass
    time.sleep(0.05)
EOF
    cleanup; PIDS=()
    sleep 1
    ls -l "$OUT"/*.pcap
fi

if [[ $SECTIONS == *2* ]]; then
echo "== 2. flows: yagura vs sfacctd / nfacctd on the same capture"
# The capture repeated into one file (pmacct pauses between savefile replays, so both read one long file).
python3 - "$OUT" "$REPEAT_SFLOW" "$REPEAT_NETFLOW" <<'EOF'
import sys
out, reps = sys.argv[1], {"sflow": int(sys.argv[2]), "netflow": int(sys.argv[3])}
for name, n in reps.items():
    b = open(f"{out}/{name}.pcap", "rb").read()
    with open(f"{out}/{name}-x{n}.pcap", "wb") as f:
        f.write(b[:24])
        for _ in range(n):
            f.write(b[24:])
EOF
SFLOW=$OUT/sflow-x$REPEAT_SFLOW.pcap
NETFLOW=$OUT/netflow-x$REPEAT_NETFLOW.pcap
cat >"$OUT/sfacctd.conf" <<EOF
daemonize: false
pcap_savefile: $SFLOW
plugins: print[p]
aggregate[p]: peer_src_ip, src_host, dst_host, src_port, dst_port, proto, in_iface, out_iface
print_output[p]: csv
print_output_file[p]: $OUT/sfacctd-out.csv
print_refresh_time[p]: 60
print_history[p]: 1m
EOF
sed -e "s|$SFLOW|$NETFLOW|; s|sfacctd-out|nfacctd-out|" "$OUT/sfacctd.conf" >"$OUT/nfacctd.conf"
"$BENCH" replay "$SFLOW" 1 "$OUT/bench.db" | tee "$OUT/yagura-sflow.json"
"$BENCH" replay "$NETFLOW" 1 "$OUT/bench.db" | tee "$OUT/yagura-netflow.json"
hyperfine --runs 3 --export-json "$OUT/hyperfine-sflow.json" \
    -n yagura "$BENCH replay $SFLOW 1 $OUT/bench.db" \
    -n yagura-rollups-only "$BENCH replay $SFLOW 1 $OUT/bench.db --no-raw" \
    -n sfacctd "sfacctd -f $OUT/sfacctd.conf"
hyperfine --runs 3 --export-json "$OUT/hyperfine-netflow.json" \
    -n yagura "$BENCH replay $NETFLOW 1 $OUT/bench.db" \
    -n yagura-rollups-only "$BENCH replay $NETFLOW 1 $OUT/bench.db --no-raw" \
    -n nfacctd "nfacctd -f $OUT/nfacctd.conf"
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
for proto, anchor in (("sflow", "sfacctd"), ("netflow", "nfacctd")):
    samples = json.load(open(f"{out}/yagura-{proto}.json"))["samples"]
    r = {x["command"]: x for x in json.load(open(f"{out}/hyperfine-{proto}.json"))["results"]}
    cpu = {k: v["user"] + v["system"] for k, v in r.items()}
    per = {k: samples / c for k, c in cpu.items()}
    for k in r:
        print(f"{proto} {k}: {samples} samples, {cpu[k]:.2f} CPU-s (wall {r[k]['mean']:.2f} s): "
              f"{per[k]:.0f} samples/CPU-s, {per[k] / per[anchor]:.2f}x {anchor}")
EOF
wc -l "$OUT"/sfacctd-out.csv "$OUT"/nfacctd-out.csv 2>/dev/null || true
fi

if [[ $SECTIONS == *3* ]]; then
echo "== 3. syslog: yagura vs rsyslog (TCP in, file out)"
python3 - "$OUT/syslog.txt" "$SYSLOG_LINES" <<'EOF'
import random, sys
random.seed(3)
hosts = [f"sw{i}" for i in range(20)] + [f"node-{i}.prd" for i in range(30)]
apps = ["kernel", "sshd", "bgpd", "kubelet", "containerd", "su", "cron"]
words = "interface link down up changed state to authentication failure for root from port session opened closed neighbor established".split()
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        pri = random.randrange(192)
        host, app = random.choice(hosts), random.choice(apps)
        msg = " ".join(random.choice(words) for _ in range(random.randrange(6, 18)))
        if i % 2:
            f.write(f"<{pri}>1 2026-11-27T08:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z {host} {app} {1000 + i % 5000} ID{i % 7} - {msg}\n")
        else:
            f.write(f"<{pri}>Nov 27 08:{i % 60:02d}:{i % 59:02d} {host} {app}[{1000 + i % 5000}]: {msg}\n")
EOF
"$BENCH" syslog-replay "$OUT/syslog.txt" 1 "$OUT/bench.db" | tee "$OUT/yagura-syslog-inprocess.json"
cpu_of() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
PORT_Y=15514; PORT_R=15515; HTTP=19481
cat >"$OUT/watch.toml" <<EOF
[listen]
sflow = ["127.0.0.1:16343"]
netflow = []
syslog_udp = []
syslog_tcp = ["127.0.0.1:$PORT_Y"]
[storage]
path = "$OUT/watch-e2e.db"
max_size = "4GiB"
[http]
listen = "127.0.0.1:$HTTP"
EOF
rm -rf "$OUT"/watch-e2e.db*
$YAGURA_WATCH "$OUT/watch.toml" 2>"$OUT/watch.log" & YP=$!; PIDS+=($YP)
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
c0=$(cpu_of $YP); t0=$(date +%s.%N)
"$BENCH" send-tcp "127.0.0.1:$PORT_Y" "$OUT/syslog.txt" 1
for _ in $(seq 1200); do
    n=$(curl -s "127.0.0.1:$HTTP/metrics" | awk '/^yagura_watch_store_rows_total\{kind="logs"\}/ {print $2}')
    [ "${n:-0}" -ge "$SYSLOG_LINES" ] && break; sleep 0.05
done
t1=$(date +%s.%N); c1=$(cpu_of $YP); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$YP/status")
echo "{\"daemon\":\"yagura\",\"messages\":${n:-0},\"wall_s\":$(echo "$t1 - $t0" | bc),\"cpu_s\":$(echo "$c1 - $c0" | bc),\"vm_hwm_kib\":$hwm,\"store_bytes\":$(du -sb "$OUT"/watch-e2e.db* | awk '{s += $1} END {print s}')}" | tee "$OUT/syslog-yagura.json"
kill -TERM $YP; wait $YP || true
mkdir -p "$OUT/rsyslog-work"; rm -f "$OUT/rsyslog.out"
cat >"$OUT/rsyslog.conf" <<EOF
global(workDirectory="$OUT/rsyslog-work")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$PORT_R")
action(type="omfile" file="$OUT/rsyslog.out")
EOF
rsyslogd -n -f "$OUT/rsyslog.conf" -i "$OUT/rsyslog.pid" & RP=$!; PIDS+=($RP)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT_R) 2>/dev/null && break; sleep 0.1; done
c0=$(cpu_of $RP); t0=$(date +%s.%N)
"$BENCH" send-tcp "127.0.0.1:$PORT_R" "$OUT/syslog.txt" 1
for _ in $(seq 1200); do
    n=$(wc -l <"$OUT/rsyslog.out" 2>/dev/null || echo 0)
    [ "$n" -ge "$SYSLOG_LINES" ] && break; sleep 0.05
done
t1=$(date +%s.%N); c1=$(cpu_of $RP); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$RP/status")
echo "{\"daemon\":\"rsyslog\",\"messages\":$n,\"wall_s\":$(echo "$t1 - $t0" | bc),\"cpu_s\":$(echo "$c1 - $c0" | bc),\"vm_hwm_kib\":$hwm,\"store_bytes\":$(stat -c %s "$OUT/rsyslog.out")}" | tee "$OUT/syslog-rsyslog.json"
kill $RP; wait $RP || true
fi

if [[ $SECTIONS == *4* ]]; then
echo "== 4. memory under a 20 s sFlow flood"
rm -rf "$OUT"/watch-e2e.db*
$YAGURA_WATCH "$OUT/watch.toml" 2>"$OUT/watch-flood.log" & YP=$!; PIDS+=($YP)
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
"$BENCH" flood-udp 127.0.0.1:16343 "$OUT/sflow.pcap" 20 | tee "$OUT/flood-sent.json" &
FP=$!
peak=0
for _ in $(seq 25); do
    r=$(awk '/VmRSS/ {print $2}' "/proc/$YP/status"); [ "$r" -gt "$peak" ] && peak=$r; sleep 1
done
wait $FP || true
curl -s "127.0.0.1:$HTTP/metrics" | grep -E '^yagura_watch_(datagrams|dropped|records)_total' >"$OUT/flood-metrics.txt" || true
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$YP/status")
echo "{\"rss_peak_kib\":$peak,\"vm_hwm_kib\":$hwm}" | tee "$OUT/flood-rss.json"
cat "$OUT/flood-metrics.txt"
kill -TERM $YP; wait $YP || true
fi
echo "done: $OUT"
