#!/usr/bin/env bash
# fazt core-runtime benchmark: throughput against nginx and tiny_http, admin latency under load,
# resident memory idle and with 10,000 idle keep-alive connections.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them). It exits non-zero, with the reason, when a step fails.
#
# Run as root on a fresh Debian machine (it apt-get installs wrk and nginx if missing):
#     bench/bench.sh
#
# Environment:
#   BENCH_DURATION=10        seconds of each measured wrk run (a warm-up of BENCH_WARMUP=2 s precedes
#                            the throughput runs of each server)
#   BENCH_ROUNDS=3           measured throughput runs per server; the median round is reported
#   BENCH_ONLY=LIST          comma list of sections, default all: fazt,nginx,tiny_http,admin,memory
#                              fazt      fazt landing-page throughput (wrk -t2 -c64)
#                              nginx     nginx throughput, same bytes     tiny_http  tiny_http baseline
#                              admin     admin API latency, idle and under public saturation (wrk -c256)
#                              memory    fazt RSS idle and with BENCH_IDLE_CONNS idle connections
#   BENCH_BODY_FILE=PATH     body for nginx/tiny_http instead of fetching fazt's landing page (lets
#                            BENCH_ONLY=nginx,tiny_http run without fazt)
#   BENCH_IDLE_CONNS=10000   idle keep-alive connections for the memory section
#   BENCH_LATENCY_REQUESTS=2000  admin requests per latency measurement, paced evenly over
#                            BENCH_DURATION-2 seconds (one every ~4 ms by default);
#                            BENCH_LATENCY_PACED=0 sends them back to back instead
#   BENCH_TINY_THREADS=4     recv() threads of the tiny_http baseline
#   BENCH_PIN=1              servers on CPU 0, wrk on CPU 1 (see bench/lib.sh); meant for
#                            BENCH_ONLY=fazt,nginx,tiny_http: the throughput each server gets from
#                            one core when it does not compete with the load generator for CPU
#   BENCH_NO_BUILD=1         use the existing target/release/fazt and tiny_http bench binary
#   BENCH_KEEP_TMP=1         keep the temp dir (logs, wrk outputs, configs) and print its path
#   BENCH_SUMMARY=PATH       also write the summary table to PATH
#   FAZT_*                   passed through to fazt (FAZT_MAX_CONNECTIONS defaults to 20000 here,
#                            FAZT_CONNS_PER_CLIENT to the same: every client here is 127.0.0.1;
#                            FAZT_AUTO_PAGEVIEWS defaults to 0: this compares HTTP serving, and
#                            nginx and tiny_http record no analytics; set it to 1 to measure fazt
#                            recording a pageview per request, see bench/bench_analytics.sh)
#
# Every load targets 127.0.0.1 and is bounded in time; every process started here is stopped on exit.
# Shell functions shared with bench_vfs.sh (processes, results, tools, starting fazt and nginx) are in
# bench/lib.sh; the Python helpers next to it do the measuring clients and parsing.
set -euo pipefail

SCRIPT_TAG=bench
# ROOT, HELPERS (bench/), DURATION, WARMUP and ROUNDS (from BENCH_*), and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY=${BENCH_ONLY:-fazt,nginx,tiny_http,admin,memory}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
LAT_COUNT=${BENCH_LATENCY_REQUESTS:-2000}
TINY_THREADS=${BENCH_TINY_THREADS:-4}
BODY_OVERRIDE=${BENCH_BODY_FILE:-}
export FAZT_MAX_CONNECTIONS=${FAZT_MAX_CONNECTIONS:-20000}
export FAZT_CONNS_PER_CLIENT=${FAZT_CONNS_PER_CLIENT:-$FAZT_MAX_CONNECTIONS}
export FAZT_AUTO_PAGEVIEWS=${FAZT_AUTO_PAGEVIEWS:-0}

for s in ${ONLY//,/ }; do
    case $s in fazt|nginx|tiny_http|admin|memory) ;; *) die "unknown BENCH_ONLY section '$s' (fazt,nginx,tiny_http,admin,memory)";; esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 ]] || die "BENCH_DURATION must be an integer >= 2 (seconds)"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer (seconds)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be an integer >= 1"
