#!/usr/bin/env bash
# L4 load balancer benchmark: `yagura edge` vs haproxy (Debian, `mode tcp`), same three nginx backends, same
# number of threads (2), run one after the other in this one script on 127.0.0.0/8. Not run in CI.
#
#   wrk keep-alive and with a new connection per request (`Connection: close`), small (≈ 100 B) and 64 KiB
#   responses: req/s, p50/p99 latency, CPU seconds of the proxy; then RSS with 10,000 idle connections.
#
# Per run: req/s, p50/p99, the proxy's CPU seconds split into user and kernel (/proc/PID/stat utime/stime)
# and CPU µs per request. PROXIES picks who runs (default "yagura haproxy"), RUNS which wrk runs (default
# "small:keepalive small:close big:keepalive big:close"), IDLE=0 skips the RSS figure; SPLICE sets yagura's
# `splice` (never, its default; auto; always), HAP_SPLICE=1 gives haproxy `option splice-auto` (neither is
# used for the main figures in BENCHMARKS.md); PERF=DIR records `perf record -g` of the proxy during each run
# into DIR/<proxy>-<run>.data; STRACE=DIR writes `strace -c` syscall counts there instead (STRACE_OPTS
# replaces `-c`; strace slows the proxy, so those runs' figures mean nothing).
#
# Usage: scripts/bench-edge-lb.sh   (DURATION=10s CONNS=64 YAGURA_BIN=target/release/yagura)
# Needs: nginx, haproxy, wrk, python3 (scripts/deps/apt/edge.txt); perf for PERF.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="$(realpath -m "${YAGURA_BIN:-${CARGO_TARGET_DIR:-target}/release/yagura}")"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
PROXIES="${PROXIES:-yagura haproxy}"
RUNS="${RUNS:-small:keepalive small:close big:keepalive big:close}"
PERF="${PERF:-}"
IDLE="${IDLE:-9000}"  # idle connections for the RSS figure (each takes 2 fds in the proxy: keep 2×IDLE under ulimit -Hn)
DIR="$(mktemp -d /tmp/yagura-bench-lb.XXXXXX)"
chmod 0777 "$DIR"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT
[[ " $PROXIES " != *" yagura "* ]] || [ -x "$BIN" ] || { echo "build first: cargo build --release -p yagura (or set YAGURA_BIN)" >&2; exit 2; }
for t in nginx haproxy wrk python3; do command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 2; }; done
ulimit -n "$(ulimit -Hn)"

# Backends: three nginx on 127.0.0.21-23:18080, /small and /big (64 KiB).
mkdir -p "$DIR/www" && head -c 65536 /dev/urandom > "$DIR/www/big"
for i in 1 2 3; do
    mkdir -p "$DIR/n$i"
    # No master process: killing the pid we started stops what serves (an orphaned worker would keep the
    # reuseport socket, and answer the next run's requests from a deleted directory).
    cat > "$DIR/n$i.conf" <<NGX
master_process off;
worker_processes 1;
pid $DIR/n$i.pid;
error_log $DIR/n$i.err;
user root;
worker_rlimit_nofile 19000;
events { worker_connections 9000; }
http {
  access_log off;
  client_body_temp_path $DIR/n$i/b; proxy_temp_path $DIR/n$i/p; fastcgi_temp_path $DIR/n$i/f;
  uwsgi_temp_path $DIR/n$i/u; scgi_temp_path $DIR/n$i/s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.2$i:18080 reuseport;
    location = /small { return 200 "hello from backend $i, a small response of about one hundred bytes......\n"; }
    location = /big { root $DIR/www; }
  }
}
NGX
    nginx -c "$DIR/n$i.conf" -p "$DIR" -g 'daemon off;' &
    PIDS+=($!)
done

cat > "$DIR/edge.toml" <<TOML
asn = 65010
router_id = "198.18.0.10"
listen = []
control = "127.0.0.1:19179"
manage_addresses = false
drain_wait = "100ms"
drain_timeout = "1s"

[[listeners]]
name = "bench"
address = "127.0.0.30:18443"
pool = "bench"
max_connections = 20000
$([ -n "${SPLICE:-}" ] && echo "splice = \"$SPLICE\"")

[[pools]]
name = "bench"
balance = "round_robin"
[pools.health]
kind = "tcp"
interval = "1s"
timeout = "500ms"
rise = 1
$(for i in 1 2 3; do printf '[[pools.backends]]\nname = "n%s"\naddress = "127.0.0.2%s:18080"\n' $i $i; done)
TOML

# haproxy refuses to start when maxconn needs more descriptors than the hard limit (2 per connection + a few).
HAP_MAXCONN=$(( $(ulimit -Hn) / 2 - 100 ))
[ -n "${HAP_SPLICE:-}" ] && HAP_MAXCONN=$(( $(ulimit -Hn) / 4 - 100 ))  # and its pipes two more
cat > "$DIR/haproxy.cfg" <<HAP
global
  nbthread 2
  maxconn $HAP_MAXCONN
