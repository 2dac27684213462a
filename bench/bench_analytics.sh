#!/usr/bin/env bash
# fazt analytics benchmark: POST /track ingestion batched vs one transaction per event and against
# static serving, with a check that every acknowledged event reaches the database; the writer path
# alone against a raw SQLite insert, bytes per stored event; GET /api/stats over a year of events.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them). It exits non-zero, with the reason, when a step fails, and it
# lists what fazt did wrong (lost or unacknowledged events, non-2xx answers, a non-zero exit, ...)
# under PROBLEMS without stopping.
#
# Run as root on a Debian machine (it apt-get installs wrk if missing):
#     bench/bench_analytics.sh
#
# Sections (BENCH_ONLY=LIST, comma list, default all: ingest,writer,stats):
#   ingest  Two fazt processes on fresh data dirs, one with the default batching (FAZT_EVENT_BATCH as
#           in the environment, default 10000) and one with FAZT_EVENT_BATCH=1 (one transaction per
#           event, the baseline). wrk -t2 -c64 keep-alive posts realistic /track bodies
#           (bench/analytics_track.lua) until a deadline, then stops sending events, so every
#           /track it sent is answered and counted (its Lua counts 204s exactly). The writer's
#           counters (admin health) are polled until every accepted event is committed:
#             events/s      = 204s / (time from wrk's start until the last of them is committed)
#             HTTP 204/s    = 204s / (time from wrk's start until the deadline)
#           Rounds of batched, baseline and the landing page (GET / with Host: root.localhost, same
#           wrk and Lua cost per request, on a third fazt: fazt records a pageview event for every
#           HTML page it serves) take turns; the median round of each is reported. At the end the
#           processes get SIGTERM, must exit 0, and the rows of `events` in their databases must equal
#           the 204s (200s for the landing page) wrk received over all their runs, warm-up included.
#   writer  benches/analytics_writer.rs `compare`: EventStore::write_batch in batches of 10000 against
#           a raw prepared INSERT of the same rows into the same table, bytes per stored event. The
#           events span 60 s (a live-load density; the bench header says why), or
#           ANALYTICS_BENCH_SPAN_SECS from the environment (2592000: 30 days of slow traffic).
#   stats   benches/analytics_writer.rs `generate`: BENCH_STATS_EVENTS events over the 365 days up to
#           now through EventStore::write_batch (fewer if they would not fit BENCH_STATS_BUDGET
#           seconds, said so in the summary), then fazt on that data dir answers GET /api/stats for
#           the whole year (bucket=day, bucket=hour, one site, and by=site) BENCH_STATS_REQUESTS times each on
#           one keep-alive connection (bench/latency.py): p50/p99. When fewer events were
#           generated (or BENCH_STATS_FILL=1), the same on roll-up tables filled directly with SQL at
#           10-million-event scale (`fill-rollups`, the shape of tests/integration/analytics_store.rs's ignored
#           year benchmark).
#
# Environment:
#   BENCH_DURATION=10        seconds of /track (or static) load per measured round
#   BENCH_WARMUP=2           seconds of the unmeasured first run of each workload (0: none)
#   BENCH_ROUNDS=3           measured rounds per workload; the median round is reported
#   BENCH_DRAIN_TIMEOUT=180  seconds to wait, after a /track run, for the writer to commit everything
#   BENCH_STOP_GRACE=60      seconds fazt gets to exit after SIGTERM before SIGKILL
#   BENCH_STATS_EVENTS=10000000  BENCH_STATS_BUDGET=240 (seconds)  BENCH_STATS_REQUESTS=50
#   BENCH_STATS_FILL=auto    auto: fill roll-ups directly only when fewer events were generated;
#                            1: always; 0: never
#   BENCH_SEED=1             seed of the /track bodies (analytics_track.lua)
#   BENCH_WRITER_EXE=PATH    use this analytics_writer bench executable instead of building it
#   BENCH_NO_BUILD=1         use the existing target/release/fazt (the bench executable is still
#                            looked up through cargo, offline)
#   BENCH_KEEP_TMP=1         keep the temp dir (logs, wrk outputs, databases) and print its path
#   BENCH_SUMMARY=PATH       also write the summary table to PATH
#   FAZT_*                   passed through to fazt (FAZT_EVENT_BATCH=1 is set for the baseline)
#
# benches/analytics_writer.rs needs `harness = false`: Cargo.toml must have
#     [[bench]]
#     name = "analytics_writer"
#     harness = false
#
# Every load targets 127.0.0.1 and is bounded in time; every process started here is stopped on exit.
# Helpers: bench/lib.sh (processes, results, tools, starting fazt), util.py (wrk parsing, the
# bench executable), latency.py (sequential request latency), analytics_track.lua (wrk /track and
# static requests with exact status counts), analytics_util.py (writer counters, drain wait, row count).
set -euo pipefail

