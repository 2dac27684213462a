#!/usr/bin/env bash
# fazt admin-latency benchmark: GET /api/system/health on the admin listener while back-to-back
# 100 MiB deploys and other admin writes run. DESIGN §1 promises the admin thread is never queued
# behind other work; this shows whether health answers stay fast while the writer commits deploys.
#
# What runs at the same time, all on the admin listener:
#   - deploys: up to BENCH_DEPLOYS uploads to one site, one after another, for at most
#     BENCH_DEPLOY_SECONDS, uploaded like bench_deploy.sh does (curl -F site_name=... -F
#     file=@site.zip, multipart/form-data). They cycle through BENCH_ZIPS different generated
#     sites (bench_deploy.sh's 100 MiB, 1,000-file site with seeds BENCH_SEED, BENCH_SEED+1, ...).
#     FAZT_KEEP_DEPLOYMENTS defaults to 1 here, so fazt keeps only the current deployment and the
#     one it replaced: by the time a site comes round again its blobs were deleted, and every
#     deploy stores 100 MiB of new blobs and garbage-collects the 100 MiB of the one before
#     (the summary shows new_bytes per deploy);
#   - admin writes: POST /api/redirects and POST /api/keys, alternating, fresh names, one every
#     BENCH_WRITE_INTERVAL_MS on one keep-alive connection;
#   - the health sampler: GET /api/system/health, one request at a time on one keep-alive
#     connection, one every BENCH_HEALTH_INTERVAL_MS, from BENCH_SETTLE s before the first deploy
#     until BENCH_SETTLE s after the last.
# The zips are built before fazt starts, so building them takes no CPU from the measurement.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them: health p99 <= 10 ms, max <= 50 ms). It exits non-zero, with the
# reason, when a step fails (fazt died, a helper failed).
#
#     bench/admin_latency.sh
#
# Environment:
#   BENCH_DEPLOYS=30             deploys at most, back to back
#   BENCH_DEPLOY_SECONDS=75      no deploy starts after this many seconds of deploying (bounds the run)
#   BENCH_ZIPS=3                 different sites the deploys cycle through (3 or more: see above)
#   BENCH_SITE_MB=100            size of each generated site in MiB
#   BENCH_SITE_FILES=1000        files in each site
#   BENCH_SEED=1                 seed of the first site (deploy i uses BENCH_SEED + i - 1)
#   BENCH_HEALTH_INTERVAL_MS=2   health sampler pace (0: back to back)
#   BENCH_WRITE_INTERVAL_MS=50   admin write pace (0: back to back)
#   BENCH_SETTLE=2               seconds the sampler and the writes run alone before and after the deploys
#   BENCH_NO_BUILD=1             use the existing target/release/fazt
#   BENCH_FAZT_BIN=PATH          measure this fazt binary instead (e.g. an older commit's build)
#   BENCH_KEEP_TMP=1             keep the temp dir (zips, data dir, logs, every health sample) and print its path
#   BENCH_SUMMARY=PATH           also write the summary table to PATH
#   FAZT_*                       passed through to fazt (FAZT_KEEP_DEPLOYMENTS defaults to 1 here)
#
# Every request targets 127.0.0.1 and is bounded in time; every process started here is stopped on exit.
# Helpers: bench/lib.sh (processes, results, building and starting fazt), deploy_site.py (sites and
# zips), admin_latency.py (the health sampler, the admin writer, the slowest samples).
set -euo pipefail

