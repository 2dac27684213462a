#!/usr/bin/env bash
# fazt hot-path benchmark: what one static request costs in userland instructions, and what 10,000
# idle keep-alive connections cost in CPU. Both are steady on a shared, noisy machine, unlike
# requests per second.
#
#   instructions: fazt under `valgrind --tool=callgrind --separate-threads=yes` with one core thread
#     (FAZT_THREADS=1, automatic pageviews off), serving GET / on root.localhost over one keep-alive
#     connection. Two runs of BENCH_REQUESTS_LOW and BENCH_REQUESTS_HIGH requests; Ir per request
#     is the growth of the thread that grew most (the core thread) divided by the difference in
#     requests, so start-up and connection set-up cancel out.
#   idle CPU: BENCH_IDLE_CONNS connections each make one request and stay open; the server's CPU
#     time (utime + stime from /proc/PID/stat) over BENCH_IDLE_SECONDS while they idle, and each
#     thread's share.
#
# With BASELINE_BIN=path/to/another/fazt, the same numbers for that binary too (e.g. a build of an
# older commit), side by side. Numbers are printed, never asserted.
#
#     bench/hotpath.sh
#
# Environment:
#   BENCH_ONLY=instructions,idle   sections to run
#   BENCH_REQUESTS_LOW=2000 BENCH_REQUESTS_HIGH=12000
#   BENCH_IDLE_CONNS=10000 BENCH_IDLE_SECONDS=60
#   BASELINE_BIN=PATH              a second fazt binary to measure the same way
#   BENCH_NO_BUILD=1               use the existing target/release/fazt
#   BENCH_KEEP_TMP=1               keep the temp dir and print its path
set -euo pipefail
SCRIPT_TAG=hotpath
source "$(dirname "$0")/lib.sh"

ONLY=${BENCH_ONLY:-instructions,idle}
LOW=${BENCH_REQUESTS_LOW:-2000}
HIGH=${BENCH_REQUESTS_HIGH:-12000}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-60}
TMP=$(mktemp -d /tmp/fazt-hotpath.XXXXXX)
install_traps

if selected instructions && ! command -v valgrind >/dev/null; then
    [[ $EUID -eq 0 ]] || die "valgrind is required; run as root (it installs it) or install it"
    log "installing valgrind with apt-get"
    apt-get update -qq >"$TMP/apt.log" 2>&1 || die "apt-get update failed: $(tail -5 "$TMP/apt.log")"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >>"$TMP/apt.log" 2>&1 ||
        die "apt-get install valgrind failed: $(tail -5 "$TMP/apt.log")"
fi
build_fazt

# start_server BIN DIR [WRAPPER...]: fazt on a free port in DIR; sets SRV_PID and SRV_PORT.
start_server() {
    local bin=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    "$@" "$bin" server start --listen 127.0.0.1:0 --domain localhost --data "$dir/data" \
        >"$dir/out" 2>"$dir/err" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    local i
    # Under valgrind start-up takes seconds.
    for ((i = 0; i < 600; i++)); do
        grep -qE 'listening on http://[^ ]+ \(public\)' "$dir/out" 2>/dev/null && break
        alive "$SRV_PID" || die "fazt exited before listening: $(tail -20 "$dir/err")"
        sleep 0.1
    done
    SRV_PORT=$(sed -nE 's|.*listening on http://[^:]+:([0-9]+) \(public\).*|\1|p' "$dir/out" | head -1)
    [[ -n $SRV_PORT ]] || die "fazt did not print its port: $(tail -20 "$dir/err")"
}

# thread_irs BIN N: each thread's instructions after N keep-alive requests, one "THREAD IR" line
# per thread. Threads are numbered in creation order, which is the same in every run.
thread_irs() {
    local bin=$1 n=$2 dir
    dir=$(mktemp -d "$TMP/cg.XXXXXX")
    FAZT_THREADS=1 FAZT_AUTO_PAGEVIEWS=0 start_server "$bin" "$dir" \
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$dir/cg.out"
    python3 "$HELPERS/keepalive_gets.py" "$SRV_PORT" 200 >/dev/null # fills the file cache
    python3 "$HELPERS/keepalive_gets.py" "$SRV_PORT" "$n" >/dev/null
    stop_pid "$SRV_PID" 60
    local f
    for f in "$dir"/cg.out-*; do
        echo "${f##*-} $(awk '/^totals:/ { print $2; exit }' "$f")"
    done
}