SCRIPT_TAG=bench_analytics
# ROOT, HELPERS (bench/), DURATION, WARMUP and ROUNDS (from BENCH_*), and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY=${BENCH_ONLY:-ingest,writer,stats}
SEED=${BENCH_SEED:-1}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-180}
STOP_GRACE=${BENCH_STOP_GRACE:-60}
STATS_EVENTS=${BENCH_STATS_EVENTS:-10000000}
STATS_BUDGET=${BENCH_STATS_BUDGET:-240}
STATS_REQUESTS=${BENCH_STATS_REQUESTS:-50}
STATS_FILL=${BENCH_STATS_FILL:-auto}
WRITER_EXE=${BENCH_WRITER_EXE:-}

for s in ${ONLY//,/ }; do
    case $s in ingest|writer|stats) ;; *) die "unknown BENCH_ONLY section '$s' (ingest,writer,stats)";; esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 ]] || die "BENCH_DURATION must be an integer >= 2 (seconds)"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer (seconds)"
for v in ROUNDS DRAIN_TIMEOUT STOP_GRACE STATS_EVENTS STATS_REQUESTS SEED; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be an integer >= 1"
done
[[ $STATS_BUDGET =~ ^[0-9]+$ ]] || die "BENCH_STATS_BUDGET must be an integer (seconds; 0: no limit)"
[[ $STATS_FILL =~ ^(auto|0|1)$ ]] || die "BENCH_STATS_FILL must be auto, 0 or 1"

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-analytics.XXXXXX")
install_traps
T_START=$(date +%s)