SCRIPT_TAG=admin_latency
# ROOT, HELPERS (bench/) and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEPLOYS=${BENCH_DEPLOYS:-30}
DEPLOY_SECONDS=${BENCH_DEPLOY_SECONDS:-75}
ZIPS=${BENCH_ZIPS:-3}
SITE_MB=${BENCH_SITE_MB:-100}
SITE_FILES=${BENCH_SITE_FILES:-1000}
SEED=${BENCH_SEED:-1}
HEALTH_MS=${BENCH_HEALTH_INTERVAL_MS:-2}
WRITE_MS=${BENCH_WRITE_INTERVAL_MS:-50}
SETTLE=${BENCH_SETTLE:-2}
SITE_NAME=bench
for v in DEPLOYS DEPLOY_SECONDS ZIPS SITE_MB SITE_FILES SEED; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be an integer >= 1"
done
for v in HEALTH_MS WRITE_MS SETTLE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_${v/_MS/_INTERVAL_MS} must be an integer >= 0"
done
((DEPLOYS <= 1000)) || die "BENCH_DEPLOYS must be at most 1000"
((ZIPS >= 3 && ZIPS <= 20)) || die "BENCH_ZIPS must be from 3 to 20 (each zip is built first and kept on disk)"
((ZIPS <= DEPLOYS)) || ZIPS=$DEPLOYS
export FAZT_KEEP_DEPLOYMENTS=${FAZT_KEEP_DEPLOYMENTS:-1}
((SITE_FILES >= 20)) || die "BENCH_SITE_FILES must be at least 20"
((SITE_MB * 1024 >= SITE_FILES)) || die "BENCH_SITE_MB must give at least 1 KiB per file"

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-admin.XXXXXX")
install_traps

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- start
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temp dir $TMP; up to $DEPLOYS deploys in $DEPLOY_SECONDS s of $ZIPS sites of $SITE_MB MiB in $SITE_FILES files (seeds $SEED..$((SEED + ZIPS - 1))); load avg $LOAD_START"
command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"
build_fazt

MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r)"
FAZT_VERSION=$("$FAZT_BIN" --version 2>&1 | head -1)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null | wc -l)

# ---------------------------------------------------------------- the sites' zips, before fazt starts
t0=$(now)
for ((i = 1; i <= ZIPS; i++)); do
    site=$TMP/site-$i
    python3 "$HELPERS/deploy_site.py" gen "$site" --bytes $((SITE_MB * 1024 * 1024)) --files "$SITE_FILES" \
        --seed $((SEED + i - 1)) >"$TMP/gen-$i.kv" 2>"$TMP/gen-$i.err" || die "deploy_site.py gen failed: $(cat "$TMP/gen-$i.err")"
    python3 "$HELPERS/deploy_site.py" zip "$site" "$TMP/site-$i.zip" >"$TMP/zip-$i.kv" 2>"$TMP/zip-$i.err" ||
        die "deploy_site.py zip failed: $(cat "$TMP/zip-$i.err")"
    kv_into "zip$i" "$TMP/zip-$i.kv"
    rm -rf "$site"
    log "zip $i of $ZIPS: $(get "zip$i.zip_bytes") bytes, $(get "zip$i.entries") files"
done
R[zips_s]=$(since "$t0")
log "zips built in $(get zips_s) s"

# ---------------------------------------------------------------- fazt
DATA=$TMP/fazt-data
mkdir -p "$DATA"
log "starting fazt on $DATA"
launch_fazt "$DATA" "$TMP/fazt.out" "$TMP/fazt.err" fazt
TOKEN=$(sed -nE 's/^owner API key[^:]*: *(fzt_[A-Za-z0-9_]+).*/\1/p' "$TMP/fazt.out" | head -1)
[[ -n $TOKEN ]] || die "fazt printed no owner API key on its first start: $(cat "$TMP/fazt.out")"
ADMIN_PORT=${ADMIN##*:}
log "fazt pid $FAZT_PID public $PUBLIC admin $ADMIN"

fazt_alive() { # WHEN: die with fazt's stderr if the fazt process is gone
    alive "$FAZT_PID" && return 0
    local rc=0
    wait "$FAZT_PID" 2>/dev/null || rc=$?
    forget_pid "$FAZT_PID"
    die "fazt exited (status $rc) $1. stderr:
$(tail -n 40 "$TMP/fazt.err")"
}

# helper_done PID NAME: wait for a helper started in the background; die with its stderr if it failed.
helper_done() {
    local rc=0
    wait "$1" || rc=$?
    forget_pid "$1"
    ((rc == 0)) || die "admin_latency.py $2 failed (exit $rc): $(tail -n 20 "$TMP/$2.err")"
}

# helper_ready PID NAME: up to 10 s for the helper's first answered request (its NAME.ready file).
helper_ready() {
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -e $TMP/$2.ready ]] && return 0
        alive "$1" || helper_done "$1" "$2"
        sleep 0.1
    done
    die "admin_latency.py $2 got no answer within 10 s: $(tail -n 20 "$TMP/$2.err")"
}