defaults
  mode tcp
  timeout connect 3s
  timeout client 1h
  timeout server 1h
  maxconn $HAP_MAXCONN
frontend fe
  bind 127.0.0.31:18443
  default_backend be
backend be
  balance roundrobin
$([ -n "${HAP_SPLICE:-}" ] && echo "  option splice-auto")
$(for i in 1 2 3; do echo "  server n$i 127.0.0.2$i:18080 check inter 1s"; done)
HAP

cpu() { awk '{print $14/100, $15/100}' "/proc/$1/stat"; }  # user kernel (s)
rss() { awk '/VmRSS/{print $2" kB"}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://$1/small" && return 0; sleep 0.1; done; echo "no $1" >&2; cat "$DIR"/*.log >&2; exit 1; }

idle_rss() { # $1 pid, $2 addr:port → RSS with 10,000 idle client connections
    python3 - "$2" "$IDLE" <<'PY' &
import socket, sys, time, resource
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
host, port = sys.argv[1].rsplit(':', 1)
s = []
for _ in range(int(sys.argv[2])):
    c = socket.create_connection((host, int(port)))
    s.append(c)
open('/tmp/yagura-bench-lb-idle-ready', 'w').close()
time.sleep(8)
PY
    local py=$!
    for _ in $(seq 1 300); do [ -e /tmp/yagura-bench-lb-idle-ready ] && break; sleep 0.1; done
    sleep 2
    echo "  RSS with $IDLE idle connections: $(rss "$1")"
    rm -f /tmp/yagura-bench-lb-idle-ready
    wait $py || true
}

run() { # $1 name, $2 pid, $3 addr
    local name=$1 pid=$2 addr=$3
    wait_port "$addr"
    echo "== $name (pid $pid), RSS idle $(rss "$pid")"
    local r
    for r in $RUNS; do
        local path=${r%%:*} mode=${r#*:}
        local hdr=()
        [ "$mode" = close ] && hdr=(-H "Connection: close")
        local perfpid=""
        if [ -n "$PERF" ]; then
            mkdir -p "$PERF"
            perf record -g -o "$PERF/${name%% *}-$path-$mode.data" -p "$pid" -- sleep "${DURATION%s}" >/dev/null 2>&1 &
            perfpid=$!
        fi
        if [ -n "${STRACE:-}" ]; then  # syscall counts instead (slows the proxy: not for the figures)
            mkdir -p "$STRACE"
            timeout -s INT "${DURATION%s}" strace ${STRACE_OPTS:--c} -f -p "$pid" -o "$STRACE/${name%% *}-$path-$mode.txt" 2>/dev/null &
            perfpid=$!
        fi
        local c0; c0=$(cpu "$pid")
        local out; out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "${hdr[@]}" "http://$addr/$path")
        local c1; c1=$(cpu "$pid")
        [ -n "$perfpid" ] && { wait "$perfpid" || true; }
        local rps; rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
        local reqs; reqs=$(awk '/requests in/{print $1}' <<<"$out")
        local p50; p50=$(awk '$1=="50%"{print $2}' <<<"$out")
        local p99; p99=$(awk '$1=="99%"{print $2}' <<<"$out")
        local errs; errs=$(awk '/Socket errors|Non-2xx/{print}' <<<"$out" | tr '\n' ' ')
        echo "  $path $mode: req/s $rps p50 $p50 p99 $p99 $(awk -v a="$c0" -v b="$c1" -v n="$reqs" 'BEGIN{split(a,x," ");split(b,y," ");u=y[1]-x[1];k=y[2]-x[2];printf "cpu %.2f s (user %.2f, kernel %.2f = %d%%) %.1f us/req", u+k, u, k, (u+k>0)?100*k/(u+k):0, (n>0)?1e6*(u+k)/n:0}') load $(cut -d' ' -f1 /proc/loadavg) $errs"
    done
    [ "$IDLE" -gt 0 ] && idle_rss "$pid" "$addr"
    return 0
}

for proxy in $PROXIES; do
    case $proxy in
    yagura)
        "$BIN" edge --config "$DIR/edge.toml" >"$DIR/edge.log" 2>&1 &
        EPID=$!; PIDS+=($EPID)
        sleep 1.5
        run "yagura edge" "$EPID" 127.0.0.30:18443
        kill -TERM "$EPID"; wait "$EPID" 2>/dev/null || true
        ;;
    haproxy)
        haproxy -f "$DIR/haproxy.cfg" -db >"$DIR/haproxy.log" 2>&1 &
        HPID=$!; PIDS+=($HPID)
        sleep 1.5
        run "haproxy $(haproxy -v | head -1 | awk '{print $3}')" "$HPID" 127.0.0.31:18443
        kill -TERM "$HPID"; wait "$HPID" 2>/dev/null || true
        ;;
    *) echo "unknown proxy $proxy" >&2; exit 2 ;;
    esac
done
echo "machine: $(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo), $(uname -r)"