PROBLEMS=()
problem() { PROBLEMS+=("$*"); log "PROBLEM: $*"; }
# calc EXPR: awk arithmetic on numbers, "n/a" if any operand is not a number
calc() { awk "BEGIN { $1 }" 2>/dev/null || printf 'n/a'; }
isnum() { [[ ${1:-} =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; }

# ---------------------------------------------------------------- tools and builds
build() {
    FAZT_BIN=$ROOT/target/release/fazt
    command -v cargo >/dev/null || die "cargo is required (install Rust with rustup)"
    if selected ingest || selected stats; then
        if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then cargo_build_release; fi
        [[ -x $FAZT_BIN ]] || die "$FAZT_BIN not found (build it, or unset BENCH_NO_BUILD)"
    fi
    if selected writer || selected stats; then
        if [[ -n $WRITER_EXE ]]; then
            WRITER=$WRITER_EXE
            log "analytics_writer: $WRITER (BENCH_WRITER_EXE)"
        else
            local offline=()
            if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then offline=(--offline); fi
            log "cargo bench --bench analytics_writer --no-run"
            (cd "$ROOT" && cargo bench --bench analytics_writer --no-run --message-format=json "${offline[@]+"${offline[@]}"}") \
                >"$TMP/cargo-bench.json" 2>"$TMP/cargo-bench.err" ||
                die "building benches/analytics_writer.rs failed: $(tail -20 "$TMP/cargo-bench.err")"
            WRITER=$(python3 "$HELPERS/util.py" bench-exe analytics_writer <"$TMP/cargo-bench.json") ||
                die "could not find the analytics_writer executable in cargo's JSON output"
        fi
        [[ -x $WRITER ]] || die "$WRITER is not an executable"
        # Without `harness = false` cargo builds it as a libtest binary that runs no benchmark.
        local out
        out=$(env -u ANALYTICS_BENCH "$WRITER" 2>&1 || true)
        [[ $out == *"usage: ANALYTICS_BENCH=1"* ]] ||
            die "$WRITER is not the analytics_writer benchmark's own main (it printed: $(head -c 200 <<<"$out")).
Add to Cargo.toml:
[[bench]]
name = \"analytics_writer\"
harness = false"
    fi
}

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temp dir $TMP; sections: $ONLY; load avg $LOAD_START"
ensure_tools none
build

MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
FAZT_VERSION=$("$FAZT_BIN" --version 2>&1 | head -1 || echo '?')
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null | wc -l)
LUA=$HELPERS/analytics_track.lua
AU=$HELPERS/analytics_util.py
[[ -r $LUA && -r $AU ]] || die "$LUA or $AU missing"

# ---------------------------------------------------------------- fazt instances
declare -A PID_OF=() PUB_OF=() ADM_OF=() TOK_OF=() ACKS=() SENT=() UNANSWERED=() OTHER_TOTAL=()
STATIC_RUNS=0

# start_instance LABEL DATA [EVENT_BATCH]: fazt on DATA (FAZT_EVENT_BATCH=EVENT_BATCH when given);
# TOKEN from its first-start output, or TOKEN_OVERRIDE when set.
start_instance() {
    local label=$1 data=$2 batch=${3:-} i token=${TOKEN_OVERRIDE:-}
    mkdir -p "$data"
    # The sites analytics_track.lua sends events for are hosted elsewhere: allow them.
    export FAZT_TRACK_DOMAINS=${FAZT_TRACK_DOMAINS:-blog.example.com,shop.example.net,docs.example.org}
    # The load generator is one client on loopback: the per-client limit would answer 429.
    export FAZT_INGEST_RATE=${FAZT_INGEST_RATE:-0}
    log "starting fazt '$label' (data $data$([[ -n $batch ]] && printf ', FAZT_EVENT_BATCH=%s' "$batch"))"
    if [[ -n $batch ]]; then
        FAZT_EVENT_BATCH=$batch launch_fazt "$data" "$TMP/fazt-$label.out" "$TMP/fazt-$label.err" "fazt ($label)"
    else
        launch_fazt "$data" "$TMP/fazt-$label.out" "$TMP/fazt-$label.err" "fazt ($label)"
    fi
    for ((i = 0; i < 20 && ${#token} == 0; i++)); do
        token=$(grep -m1 'owner API key' "$TMP/fazt-$label.out" | awk '{ print $NF }' || true)
        [[ -n $token ]] || sleep 0.1
    done
    [[ -n $token ]] || die "fazt ($label) printed no 'owner API key ...: TOKEN' line: $(cat "$TMP/fazt-$label.out")"
    PID_OF[$label]=$FAZT_PID
    PUB_OF[$label]=$PUBLIC
    ADM_OF[$label]=$ADMIN
    TOK_OF[$label]=$token
    ACKS[$label]=0
    SENT[$label]=0
    UNANSWERED[$label]=0
    OTHER_TOTAL[$label]=0
    local code
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://$PUBLIC/health") || die "fazt ($label): GET /health failed"
    [[ $code == 200 ]] || die "fazt ($label): /health answered HTTP $code"
    R[$label.rss_start_kib]=$(rss_kib "$FAZT_PID")
    log "fazt '$label' pid $FAZT_PID public $PUBLIC admin $ADMIN"
}

instance_alive() { # LABEL WHEN
    local pid=${PID_OF[$1]} rc=0
    alive "$pid" && return 0
    wait "$pid" 2>/dev/null || rc=$?
    forget_pid "$pid"
    die "fazt ($1) exited (status $rc) $2. stderr:
$(tail -n 40 "$TMP/fazt-$1.err")"
}

events_kv() { # LABEL PREFIX: the writer's counters into R[PREFIX.*]
    python3 "$AU" events --admin "${ADM_OF[$1]}" --token "${TOK_OF[$1]}" >"$TMP/$2.kv" 2>"$TMP/$2.err" ||
        die "reading the health counters of fazt ($1) failed: $(cat "$TMP/$2.err")"
    kv_into "$2" "$TMP/$2.kv"
}

# A signal fazt got from outside this script shows as its shutdown log line before we sent SIGTERM.
check_not_shutting_down() { # LABEL
    if grep -q 'shutting down' "$TMP/fazt-$1.err" 2>/dev/null; then
        problem "fazt ($1) logged a shutdown before this script sent SIGTERM (a signal from another process?): $(grep -m1 'shutting down' "$TMP/fazt-$1.err")"
    fi
}

# stop_instance LABEL: SIGTERM, wait for exit (BENCH_STOP_GRACE), R[LABEL.exit*]
stop_instance() {
    local label=$1
    instance_alive "$label" "before it was stopped"
    check_not_shutting_down "$label"
    R[$label.rss_end_kib]=$(rss_kib "${PID_OF[$label]}")
    stop_pid "${PID_OF[$label]}" "$STOP_GRACE"
    R[$label.exit_rc]=$STOP_RC
    R[$label.exit]="status $STOP_RC after ${STOP_SECS}s"
    if ((STOP_KILLED)); then R[$label.exit]+=" (SIGKILLed after $STOP_GRACE s)"; fi
    if [[ $STOP_RC != 0 ]]; then
        problem "fazt ($label) exited with status $STOP_RC on SIGTERM$( ((STOP_KILLED)) && printf ' (it had to be SIGKILLed after %s s)' "$STOP_GRACE"); last log lines: $(tail -n 3 "$TMP/fazt-$label.err" | tr '\n' '|')"
    fi
    local errs
    errs=$(grep -cE ' (ERROR|WARN) ' "$TMP/fazt-$label.err" 2>/dev/null || true)
    R[$label.log_errors]=${errs:-0}
    if ((${errs:-0} > 0)); then
        problem "fazt ($label) logged $errs ERROR/WARN lines, first: $(grep -m1 -E ' (ERROR|WARN) ' "$TMP/fazt-$label.err")"
    fi
}

# ---------------------------------------------------------------- one /track run
# track_round NAME LABEL DURATION: POST /track until a deadline DURATION (+ <1) s away, then wait
# until the writer committed everything. Results in R[NAME.*]; adds the 204s to ACKS[LABEL].
track_round() {
    local name=$1 label=$2 dur=$3 now deadline t0 drain_pid rc
    instance_alive "$label" "before run $name"
    events_kv "$label" "$name.h0"
    now=$(date +%s)
    deadline=$((now + 1 + dur))
    python3 "$AU" drain --admin "${ADM_OF[$label]}" --token "${TOK_OF[$label]}" --after "$deadline" \
        --timeout "$DRAIN_TIMEOUT" >"$TMP/$name.drain.kv" 2>"$TMP/$name.drain.err" &
    drain_pid=$!
    PIDS+=("$drain_pid")
    t0=$(date +%s.%N)
    spawn_wait timeout $((dur + 40)) wrk -t2 -c64 -d"$((dur + 3))s" --timeout 5s --latency -s "$LUA" \
        "http://${PUB_OF[$label]}/" -- track "$deadline" "$SEED" >"$TMP/wrk-$name.txt" 2>&1 ||
        die "wrk ($name) failed: $(tail -5 "$TMP/wrk-$name.txt")"
    rc=0
    wait "$drain_pid" || rc=$?
    forget_pid "$drain_pid"
    ((rc == 0)) || die "waiting for fazt ($label) to commit run $name failed: $(cat "$TMP/$name.drain.err")"
    python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-$name.txt" >"$TMP/wrk-$name.kv"
    kv_into "$name" "$TMP/wrk-$name.kv"
    sed -n 's/^lua\.//p' "$TMP/wrk-$name.txt" >"$TMP/wrk-$name.lua.kv"
    kv_into "$name" "$TMP/wrk-$name.lua.kv"
    kv_into "$name.d" "$TMP/$name.drain.kv"
    instance_alive "$label" "during run $name"

    local n204 window
    n204=$(get "$name.n204")
    num "$n204" || die "wrk ($name) printed no lua.n204 count (is $LUA in use?): $(tail -5 "$TMP/wrk-$name.txt")"
    window=$(calc "printf \"%.3f\", $deadline - $t0")
    R[$name.window_s]=$window
    R[$name.http_eps]=$(calc "printf \"%.0f\", $n204 / $window")
    if [[ $(get "$name.d.timed_out") == 0 ]]; then
        R[$name.eps]=$(calc "printf \"%.0f\", $n204 / ($(get "$name.d.t_drained") - $t0)")
        R[$name.drain_s]=$(get "$name.d.waited_s")
    else
        R[$name.eps]=n/a
        R[$name.drain_s]=">$DRAIN_TIMEOUT"
        problem "$name: fazt ($label) had not committed every accepted event $DRAIN_TIMEOUT s after the load stopped (committed $(get "$name.d.committed") of $(get "$name.d.accepted"), queue depth $(get "$name.d.queue_depth"))"
    fi
    R[$name.rps]=$(get "$name.eps") # median_round sorts on rps
    # What the writer committed while the load ran (the baseline's writer falls behind).
    R[$name.commit_eps_window]=$(calc "printf \"%.0f\", ($(get "$name.d.at_deadline.committed") - $(get "$name.h0.committed")) / $window")
    local accepted dropped unanswered other_n
    accepted=$(($(get "$name.d.accepted") - $(get "$name.h0.accepted")))
    dropped=$(($(get "$name.d.dropped_full") + $(get "$name.d.dropped_stopped") - $(get "$name.h0.dropped_full") - $(get "$name.h0.dropped_stopped")))
    other_n=$(awk -F'[:,]' '{ s = 0; for (i = 2; i <= NF; i += 2) s += $i; print s }' <<<"$(get "$name.other")")
    unanswered=$(($(get "$name.track_sent") - n204 - other_n))
    R[$name.accepted]=$accepted
    R[$name.dropped]=$dropped
    R[$name.unanswered]=$unanswered
    ACKS[$label]=$((ACKS[$label] + n204))
    SENT[$label]=$((SENT[$label] + $(get "$name.track_sent")))
    UNANSWERED[$label]=$((UNANSWERED[$label] + unanswered))
    OTHER_TOTAL[$label]=$((OTHER_TOTAL[$label] + other_n))
    # fazt counts each event it answered 204 as accepted or dropped; a /track still unanswered when
    # wrk stopped may be counted too.
    if ((accepted + dropped < n204 || accepted + dropped > n204 + unanswered)); then
        problem "$name: wrk got $n204 answers 204 (and $unanswered /track requests were unanswered at its stop) but fazt ($label) counted $accepted events accepted + $dropped dropped in that run"
    fi
    ((dropped == 0)) || problem "$name: fazt ($label) dropped $dropped events (answered 204 but not queued: queue full or stopping) — health dropped.queue_full $(get "$name.d.dropped_full"), stopped $(get "$name.d.dropped_stopped") in total"
    [[ $(get "$name.other") == none ]] || problem "$name: /track answered statuses other than 204: $(get "$name.other")"
    [[ $(get "$name.socket_errors") == 0 ]] || problem "$name: wrk socket errors ($(get "$name.socket_errors_detail"))"
    log "$name: $n204 events acknowledged (204) in ${window}s: HTTP $(get "$name.http_eps")/s; all committed $(get "$name.drain_s") s after the load -> $(get "$name.eps") events/s; writer committed $(get "$name.commit_eps_window")/s during the load; accepted $accepted, dropped $dropped, /track unanswered at wrk stop <= $unanswered"
}

# static_round NAME DURATION: GET / (Host: root.localhost) on the static instance, same Lua cost.
# fazt records a pageview event for each HTML page it answers 2xx, so each 200 adds an event too.
static_round() {
    local name=$1 dur=$2 label=static
    instance_alive "$label" "before run $name"
    spawn_wait timeout $((dur + 40)) wrk -t2 -c64 -d"${dur}s" --timeout 5s --latency -s "$LUA" \
        "http://${PUB_OF[$label]}/" -- static 0 "$SEED" root.localhost >"$TMP/wrk-$name.txt" 2>&1 ||
        die "wrk ($name) failed: $(tail -5 "$TMP/wrk-$name.txt")"
    python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-$name.txt" >"$TMP/wrk-$name.kv"
    kv_into "$name" "$TMP/wrk-$name.kv"
    sed -n 's/^lua\.//p' "$TMP/wrk-$name.txt" >"$TMP/wrk-$name.lua.kv"
    kv_into "$name" "$TMP/wrk-$name.lua.kv"
    instance_alive "$label" "during run $name"
    [[ $(get "$name.other") == none && $(get "$name.non2xx") == 0 ]] || problem "$name: landing page answered non-200 statuses: $(get "$name.other")"
    [[ $(get "$name.socket_errors") == 0 ]] || problem "$name: wrk socket errors ($(get "$name.socket_errors_detail"))"
    ACKS[$label]=$((ACKS[$label] + $(get "$name.n200")))
    STATIC_RUNS=$((STATIC_RUNS + 1))
    log "$name: $(get "$name.rps") req/s, p99 $(get "$name.p99_ms") ms, 200s $(get "$name.n200")"
}

# ---------------------------------------------------------------- 1-3. ingestion
if selected ingest; then
    start_instance batched "$TMP/data-batched"
    start_instance baseline "$TMP/data-baseline" 1
    # Static serving on a third process: its landing-page views record pageview events of their own.
    start_instance static "$TMP/data-static"
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H 'Host: root.localhost' "http://${PUB_OF[static]}/") ||
        die "fetching fazt's landing page failed"
    [[ $code == 200 ]] || die "fazt landing page (Host: root.localhost) answered HTTP $code"
    ACKS[static]=1
    for label in batched baseline; do
        code=$(curl -sS --max-time 10 -o "$TMP/track-check-$label.body" -w '%{http_code}' -H 'Content-Type: application/json' \
            --data '{"h":"blog.example.com","p":"/posts/hello-world","e":"pageview","t":["launch"],"ref":"https://news.example.org/item?id=1","q":{"utm_source":"newsletter","n":3}}' \
            "http://${PUB_OF[$label]}/track") || die "POST /track to fazt ($label) failed"
        [[ $code == 204 ]] || die "POST /track to fazt ($label) answered HTTP $code: $(head -c 300 "$TMP/track-check-$label.body")"
        ACKS[$label]=1
        SENT[$label]=1
    done
    if ((WARMUP > 0)); then
        log "warm-up: ${WARMUP}s of each workload (their events count in the final check)"
        track_round warm_batched batched "$WARMUP"
        track_round warm_baseline baseline "$WARMUP"
        static_round warm_static "$WARMUP"
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        order=(batched baseline static)
        for ((k = 0; k < 3; k++)); do
            w=${order[$(((k + r - 1) % 3))]}
            case $w in
                batched) track_round "ing_batched.r$r" batched "$DURATION" ;;
                baseline) track_round "ing_baseline.r$r" baseline "$DURATION" ;;
                static) static_round "static.r$r" "$DURATION" ;;
            esac
        done
    done
    for w in ing_batched ing_baseline; do
        median_round "$w" eps http_eps commit_eps_window drain_s n204 p50_ms p99_ms window_s
        R[$w.eps_all]=${R[$w.rps_all]}
    done
    median_round static rps p50_ms p99_ms requests
    R[ratio.batch]=$(ratio "$(get ing_batched.eps)" "$(get ing_baseline.eps)")
    R[ratio.batch_http]=$(ratio "$(get ing_batched.http_eps)" "$(get ing_baseline.http_eps)")
    R[ratio.static]=$(ratio "$(get ing_batched.eps)" "$(get static.rps)")
    R[ratio.static_http]=$(ratio "$(get ing_batched.http_eps)" "$(get static.rps)")

    for label in batched baseline static; do
        events_kv "$label" "$label.final"
        R[$label.dropped]=$(($(get "$label.final.dropped_full") + $(get "$label.final.dropped_stopped")))
        log "stopping fazt '$label' (SIGTERM; accepted $(get "$label.final.accepted"), committed $(get "$label.final.committed"), dropped $(get "$label.dropped"))"
        stop_instance "$label"
        python3 "$AU" count "$TMP/data-$label/fazt.db" >"$TMP/$label.count.kv" 2>"$TMP/$label.count.err" ||
            die "counting the events of fazt ($label) failed: $(cat "$TMP/$label.count.err")"
        kv_into "$label" "$TMP/$label.count.kv"
        rows=$(get "$label.rows")
        acks=${ACKS[$label]}
        R[$label.acks]=$acks
        R[$label.unanswered]=${UNANSWERED[$label]}
        if [[ $rows == "$acks" ]]; then
            R[$label.check]="equal"
        elif [[ $label == static ]] && ((rows > acks && rows - acks <= 64 * STATIC_RUNS)); then
            # A plain wrk -d run stops with up to one request per connection unanswered; fazt may
            # have served it and recorded its pageview.
            R[$label.check]="ok: +$((rows - acks)) pageviews of GETs in flight when wrk stopped (<= 64 a run)"
        else
            R[$label.check]="DIFFER by $((rows - acks))"
            if [[ $label == static ]]; then
                problem "fazt (static): $rows rows in events (pageviews) but it answered GET / with 200 $acks times (dropped in total $(get "$label.dropped"), accepted $(get "$label.final.accepted"))"
            else
                problem "fazt ($label): $rows rows in events but wrk got $acks answers 204 (rows - 204s = $((rows - acks)); dropped in total $(get "$label.dropped"), accepted $(get "$label.final.accepted"), /track requests unanswered when wrk stopped ${UNANSWERED[$label]})"
            fi
        fi
        if [[ $rows != "$(get "$label.final.accepted")" ]]; then
            problem "fazt ($label): $rows rows in events but it had accepted $(get "$label.final.accepted") events (committed $(get "$label.final.committed"), unwritten $(get "$label.final.unwritten")) before SIGTERM"
        fi
        log "fazt '$label': $(get "$label.exit"); $rows rows in events, $acks acknowledged (204 or, for static, 200) -> $(get "$label.check")"
    done