need_fazt() { selected fazt || selected admin || selected memory || [[ -z $BODY_OVERRIDE ]]; }

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench.XXXXXX")
install_traps

# ---------------------------------------------------------------- builds
build() {
    FAZT_BIN=$ROOT/target/release/fazt
    command -v cargo >/dev/null || die "cargo is required (install Rust with rustup)"
    if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
        if need_fazt; then cargo_build_release; fi
        if selected tiny_http; then
            log "cargo bench --bench tiny_http_baseline --no-run"
            (cd "$ROOT" && cargo bench --bench tiny_http_baseline --no-run --message-format=json) \
                >"$TMP/cargo-bench.json" || die "building the tiny_http baseline failed"
        fi
    elif selected tiny_http; then
        (cd "$ROOT" && cargo bench --bench tiny_http_baseline --no-run --message-format=json --offline) \
            >"$TMP/cargo-bench.json" 2>/dev/null || die "tiny_http baseline not built (BENCH_NO_BUILD=1)"
    fi
    if need_fazt; then [[ -x $FAZT_BIN ]] || die "$FAZT_BIN not found"; fi
    if selected tiny_http; then
        TINY_BIN=$(python3 "$HELPERS/util.py" bench-exe tiny_http_baseline <"$TMP/cargo-bench.json") ||
            die "could not find the tiny_http_baseline executable in cargo's JSON output"
    fi
}

# ---------------------------------------------------------------- wrk
WRK_HOST_ARGS=()
# run_wrk NAME URL CONNS DURATION: one measured run into $TMP/wrk-NAME.txt, results in R[NAME.*]
run_wrk() {
    local name=$1 url=$2 conns=$3 dur=$4
    spawn_wait timeout $((dur + 30)) "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" wrk -t2 -c"$conns" -d"${dur}s" --timeout 5s --latency "${WRK_HOST_ARGS[@]+"${WRK_HOST_ARGS[@]}"}" \
        "$url" >"$TMP/wrk-$name.txt" 2>&1 || die "wrk ($name) failed: $(tail -5 "$TMP/wrk-$name.txt")"
    python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-$name.txt" >"$TMP/wrk-$name.kv"
    kv_into "$name" "$TMP/wrk-$name.kv"
    log "$name: $(get "$name.rps") req/s, p99 $(get "$name.p99_ms") ms, non-2xx $(get "$name.non2xx"), socket errors $(get "$name.socket_errors")"
}

# Throughput targets: NAME -> URL and optional Host header, measured by interleaved_throughput.
declare -A TP_URL TP_PID TP_HOST
TP_ORDER=()
add_target() { TP_ORDER+=("$1"); TP_URL[$1]=$2; TP_PID[$1]=$3; TP_HOST[$1]=${4:-}; } # NAME URL PID [HOST]
use_host() { WRK_HOST_ARGS=(); if [[ -n ${TP_HOST[$1]} ]]; then WRK_HOST_ARGS=(-H "Host: ${TP_HOST[$1]}"); fi; }

