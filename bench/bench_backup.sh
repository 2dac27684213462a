#!/usr/bin/env bash
# fazt backup benchmark (issue #16): `fazt db backup` of a large database while wrk loads static
# serving and POST /track, and `fazt db check` time per GiB.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them). It exits non-zero, with the reason, when a step fails (a deploy
# or a backup refused, fazt died, too little disk).
#
# Run as root on a Debian machine (it apt-get installs curl and wrk if missing):
#     bench/bench_backup.sh
#
# Sections (BENCH_ONLY=LIST, comma list, default all: build,backup,check), on one data dir:
#   build   a fresh fazt (--domain localhost); a small site `static` (the static target), then sites
#           `fill-001`.. of incompressible random files (4 MiB each, BENCH_BACKUP_DEPLOY_MB a deploy)
#           deployed with `fazt deploy` until fazt.db (+ its WAL) reaches BENCH_BACKUP_BYTES; then
#           BENCH_BACKUP_EVENT_SECS s of POST /track (bench/analytics_track.lua). Reports the size
#           reached, the fill's wall time and the events stored.
#   backup  two loads together, both wrk against the public listener: static `GET /` of `static`
#           (wrk -t1 -c16, a 2 KiB index.html) and POST /track (wrk -t1 -c4, analytics_track.lua,
#           FAZT_INGEST_RATE=0 so nothing is refused as 429). BENCH_ROUNDS rounds of three phases,
#           then one more baseline:
#             baseline  start both wrk, BENCH_BACKUP_LEAD s, then BENCH_DURATION s with nothing else
#             cli       start both wrk, BENCH_BACKUP_LEAD s, then `fazt db backup FILE --data DIR`
#                       (a second process beside the running server)
#             api       the same with `POST /api/system/backup` {"path": FILE} (curl, owner key)
#           Each time both wrk are stopped (SIGINT: wrk prints its numbers) as soon as the middle
#           step ends. wrk runs with -d3600s and is interrupted rather than run in fixed short
#           pieces, so its window covers the whole backup and nothing else but the lead-in: one
#           latency histogram per phase, with the same lead-in in every phase. Reported (median
#           round): backup wall time and MB/s (the copy's bytes / wall time), the static p99 during
#           each backup against the lower of the baselines before and after its round (the machine
#           is shared and drifts; the lower one, so a noisy baseline cannot flatter; target <= 1.5x),
#           non-2xx and socket errors of both loads and fazt_shed_requests_total's growth, summed
#           over rounds (target 0 failed, 0 shed), and fazt_events_dropped_total's. Each backup file is removed once measured (disk).
#   check   `fazt db check --data DIR` on the same database with the server STOPPED (so the time is
#           the check's own, not shared with a load): wall time, its result, seconds per GiB.
#
# Environment:
#   BENCH_BACKUP_BYTES=1G        size to fill the database to (suffix K, M or G: powers of 1024)
#   BENCH_BACKUP_DEPLOY_MB=100   MiB of files per fill deploy
#   BENCH_BACKUP_EVENT_SECS=5    seconds of /track load at the end of build
#   BENCH_BACKUP_LEAD=1          seconds of load before the middle step of each backup phase
#   BENCH_BACKUP_DATA=DIR        use (and fill) this data dir instead of a fresh one in the temp dir;
#                                then backup and check may run without build (e.g. a dir kept from an
#                                earlier run); an API key is created for it with `fazt key create`
#   BENCH_DURATION=10            seconds of a baseline phase
#   BENCH_ROUNDS=3               rounds of the backup section
#   BENCH_NO_BUILD=1             use the existing target/release/fazt (BENCH_FAZT_BIN: another binary)
#   BENCH_KEEP_TMP=1             keep the temp dir (data dir, logs, wrk outputs) and print its path
#   BENCH_SUMMARY=PATH           also write the summary table to PATH
#   FAZT_*                       passed through to fazt; FAZT_INGEST_RATE defaults to 0 here,
#                                FAZT_DEPLOY_RATE to 100000, FAZT_AUTO_PAGEVIEWS to 0
#
# Disk: the database, one backup of it and a deploy's files at once: it checks that the temp dir's
# file system has 2.2x BENCH_BACKUP_BYTES + a deploy free before it starts, and dies otherwise.
# Every load targets 127.0.0.1 and is bounded in time; every process started here is stopped on
# exit. Helpers: bench/lib.sh (processes, results, tools, starting fazt), util.py (wrk output),
# js_util.py (metrics), analytics_track.lua (the /track load).
set -euo pipefail