fi

# ---------------------------------------------------------------- 4. writer path alone
if selected writer; then
    log "analytics_writer compare (EventStore::write_batch vs raw INSERT)"
    ANALYTICS_BENCH=1 ANALYTICS_BENCH_DIR=$TMP/writer-scratch spawn_wait "$WRITER" compare \
        >"$TMP/writer.kv" 2>"$TMP/writer.err" || die "analytics_writer compare failed: $(tail -20 "$TMP/writer.err")"
    kv_into writer "$TMP/writer.kv"
    log "writer ($(get writer.events) events over $(get writer.span_secs) s): $(get writer.writer_eps) events/s vs raw $(get writer.raw_eps) events/s (ratio $(get writer.ratio)); $(get writer.bytes_per_event) B/event"
fi

# ---------------------------------------------------------------- 5. stats over a year
# stats_queries LABEL DATA SITE FROM EXPECT_EVENTS: fazt on DATA, GET /api/stats for the year
stats_queries() {
    local label=$1 data=$2 site=$3 from=$4 expect=$5 token to q name path
    "$FAZT_BIN" key create bench-analytics --data "$data" >"$TMP/key-$label.out" 2>&1 ||
        die "fazt key create ($label) failed: $(cat "$TMP/key-$label.out")"
    token=$(grep -oE 'fzt_[A-Za-z0-9_]+' "$TMP/key-$label.out" | tail -1)
    [[ -n $token ]] || die "no token in the output of 'fazt key create': $(cat "$TMP/key-$label.out")"
    TOKEN_OVERRIDE=$token start_instance "$label" "$data"
    to=$(date +%s)
    R[$label.from]=$from
    R[$label.to]=$to
    python3 "$AU" stats-check --admin "${ADM_OF[$label]}" --token "$token" \
        --path "/api/stats?from=$from&to=$to&bucket=day" >"$TMP/$label.check.kv" 2>"$TMP/$label.check.err" ||
        die "GET /api/stats ($label) failed: $(cat "$TMP/$label.check.err")"
    kv_into "$label.check" "$TMP/$label.check.kv"
    [[ $(get "$label.check.status") == 200 ]] || die "GET /api/stats ($label) answered $(get "$label.check.status"): $(get "$label.check.error")"
    if [[ $(get "$label.check.totals_events") != "$expect" ]]; then
        problem "$label: GET /api/stats for the whole year counts $(get "$label.check.totals_events") events; $expect were written"
    fi
    log "$label: first GET /api/stats (bucket=day) $(get "$label.check.ms") ms, $(get "$label.check.bytes") bytes, totals.events $(get "$label.check.totals_events") (written: $expect), $(get "$label.check.timeline_len") timeline buckets"
    for q in day hour site bysite; do
        name=$label.$q
        case $q in
            day) path="/api/stats?from=$from&to=$to&bucket=day" ;;
            hour) path="/api/stats?from=$from&to=$to&bucket=hour" ;;
            site) path="/api/stats?from=$from&to=$to&bucket=day&site=$site" ;;
            bysite) path="/api/stats?from=$from&to=$to&bucket=day&by=site" ;;
        esac
        spawn_wait python3 "$HELPERS/latency.py" --port "${ADM_OF[$label]##*:}" --host-header "localhost:${ADM_OF[$label]##*:}" \
            --header "Authorization: Bearer $token" --path "$path" --count "$STATS_REQUESTS" --warmup 3 \
            --max-seconds 120 >"$TMP/lat-$name.kv" 2>"$TMP/lat-$name.err" ||
            die "latency.py ($name) failed: $(cat "$TMP/lat-$name.err")"
        kv_into "$name" "$TMP/lat-$name.kv"
        [[ $(get "$name.statuses") == "200:$(get "$name.n")" ]] || problem "$name: GET $path answered $(get "$name.statuses") (errors $(get "$name.errors"))"
        log "$name: n=$(get "$name.n") p50 $(get "$name.p50_ms") ms p99 $(get "$name.p99_ms") ms max $(get "$name.max_ms") ms"
    done
    R[$label.rss_kib]=$(rss_kib "${PID_OF[$label]}")
    stop_instance "$label"
}

