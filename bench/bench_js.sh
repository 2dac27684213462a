#!/usr/bin/env bash
# fazt serverless benchmark (issue #14): a small JSON API in JavaScript against Node.js and against
# fazt's own static serving, an API on fazt.app.kv, memory per cached runtime, and 1,000 infinite
# loops at once while static requests are measured.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them). It exits non-zero, with the reason, when a step fails.
#
# Run as root on a Debian machine (it apt-get installs wrk, curl and nodejs if missing):
#     bench/bench_js.sh
#
# Sections (BENCH_ONLY=LIST, comma list, default all: hello,kv,memory,loops); each starts a fresh
# fazt (--domain localhost) and deploys its sites with `fazt deploy`:
#   hello   site `hello`: api/main.js `respond({hello: "world"})`, and hello.json with the same 17
#           bytes. wrk -t2 -c64 on GET /api/hello (fazt serverless), on the same handler in Node.js
#           (node:http, one process: bench/js_hello_node.js) and on /hello.json (fazt static), taking
#           turns in each of BENCH_ROUNDS rounds; the median round, and the median of the per-round
#           ratios. Targets: serverless >= 1.0x Node, >= 0.25x static.
#   kv      site `kv`: each request reads one of 1,000 keys of fazt.app.kv and writes it back
#           (the writer commits each set, and the script waits for its commit). wrk -t2 -c64,
#           BENCH_ROUNDS rounds, median: requests/s, and commits/s from fazt's metrics (writer jobs
#           completed, and kv_set operations, over the run).
#   memory  BENCH_JS_SITES (100) sites, each with its own small handler. The pool is warmed on one
#           site, then every site is requested BENCH_JS_SPREAD_ROUNDS (8) times over 8 connections,
#           so each worker keeps a runtime of most sites (FAZT_JS_RUNTIMES is BENCH_JS_SITES here
#           unless set): the RSS growth divided by the growth of fazt_js_runtimes (sandboxes alive)
#           is the memory per cached runtime (target <= 2 MiB).
#   loops   site `loop`: api/main.js is `for (;;) {}`. BENCH_JS_LOOPS (1,000) connections each send
#           one GET /api/loop at once and wait for the answer: each must end with 504 at its
#           deadline (FAZT_JS_TIMEOUT, 1s here) or be shed with 503 at once (the queue is full);
#           both are counted, with their times. Meanwhile wrk -t1 -c8 requests a static file of the
#           same site from 0.2 s before the burst until 0.2 s after its last answer: p99 (target
#           <= 10 ms: JavaScript runs on its own threads, never on the core threads).
#
# Environment:
#   BENCH_DURATION=10 BENCH_WARMUP=2 BENCH_ROUNDS=3   as in bench.sh (seconds; rounds, median shown)
#   BENCH_JS_SITES=100  BENCH_JS_SPREAD_ROUNDS=8  BENCH_JS_LOOPS=1000
#   BENCH_NO_BUILD=1         use the existing target/release/fazt (BENCH_FAZT_BIN: another binary)
#   BENCH_KEEP_TMP=1         keep the temp dir (logs, wrk outputs, sites) and print its path
#   BENCH_SUMMARY=PATH       also write the summary table to PATH
#   FAZT_*                   passed through to fazt: FAZT_JS_WORKERS, FAZT_JS_QUEUE,
#                            FAZT_JS_TIMEOUT (1s here unless set), ...; FAZT_MAX_CONNECTIONS and
#                            FAZT_CONNS_PER_CLIENT default to 20000 here (every client is
#                            127.0.0.1), FAZT_AUTO_PAGEVIEWS to 0 (no analytics writes),
#                            FAZT_DEPLOY_RATE to 100000 (the memory section deploys 100 sites)
#
# Every load targets 127.0.0.1 and is bounded in time; every process started here is stopped on exit.
# Helpers: bench/lib.sh (processes, results, tools, starting fazt), util.py (wrk parsing, CPU and
# RSS of a process), js_util.py (metrics, the spread and loop clients), js_hello_node.js (Node).
set -euo pipefail