# ---------------------------------------------------------------- the measured run
STOP=$TMP/stop
# The helpers stop on their own after this, should the stop file never come.
HELPER_MAX=$((DEPLOY_SECONDS + 2 * SETTLE + 360))
python3 "$HELPERS/admin_latency.py" health --port "$ADMIN_PORT" --token "$TOKEN" --stop "$STOP" \
    --max-seconds "$HELPER_MAX" --interval-ms "$HEALTH_MS" --samples "$TMP/health.tsv" --ready "$TMP/health.ready" \
    >"$TMP/health.kv" 2>"$TMP/health.err" &
HEALTH_PID=$!
PIDS+=("$HEALTH_PID")
python3 "$HELPERS/admin_latency.py" writes --port "$ADMIN_PORT" --token "$TOKEN" --stop "$STOP" \
    --max-seconds "$HELPER_MAX" --interval-ms "$WRITE_MS" --prefix "$SITE_NAME" --ready "$TMP/writes.ready" \
    >"$TMP/writes.kv" 2>"$TMP/writes.err" &
WRITES_PID=$!
PIDS+=("$WRITES_PID")
helper_ready "$HEALTH_PID" health
helper_ready "$WRITES_PID" writes
log "health sampler (every $HEALTH_MS ms) and admin writes (every $WRITE_MS ms) running; ${SETTLE}s alone first"
sleep "$SETTLE"

: >"$TMP/deploys.tsv"
R[deploys.ok]=0
R[deploys.failed]=0
R[deploys.walls]=""
R[deploys.statuses]=""
R[deploys.new_mib]=""
run_start=$(now)
for ((i = 1; i <= DEPLOYS; i++)); do
    if (($(awk -v a="$run_start" -v b="$(now)" 'BEGIN { print (b - a >= '"$DEPLOY_SECONDS"') }'))); then
        log "BENCH_DEPLOY_SECONDS=$DEPLOY_SECONDS reached: no more deploys"
        break
    fi
    a=$(now)
    out=$(curl -sS --max-time 300 -o "$TMP/deploy-$i.json" -w '%{http_code} %{time_total}' \
        -H "Authorization: Bearer $TOKEN" -F "site_name=$SITE_NAME" -F "file=@$TMP/site-$(((i - 1) % ZIPS + 1)).zip;type=application/zip" \
        "http://$ADMIN/api/deploy" 2>"$TMP/deploy-$i.err") || out="curl-error $(since "$a")"
    b=$(now)
    read -r code secs <<<"$out"
    secs=$(awk -v s="$secs" 'BEGIN { printf "%.2f", s }')
    printf '%s\t%s\t%s\t%s\n' "$i" "$a" "$b" "$code" >>"$TMP/deploys.tsv"
    R[deploys.walls]+="${R[deploys.walls]:+ }$secs"
    R[deploys.statuses]+="${R[deploys.statuses]:+ }$code"
    if [[ $code == 200 ]]; then
        R[deploys.ok]=$(($(get deploys.ok) + 1))
        new=$(sed -nE 's/.*"new_bytes":([0-9]+).*/\1/p' "$TMP/deploy-$i.json")
        R[deploys.new_mib]+="${R[deploys.new_mib]:+ }$(mib $((${new:-0} / 1024)))"
        log "deploy $i: HTTP 200 in $secs s: $(head -c 200 "$TMP/deploy-$i.json")"
    else
        R[deploys.failed]=$(($(get deploys.failed) + 1))
        log "deploy $i: $code after $secs s: $(head -c 300 "$TMP/deploy-$i.json" 2>/dev/null) $(cat "$TMP/deploy-$i.err")"
    fi
    fazt_alive "during deploy $i"
done
R[deploys.run_s]=$(since "$run_start")
sleep "$SETTLE"
touch "$STOP"
helper_done "$HEALTH_PID" health
helper_done "$WRITES_PID" writes
kv_into health "$TMP/health.kv"
kv_into writes "$TMP/writes.kv"
python3 "$HELPERS/admin_latency.py" slowest --samples "$TMP/health.tsv" --deploys "$TMP/deploys.tsv" \
    >"$TMP/slowest.kv" 2>"$TMP/slowest.err" || die "admin_latency.py slowest failed: $(cat "$TMP/slowest.err")"