# interleaved_throughput: a warm-up of each target, then BENCH_ROUNDS rounds in which every target
# gets one measured wrk -t2 -c64 run, the starting target rotating from round to round. The machine
# is shared and its speed drifts over minutes, so the servers take turns inside each round and
# ratios are computed per round (see round_ratio), instead of one server's rounds all running
# before the other's. The round with the median req/s is reported as R[NAME.*]; R[NAME.rps_all]
# lists every round. Each run also records the CPU seconds the server used (all its threads and
# child processes) and so its requests per CPU-second, R[NAME.rK.per_cpu_s]: what a request costs
# the server, which the scheduler's share of a busy machine does not change.
interleaved_throughput() {
    local n=${#TP_ORDER[@]} r i name cpu_before cpu_after
    ((n > 0)) || return 0
    if ((WARMUP > 0)); then
        for name in "${TP_ORDER[@]}"; do
            use_host "$name"
            spawn_wait timeout $((WARMUP + 30)) "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" wrk -t2 -c64 -d"${WARMUP}s" "${WRK_HOST_ARGS[@]+"${WRK_HOST_ARGS[@]}"}" \
                "${TP_URL[$name]}" >/dev/null 2>&1 || true
        done
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            name=${TP_ORDER[$(((r - 1 + i) % n))]}
            use_host "$name"
            cpu_before=$(python3 "$HELPERS/util.py" cpu-tree "${TP_PID[$name]}")
            run_wrk "$name.r$r" "${TP_URL[$name]}" 64 "$DURATION"
            cpu_after=$(python3 "$HELPERS/util.py" cpu-tree "${TP_PID[$name]}")
            R[$name.r$r.cpu_s]=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "%.2f", b - a }')
            R[$name.r$r.per_cpu_s]=$(awk -v n="$(get "$name.r$r.requests")" -v c="${R[$name.r$r.cpu_s]}" \
                'BEGIN { if (c > 0 && n + 0 > 0) printf "%.0f", n / c; else printf "n/a" }')
        done
    done
    for name in "${TP_ORDER[@]}"; do
        median_round "$name" rps requests p50_ms p99_ms non2xx socket_errors cpu_s per_cpu_s
        R[$name.per_cpu_s_all]=$(for ((r = 1; r <= ROUNDS; r++)); do printf '%s ' "$(get "$name.r$r.per_cpu_s")"; done)
    done
    if selected fazt && selected nginx; then round_ratio fazt nginx rps; round_ratio fazt nginx per_cpu_s; fi
    if selected fazt && selected tiny_http; then round_ratio fazt tiny rps; round_ratio fazt tiny per_cpu_s; fi
    WRK_HOST_ARGS=()
}

check_body() { # NAME URL [curl args...]: the server must return exactly the benchmark body
    local name=$1 url=$2 code
    shift 2
    code=$(curl -sS --max-time 10 -D "$TMP/check-$name.headers" -o "$TMP/check-$name.body" -w '%{http_code}' \
        "$@" "$url") || die "$name: request to $url failed"
    [[ $code == 200 ]] || die "$name: $url answered HTTP $code"
    cmp -s "$TMP/check-$name.body" "$BODY" || die "$name: body differs from the benchmark body"
    R[$name.head_bytes]=$(stat -c %s "$TMP/check-$name.headers")
}

# start_tiny: the tiny_http baseline on a free port, registered as throughput target "tiny".
start_tiny() {
    "${SERVER_PIN[@]+"${SERVER_PIN[@]}"}" "$TINY_BIN" 0 "$BODY" "$TINY_THREADS" >"$TMP/tiny.out" 2>"$TMP/tiny.err" &
    TINY_PID=$!
    PIDS+=("$TINY_PID")
    wait_for_line "$TMP/tiny.out" 'listening on http://' "$TINY_PID" tiny_http_baseline "$TMP/tiny.err"
    TINY_ADDR=$(sed -nE 's|.*listening on http://([^ ]+).*|\1|p' "$TMP/tiny.out" | head -1)
    R[tiny.nodelay]=$(sed -nE 's/.*inherited by accepted sockets: (.*)/\1/p' "$TMP/tiny.err" | head -1)
    check_body tiny "http://$TINY_ADDR/"
    add_target tiny "http://$TINY_ADDR/" "$TINY_PID"
}

# start_baselines: nginx and tiny_http (those selected), registered as throughput targets.
start_baselines() {
    if selected nginx; then
        start_nginx "$WWW" / 'default_type text/html;' 'charset utf-8;'
        check_body nginx "http://127.0.0.1:$NGX_PORT/"
        add_target nginx "http://127.0.0.1:$NGX_PORT/" "$NGX_PID"
    fi
    if selected tiny_http; then start_tiny; fi
}

# stop_baselines: nginx and tiny_http, with their RSS after the runs.
stop_baselines() {
    if selected nginx; then
        R[nginx.rss_after_kib]=$(python3 "$HELPERS/util.py" rss-tree "$NGX_PID")
        stop_pid "$NGX_PID"
    fi
    if selected tiny_http; then
        R[tiny.rss_after_kib]=$(rss_kib "$TINY_PID")
        stop_pid "$TINY_PID"
    fi
}