SCRIPT_TAG=bench_backup
# ROOT, HELPERS (bench/), DURATION (from BENCH_*), and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY=${BENCH_ONLY:-build,backup,check}
DEPLOY_MB=${BENCH_BACKUP_DEPLOY_MB:-100}
EVENT_SECS=${BENCH_BACKUP_EVENT_SECS:-5}
LEAD=${BENCH_BACKUP_LEAD:-1}
FILE_MIB=4
LUA=$HELPERS/analytics_track.lua
export FAZT_INGEST_RATE=${FAZT_INGEST_RATE:-0}
export FAZT_DEPLOY_RATE=${FAZT_DEPLOY_RATE:-100000}
export FAZT_AUTO_PAGEVIEWS=${FAZT_AUTO_PAGEVIEWS:-0}
# The sites analytics_track.lua sends events for are hosted elsewhere: allow them.
export FAZT_TRACK_DOMAINS=${FAZT_TRACK_DOMAINS:-blog.example.com,shop.example.net,docs.example.org}

# bytes SIZE: SIZE (digits with an optional K, M or G suffix, powers of 1024) in bytes.
bytes() {
    local n=${1%[KkMmGg]} mult=1
    [[ $n =~ ^[1-9][0-9]*$ ]] || return 1
    case ${1: -1} in K | k) mult=1024 ;; M | m) mult=$((1024 ** 2)) ;; G | g) mult=$((1024 ** 3)) ;; esac
    echo $((n * mult))
}

for s in ${ONLY//,/ }; do
    case $s in build | backup | check) ;; *) die "unknown BENCH_ONLY section '$s' (build,backup,check)" ;; esac
done
TARGET_BYTES=$(bytes "${BENCH_BACKUP_BYTES:-1G}") || die "BENCH_BACKUP_BYTES must be a size like 1G, 100M or 500000000"
((TARGET_BYTES >= 16 * 1024 ** 2)) || die "BENCH_BACKUP_BYTES must be at least 16M"
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 ]] || die "BENCH_DURATION must be an integer >= 2 (seconds)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be an integer >= 1"
for v in DEPLOY_MB EVENT_SECS LEAD; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_BACKUP_${v} must be an integer >= 1"
done
((DEPLOY_MB <= 1000)) || die "BENCH_BACKUP_DEPLOY_MB must be <= 1000 (fazt's archive limit is 1 GiB)"
if ! selected build && [[ -z ${BENCH_BACKUP_DATA:-} ]]; then
    die "sections backup and check need the database of build: add build to BENCH_ONLY, or name a filled data dir in BENCH_BACKUP_DATA"
fi

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-backup.XXXXXX")
install_traps
DATA=${BENCH_BACKUP_DATA:-$TMP/data}
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)
log "temp dir $TMP; data dir $DATA; sections: $ONLY; target $((TARGET_BYTES / 1024 ** 2)) MiB"

# Room for the database, one backup of it (written beside the data, in the temp dir) and a
# deploy's files; whatever the database already holds counts as written.
free_bytes() { df -P -B1 "$1" | awk 'NR == 2 { print $4 }'; }
have=$(($(free_bytes "$TMP") + $(stat -c %s "$DATA/fazt.db" 2>/dev/null || echo 0)))
need=$((TARGET_BYTES * 22 / 10 + DEPLOY_MB * 1024 ** 2))
((have >= need)) || die "too little disk: $((need / 1024 ** 2)) MiB needed on $(df -P "$TMP" | awk 'NR == 2 { print $6 }') (the database, a backup of it and a deploy), $((have / 1024 ** 2)) MiB free; set TMPDIR or a smaller BENCH_BACKUP_BYTES"