SCRIPT_TAG=bench_js
# ROOT, HELPERS (bench/), DURATION, WARMUP and ROUNDS (from BENCH_*), and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY=${BENCH_ONLY:-hello,kv,memory,loops}
SITES=${BENCH_JS_SITES:-100}
SPREAD_ROUNDS=${BENCH_JS_SPREAD_ROUNDS:-8}
LOOPS=${BENCH_JS_LOOPS:-1000}
export FAZT_MAX_CONNECTIONS=${FAZT_MAX_CONNECTIONS:-20000}
export FAZT_CONNS_PER_CLIENT=${FAZT_CONNS_PER_CLIENT:-$FAZT_MAX_CONNECTIONS}
export FAZT_AUTO_PAGEVIEWS=${FAZT_AUTO_PAGEVIEWS:-0}
export FAZT_JS_TIMEOUT=${FAZT_JS_TIMEOUT:-1s}
export FAZT_DEPLOY_RATE=${FAZT_DEPLOY_RATE:-100000}

for s in ${ONLY//,/ }; do
    case $s in hello|kv|memory|loops) ;; *) die "unknown BENCH_ONLY section '$s' (hello,kv,memory,loops)";; esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 ]] || die "BENCH_DURATION must be an integer >= 2 (seconds)"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer (seconds)"
for v in ROUNDS SITES SPREAD_ROUNDS LOOPS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be an integer >= 1"
done

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-js.XXXXXX")
install_traps
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
log "temp dir $TMP; sections: $ONLY; wrk duration ${DURATION}s; open files limit $(ulimit -n)"

ensure_tools none
if selected hello && ! command -v node >/dev/null; then
    [[ $EUID -eq 0 ]] || die "node is missing; run as root (it installs nodejs) or install it"
    log "installing nodejs with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >>"$TMP/apt.log" 2>&1 ||
        die "apt-get install nodejs failed: $(tail -5 "$TMP/apt.log")"
fi
build_fazt
MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- fazt, sites, metrics

