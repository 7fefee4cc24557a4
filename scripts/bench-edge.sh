#!/usr/bin/env bash
# Benchmarks of `yagura edge` (not run in CI; needs root and scripts/deps/apt/edge.txt). Results go to stdout as
# the lines recorded in BENCHMARKS.md.
#
#   failover   FRR router with ECMP over two edges; probes (ping, 1 kHz) from a client through the VIP; the edge
#              carrying the probe flow is blackholed (nftables: its link and TCP stay up, so only BFD can tell);
#              the gap between replies, median and p95 over RUNS runs. Anchor, same topology and probes:
#              keepalived VRRP (Debian package, advert_int 1 as in kubeadm's HA guide), the master blackholed.
#   announce   time from starting an edge with 10,000 prefixes until BIRD has all 10,000 in its table; anchor:
#              ExaBGP announcing the same 10,000 static routes.
#   memory     resident memory (VmRSS) of the edge: idle with one session, with 10,000 prefixes announced, and
#              with 10 sessions (per-session cost).
#
# Usage: sudo scripts/bench-edge.sh [failover|vrrp|announce|memory|all]   (RUNS=20, YAGURA_BIN=target/release/yagura)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-20}"
BIN="$(realpath "${YAGURA_BIN:-${CARGO_TARGET_DIR:-target}/release/yagura}")"
WHAT="${1:-all}"
P="yb$$"
DIR="$(mktemp -d /tmp/yagura-bench-edge.XXXXXX)"
chmod 0777 "$DIR"
VIP=198.19.0.10