ensure_tools none
build_fazt
MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- fazt
NAME=fazt
FAZT_PID=
TOKEN=

db_bytes() { # fazt.db + its WAL: what the database holds on disk now
    echo $(($(stat -c %s "$DATA/fazt.db" 2>/dev/null || echo 0) + $(stat -c %s "$DATA/fazt.db-wal" 2>/dev/null || echo 0)))
}
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# fazt_up: the server on DATA (FAZT_PID, PUBLIC, ADMIN, TOKEN), unless it runs. A fresh data dir
# prints its owner API key; an existing one gets a key from `fazt key create` first.
fazt_up() {
    local i
    if [[ -n $FAZT_PID ]] && alive "$FAZT_PID"; then return; fi
    TOKEN=
    if [[ -e $DATA/fazt.db ]]; then
        TOKEN=$("$FAZT_BIN" key create bench-backup --data "$DATA" 2>"$TMP/key.err" | tail -1) ||
            die "fazt key create on $DATA failed: $(cat "$TMP/key.err")"
    fi
    launch_fazt "$DATA" "$TMP/$NAME.out" "$TMP/$NAME.err" "fazt"
    for ((i = 0; i < 20 && ${#TOKEN} == 0; i++)); do
        TOKEN=$(grep -m1 'owner API key' "$TMP/$NAME.out" | awk '{ print $NF }' || true)
        [[ -n $TOKEN ]] || sleep 0.1
    done
    [[ -n $TOKEN ]] || die "fazt printed no 'owner API key' and no key was created; stdout: $(cat "$TMP/$NAME.out")"
    R[fazt.limits]=$(grep -m1 -o 'with [0-9]* core thread.*' "$TMP/$NAME.err" 2>/dev/null || true)
    log "fazt pid $FAZT_PID public $PUBLIC admin $ADMIN"
}

fazt_down() {
    if [[ -n $FAZT_PID ]] && alive "$FAZT_PID"; then
        stop_fazt "$NAME"
        log "fazt stopped: $(get "$NAME.exit")"
    fi
    FAZT_PID=
}

# deploy SITE DIR: `fazt deploy` of DIR as SITE.
deploy() {
    "$FAZT_BIN" deploy --site "$1" --server "http://$ADMIN" --token "$TOKEN" "$2" \
        >"$TMP/deploy-$1.log" 2>&1 || die "fazt deploy $1 failed: $(tail -5 "$TMP/deploy-$1.log")"
}

# Counters read before and after each phase (js_util.py keys: the name for a sum of all series).
COUNTERS=(fazt_shed_requests_total fazt_events_committed_total fazt_events_dropped_total)
delta() { awk -v a="$(get "$1")" -v b="$(get "$2")" 'BEGIN { if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/) print b - a; else print "n/a" }'; }

# ---------------------------------------------------------------- loads
W_STATIC=
W_TRACK=
# load_start NAME: both wrk loads in the background (until load_stop), then LEAD seconds.
load_start() {
    local name=$1
    metrics "$name.before" "${COUNTERS[@]}"
    timeout 7200 wrk -t1 -c16 -d3600s --timeout 5s --latency -H "Host: static.localhost" "http://$PUBLIC/" \
        >"$TMP/wrk-$name-static.txt" 2>&1 &
    W_STATIC=$!
    PIDS+=("$W_STATIC")
    timeout 7200 wrk -t1 -c4 -d3600s --timeout 5s --latency -s "$LUA" "http://$PUBLIC/" \
        -- track "$(($(date +%s) + 7200))" 1 >"$TMP/wrk-$name-track.txt" 2>&1 &
    W_TRACK=$!
    PIDS+=("$W_TRACK")
    R[$name.t0]=$(date +%s.%N)
    sleep "$LEAD"
}

# load_stop NAME: SIGINT to both wrk (each prints its numbers), into R[NAME.static.*] and
# R[NAME.track.*] (with track.lua.*), R[NAME.window_s], R[NAME.shed] and R[NAME.events].
load_stop() {
    local name=$1 p kind
    for p in "$W_STATIC" "$W_TRACK"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "$W_STATIC" "$W_TRACK"; do
        wait "$p" || true
        forget_pid "$p"
    done
    R[$name.window_s]=$(secs_since "$(get "$name.t0")")
    alive "$FAZT_PID" || die "fazt exited during the $name phase; stderr: $(tail -n 40 "$TMP/$NAME.err")"
    for kind in static track; do
        grep -q 'requests in' "$TMP/wrk-$name-$kind.txt" || die "wrk ($name $kind) printed no summary: $(tail -5 "$TMP/wrk-$name-$kind.txt")"
        python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-$name-$kind.txt" >"$TMP/wrk-$name-$kind.kv"
        kv_into "$name.$kind" "$TMP/wrk-$name-$kind.kv"
    done
    sed -n 's/^lua\.//p' "$TMP/wrk-$name-track.txt" >"$TMP/wrk-$name-track.lua.kv"
    kv_into "$name.track.lua" "$TMP/wrk-$name-track.lua.kv"
    metrics "$name.after" "${COUNTERS[@]}"
    R[$name.shed]=$(delta "$name.before.fazt_shed_requests_total" "$name.after.fazt_shed_requests_total")
    R[$name.dropped]=$(delta "$name.before.fazt_events_dropped_total" "$name.after.fazt_events_dropped_total")
    R[$name.failed]=$(awk -v a="$(get "$name.static.non2xx")" -v b="$(get "$name.static.socket_errors")" \
        -v c="$(get "$name.track.non2xx")" -v d="$(get "$name.track.socket_errors")" 'BEGIN { print a + b + c + d }')
    log "$name: static $(get "$name.static.rps") req/s p99 $(get "$name.static.p99_ms") ms; /track $(get "$name.track.rps") req/s p99 $(get "$name.track.p99_ms") ms; failed $(get "$name.failed"), shed $(get "$name.shed") over $(get "$name.window_s") s"
}

# ---------------------------------------------------------------- build
# fill_dir DIR N SEED: N files of FILE_MIB MiB of random bytes (nothing to compress or dedup).
fill_dir() {
    local dir=$1 n=$2 i
    rm -rf "$dir"
    mkdir -p "$dir"
    for ((i = 1; i <= n; i++)); do
        head -c $((FILE_MIB * 1024 ** 2)) /dev/urandom >"$dir/blob-$i.bin"
    done
    printf '<h1>%s</h1>\n' "$3" >"$dir/index.html"
}

section_build() {
    local t0 i=0 files left dir=$TMP/fill t1
    fazt_up
    mkdir -p "$TMP/static-site"
    head -c 1500 /dev/urandom | base64 -w 76 | sed '1i <!doctype html><title>static</title><pre>' >"$TMP/static-site/index.html"
    deploy static "$TMP/static-site"
    [[ $(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H 'Host: static.localhost' "http://$PUBLIC/") == 200 ]] ||
        die "GET / of static.localhost did not answer 200"
    R[build.start_bytes]=$(db_bytes)
    t0=$(date +%s.%N)
    while (($(db_bytes) < TARGET_BYTES)); do
        i=$((i + 1))
        left=$((TARGET_BYTES - $(db_bytes)))
        files=$(((left + FILE_MIB * 1024 ** 2 - 1) / (FILE_MIB * 1024 ** 2)))
        ((files <= DEPLOY_MB / FILE_MIB)) || files=$((DEPLOY_MB / FILE_MIB))
        ((files >= 1)) || files=1
        fill_dir "$dir" "$files" "fill-$i"
        t1=$(date +%s.%N)
        deploy "$(printf 'fill-%03d' "$i")" "$dir"
        log "fill-$(printf '%03d' "$i"): $((files * FILE_MIB)) MiB deployed in $(secs_since "$t1") s; database now $(($(db_bytes) / 1024 ** 2)) MiB"
        alive "$FAZT_PID" || die "fazt exited during the fill; stderr: $(tail -n 40 "$TMP/$NAME.err")"
    done
    rm -rf "$dir"
    R[build.deploys]=$i
    R[build.fill_s]=$(secs_since "$t0")
    # Some analytics events too (the /track load alone, bounded by its deadline).
    metrics build.ev0 "${COUNTERS[@]}"
    spawn_wait timeout $((EVENT_SECS + 30)) wrk -t1 -c4 -d"$((EVENT_SECS + 2))s" --timeout 5s -s "$LUA" "http://$PUBLIC/" \
        -- track "$(($(date +%s) + EVENT_SECS))" 1 >"$TMP/wrk-build-track.txt" 2>&1 ||
        die "wrk (build /track) failed: $(tail -5 "$TMP/wrk-build-track.txt")"
    sed -n 's/^lua\.//p' "$TMP/wrk-build-track.txt" >"$TMP/wrk-build-track.lua.kv"
    kv_into build.track "$TMP/wrk-build-track.lua.kv"
    sleep 2 # the writer commits its batch
    metrics build.ev1 "${COUNTERS[@]}"
    R[build.events]=$(delta build.ev0.fazt_events_committed_total build.ev1.fazt_events_committed_total)
    R[build.bytes]=$(db_bytes)
    log "build: $(mib $(($(get build.bytes) / 1024))) MiB in $(get build.deploys) deploys, $(get build.fill_s) s; $(get build.track.n204) events acknowledged"
}

# ---------------------------------------------------------------- backup
# backup_phase NAME CMD...: the loads around CMD (the backup), its wall time into R[NAME.backup_s].
backup_phase() {
    local name=$1 t0 rc=0
    shift
    load_start "$name"
    t0=$(date +%s.%N)
    "$@" >"$TMP/$name.backup.out" 2>"$TMP/$name.backup.err" || rc=$?
    R[$name.backup_s]=$(secs_since "$t0")
    load_stop "$name"
    ((rc == 0)) || die "the $name backup failed (exit $rc): $(cat "$TMP/$name.backup.err" "$TMP/$name.backup.out")"
}

api_backup() { # FILE: POST /api/system/backup; exit 1 unless it answers 200
    local code
    code=$(curl -sS --max-time 3600 -o "$TMP/api.backup.json" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data "{\"path\":\"$1\"}" "http://$ADMIN/api/system/backup") || return 1
    cat "$TMP/api.backup.json"
    [[ $code == 200 ]]
}

# backup_result NAME FILE: the copy's size and MB/s into R[NAME.*]; then FILE is removed.
backup_result() {
    local name=$1 file=$2
    [[ -s $file ]] || die "the $name backup left no file at $file"
    R[$name.file_bytes]=$(stat -c %s "$file")
    R[$name.mbs]=$(awk -v b="$(get "$name.file_bytes")" -v s="$(get "$name.backup_s")" 'BEGIN { if (s > 0) printf "%.0f", b / 1e6 / s; else printf "n/a" }')
    R[$name.reported_ms]=$(grep -o '"duration_ms": *[0-9]*' "$TMP/$name.backup.out" | grep -o '[0-9]*$' || echo n/a)
    rm -f "$file"
    log "$name: backup of $(mib $(($(get "$name.file_bytes") / 1024))) MiB in $(get "$name.backup_s") s ($(get "$name.mbs") MB/s)"
}

median() { printf '%s\n' "$@" | awk '/^[0-9.]+$/' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }
sum() { printf '%s\n' "$@" | awk '/^[0-9]+$/ { s += $1; n++ } END { print n ? s : "n/a" }'; }

# collect KIND: R[KIND.KEY] = the median over rounds of R[KIND.rN.KEY] (all rounds listed in
# R[KIND.KEY.all]) for the figures, the sum for the failure counts.
collect() {
    local kind=$1 n=$2 key r vals
    shift 2
    for key in backup_s mbs file_bytes reported_ms p99_ratio static.p99_ms static.rps track.rps track.p99_ms window_s; do
        vals=()
        for ((r = 1; r <= n; r++)); do vals+=("$(get "$kind.r$r.$key")"); done
        R[$kind.$key]=$(median "${vals[@]}")
        R[$kind.$key.all]=${vals[*]}
    done
    for key in failed shed dropped track.lua.n204; do
        vals=()
        for ((r = 1; r <= n; r++)); do vals+=("$(get "$kind.r$r.$key")"); done
        R[$kind.$key]=$(sum "${vals[@]}")
    done
}

# Rounds (BENCH_ROUNDS): baseline, CLI backup, API backup; one more baseline at the end. Each
# backup's p99 is compared with the lower (better) of the baselines just before and after its
# round: the shared machine drifts, and a noisy baseline (another process's burst) must not
# flatter the backup; the median round is shown.
section_backup() {
    local r b
    fazt_up
    [[ $(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H 'Host: static.localhost' "http://$PUBLIC/") == 200 ]] ||
        die "GET / of static.localhost did not answer 200 (the static target is deployed by build)"
    R[backup.db_bytes]=$(db_bytes)
    for ((r = 1; r <= ROUNDS; r++)); do
        backup_phase "baseline.r$r" sleep "$DURATION"
        backup_phase "cli.r$r" "$FAZT_BIN" db backup "$TMP/backup-cli.db" --data "$DATA" --json
        backup_result "cli.r$r" "$TMP/backup-cli.db"
        backup_phase "api.r$r" api_backup "$TMP/backup-api.db"
        backup_result "api.r$r" "$TMP/backup-api.db"
    done
    backup_phase "baseline.r$r" sleep "$DURATION"
    for ((r = 1; r <= ROUNDS; r++)); do
        b=$(awk -v a="$(get "baseline.r$r.static.p99_ms")" -v c="$(get "baseline.r$((r + 1)).static.p99_ms")" 'BEGIN { printf "%.3f", (a + 0 < c + 0) ? a : c }')
        R[cli.r$r.p99_ratio]=$(ratio "$(get "cli.r$r.static.p99_ms")" "$b")
        R[api.r$r.p99_ratio]=$(ratio "$(get "api.r$r.static.p99_ms")" "$b")
        log "round $r: static p99 during the CLI backup $(get "cli.r$r.p99_ratio")x, during the API backup $(get "api.r$r.p99_ratio")x the lower bracketing baseline"
    done
    collect cli "$ROUNDS"
    collect api "$ROUNDS"
    collect baseline $((ROUNDS + 1))
}

# ---------------------------------------------------------------- check
section_check() {
    local t0 rc=0
    fazt_down
    R[check.db_bytes]=$(db_bytes)
    t0=$(date +%s.%N)
    "$FAZT_BIN" db check --data "$DATA" >"$TMP/check.out" 2>"$TMP/check.err" || rc=$?
    R[check.s]=$(secs_since "$t0")
    R[check.rc]=$rc
    ((rc <= 1)) || die "fazt db check could not run (exit $rc): $(cat "$TMP/check.err" "$TMP/check.out")"
    R[check.result]=$( ((rc == 0)) && echo "passed" || echo "FAILED: $(grep -v -i ' ok' "$TMP/check.out" | head -3 | paste -sd';')")
    R[check.s_per_gib]=$(awk -v s="$(get check.s)" -v b="$(get check.db_bytes)" 'BEGIN { if (b > 0) printf "%.2f", s / (b / 1024 ^ 3); else printf "n/a" }')
    log "check: $(get check.s) s on $(mib $(($(get check.db_bytes) / 1024))) MiB ($(get check.s_per_gib) s/GiB), $(get check.result)"
}

for s in build backup check; do
    if selected "$s"; then "section_$s"; fi
done
fazt_down

# ---------------------------------------------------------------- summary
row() { printf '  %-54s %-30s %-12s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
mib_of() { num "${1:-}" && awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1024 ^ 2 }' || printf 'n/a'; }
phase_rows() { # NAME LABEL
    local n=$1
    row "$2: backup wall time, MB/s" "$(get "$n.backup_s") s, $(get "$n.mbs") MB/s" "" "copy $(mib_of "$(get "$n.file_bytes")"); rounds: $(get "$n.backup_s.all") s"
    row "   static p99 during it / lower bracketing baseline" "$(get "$n.static.p99_ms") ms, $(get "$n.p99_ratio")x" "<= 1.5x" "$(verdict "$(get "$n.p99_ratio")" '<=' 1.5); rounds: $(get "$n.p99_ratio.all"); $(get "$n.static.rps") req/s"
    row "   failed (non-2xx + socket errors) / shed" "$(get "$n.failed") / $(get "$n.shed")" "0 / 0" "$(verdict "$(get "$n.failed")" '<=' 0) / $(verdict "$(get "$n.shed")" '<=' 0)"
    row "   /track during it: req/s, p99" "$(get "$n.track.rps"), $(get "$n.track.p99_ms") ms" "" "204s $(get "$n.track.lua.n204") (all rounds), events dropped $(get "$n.dropped"); window $(get "$n.window_s") s"
}
summary() {
    echo
    echo "================ fazt backup benchmark ================"
    echo "machine: $MACHINE"
    echo "fazt: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree), $(date -u '+%Y-%m-%d %H:%M UTC'); $(get fazt.limits)"
    echo "loads: wrk -t1 -c16 GET / (2 KiB, static) + wrk -t1 -c4 POST /track, together, on loopback; client and server share the same $(nproc) cores"
    echo "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    if selected build; then
        echo "build: fill to $(mib_of "$TARGET_BYTES") with ${FILE_MIB} MiB random files, $DEPLOY_MB MiB a deploy"
        row "database reached (fazt.db + WAL)" "$(mib_of "$(get build.bytes)")" "" "from $(mib_of "$(get build.start_bytes)")"
        row "fill time ($(get build.deploys) deploys)" "$(get build.fill_s) s" "" ""
        row "analytics events stored ($EVENT_SECS s of /track)" "$(get build.events)" "" "acknowledged $(get build.track.n204)"
    fi
    if selected backup; then
        echo "backup of $(mib_of "$(get backup.db_bytes)") while both loads run (server running); $ROUNDS rounds, median shown, failures summed"
        row "baseline ($DURATION s, no backup): static p99" "$(get baseline.static.p99_ms) ms" "" "each: $(get baseline.static.p99_ms.all) ms; $(get baseline.static.rps) req/s"
        row "   /track: req/s, p99" "$(get baseline.track.rps), $(get baseline.track.p99_ms) ms" "" ""
        row "   failed (non-2xx + socket errors) / shed" "$(get baseline.failed) / $(get baseline.shed)" "0 / 0" ""
        phase_rows cli "fazt db backup FILE --data DIR"
        phase_rows api "POST /api/system/backup"
    fi
    if selected check; then
        echo "fazt db check --data DIR (server stopped)"
        row "wall time on $(mib_of "$(get check.db_bytes)")" "$(get check.s) s" "" "$(get check.result)"
        row "seconds per GiB" "$(get check.s_per_gib) s/GiB" "" ""
    fi
    echo "fazt exit (SIGTERM): $(get "$NAME.exit")"
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then echo "temp dir: $TMP"; fi
}
summary | tee "${BENCH_SUMMARY:-/dev/null}"
