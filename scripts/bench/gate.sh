#!/usr/bin/env bash
# Benchmarks `yagura gate` against nginx (Debian) as a plain TLS reverse proxy, side by side in one run, to the
# same upstream (an nginx serving a small fixed body): wrk over HTTPS with keep-alive, the gate with a valid
# session cookie on a `signed_in` route (so every request opens the cookie, applies the policy, strips and adds
# identity headers with the ES256 assertion). Prints req/s and p99 for each and the ratios. Not run in CI.
#
#   scripts/bench/gate.sh            # DURATION=20s CONNECTIONS=64 THREADS=2 by default
#   CALLGRIND=1 scripts/bench/gate.sh  # instructions per request of each proxy under valgrind's callgrind instead
#                                      # (CG_KEEP=DIR keeps the profiles, CG_SECONDS=N measures N s, default 10)
#
# Needs: nginx, wrk, openssl (scripts/deps/apt/gate.txt). Everything listens on 127.0.0.1 only.
# PERF=/tmp/gate.perf also records a CPU profile of the gate during its session run. Each row also shows the CPU
# time (user + system, from /proc) the proxy spent per request, which is steadier than req/s on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
for t in nginx wrk openssl python3; do command -v "$t" >/dev/null || { echo "missing $t (apt-get install nginx wrk)" >&2; exit 2; }; done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# YAGURA=PATH benchmarks another build of the binary (e.g. a copy of an older one) against the same nginx; the
# binary is then not rebuilt.
[ -n "${YAGURA:-}" ] || cargo build --release -q -p yagura
cargo build --release -q -p yagura-gate --example mint_session
YAGURA="${YAGURA:-$CARGO_TARGET_DIR/release/yagura}"
MINT="$CARGO_TARGET_DIR/release/examples/mint_session"

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); GATE=$(free_port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=app.bench.test \
    -addext "subjectAltName=DNS:app.bench.test,DNS:auth.bench.test" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
head -c 48 /dev/urandom | base64 -w0 >"$work/cookie.key"; echo >>"$work/cookie.key"
echo bench-secret >"$work/gh.secret"

mkdir -p "$work/up" "$work/ngx"
cat >"$work/up/nginx.conf" <<CONF
worker_processes 1;
pid $work/up/nginx.pid;
error_log $work/up/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/up; proxy_temp_path $work/up; fastcgi_temp_path $work/up; uwsgi_temp_path $work/up; scgi_temp_path $work/up;
  server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { return 200 "hello from the upstream\n"; } }
}
CONF
cat >"$work/ngx/nginx.conf" <<CONF
worker_processes auto;
pid $work/ngx/nginx.pid;
error_log $work/ngx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/ngx; proxy_temp_path $work/ngx; fastcgi_temp_path $work/ngx; uwsgi_temp_path $work/ngx; scgi_temp_path $work/ngx;
  upstream up { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen 127.0.0.1:$NGX ssl;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host; }
  }
}
CONF
cat >"$work/gate.toml" <<CONF
auth_host = "auth.bench.test"
cookie_secret_file = "$work/cookie.key"

[listen]
https = "127.0.0.1:$GATE"

[[certificates]]
cert_file = "$work/cert.pem"
key_file = "$work/key.pem"

[github]
client_id = "bench"
client_secret_file = "$work/gh.secret"

[[routes]]
name = "app"
host = "app.bench.test"
upstream = "http://127.0.0.1:$UP"
access = "signed_in"

[[routes]]
name = "open"
host = "open.bench.test"
upstream = "http://127.0.0.1:$UP"
access = "public"
CONF