# ir_per_request BIN: Ir per request from two runs: the thread whose count grew the most
# between them is the core thread (the busiest thread of one run may be another: the main
# thread compresses the dashboard's assets at start).
ir_per_request() {
    local bin=$1
    thread_irs "$bin" "$LOW" >"$TMP/low.txt"
    thread_irs "$bin" "$HIGH" >"$TMP/high.txt"
    join "$TMP/low.txt" "$TMP/high.txt" |
        awk -v n=$((HIGH - LOW)) '{ d = $3 - $2; if (d > best) best = d } END { printf "%.0f", best / n }'
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# idle_cpu BIN: CPU seconds over IDLE_SECONDS with IDLE_CONNS idle keep-alive connections, and
# each thread's share ("name=seconds" pairs).
idle_cpu() {
    local bin=$1 dir hz before after t
    dir=$(mktemp -d "$TMP/idle.XXXXXX")
    ulimit -n $((IDLE_CONNS * 2 + 1024)) 2>/dev/null || true
    # Every idle connection comes from 127.0.0.1: one client's share must hold them all.
    FAZT_IDLE_TIMEOUT=$((IDLE_SECONDS * 3))s FAZT_MAX_CONNECTIONS=$((IDLE_CONNS + 2000)) \
        FAZT_CONNS_PER_CLIENT=$((IDLE_CONNS + 2000)) FAZT_AUTO_PAGEVIEWS=0 \
        start_server "$bin" "$dir"
    python3 "$HELPERS/idle_conns.py" --port "$SRV_PORT" --pid "$SRV_PID" --count "$IDLE_CONNS" \
        --probes 1 --hold "$((IDLE_SECONDS + 10))" >"$dir/idle.txt" &
    local holder=$!
    PIDS+=("$holder")
    # Wait until every connection is open (the server's fd count passes IDLE_CONNS), then settle.
    local i
    for ((i = 0; i < 600; i++)); do
        (($(ls "/proc/$SRV_PID/fd" | wc -l) >= IDLE_CONNS)) && break
        sleep 0.1
    done
    sleep 3
    hz=$(getconf CLK_TCK)
    declare -A tb
    for t in /proc/"$SRV_PID"/task/*; do tb[$(cat "$t/comm")-${t##*/}]=$(ticks "${t#/proc/}"); done
    before=$(ticks "$SRV_PID")
    sleep "$IDLE_SECONDS"
    after=$(ticks "$SRV_PID")
    local shares=""
    for t in /proc/"$SRV_PID"/task/*; do
        local key=$(cat "$t/comm")-${t##*/}
        shares+=" $(cat "$t/comm")=$(awk -v a="${tb[$key]:-0}" -v b="$(ticks "${t#/proc/}")" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    done
    local open
    open=$(($(ls "/proc/$SRV_PID/fd" | wc -l)))
    stop_pid "$holder" 5 || true
    stop_pid "$SRV_PID" 30
    awk -v a="$before" -v b="$after" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }'
    printf ' (fds open %s;%s)' "$open" "$shares"
}

bins=("$FAZT_BIN")
names=(fazt)
if [[ -n ${BASELINE_BIN:-} ]]; then
    [[ -x $BASELINE_BIN ]] || die "BASELINE_BIN $BASELINE_BIN is not an executable"
    bins+=("$BASELINE_BIN")
    names+=(baseline)
fi

echo
echo "fazt hot path ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
for i in "${!bins[@]}"; do
    echo "  ${names[$i]}: ${bins[$i]}"
    if selected instructions; then
        log "${names[$i]}: callgrind, $LOW and $HIGH requests"
        echo "    instructions per static request (core thread): $(ir_per_request "${bins[$i]}")"
    fi
    if selected idle; then
        log "${names[$i]}: $IDLE_CONNS idle connections for $IDLE_SECONDS s"
        echo "    CPU seconds over ${IDLE_SECONDS} s with $IDLE_CONNS idle keep-alive connections: $(idle_cpu "${bins[$i]}")"
    fi
done