[ -x "$BIN" ] || { echo "build first: cargo build --release -p yagura (or set YAGURA_BIN)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }

NSS=()
cleanup() {
    for ns in "${NSS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/var/run/frr/$ns"
    done
    rm -rf "$DIR"
}
trap cleanup EXIT

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
mkns() { ip netns del "$1" 2>/dev/null || true; ip netns add "$1"; NSS+=("$1"); nsx "$1" ip link set lo up; }
link() { # link NS_A IF_A NS_B IF_B
    local t="yb$RANDOM"
    ip link add "$t" type veth peer name "${t}p"
    ip link set "$t" netns "$1"; ip link set "${t}p" netns "$3"
    nsx "$1" ip link set "$t" name "$2"; nsx "$3" ip link set "${t}p" name "$4"
    nsx "$1" ip link set "$2" up; nsx "$3" ip link set "$4" up
}
wait_until() { # wait_until SECONDS CMD... (polls every 20 ms)
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { echo "timed out: $*" >&2; return 1; }
        sleep 0.02
    done
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# Router R with bridge br0 (198.18.0.1/24) to edges E1..En (198.18.0.1N), client C behind R (198.18.1.2).
topology() {
    local n=$1
    mkns "${P}r"; mkns "${P}c"
    nsx "${P}r" ip link add br0 type bridge; nsx "${P}r" ip link set br0 up
    nsx "${P}r" ip addr add 198.18.0.1/24 dev br0
    # L3 hash: every ping (whatever its ICMP id) from the client to the VIP takes the same edge, so the edge
    # found carrying the flow before a run is the one carrying it during the run.
    nsx "${P}r" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=0
    link "${P}r" cl0 "${P}c" eth0
    nsx "${P}r" ip addr add 198.18.1.1/24 dev cl0
    nsx "${P}c" ip addr add 198.18.1.2/24 dev eth0
    nsx "${P}c" ip route add default via 198.18.1.1
    for i in $(seq 1 "$n"); do
        mkns "${P}e$i"
        link "${P}r" "p$i" "${P}e$i" eth0
        nsx "${P}r" ip link set "p$i" master br0
        nsx "${P}e$i" ip addr add "198.18.0.$((10 + i))/24" dev eth0
        nsx "${P}e$i" ip route add default via 198.18.0.1
    done
}
teardown() { cleanup; NSS=(); DIR="$(mktemp -d /tmp/yagura-bench-edge.XXXXXX)"; chmod 0777 "$DIR"; }

frr_start() { # frr_start NS CONF(bgp part) BFD(part)
    local ns=$1 run="/var/run/frr/$1"
    install -d -o frr -g frr /var/run/frr "$run"
    printf 'frr defaults traditional\nhostname r\n' >"$DIR/zebra.conf"
    printf 'frr defaults traditional\nhostname r\n%s\n' "$3" >"$DIR/bfdd.conf"
    printf 'frr defaults traditional\nhostname r\n%s\n' "$2" >"$DIR/bgpd.conf"
    for d in zebra bfdd bgpd; do
        chmod 0666 "$DIR/$d.conf"; : >"$DIR/$d.log"; chown frr:frr "$DIR/$d.log"
        nsx "$ns" "/usr/lib/frr/$d" -d -N "$ns" -f "$DIR/$d.conf" -i "$DIR/$d.pid" --log "file:$DIR/$d.log"
        [ $d != zebra ] || wait_until 10 test -S "$run/zserv.api"
    done
}

blackhole() { nsx "$1" nft 'add table inet bh; add chain inet bh in { type filter hook input priority 0; policy drop; }; add chain inet bh out { type filter hook output priority 0; policy drop; }; add rule inet bh in iif lo accept; add rule inet bh out oif lo accept'; }
unblackhole() { nsx "$1" nft delete table inet bh; }
hops() { nsx "${P}r" ip route show "$VIP" | grep -c 'nexthop via' || true; }
hops_eq() { [ "$(hops)" -eq "$1" ]; }
rx() { nsx "$1" cat /sys/class/net/eth0/statistics/rx_packets; }

# The longest gap between consecutive replies (ms) in `ping -D` output.
gap_ms() { awk -F'[][]' '/bytes from/ { t = $2 + 0; if (prev && t - prev > max) max = t - prev; prev = t } END { printf "%.0f\n", max * 1000 }' "$1"; }
stats() { sort -n | awk '{ a[NR] = $1 } END { m = a[int((NR + 1) / 2)]; p = a[int(NR * 0.95 + 0.999)]; printf "median %d ms, p95 %d ms, min %d, max %d (n=%d)\n", m, p, a[1], a[NR], NR }'; }

probe_through_failover() { # probe_through_failover TARGET VICTIM_NS -> prints the gap in ms
    local log="$DIR/ping.$RANDOM"
    ip netns exec "${P}c" ping -D -i 0.001 -W 1 -c 4000 "$1" >"$log" 2>&1 &
    local ping=$!
    sleep 0.7
    blackhole "$2"
    wait "$ping" || true
    unblackhole "$2"
    gap_ms "$log"
}

edge_conf() { # edge_conf I BFD_ENABLED VIPS_FILE
    cat <<EOF
asn = 65001
router_id = "198.18.0.$((10 + $1))"
control = "127.0.0.1:9179"
drain_wait = "1s"
[bfd]
enabled = $2
interval = "100ms"
multiplier = 3
[[peers]]
name = "router"
address = "198.18.0.1"
asn = 65000
hold_time = "9s"
connect_retry = "1s"
connect_retry_max = "2s"
EOF
    cat "$3"
}

bench_failover() {
    topology 2
    frr_start "${P}r" "router bgp 65000
 bgp router-id 198.18.0.1
 no bgp ebgp-requires-policy
 neighbor E peer-group
 neighbor E remote-as 65001
 neighbor E timers 3 9
 neighbor E timers connect 1
 neighbor E bfd
 neighbor E bfd profile fast
 neighbor 198.18.0.11 peer-group E
 neighbor 198.18.0.12 peer-group E
 address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
exit" "bfd
 profile fast
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 exit
exit"
    printf '[[vips]]\nname = "api"\nprefix = "%s/32"\n' "$VIP" >"$DIR/vips"
    for i in 1 2; do
        edge_conf $i true "$DIR/vips" >"$DIR/e$i.toml"
        ip netns exec "${P}e$i" "$BIN" edge --config "$DIR/e$i.toml" >"$DIR/e$i.log" 2>&1 &
    done
    local gaps=()
    for run in $(seq 1 "$RUNS"); do
        wait_until 60 hops_eq 2 || { tail -5 "$DIR/e1.log" "$DIR/e2.log"; exit 1; }
        sleep 1 # BFD at full rate after the session came back
        local a b
        a=$(rx "${P}e1"); nsx "${P}c" ping -q -i 0.002 -c 50 "$VIP" >/dev/null; b=$(rx "${P}e1")
        local victim="${P}e2"; [ $((b - a)) -lt 50 ] || victim="${P}e1"
        gaps+=("$(probe_through_failover "$VIP" "$victim")")
    done
    echo "yagura edge (BGP+BFD 100ms x3, ECMP via FRR): $(printf '%s\n' "${gaps[@]}" | stats)"
    echo "  gaps: ${gaps[*]}"
    teardown
}

bench_vrrp() {
    # Anchor: keepalived VRRP on the same segment (the VIP lives on the edges' eth0; the router ARPs for it).
    topology 2
    local kvip=198.18.0.100
    for i in 1 2; do
        local prio=$((200 - i * 50))
        cat >"$DIR/k$i.conf" <<EOF
global_defs {
  script_user root
  enable_script_security
}
vrrp_instance VI {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $prio
  advert_int 1
  virtual_ipaddress {
    $kvip/24
  }
}
EOF
        ip netns exec "${P}e$i" keepalived -n -l -f "$DIR/k$i.conf" -p "$DIR/k$i.pid" -r "$DIR/k$i.vrrp.pid" -c "$DIR/k$i.chk.pid" >"$DIR/k$i.log" 2>&1 &
    done
    local gaps=()
    for run in $(seq 1 "$RUNS"); do
        wait_until 60 sh -c "ip netns exec ${P}e1 ip -4 addr show dev eth0 | grep -q $kvip && ! ip netns exec ${P}e2 ip -4 addr show dev eth0 | grep -q $kvip"
        # The blackholed master never left MASTER, so it sends no gratuitous ARP when it comes back and the
        # router still points at the backup: reset the router's ARP entry between runs.
        nsx "${P}r" ip neigh flush to "$kvip" || true
        wait_until 20 nsx "${P}c" ping -c 1 -W 1 "$kvip" || { tail -20 "$DIR/k1.log"; nsx "${P}e1" ip addr; nsx "${P}r" ip neigh; exit 1; }
        sleep 1
        gaps+=("$(probe_through_failover "$kvip" "${P}e1")")
    done
    echo "keepalived VRRP (advert_int 1, master blackholed): $(printf '%s\n' "${gaps[@]}" | stats)"
    echo "  gaps: ${gaps[*]}"
    teardown
}

bird_conf() { # bird_conf ROUTER_ID
    echo "router id $1;"
    echo 'protocol device { }'
    echo "protocol bgp edge { local as 65000; neighbor 198.18.0.11 as 65001; connect retry time 1; error wait time 1, 5; ipv4 { import all; export none; }; }"
}

many_vips() { # many_vips N -> 198.20.0.0/32 ...
    for k in $(seq 0 $(($1 - 1))); do
        printf '[[vips]]\nname = "v%d"\nprefix = "198.20.%d.%d/32"\nadd_address = false\n' "$k" $((k / 256)) $((k % 256))
    done
}

bench_announce() {
    topology 1
    bird_conf 198.18.0.1 >"$DIR/bird.conf"
    nsx "${P}r" bird -c "$DIR/bird.conf" -s "$DIR/bird.ctl" -P "$DIR/bird.pid"
    wait_until 10 test -S "$DIR/bird.ctl"
    many_vips 10000 >"$DIR/vips"
    edge_conf 1 false "$DIR/vips" >"$DIR/e1.toml"
    count() { nsx "${P}r" birdc -s "$DIR/bird.ctl" show route count | awk '/table master4/ {print $1}'; }
    count_eq() { [ "$(count)" = "$1" ]; }
    local times=()
    for run in 1 2 3 4 5; do
        local t0 t1
        t0=$(date +%s%N)
        ip netns exec "${P}e1" "$BIN" edge --config "$DIR/e1.toml" >"$DIR/e1.log" 2>&1 &
        local pid=$!
        wait_until 60 count_eq 10000 || { echo "count: $(count)"; grep -v DEBUG "$DIR/e1.log" | tail -5; nsx "${P}r" birdc -s "$DIR/bird.ctl" show protocols all edge | head -30; exit 1; }
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000000)))
        [ "$run" != 1 ] || echo "edge RSS with 10,000 prefixes announced: $(rss_kib "$pid") KiB"
        kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        wait_until 30 count_eq 0
    done
    echo "yagura edge, 10,000 prefixes to BIRD (start to all in BIRD's table): $(printf '%s\n' "${times[@]}" | stats)"

    # Anchor: ExaBGP announcing the same 10,000 routes.
    {
        echo 'neighbor 198.18.0.1 {'
        echo '  router-id 198.18.0.11; local-address 198.18.0.11; local-as 65001; peer-as 65000;'
        echo '  static {'
        for k in $(seq 0 9999); do printf '    route 198.20.%d.%d/32 next-hop 198.18.0.11;\n' $((k / 256)) $((k % 256)); done
        echo '  }'
        echo '}'
    } >"$DIR/exabgp.conf"
    times=()
    for run in 1 2 3 4 5; do
        local t0 t1
        t0=$(date +%s%N)
        ip netns exec "${P}e1" env exabgp.daemon.user=root exabgp.daemon.drop=false exabgp.log.level=WARNING exabgp "$DIR/exabgp.conf" >"$DIR/exa.log" 2>&1 &
        local pid=$!
        if wait_until 120 count_eq 10000; then
            t1=$(date +%s%N)
            times+=($(((t1 - t0) / 1000000)))
        fi
        kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        wait_until 60 count_eq 0
    done
    [ ${#times[@]} -eq 0 ] || echo "ExaBGP, same 10,000 routes to BIRD: $(printf '%s\n' "${times[@]}" | stats)"
    teardown
}

bench_memory() {
    # Ten routers (198.18.0.1-10, one BIRD each) on the bridge; one edge peers with 1, then with 10 of them.
    topology 1
    bird_conf 198.18.0.1 >"$DIR/bird1.conf"
    nsx "${P}r" bird -c "$DIR/bird1.conf" -s "$DIR/bird1.ctl" -P "$DIR/bird1.pid"
    for s in $(seq 2 10); do
        mkns "${P}x$s"
        link "${P}r" "x$s" "${P}x$s" eth0
        nsx "${P}r" ip link set "x$s" master br0
        nsx "${P}x$s" ip addr add "198.18.0.$s/24" dev eth0
        bird_conf "198.18.0.$s" >"$DIR/bird$s.conf"
        nsx "${P}x$s" bird -c "$DIR/bird$s.conf" -s "$DIR/bird$s.ctl" -P "$DIR/bird$s.pid"
    done
    established() { local n=0; for s in $(seq 1 10); do
        local ns="${P}x$s"; [ "$s" != 1 ] || ns="${P}r"
        ! ip netns exec "$ns" birdc -s "$DIR/bird$s.ctl" show protocols edge | grep -q Established || n=$((n + 1))
    done; echo $n; }
    est_ge() { [ "$(established)" -ge "$1" ]; }
    est_eq() { [ "$(established)" -eq "$1" ]; }
    printf '[[vips]]\nname = "api"\nprefix = "%s/32"\nadd_address = false\n' "$VIP" >"$DIR/vips"
    for n in 1 10; do
        {
            echo 'asn = 65001'; echo 'router_id = "198.18.0.11"'; echo 'control = "127.0.0.1:9179"'; echo 'drain_wait = "0s"'
            for s in $(seq 1 $n); do
                printf '[[peers]]\nname = "s%d"\naddress = "198.18.0.%d"\nasn = 65000\nbfd = { enabled = false }\n' "$s" "$s"
            done
            cat "$DIR/vips"
        } >"$DIR/m$n.toml"
        ip netns exec "${P}e1" "$BIN" edge --config "$DIR/m$n.toml" >"$DIR/m$n.log" 2>&1 &
        local pid=$!
        wait_until 60 est_ge "$n"
        sleep 2 # settle (keepalives, allocator) before reading VmRSS
        local r; r=$(rss_kib "$pid")
        echo "edge RSS with $n session(s), 1 VIP: $r KiB"
        eval "rss$n=$r"
        kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
        wait_until 30 est_eq 0
    done
    echo "per additional session: $(((rss10 - rss1) / 9)) KiB"
    teardown
}

echo "machine: $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r), $("$BIN" --version 2>/dev/null || echo "$BIN")"
case "$WHAT" in
    failover) bench_failover; bench_vrrp ;;
    vrrp) bench_vrrp ;;
    announce) bench_announce ;;
    memory) bench_memory ;;
    all) bench_announce; bench_memory; bench_failover; bench_vrrp ;;
    *) echo "usage: $0 [failover|vrrp|announce|memory|all]" >&2; exit 2 ;;
esac