# site_dir NAME MAIN_JS [FILE CONTENT]...: $TMP/sites/NAME with api/main.js and the other files.
site_dir() {
    local dir=$TMP/sites/$1
    mkdir -p "$dir/api"
    printf '%s\n' "$2" >"$dir/api/main.js"
    shift 2
    while (($#)); do printf '%s' "$2" >"$dir/$1"; shift 2; done
}

# deploy NAME: `fazt deploy` of $TMP/sites/NAME as site NAME.
deploy() {
    "$FAZT_BIN" deploy --site "$1" --server "http://$ADMIN" --token "$TOKEN" "$TMP/sites/$1" \
        >"$TMP/deploy-$1.log" 2>&1 || die "fazt deploy $1 failed: $(tail -5 "$TMP/deploy-$1.log")"
}

# expect SITE PATH STATUS [BODY]: one GET answers STATUS (and exactly BODY).
expect() {
    local code
    code=$(curl -sS --max-time 30 -o "$TMP/expect.body" -w '%{http_code}' -H "Host: $1.localhost" "http://$PUBLIC$2") ||
        die "GET $2 (Host $1.localhost) failed"
    [[ $code == "$3" ]] || die "GET $2 (Host $1.localhost) answered $code, not $3: $(head -c 300 "$TMP/expect.body")
(does this fazt serve api/main.js? the serverless server side must be in the build)"
    if (($# > 3)); then
        [[ $(cat "$TMP/expect.body") == "$4" ]] || die "GET $2 (Host $1.localhost) answered $(head -c 300 "$TMP/expect.body"), not $4"
    fi
}

# Invocations by outcome: the metric names, and "ok 1, timeout 2" from R[PREFIX.*] (non-zero ones).
OUTCOMES=(ok error timeout memory shed)
OUTCOME_NAMES=()
for o in "${OUTCOMES[@]}"; do OUTCOME_NAMES+=("fazt_js_invocations_total{outcome=\"$o\"}"); done
outcomes() {
    local o v out=()
    for o in "${OUTCOMES[@]}"; do
        v=$(get "$1.fazt_js_invocations_total:$o")
        [[ $v == 0 || $v == n/a ]] || out+=("$o $v")
    done
    local IFS=,
    printf '%s' "${out[*]:-none}"
}

# ---------------------------------------------------------------- wrk
# wrk_run NAME URL HOST THREADS CONNS SECONDS: one run into R[NAME.*] (rps, p50_ms, p99_ms, ...).
wrk_run() {
    local name=$1 url=$2 host=$3 threads=$4 conns=$5 dur=$6
    spawn_wait timeout $((dur + 30)) wrk -t"$threads" -c"$conns" -d"${dur}s" --timeout 5s --latency -H "Host: $host" \
        "$url" >"$TMP/wrk-$name.txt" 2>&1 || die "wrk ($name) failed: $(tail -5 "$TMP/wrk-$name.txt")"
    python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-$name.txt" >"$TMP/wrk-$name.kv"
    kv_into "$name" "$TMP/wrk-$name.kv"
    log "$name: $(get "$name.rps") req/s, p99 $(get "$name.p99_ms") ms, non-2xx $(get "$name.non2xx"), socket errors $(get "$name.socket_errors")"
}

# Throughput targets taking turns: NAME -> URL, Host header and the server's pid.
declare -A TP_URL TP_HOST TP_PID
TP_ORDER=()
add_target() { TP_ORDER+=("$1"); TP_URL[$1]=$2; TP_HOST[$1]=$3; TP_PID[$1]=$4; }

# take_turns: a warm-up of each target, then ROUNDS rounds in which each gets one wrk -t2 -c64
# run, the first target rotating (the machine is shared and drifts: ratios are taken per round).
# Each run also records the server's CPU seconds and so its requests per CPU-second.
take_turns() {
    local n=${#TP_ORDER[@]} r i name before after
    if ((WARMUP > 0)); then
        for name in "${TP_ORDER[@]}"; do
            spawn_wait timeout $((WARMUP + 30)) wrk -t2 -c64 -d"${WARMUP}s" -H "Host: ${TP_HOST[$name]}" "${TP_URL[$name]}" \
                >/dev/null 2>&1 || true
        done
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((i = 0; i < n; i++)); do
            name=${TP_ORDER[$(((r - 1 + i) % n))]}
            before=$(python3 "$HELPERS/util.py" cpu-tree "${TP_PID[$name]}")
            wrk_run "$name.r$r" "${TP_URL[$name]}" "${TP_HOST[$name]}" 2 64 "$DURATION"
            after=$(python3 "$HELPERS/util.py" cpu-tree "${TP_PID[$name]}")
            R[$name.r$r.per_cpu_s]=$(awk -v n="$(get "$name.r$r.requests")" -v a="$before" -v b="$after" \
                'BEGIN { c = b - a; if (c > 0 && n + 0 > 0) printf "%.0f", n / c; else printf "n/a" }')
        done
    done
    for name in "${TP_ORDER[@]}"; do
        median_round "$name" rps requests p50_ms p99_ms non2xx socket_errors per_cpu_s
    done
}

# ---------------------------------------------------------------- hello
HELLO_BODY='{"hello":"world"}'
section_hello() {
    start_fazt hello
    site_dir hello 'respond({hello: "world"});' hello.json "$HELLO_BODY"
    deploy hello
    expect hello /api/hello 200 "$HELLO_BODY"
    expect hello /hello.json 200 "$HELLO_BODY"
    local fazt_pid=$FAZT_PID node_pid node_addr
    node "$HELPERS/js_hello_node.js" 0 >"$TMP/node.out" 2>"$TMP/node.err" &
    node_pid=$!
    PIDS+=("$node_pid")
    wait_for_line "$TMP/node.out" 'listening on http://' "$node_pid" node "$TMP/node.err"
    node_addr=$(sed -nE 's|.*listening on http://([^ ]+).*|\1|p' "$TMP/node.out" | head -1)
    [[ $(curl -sS --max-time 10 "http://$node_addr/api/hello") == "$HELLO_BODY" ]] || die "node answered another body"
    R[node.version]=$(node --version)

    add_target js "http://$PUBLIC/api/hello" hello.localhost "$fazt_pid"
    add_target node "http://$node_addr/api/hello" "$node_addr" "$node_pid"
    add_target static "http://$PUBLIC/hello.json" hello.localhost "$fazt_pid"
    take_turns
    round_ratio js node rps
    round_ratio js static rps
    round_ratio js node per_cpu_s
    metrics hello "${OUTCOME_NAMES[@]}"
    R[hello.rss_kib]=$(rss_kib "$fazt_pid")
    R[node.rss_kib]=$(rss_kib "$node_pid")
    stop_pid "$node_pid"
    stop_fazt hello
}

# ---------------------------------------------------------------- kv
KV_JS='const key = "k" + Math.floor(Math.random() * 1000);
const seen = fazt.app.kv.get(key);
const n = (seen && seen.n ? seen.n : 0) + 1;
fazt.app.kv.set(key, { n, at: Date.now() });
respond({ key, n });'
section_kv() {
    local r names=(fazt_writer_jobs_completed_total 'fazt_js_storage_ops_total{op="kv_set"}')
    local keys=(fazt_writer_jobs_completed_total fazt_js_storage_ops_total:kv_set)
    start_fazt kv
    site_dir kv "$KV_JS"
    deploy kv
    expect kv /api/kv 200
    grep -q '"n":' "$TMP/expect.body" || die "the kv handler answered $(head -c 300 "$TMP/expect.body")"
    if ((WARMUP > 0)); then
        spawn_wait timeout $((WARMUP + 30)) wrk -t2 -c64 -d"${WARMUP}s" -H "Host: kv.localhost" "http://$PUBLIC/api/kv" >/dev/null 2>&1 || true
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        metrics "kv.r$r.before" "${names[@]}"
        wrk_run "kv.r$r" "http://$PUBLIC/api/kv" kv.localhost 2 64 "$DURATION"
        metrics "kv.r$r.after" "${names[@]}"
        R[kv.r$r.commits_s]=$(awk -v a="$(get "kv.r$r.before.${keys[0]}")" -v b="$(get "kv.r$r.after.${keys[0]}")" -v d="$DURATION" \
            'BEGIN { if (b ~ /^[0-9]+$/ && a ~ /^[0-9]+$/) printf "%.0f", (b - a) / d; else printf "n/a" }')
        R[kv.r$r.sets_s]=$(awk -v a="$(get "kv.r$r.before.${keys[1]}")" -v b="$(get "kv.r$r.after.${keys[1]}")" -v d="$DURATION" \
            'BEGIN { if (b ~ /^[0-9]+$/ && a ~ /^[0-9]+$/) printf "%.0f", (b - a) / d; else printf "n/a" }')
        log "kv.r$r: writer jobs $(get "kv.r$r.commits_s")/s, kv_set $(get "kv.r$r.sets_s")/s"
    done
    median_round kv rps p50_ms p99_ms non2xx socket_errors commits_s sets_s
    metrics kv "${OUTCOME_NAMES[@]}"
    stop_fazt kv
}

# ---------------------------------------------------------------- memory
section_memory() {
    local i name hosts=$TMP/memory-hosts.txt
    # Each worker may keep a runtime of every site (fazt's default keeps fewer).
    FAZT_JS_RUNTIMES=${FAZT_JS_RUNTIMES:-$SITES} start_fazt memory
    : >"$hosts"
    for ((i = 1; i <= SITES; i++)); do
        name=$(printf 'js-%03d' "$i")
        site_dir "$name" "const items = [];
for (let i = 0; i < 100; i++) items.push({ id: i, name: \"item \" + i });
respond({ site: \"$name\", path: request.path, count: items.length });"
        deploy "$name"
        echo "$name.localhost" >>"$hosts"
    done
    expect js-001 /api/x 200
    log "deployed $SITES sites"
    sleep 1
    R[memory.rss_deployed_kib]=$(rss_kib "$FAZT_PID")
    # The pool warm: every worker has run one site.
    head -1 "$hosts" >"$TMP/memory-one.txt"
    spawn_wait python3 "$HELPERS/js_util.py" spread --port "${PUBLIC##*:}" --hosts "$TMP/memory-one.txt" --path /api/x \
        --rounds 50 --conns 1 >"$TMP/memory-warm.kv" || die "warming the pool failed"
    spawn_wait python3 "$HELPERS/js_util.py" spread --port "${PUBLIC##*:}" --hosts "$TMP/memory-one.txt" --path /api/x \
        --rounds 1 --conns 1 >/dev/null || true
    sleep 1
    metrics memory.warm fazt_js_runtimes
    R[memory.rss_warm_kib]=$(rss_kib "$FAZT_PID")
    spawn_wait python3 "$HELPERS/js_util.py" spread --port "${PUBLIC##*:}" --hosts "$hosts" --path /api/x \
        --rounds "$SPREAD_ROUNDS" --conns 8 >"$TMP/memory-spread.kv" || die "the spread client failed"
    kv_into memory.spread "$TMP/memory-spread.kv"
    log "spread: $(get memory.spread.requests) requests, statuses $(get memory.spread.statuses), errors $(get memory.spread.errors)"
    sleep 1
    metrics memory.all fazt_js_runtimes
    R[memory.rss_all_kib]=$(rss_kib "$FAZT_PID")
    R[memory.runtimes_added]=$(awk -v a="$(get memory.warm.fazt_js_runtimes)" -v b="$(get memory.all.fazt_js_runtimes)" \
        'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) print b - a; else print "n/a" }')
    R[memory.per_runtime_kib]=$(awk -v a="$(get memory.rss_warm_kib)" -v b="$(get memory.rss_all_kib)" -v n="$(get memory.runtimes_added)" \
        'BEGIN { if (n + 0 > 0) printf "%.0f", (b - a) / n; else printf "n/a" }')
    stop_fazt memory
}

# ---------------------------------------------------------------- loops
section_loops() {
    local wrk_pid wrk_start loop_start
    start_fazt loops
    site_dir loop 'for (;;) {}' hello.json "$HELLO_BODY"
    deploy loop
    expect loop /hello.json 200 "$HELLO_BODY"
    loop_start=$(date +%s.%N)
    expect loop /api/loop 504
    R[loops.single_s]=$(awk -v a="$loop_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    metrics loops.before "${OUTCOME_NAMES[@]}"
    # The static load runs until it is interrupted (wrk prints its numbers on SIGINT).
    timeout 600 wrk -t1 -c8 -d600s --timeout 5s --latency -H 'Host: loop.localhost' "http://$PUBLIC/hello.json" \
        >"$TMP/wrk-loops-static.txt" 2>&1 &
    wrk_pid=$!
    PIDS+=("$wrk_pid")
    wrk_start=$(date +%s.%N)
    sleep 0.2
    log "$LOOPS concurrent GET /api/loop"
    spawn_wait python3 "$HELPERS/js_util.py" loops --port "${PUBLIC##*:}" --host-header loop.localhost --path /api/loop \
        --count "$LOOPS" --max-seconds 300 >"$TMP/loops.kv" 2>"$TMP/loops.err" || die "the loop client failed: $(cat "$TMP/loops.err")"
    kv_into loops "$TMP/loops.kv"
    sleep 0.2
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" || true
    R[loops.static_window_s]=$(awk -v a="$wrk_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    forget_pid "$wrk_pid"
    python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-loops-static.txt" >"$TMP/wrk-loops-static.kv"
    kv_into loops.static "$TMP/wrk-loops-static.kv"
    log "loops: statuses $(get loops.statuses), errors $(get loops.errors); static p99 $(get loops.static.p99_ms) ms"
    metrics loops.after "${OUTCOME_NAMES[@]}"
    R[loops.rss_kib]=$(rss_kib "$FAZT_PID")
    stop_fazt loops
}

for s in hello kv memory loops; do
    if selected "$s"; then "section_$s"; fi
done

# ---------------------------------------------------------------- summary
row() { printf '  %-52s %-26s %-14s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
kib_bytes() { num "${1:-}" && awk -v k="$1" 'BEGIN { printf "%.0f KiB", k }' || printf 'n/a'; }
delta() { awk -v a="$(get "$1")" -v b="$(get "$2")" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) print b - a; else print "n/a" }'; }
summary() {
    local r
    echo
    echo "================ fazt serverless benchmark ================"
    echo "machine: $MACHINE"
    echo "fazt: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "fazt config: FAZT_JS_WORKERS=${FAZT_JS_WORKERS:-default} FAZT_JS_QUEUE=${FAZT_JS_QUEUE:-default} FAZT_JS_TIMEOUT=$FAZT_JS_TIMEOUT; $(get "$(first_section).limits")"
    echo "wrk: keep-alive, ${WARMUP}s warm-up each, $ROUNDS rounds of ${DURATION}s, servers taking turns in each round (median shown); client and servers share the same $(nproc) cores"
    echo "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    if selected hello; then
        echo "GET /api/hello, {\"hello\":\"world\"}, wrk -t2 -c64             req/s (p99 latency)"
        row "fazt serverless (api/main.js)" "$(get js.rps) ($(get js.p99_ms) ms)" "" "non-2xx $(get js.non2xx), sock err $(get js.socket_errors); rounds $(get js.rps_all)"
        row "Node.js $(get node.version) node:http, 1 process" "$(get node.rps) ($(get node.p99_ms) ms)" "" "non-2xx $(get node.non2xx); rounds $(get node.rps_all)"
        row "fazt static (hello.json)" "$(get static.rps) ($(get static.p99_ms) ms)" "" "non-2xx $(get static.non2xx); rounds $(get static.rps_all)"
        row "serverless / Node.js (median of per-round ratios)" "$(get js/node.rps)x" ">= 1.0x" "$(verdict "$(get js/node.rps)" '>=' 1.0); rounds: $(get js/node.rps.all)"
        row "serverless / static (median of per-round ratios)" "$(get js/static.rps)x" ">= 0.25x" "$(verdict "$(get js/static.rps)" '>=' 0.25); rounds: $(get js/static.rps.all)"
        row "requests per CPU-second: serverless / Node.js" "$(get js.per_cpu_s) / $(get node.per_cpu_s)" "" "ratio $(get js/node.per_cpu_s)x (rounds $(get js/node.per_cpu_s.all))"
        row "invocations (fazt_js_invocations_total)" "$(outcomes hello)"
        row "RSS after: fazt / Node.js" "$(mib "$(get hello.rss_kib)") / $(mib "$(get node.rss_kib)") MiB"
    fi
    if selected kv; then
        echo "GET /api/kv: fazt.app.kv get + set of one of 1,000 keys, wrk -t2 -c64"
        row "requests/s (p99 latency)" "$(get kv.rps) ($(get kv.p99_ms) ms)" "" "non-2xx $(get kv.non2xx), sock err $(get kv.socket_errors); rounds $(get kv.rps_all)"
        row "commits/s (writer jobs completed)" "$(get kv.commits_s)" "" "kv_set ops/s $(get kv.sets_s)"
        row "invocations (fazt_js_invocations_total)" "$(outcomes kv)"
    fi
    if selected memory; then
        echo "memory, $SITES sites each with its own handler"
        row "RSS: deployed / pool warm (1 site) / all sites run" "$(mib "$(get memory.rss_deployed_kib)") / $(mib "$(get memory.rss_warm_kib)") / $(mib "$(get memory.rss_all_kib)") MiB"
        row "runtimes alive (fazt_js_runtimes): warm / all" "$(get memory.warm.fazt_js_runtimes) / $(get memory.all.fazt_js_runtimes)" "" "spread: $(get memory.spread.requests) requests, statuses $(get memory.spread.statuses)"
        row "RSS per cached runtime (growth / runtimes added)" "$(kib_bytes "$(get memory.per_runtime_kib)")" "<= 2048 KiB" "$(verdict "$(get memory.per_runtime_kib)" '<=' 2048)"
    fi
    if selected loops; then
        echo "$LOOPS concurrent GET /api/loop (for (;;) {}), FAZT_JS_TIMEOUT=$FAZT_JS_TIMEOUT"
        row "one loop alone: 504 after" "$(get loops.single_s) s"
        row "answered / errors (no answer)" "$(get loops.answered) / $(get loops.errors)" "$LOOPS / 0" "statuses $(get loops.statuses); $(get loops.first_error)"
        row "504 at the deadline: n, p50 / p99 / max" "$(get loops.s504): $(get loops.s504_p50_ms) / $(get loops.s504_p99_ms) / $(get loops.s504_max_ms) ms"
        row "503 shed: n, p50 / p99 / max" "$(get loops.s503): $(get loops.s503_p50_ms) / $(get loops.s503_p99_ms) / $(get loops.s503_max_ms) ms"
        row "other statuses: n, max" "$(get loops.other), $(get loops.other_max_ms) ms"
        row "static meanwhile, wrk -t1 -c8: p50 / p99" "$(get loops.static.p50_ms) / $(get loops.static.p99_ms) ms" "p99 <= 10 ms" "$(verdict "$(get loops.static.p99_ms)" '<=' 10); $(get loops.static.rps) req/s over $(get loops.static_window_s) s, non-2xx $(get loops.static.non2xx)"
        row "timeouts counted / shed counted (metrics)" "$(delta loops.before.fazt_js_invocations_total:timeout loops.after.fazt_js_invocations_total:timeout) / $(delta loops.before.fazt_js_invocations_total:shed loops.after.fazt_js_invocations_total:shed)"
    fi
    echo "fazt exits (SIGTERM):$(for s in hello kv memory loops; do if selected "$s"; then printf ' %s %s;' "$s" "$(get "$s.exit")"; fi; done)"
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then echo "temp dir: $TMP"; fi
}
first_section() { local s; for s in hello kv memory loops; do if selected "$s"; then echo "$s"; return; fi; done; }
summary | tee "${BENCH_SUMMARY:-/dev/null}"