if selected stats; then
    log "analytics_writer generate: $STATS_EVENTS events over 365 days (budget $STATS_BUDGET s)"
    ANALYTICS_BENCH=1 spawn_wait "$WRITER" generate "$TMP/data-stats" "$STATS_EVENTS" 365 "$STATS_BUDGET" \
        >"$TMP/gen.kv" 2>"$TMP/gen.err" || die "analytics_writer generate failed: $(tail -20 "$TMP/gen.err")"
    kv_into gen "$TMP/gen.kv"
    log "generated $(get gen.events) events (target $(get gen.target_events)) in $(get gen.seconds) s ($(get gen.eps)/s), $(mib $(($(get gen.db_bytes) / 1024))) MiB"
    stats_queries stats_gen "$TMP/data-stats" "$(get gen.busiest_site)" "$(get gen.from_ts)" "$(get gen.events)"
    FILLED=0
    if [[ $STATS_FILL == 1 ]] || [[ $STATS_FILL == auto && ($(get gen.reduced) == 1 || $(get gen.stopped_early) == 1) ]]; then
        FILLED=1
        log "analytics_writer fill-rollups: roll-ups of a ~10M-event year, straight into the tables"
        ANALYTICS_BENCH=1 spawn_wait "$WRITER" fill-rollups "$TMP/data-fill" >"$TMP/fill.kv" 2>"$TMP/fill.err" ||
            die "analytics_writer fill-rollups failed: $(tail -20 "$TMP/fill.err")"
        kv_into fill "$TMP/fill.kv"
        stats_queries stats_fill "$TMP/data-fill" "$(get fill.busiest_site)" "$(get fill.from_ts)" "$(get fill.events_represented)"
    fi