# ---------------------------------------------------------------- start
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
log "temp dir $TMP; sections: $ONLY; wrk duration ${DURATION}s; open files limit $(ulimit -n)"
ensure_tools nginx
build

MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"
WWW=$TMP/www
mkdir -p "$WWW"
chmod 755 "$TMP" "$WWW"
BODY=$WWW/index.html

# ---------------------------------------------------------------- fazt
FAZT_PID=
if need_fazt; then
    FAZT_DATA=$TMP/fazt-data
    mkdir -p "$FAZT_DATA"
    log "starting fazt (data $FAZT_DATA, FAZT_MAX_CONNECTIONS=$FAZT_MAX_CONNECTIONS)"
    launch_fazt "$FAZT_DATA" "$TMP/fazt.out" "$TMP/fazt.err" fazt
    TOKEN=
    for ((i = 0; i < 20; i++)); do
        TOKEN=$(grep -m1 'owner API key' "$TMP/fazt.out" | awk '{ print $NF }' || true)
        [[ -n $TOKEN ]] && break
        sleep 0.1
    done
    if selected admin && [[ -z $TOKEN ]]; then
        die "fazt did not print 'owner API key ...: TOKEN' on a fresh data dir; stdout: $(cat "$TMP/fazt.out")"
    fi
    log "fazt pid $FAZT_PID public $PUBLIC admin $ADMIN"

    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://$PUBLIC/health") || die "fazt /health failed"
    [[ $code == 200 ]] || die "fazt /health answered HTTP $code"
    code=$(curl -sS --max-time 10 -D "$TMP/fazt-landing.headers" -o "$TMP/fazt-landing.body" -w '%{http_code}' \
        -H 'Host: root.localhost' "http://$PUBLIC/") || die "fetching fazt's landing page failed"
    [[ $code == 200 ]] || die "fazt landing page (Host: root.localhost) answered HTTP $code"
    [[ -s $TMP/fazt-landing.body ]] || die "fazt landing page body is empty"
    R[fazt.head_bytes]=$(stat -c %s "$TMP/fazt-landing.headers")
    if selected admin; then
        code=$(curl -sS --max-time 10 -o "$TMP/admin-health.json" -w '%{http_code}' \
            -H "Authorization: Bearer $TOKEN" "http://$ADMIN/api/system/health") || die "fazt admin health request failed"
        [[ $code == 200 ]] || die "fazt GET /api/system/health on the admin listener answered HTTP $code: $(head -c 500 "$TMP/admin-health.json")"
    fi
    R[fazt.limits]=$(grep -m1 -o 'with [0-9]* core thread.*' "$TMP/fazt.err" 2>/dev/null || true)

    # "Idle": after start-up and a few requests of each kind.
    for ((i = 0; i < 5; i++)); do
        curl -s --max-time 5 -o /dev/null -H 'Host: root.localhost' "http://$PUBLIC/" || true
        curl -s --max-time 5 -o /dev/null "http://$PUBLIC/health" || true
        if [[ -n $TOKEN ]]; then
            curl -s --max-time 5 -o /dev/null -H "Authorization: Bearer $TOKEN" "http://$ADMIN/api/system/health" || true
        fi
    done
    sleep 1
    R[fazt.rss_idle_kib]=$(rss_kib "$FAZT_PID")
    log "fazt idle RSS $(mib "${R[fazt.rss_idle_kib]}") MiB"
fi

if [[ -n $BODY_OVERRIDE ]]; then
    cp "$BODY_OVERRIDE" "$BODY"
    R[body.source]="BENCH_BODY_FILE $BODY_OVERRIDE"
else
    cp "$TMP/fazt-landing.body" "$BODY"
    R[body.source]="fazt landing page"
fi
chmod 644 "$BODY"
R[body.bytes]=$(stat -c %s "$BODY")
R[body.sha]=$(sha256sum "$BODY" | cut -c1-12)
log "benchmark body: ${R[body.bytes]} bytes (${R[body.source]}, sha256 ${R[body.sha]}...)"