kv_into slow "$TMP/slowest.kv"
fazt_alive "before it was stopped"
stop_pid "$FAZT_PID"
R[fazt.exit]="status $STOP_RC after ${STOP_SECS}s"

# ---------------------------------------------------------------- summary
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
row() { printf '  %-40s %-22s %-12s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
write_row() { # ROUTE
    row "POST /api/$1: ok / sent" "$(get "writes.$1.ok") / $(get "writes.$1.sent")" "" "non-2xx $(get "writes.$1.non2xx") (statuses $(get "writes.$1.statuses")), errors $(get "writes.$1.errors"); p50 $(get "writes.$1.p50_ms") ms, p99 $(get "writes.$1.p99_ms") ms, max $(get "writes.$1.max_ms") ms"
}
summary() {
    echo
    echo "================ fazt admin latency during deploys ================"
    echo "machine: $MACHINE"
    echo "fazt: $FAZT_VERSION, commit $GIT_REV$( ((GIT_DIRTY > 0)) && printf ' + %s modified tracked files' "$GIT_DIRTY"), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "load avg: start $LOAD_START, end $LOAD_END (other work on the machine shows up as latency)"
    echo "FAZT_* in the environment: $(env | grep -E '^FAZT_' | sort | paste -sd' ' | grep . || echo none)"
    echo "deploys: up to $DEPLOYS in $DEPLOY_SECONDS s, back to back, cycling through $ZIPS sites of $SITE_MB MiB / $SITE_FILES files (seeds $SEED..; zip 1: $(get zip1.zip_bytes) bytes; zips built before fazt started)"
    echo "health: GET /api/system/health on the admin listener, one at a time, keep-alive, every $HEALTH_MS ms"
    echo "admin writes: POST /api/redirects and POST /api/keys alternating, every $WRITE_MS ms, keep-alive"
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    row "health p50" "$(get health.p50_ms) ms" "" "p90 $(get health.p90_ms) ms, p99.9 $(get health.p999_ms) ms, mean $(get health.mean_ms) ms"
    row "health p99" "$(get health.p99_ms) ms" "<= 10 ms" "$(verdict "$(get health.p99_ms)" '<=' 10)"
    row "health max" "$(get health.max_ms) ms" "<= 50 ms" "$(verdict "$(get health.max_ms)" '<=' 50)"
    row "health samples" "$(get health.n)" "" "statuses $(get health.statuses), errors $(get health.errors), reconnects $(get health.reconnects), over $(get health.elapsed_s) s"
    row "  while a deploy was in flight" "$(get slow.during_n) samples" "" "p99 $(get slow.during_p99_ms) ms, max $(get slow.during_max_ms) ms"
    row "  between deploys" "$(get slow.between_n) samples" "" "max $(get slow.between_max_ms) ms"
    row "  answers > 50 ms (stalls)" "$(get slow.stalls)" "0" "$(get slow.stalled_s) s of $(get slow.span_s) s spent in them (the paced sampler takes one sample per stall)"
    row "  slowest (t from start: ms: deploy)" "" "" "$(get slow.slowest)"
    row "deploys completed (HTTP 200)" "$(get deploys.ok)" "" "failed $(get deploys.failed); $(get deploys.run_s) s in all"
    row "  wall s, each" "" "" "$(get deploys.walls)"
    row "  new_bytes MiB, each" "" "" "$(get deploys.new_mib)"
    row "  statuses" "" "" "$(get deploys.statuses)"
    row "admin writes completed (2xx)" "$(($(get writes.redirects.ok) + $(get writes.keys.ok)))" "" "non-2xx $(($(get writes.redirects.non2xx) + $(get writes.keys.non2xx))), errors $(($(get writes.redirects.errors) + $(get writes.keys.errors)))"
    write_row redirects
    write_row keys
    echo "fazt on SIGTERM: $(get fazt.exit)"
    echo "==================================================================="
}
summary | tee "${BENCH_SUMMARY:-/dev/null}"