nginx -c "$work/up/nginx.conf" -p "$work/up" -g 'daemon off;' & pids+=($!)
wait_port() { # port tries(0.1 s each)
    for _ in $(seq "$2"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}
if [ -n "${CALLGRIND:-}" ]; then
    # CALLGRIND=1: instructions per request (user space, valgrind's callgrind) instead of req/s — repeatable on a
    # loaded machine. Each proxy alone on one thread (nginx: one worker, no master; gate: listen.workers = 1),
    # wrk -t1 -c8, 3 s warm-up, counters zeroed, CG_SECONDS (10) measured, then dumped: total / requests.
    command -v valgrind >/dev/null || { echo "missing valgrind (apt-get install valgrind)" >&2; exit 2; }
    sed -i 's/^worker_processes auto;/master_process off;\nworker_processes 1;/' "$work/ngx/nginx.conf"
    sed -i 's/^https = .*/&\nworkers = 1/' "$work/gate.toml"
    wait_port "$UP" 100
    COOKIE="$("$MINT" "$work/gate.toml" bench-user)"
    cg() { # name port command...
        local name="$1" port="$2"; shift 2
        valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg" "$@" 2>"$work/$name.vg" & pids+=($!)
        local vpid=$! out n ir
        wait_port "$port" 600
        local w=(wrk -t1 -c8 -H "Host: app.bench.test" -H "Cookie: $COOKIE" "https://127.0.0.1:$port/")
        "${w[@]}" -d3s >/dev/null
        callgrind_control -z "$vpid" >/dev/null 2>&1
        out="$("${w[@]}" -d"${CG_SECONDS:-10}s")"
        callgrind_control -d "$vpid" >/dev/null 2>&1
        kill "$vpid"; wait "$vpid" 2>/dev/null || true
        n="$(awk '$2 == "requests" && $3 == "in" {print $1}' <<<"$out")"
        ir="$(awk '/^(summary|totals):/ {print $2; exit}' "$work/$name".cg.*)"
        # CG_KEEP=DIR keeps the profile (callgrind_annotate DIR/FILE) for a look at where the instructions go.
        [ -z "${CG_KEEP:-}" ] || cp "$work/$name".cg.* "$CG_KEEP/${name// /_}.cg"
        printf '| %-34s | %8s | %12s |\n' "$name" "$n" "$((ir / n))"
    }
    printf '| %-34s | %8s | %12s |\n' "callgrind, one thread" "requests" "instr/request"
    cg "nginx TLS reverse proxy" "$NGX" nginx -c "$work/ngx/nginx.conf" -p "$work/ngx" -g 'daemon off;'
    export YAGURA_LOG="warn,rustls=error" # (not through env(1): valgrind does not follow an exec)
    cg "yagura gate, session + policy" "$GATE" "$YAGURA" gate --config "$work/gate.toml"
    exit 0
fi
nginx -c "$work/ngx/nginx.conf" -p "$work/ngx" -g 'daemon off;' & pids+=($!)
ngx_pid=$!
YAGURA_LOG="warn,rustls=error" "$YAGURA" gate --config "$work/gate.toml" & pids+=($!)
gate_pid=$!
for p in $UP $NGX $GATE; do wait_port "$p" 100; done
COOKIE="$("$MINT" "$work/gate.toml" bench-user)"
code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Host: app.bench.test" -H "Cookie: $COOKIE" "https://127.0.0.1:$GATE/" || true)
[ "$code" = 200 ] || { echo "gate answered $code with the minted cookie" >&2; exit 1; }

# CPU time (user and system, clock ticks) of a process and its children (nginx's workers), from /proc.
cpu_ticks() {
    local u=0 s=0 p a b
    for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        read -r a b < <(awk '{ print $14, $15 }' /proc/"$p"/stat 2>/dev/null || echo 0 0)
        u=$((u + a)); s=$((s + b))
    done
    echo "$u $s"
}
HZ=$(getconf CLK_TCK)
# STRACE=DIR writes `strace -c -f` syscall counts of each proxy's run there, its workers included (strace slows
# the proxy: the figures of such a run mean nothing, the counts per request do); STRACE_OPTS replaces `-c`.
run() { # name pid url host extra-header... → name req/s p99 CPU-µs-per-request (of pid and its children)
    local name="$1" pid="$2" url="$3" host="$4"; shift 4
    local u0 s0 u1 s1 out tracer=""
    if [ -n "${STRACE:-}" ] && [ "$name" != upstream ]; then
        mkdir -p "$STRACE"
        local p targets=()
        for p in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null); do targets+=(-p "$p"); done
        timeout -s INT "${DURATION%s}" strace ${STRACE_OPTS:--c} -f "${targets[@]}" -o "$STRACE/$name.txt" 2>/dev/null & tracer=$!
    fi
    read -r u0 s0 < <(cpu_ticks "$pid")
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Host: $host" "$@" "$url")"
    # WRK_OUT=DIR keeps each run's whole wrk output (the latency distribution).
    [ -z "${WRK_OUT:-}" ] || { mkdir -p "$WRK_OUT"; printf '%s\n' "$out" >"$WRK_OUT/$name.txt"; }
    read -r u1 s1 < <(cpu_ticks "$pid")
    [ -z "$tracer" ] || { wait "$tracer" || true; }
    local rps p99 n
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    n="$(awk '$2 == "requests" && $3 == "in" {print $1}' <<<"$out")"
    [ -z "$tracer" ] || echo "$name: $n requests traced in $STRACE/$name.txt" >&2
    # CPU µs per request, and the kernel's share of it.
    printf '%s %s %s %s\n' "$name" "$rps" "$p99" "$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" -v n="$n" \
        'BEGIN { printf "%.1f(%d%%sys)", (u + s) / hz / n * 1e6, (u + s > 0) ? 100 * s / (u + s) : 0 }')"
}
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v*1000 } }'; }

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, HTTPS keep-alive, one run each, same machine; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
read -r _ up_rps up_p99 _ < <(run upstream "${pids[0]}" "http://127.0.0.1:$UP/" app.bench.test)
read -r _ ngx_rps ngx_p99 ngx_cpu < <(run nginx "$ngx_pid" "https://127.0.0.1:$NGX/" app.bench.test)
read -r _ open_rps open_p99 open_cpu < <(run gate-public "$gate_pid" "https://127.0.0.1:$GATE/" open.bench.test)
# PERF=FILE records a profile of the gate during the session run (perf record -g).
[ -z "${PERF:-}" ] || { perf record -q -F "${PERF_FREQ:-499}" -g -p "$gate_pid" -o "$PERF" -- sleep 5 >/dev/null 2>&1 & }
read -r _ gate_rps gate_p99 gate_cpu < <(run gate "$gate_pid" "https://127.0.0.1:$GATE/" app.bench.test -H "Cookie: $COOKIE")
up_ms=$(to_ms "$up_p99"); ngx_ms=$(to_ms "$ngx_p99"); gate_ms=$(to_ms "$gate_p99"); open_ms=$(to_ms "$open_p99")
printf '| %-34s | %10s | %9s | %14s |\n' "what" "req/s" "p99 ms" "CPU µs/req (sys)"
printf '| %-34s | %10s | %9s | %14s |\n' "upstream direct (plain HTTP)" "$up_rps" "$up_ms" "—"
printf '| %-34s | %10s | %9s | %14s |\n' "nginx TLS reverse proxy" "$ngx_rps" "$ngx_ms" "$ngx_cpu"
printf '| %-34s | %10s | %9s | %14s |\n' "yagura gate, public route" "$open_rps" "$open_ms" "$open_cpu"
printf '| %-34s | %10s | %9s | %14s |\n' "yagura gate, session + policy" "$gate_rps" "$gate_ms" "$gate_cpu"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
awk -v g="$gate_rps" -v n="$ngx_rps" -v gm="$gate_ms" -v nm="$ngx_ms" -v um="$up_ms" 'BEGIN {
    printf "gate/nginx req/s: %.2f (goal >= 0.9)\n", g / n
    printf "p99 added over the upstream: gate %.2f ms, nginx %.2f ms; gate - nginx: %.2f ms (goal < 1 ms)\n", gm - um, nm - um, gm - nm }'