if [[ -n $FAZT_PID ]]; then
    if selected fazt; then
        [[ -z $BODY_OVERRIDE ]] || log "note: BENCH_BODY_FILE set; fazt serves its own landing page"
        add_target fazt "http://$PUBLIC/" "$FAZT_PID" root.localhost
    fi

    # nginx and tiny_http start now, so that the three servers take turns in each round.
    start_baselines
    interleaved_throughput
    if selected fazt; then R[fazt.rss_after_kib]=$(rss_kib "$FAZT_PID"); fi
    stop_baselines

    if selected admin; then
        AUTH="Authorization: Bearer $TOKEN"
        lat_secs=$((DURATION >= 4 ? DURATION - 2 : 1))
        # LAT_COUNT requests paced evenly over lat_secs (one every lat_interval ms), so the client
        # behaves like an operator polling the API, not like a third load generator on 2 cores.
        # (95% of the window, so all LAT_COUNT fit). BENCH_LATENCY_PACED=0: back to back instead.
        lat_interval=$(awk -v s="$lat_secs" -v n="$LAT_COUNT" 'BEGIN { printf "%.2f", 0.95 * s * 1000 / n }')
        if [[ ${BENCH_LATENCY_PACED:-1} == 0 ]]; then lat_interval=0; fi
        latency() { # NAME PORT HOST: admin health latency into R[NAME.*]
            spawn_wait python3 "$HELPERS/latency.py" --port "${2##*:}" --host-header "$3" --header "$AUTH" \
                --count "$LAT_COUNT" --interval-ms "$lat_interval" --max-seconds "$lat_secs" \
                >"$TMP/lat-$1.kv" 2>"$TMP/lat-$1.err" ||
                die "latency client ($1) failed: $(cat "$TMP/lat-$1.err")"
            kv_into "$1" "$TMP/lat-$1.kv"
            log "$1: n=$(get "$1.n") p50 $(get "$1.p50_ms") ms p99 $(get "$1.p99_ms") ms statuses $(get "$1.statuses") errors $(get "$1.errors")"
        }
        # saturated NAME PORT HOST: latency while wrk -t2 -c256 saturates the public landing page; the
        # client starts 1 s into the load and its paced requests span the rest of the load window
        # (but the last second), so the p99 covers the whole saturated period.
        saturated() {
            local wrk_pid
            timeout $((DURATION + 30)) wrk -t2 -c256 -d"${DURATION}s" --timeout 5s --latency \
                -H 'Host: root.localhost' "http://$PUBLIC/" >"$TMP/wrk-$1-load.txt" 2>&1 &
            wrk_pid=$!
            PIDS+=("$wrk_pid")
            sleep 1
            latency "$1" "$2" "$3"
            wait "$wrk_pid" || die "wrk (load for $1) failed: $(tail -5 "$TMP/wrk-$1-load.txt")"
            forget_pid "$wrk_pid"
            python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-$1-load.txt" >"$TMP/wrk-$1-load.kv"
            kv_into "$1.load" "$TMP/wrk-$1-load.kv"
            log "$1: public load $(get "$1.load.rps") req/s, non-2xx $(get "$1.load.non2xx"), socket errors $(get "$1.load.socket_errors")"
        }
        latency admin_idle "$ADMIN" "localhost:${ADMIN##*:}"
        saturated admin_sat "$ADMIN" "localhost:${ADMIN##*:}"
        saturated admin_pub_sat "$PUBLIC" admin.localhost
    fi

    if selected memory; then
        log "opening $IDLE_CONNS idle keep-alive connections to the public port"
        spawn_wait python3 "$HELPERS/idle_conns.py" --port "${PUBLIC##*:}" --host-header root.localhost --path / \
            --pid "$FAZT_PID" --count "$IDLE_CONNS" >"$TMP/idle.kv" 2>"$TMP/idle.err" ||
            die "idle_conns.py failed: $(cat "$TMP/idle.err")"
        kv_into idle "$TMP/idle.kv"
        alive "$FAZT_PID" || die "fazt died during the idle-connections test; stderr: $(tail -n 40 "$TMP/fazt.err")"
        log "idle conns: ok $(get idle.idle_ok)/$IDLE_CONNS in $(get idle.open_seconds) s, still open $(get idle.still_open), RSS $(mib "$(get idle.rss_open_kib)") MiB, curl $(get idle.probe_ms_median) ms, failures $(get idle.failures)"
    fi

    alive "$FAZT_PID" || die "fazt exited during the benchmark; stderr: $(tail -n 40 "$TMP/fazt.err")"
    log "stopping fazt (SIGTERM)"
    stop_pid "$FAZT_PID"
    R[fazt.exit]="status $STOP_RC after ${STOP_SECS}s"