fi

# ---------------------------------------------------------------- summary
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
T_TOTAL=$(($(date +%s) - T_START))
row() { printf '  %-54s %-26s %-12s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
summary() {
    echo
    echo "================ fazt analytics benchmark ================"
    echo "machine: $MACHINE"
    echo "fazt: $FAZT_VERSION, commit $GIT_REV$( ((GIT_DIRTY > 0)) && printf ' + %s modified tracked files' "$GIT_DIRTY"), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "load avg: start $LOAD_START, end $LOAD_END; run took $T_TOTAL s"
    echo "FAZT_* in the environment: $(env | grep -E '^FAZT_' | sort | paste -sd' ' | grep . || echo none)"
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    if selected ingest; then
        echo "1-3. POST /track, wrk -t2 -c64 keep-alive, realistic bodies (analytics_track.lua); ${WARMUP}s warm-up, then $ROUNDS x ${DURATION}s rounds taking turns, median round"
        echo "     events/s = 204s / (wrk start -> last of them committed); HTTP 204/s = 204s / load window; client and server share $(nproc) cores"
        row "1. batched (FAZT_EVENT_BATCH=${FAZT_EVENT_BATCH:-default 10000}): events/s" "$(get ing_batched.eps)" "" "rounds $(get ing_batched.eps_all)"
        row "   HTTP 204/s (p50 / p99 latency)" "$(get ing_batched.http_eps) ($(get ing_batched.p50_ms) / $(get ing_batched.p99_ms) ms)" "" "committed $(get ing_batched.drain_s) s after the load; writer kept up at $(get ing_batched.commit_eps_window)/s"
        row "   every acknowledged event in the database" "$(get batched.rows) rows / $(get batched.acks) 204s" "equal" "$(get batched.check)"
        row "   dropped events (health, before shutdown)" "$(get batched.dropped)" "0" "queue_full $(get batched.final.dropped_full), stopped $(get batched.final.dropped_stopped)$( [[ $(get batched.final.dropped_full) != 0 ]] && printf ' -- THE QUEUE FILLED')"
        row "   exit on SIGTERM" "$(get batched.exit)" "status 0" ""
        row "2. baseline (FAZT_EVENT_BATCH=1): events/s" "$(get ing_baseline.eps)" "" "rounds $(get ing_baseline.eps_all)"
        row "   HTTP 204/s (p50 / p99 latency)" "$(get ing_baseline.http_eps) ($(get ing_baseline.p50_ms) / $(get ing_baseline.p99_ms) ms)" "" "writer committed $(get ing_baseline.commit_eps_window)/s during the load, then $(get ing_baseline.drain_s) s more to catch up"
        row "   every acknowledged event in the database" "$(get baseline.rows) rows / $(get baseline.acks) 204s" "equal" "$(get baseline.check)"
        row "   dropped events (health, before shutdown)" "$(get baseline.dropped)" "0" "queue_full $(get baseline.final.dropped_full), stopped $(get baseline.final.dropped_stopped)$( [[ $(get baseline.final.dropped_full) != 0 ]] && printf ' -- THE QUEUE FILLED')"
        row "   exit on SIGTERM" "$(get baseline.exit)" "status 0" ""
        row "   batched / baseline, events/s" "$(get ratio.batch)x" ">= 4x" "$(verdict "$(get ratio.batch)" '>=' 4); by HTTP 204/s: $(get ratio.batch_http)x"
        row "3. static GET / (Host: root.localhost), req/s" "$(get static.rps) ($(get static.p50_ms) / $(get static.p99_ms) ms)" "" "rounds $(get static.rps_all); same wrk + Lua cost per request"
        row "   (each 200 records a pageview event: rows / 200s)" "$(get static.rows) / $(get static.acks)" "" "$(get static.check); dropped $(get static.dropped); exit $(get static.exit)"
        row "   ingestion (batched events/s) / static" "$(get ratio.static)x" ">= 0.7x" "$(verdict "$(get ratio.static)" '>=' 0.7); by HTTP 204/s: $(get ratio.static_http)x"
    fi
    if selected writer; then
        echo "4. writer path alone (benches/analytics_writer.rs compare): $(get writer.events) events over $(get writer.span_secs) s, batches of $(get writer.batch), fresh migrated DBs, median of $(get writer.rounds); ratio = median of per-round ratios"
        row "EventStore::write_batch (strings, rows, roll-ups)" "$(get writer.writer_eps) events/s" "" "rounds $(get writer.writer_eps_all)"
        row "raw prepared INSERT into events only" "$(get writer.raw_eps) events/s" "" "rounds $(get writer.raw_eps_all)"
        row "  writer / raw" "$(get writer.ratio)x" ">= 0.7x" "$(verdict "$(get writer.ratio)" '>=' 0.7); rounds $(get writer.ratio_all); writer SQL statements per event $(get writer.writer_statements_per_event)"
        row "  bytes per stored event (page_count*page_size)" "$(get writer.bytes_per_event) B" "<= 120 B" "$(verdict "$(get writer.bytes_per_event)" '<=' 120); net of the empty DB $(get writer.bytes_per_event_net) B; raw rows alone $(get writer.raw_bytes_per_event) B"
        echo "     statements per event: $(get writer.writer_statements_breakdown)"
        echo "     bytes per event by table/index: $(get writer.bytes_breakdown)"
    fi
    if selected stats; then
        echo "5. GET /api/stats over one year (from = now - 365 d, to = now), admin listener, 1 keep-alive connection, $STATS_REQUESTS requests each (p50 / p99)"
        echo "   data (a): $(get gen.events) events over 365 days written through EventStore::write_batch in batches of $(get gen.batch) in $(get gen.seconds) s ($(get gen.eps) events/s), $(mib $(($(get gen.db_bytes) / 1024))) MiB$( [[ $(get gen.reduced) == 1 ]] && printf ' -- FEWER than the %s asked for: they would not fit the %s s budget' "$(get gen.target_events)" "$STATS_BUDGET")$( [[ $(get gen.stopped_early) == 1 ]] && printf ' -- STOPPED EARLY at 1.5x the budget')"
        echo "       roll-up rows: hourly $(get gen.rows_rollup_hourly), hourly dims $(get gen.rows_rollup_hourly_dims), daily dims $(get gen.rows_rollup_daily_dims), monthly dims $(get gen.rows_rollup_monthly_dims), visitors_daily $(get gen.rows_visitors_daily)"
        local l
        for l in stats_gen stats_fill; do
            [[ $l == stats_fill && ${FILLED:-0} != 1 ]] && continue
            if [[ $l == stats_fill ]]; then
                echo "   data (b): roll-up tables filled directly with SQL for $(get fill.events_represented) events ($(get fill.rows_rollup_hourly_dims) hourly-dim rows), no raw events, in $(get fill.seconds) s"
            fi
            local tag=a site
            site=$(get gen.busiest_site)
            if [[ $l == stats_fill ]]; then tag=b; site=$(get fill.busiest_site); fi
            row "($tag) bucket=day, all sites" "$(get "$l.day.p50_ms") / $(get "$l.day.p99_ms") ms" "<= 50 ms" "$(verdict "$(get "$l.day.p99_ms")" '<=' 50) (p99); max $(get "$l.day.max_ms") ms; $(get "$l.check.bytes") B, totals.events $(get "$l.check.totals_events")"
            row "($tag) bucket=hour, all sites" "$(get "$l.hour.p50_ms") / $(get "$l.hour.p99_ms") ms" "<= 50 ms" "$(verdict "$(get "$l.hour.p99_ms")" '<=' 50) (p99); max $(get "$l.hour.max_ms") ms"
            row "($tag) bucket=day, site=$site" "$(get "$l.site.p50_ms") / $(get "$l.site.p99_ms") ms" "<= 50 ms" "$(verdict "$(get "$l.site.p99_ms")" '<=' 50) (p99); max $(get "$l.site.max_ms") ms"
            row "($tag) bucket=day, by=site (every site, one call)" "$(get "$l.bysite.p50_ms") / $(get "$l.bysite.p99_ms") ms" "<= 50 ms" "$(verdict "$(get "$l.bysite.p99_ms")" '<=' 50) (p99); max $(get "$l.bysite.max_ms") ms"
            row "($tag) fazt RSS after the queries; exit on SIGTERM" "$(mib "$(get "$l.rss_kib")") MiB" "" "$(get "$l.exit")"
        done
    fi
    if ((${#PROBLEMS[@]})); then
        echo "PROBLEMS seen:"
        printf '  - %s\n' "${PROBLEMS[@]}"
    else
        echo "no problems seen (every acknowledged event stored, no drops, no non-204 /track answers, no socket errors, clean exits)"
    fi
    echo "=========================================================="
}
summary | tee "${BENCH_SUMMARY:-/dev/null}"