fi

# ---------------------------------------------------------------- without fazt (BENCH_BODY_FILE)
if [[ -z $FAZT_PID ]]; then
    start_baselines
    interleaved_throughput
    stop_baselines
fi

# ---------------------------------------------------------------- summary
row() { printf '  %-50s %-24s %-14s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
summary() {
    local fr nr tr r1 r2
    echo
    echo "================ fazt core-runtime benchmark ================"
    echo "machine: $MACHINE"
    echo "fazt: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "body: $(get body.bytes) bytes, sha256 $(get body.sha)..., from $(get body.source)"
    if [[ -n $FAZT_PID ]]; then echo "fazt config: ${R[fazt.limits]:-see its log}; FAZT_MAX_CONNECTIONS=$FAZT_MAX_CONNECTIONS FAZT_AUTO_PAGEVIEWS=$FAZT_AUTO_PAGEVIEWS"; fi
    echo "wrk: -t2 keep-alive, ${WARMUP}s warm-up each, then $ROUNDS rounds of ${DURATION}s per server, servers taking turns in each round (median round shown); client and server share the same $(nproc) cores"
    echo "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [[ ${BENCH_PIN:-0} == 1 ]]; then echo "BENCH_PIN=1: servers pinned to CPU 0, wrk to CPU 1"; fi
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    if selected fazt || selected nginx || selected tiny_http; then
        echo "throughput, wrk -t2 -c64, same body            req/s (p99 latency)"
        fr=$(get fazt.rps); nr=$(get nginx.rps); tr=$(get tiny.rps)
        if selected fazt; then row "fazt landing page (Host: root.localhost)" "$fr ($(get fazt.p99_ms) ms)" "" "non-2xx $(get fazt.non2xx), sock err $(get fazt.socket_errors), head $(get fazt.head_bytes) B"; fi
        if selected nginx; then row "nginx $(get nginx.version), 2 workers, access_log off" "$nr ($(get nginx.p99_ms) ms)" "" "non-2xx $(get nginx.non2xx), sock err $(get nginx.socket_errors), head $(get nginx.head_bytes) B"; fi
        if selected tiny_http; then row "tiny_http 0.12, $TINY_THREADS recv threads, TCP_NODELAY" "$tr ($(get tiny.p99_ms) ms)" "" "non-2xx $(get tiny.non2xx), sock err $(get tiny.socket_errors), head $(get tiny.head_bytes) B"; fi
        if selected fazt && selected nginx; then
            r1=$(get fazt/nginx.rps)
            row "fazt / nginx req/s (median of per-round ratios)" "${r1}x" ">= 0.8x" "$(verdict "$r1" '>=' 0.8); rounds: $(get fazt/nginx.rps.all)"
        fi
        if selected fazt && selected tiny_http; then
            r2=$(get fazt/tiny.rps)
            row "fazt / tiny_http req/s (median of per-round ratios)" "${r2}x" ">= 2x" "$(verdict "$r2" '>=' 2); rounds: $(get fazt/tiny.rps.all)"
        fi
        echo "server CPU cost: requests per CPU-second of the server process (all threads; nginx: master + workers)"
        if selected fazt; then row "fazt" "$(get fazt.per_cpu_s)" "" "rounds: $(get fazt.per_cpu_s_all)"; fi
        if selected nginx; then row "nginx" "$(get nginx.per_cpu_s)" "" "rounds: $(get nginx.per_cpu_s_all)"; fi
        if selected tiny_http; then row "tiny_http" "$(get tiny.per_cpu_s)" "" "rounds: $(get tiny.per_cpu_s_all)"; fi
        if selected fazt && selected nginx; then row "fazt / nginx req per CPU-s (median of rounds)" "$(get fazt/nginx.per_cpu_s)x" "" "rounds: $(get fazt/nginx.per_cpu_s.all)"; fi
        if selected fazt && selected tiny_http; then row "fazt / tiny_http req per CPU-s (median of rounds)" "$(get fazt/tiny.per_cpu_s)x" "" "rounds: $(get fazt/tiny.per_cpu_s.all)"; fi
        if selected fazt; then row "  fazt rounds" "$(get fazt.rps_all)"; fi
        if selected nginx; then row "  nginx rounds" "$(get nginx.rps_all)"; fi
        if selected tiny_http; then row "  tiny_http rounds" "$(get tiny.rps_all)"; fi
        if selected nginx; then row "nginx RSS after run (master + workers)" "$(mib "$(get nginx.rss_after_kib)") MiB"; fi
        if selected tiny_http; then row "tiny_http RSS after run" "$(mib "$(get tiny.rss_after_kib)") MiB"; fi
    fi
    if selected admin; then
        echo "admin latency, GET /api/system/health, 1 keep-alive conn, $LAT_COUNT sequential requests every ${lat_interval} ms   p50 / p99"
        row "admin listener, idle" "$(get admin_idle.p50_ms) / $(get admin_idle.p99_ms) ms" "" "n=$(get admin_idle.n), max $(get admin_idle.max_ms) ms, statuses $(get admin_idle.statuses)"
        row "admin listener, public port saturated" "$(get admin_sat.p50_ms) / $(get admin_sat.p99_ms) ms" "p99 <= 10 ms" "$(verdict "$(get admin_sat.p99_ms)" '<=' 10); n=$(get admin_sat.n), max $(get admin_sat.max_ms) ms, statuses $(get admin_sat.statuses)"
        row "  public load meanwhile (wrk -t2 -c256)" "$(get admin_sat.load.rps) req/s" "" "non-2xx $(get admin_sat.load.non2xx), sock err $(get admin_sat.load.socket_errors)"
        row "public port, Host admin.localhost, saturated" "$(get admin_pub_sat.p50_ms) / $(get admin_pub_sat.p99_ms) ms" "" "n=$(get admin_pub_sat.n), max $(get admin_pub_sat.max_ms) ms, statuses $(get admin_pub_sat.statuses)"
        row "  public load meanwhile (wrk -t2 -c256)" "$(get admin_pub_sat.load.rps) req/s" "" "non-2xx $(get admin_pub_sat.load.non2xx), sock err $(get admin_pub_sat.load.socket_errors)"
    fi
    if [[ -n $FAZT_PID ]]; then
        echo "fazt resident memory (VmRSS)"
        row "idle (after start and a few requests)" "$(mib "$(get fazt.rss_idle_kib)") MiB" "<= 10 MiB" "$(verdict "$(mib "$(get fazt.rss_idle_kib)")" '<=' 10)"
        if selected fazt; then row "after the throughput run" "$(mib "$(get fazt.rss_after_kib)") MiB"; fi
        if selected memory; then
            row "$IDLE_CONNS idle keep-alive connections open" "$(mib "$(get idle.rss_open_kib)") MiB" "<= 64 MiB" "$(verdict "$(mib "$(get idle.rss_open_kib)")" '<=' 64)"
            row "  connections: answered+kept / still open" "$(get idle.idle_ok) / $(get idle.still_open)" "$IDLE_CONNS" "opened in $(get idle.open_seconds) s; statuses $(get idle.statuses); failures $(get idle.failures)"
            row "  server fds with them open" "$(get idle.fds_open)"
            row "  curl landing page meanwhile (median / max)" "$(get idle.probe_ms_median) / $(get idle.probe_ms_max) ms" "" "statuses $(get idle.probe_statuses)"
            row "  after closing them" "$(mib "$(get idle.rss_after_close_kib)") MiB" "" "fds $(get idle.fds_after_close)"
        fi
        row "fazt exit on SIGTERM" "$(get fazt.exit)"
    fi
    echo "============================================================="
}
summary | tee "${BENCH_SUMMARY:-/dev/null}"
