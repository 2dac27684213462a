#!/usr/bin/env bash
# fazt VFS benchmark: cache-hit serving against nginx, a cache-miss workload with a small and a large
# cache, resident memory while a corpus 10x the cache churns through it, and memory while 20 clients
# stream one large file at once.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them). It exits non-zero, with the reason, when a step fails, and it
# reports (without stopping) wrong bytes, non-2xx answers and socket errors it sees along the way.
#
# Run as root on a Debian machine (it apt-get installs wrk and nginx if missing):
#     bench/bench_vfs.sh
#
# Environment:
#   BENCH_DURATION=10        seconds of each measured wrk run (a warm-up of BENCH_WARMUP=2 s precedes
#                            the measured runs of each workload)
#   BENCH_ROUNDS=3           measured runs per workload; the median round (by req/s) is reported.
#                            In the cache-hit section fazt and nginx rounds alternate.
#   BENCH_ONLY=LIST          comma list of sections, default all: hit,miss,churn,stream
#                              hit     1 KiB and 100 KiB file from the cache, fazt vs nginx (wrk -t2 -c64)
#                              miss    BENCH_MANY_FILES random files, small vs large cache
#                              churn   RSS while BENCH_CHURN_FILES x BENCH_CHURN_KIB KiB churn the small cache
#                              stream  BENCH_STREAM_CLIENTS concurrent downloads of a BENCH_STREAM_MIB MiB file
#   BENCH_SMALL_CACHE=8M     FAZT_CACHE_BYTES for the miss (small), churn and stream sections
#   BENCH_LARGE_CACHE=256M   FAZT_CACHE_BYTES for the hit and miss (large) sections
#   BENCH_MANY_FILES=5000    files of the miss site, sizes uniform in 2..20 KiB (~54 MiB)
#   BENCH_CHURN_FILES=1000   files of the churn site, BENCH_CHURN_KIB=80 KiB each
#   BENCH_CHURN_DURATION     seconds of random requests in the churn section (default 2 x BENCH_DURATION)
#   BENCH_STREAM_MIB=50      size of the streamed file; BENCH_STREAM_CLIENTS=20 downloads at once
#   BENCH_SEED=1             seed of the file sizes and of the random request order (vfs_random.lua)
#   BENCH_NO_BUILD=1         use the existing target/release/fazt
#   BENCH_KEEP_TMP=1         keep the temp dir (logs, wrk outputs, RSS samples, data) and print its path
#   BENCH_SUMMARY=PATH       also write the summary table to PATH
#   FAZT_*                   passed through to fazt (FAZT_CACHE_BYTES is set per section)
#
# Every load targets 127.0.0.1 and is bounded in time; every process started here is stopped on exit.
# Helpers: bench/lib.sh (shell functions shared with bench.sh: processes, results, tools, starting
# fazt and nginx), util.py (free ports, wrk parsing, health JSON), vfs_gen.py (files),
# vfs_random.lua (random paths for wrk), vfs_fetch.py (byte-exact checks, warm-up pass),
# vfs_rss.py (RSS sampling around a command), vfs_stream.py (concurrent downloads + RSS).
set -euo pipefail

SCRIPT_TAG=bench_vfs
# ROOT, HELPERS (bench/), DURATION, WARMUP and ROUNDS (from BENCH_*), and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY=${BENCH_ONLY:-hit,miss,churn,stream}
SMALL_CACHE=${BENCH_SMALL_CACHE:-8M}
LARGE_CACHE=${BENCH_LARGE_CACHE:-256M}
MANY_FILES=${BENCH_MANY_FILES:-5000}
CHURN_FILES=${BENCH_CHURN_FILES:-1000}
CHURN_KIB=${BENCH_CHURN_KIB:-80}
CHURN_SECS=${BENCH_CHURN_DURATION:-$((2 * DURATION))}
STREAM_MIB=${BENCH_STREAM_MIB:-50}
STREAM_CLIENTS=${BENCH_STREAM_CLIENTS:-20}
SEED=${BENCH_SEED:-1}

for s in ${ONLY//,/ }; do
    case $s in hit|miss|churn|stream) ;; *) die "unknown BENCH_ONLY section '$s' (hit,miss,churn,stream)";; esac
done
for v in DURATION CHURN_SECS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 2 ]] || die "$v must be an integer >= 2 (seconds)"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer (seconds)"
for v in ROUNDS MANY_FILES CHURN_FILES CHURN_KIB STREAM_MIB STREAM_CLIENTS SEED; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be an integer >= 1"
done

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-vfs.XXXXXX")
install_traps

# ---------------------------------------------------------------- results
PROBLEMS=()
problem() { PROBLEMS+=("$*"); log "PROBLEM: $*"; }

# ---------------------------------------------------------------- tools and build

# ---------------------------------------------------------------- fazt
DATA=$TMP/fazt-data
FAZT_PID=
TOKEN=

# start_fazt LABEL CACHE_BYTES: a fresh fazt process on the shared data dir, FAZT_CACHE_BYTES=CACHE.
# Sets FAZT_PID, PUBLIC, ADMIN, FAZT_LABEL; R[LABEL.cache_limit] etc. from its health JSON.
start_fazt() {
    local label=$1 cache=$2 code
    log "starting fazt '$label' (FAZT_CACHE_BYTES=$cache)"
    FAZT_LABEL=$label
    FAZT_CACHE_BYTES=$cache launch_fazt "$DATA" "$TMP/fazt-$label.out" "$TMP/fazt-$label.err" "fazt ($label)"
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://$PUBLIC/health") ||
        die "fazt ($label): GET /health failed; stderr: $(tail -n 20 "$TMP/fazt-$label.err")"
    [[ $code == 200 ]] || die "fazt ($label): /health answered HTTP $code"
    health "$label.start"
    R[$label.cache_limit]=$(get "$label.start.limits.cache_bytes")
    R[$label.max_cached]=$(get "$label.start.limits.max_cached_file_bytes")
    R[$label.rss_start_kib]=$(rss_kib "$FAZT_PID")
    log "fazt '$label' pid $FAZT_PID public $PUBLIC admin $ADMIN; cache limit $(get "$label.cache_limit") B, largest cached file $(get "$label.max_cached") B"
}

# health PREFIX: GET /api/system/health on the admin listener, flattened into R[PREFIX.*]
health() {
    python3 "$HELPERS/util.py" json-kv "http://$ADMIN/api/system/health" "Authorization: Bearer $TOKEN" \
        >"$TMP/health-$1.kv" 2>"$TMP/health-$1.err" ||
        die "GET /api/system/health failed ($1): $(cat "$TMP/health-$1.err")"
    kv_into "$1" "$TMP/health-$1.kv"
}

fazt_alive() { # WHEN: die with fazt's stderr if the current fazt process is gone
    alive "$FAZT_PID" && return 0
    local rc=0
    wait "$FAZT_PID" 2>/dev/null || rc=$?
    forget_pid "$FAZT_PID"
    die "fazt ($FAZT_LABEL) exited (status $rc) $1. stderr:
$(tail -n 40 "$TMP/fazt-$FAZT_LABEL.err")"
}

stop_fazt() {
    fazt_alive "before it was stopped"
    R[$FAZT_LABEL.rss_end_kib]=$(rss_kib "$FAZT_PID")
    stop_pid "$FAZT_PID"
    R[$FAZT_LABEL.exit]="status $STOP_RC after ${STOP_SECS}s"
    [[ $STOP_RC == 0 ]] || problem "fazt ($FAZT_LABEL) exited with status $STOP_RC on SIGTERM"
    FAZT_PID=
}

# check_files LABEL SITE DIR [SAMPLE]: every file (or SAMPLE random ones) of DIR served byte-exact.
check_files() {
    local label=$1 site=$2 dir=$3 sample=${4:-0}
    spawn_wait python3 "$HELPERS/vfs_fetch.py" --port "${PUBLIC##*:}" --host-header "$site.localhost" \
        --dir "$dir" --sample "$sample" --seed "$SEED" >"$TMP/fetch-$label.kv" 2>"$TMP/fetch-$label.err" || true
    kv_into "$label" "$TMP/fetch-$label.kv"
    [[ -s $TMP/fetch-$label.kv ]] || die "vfs_fetch.py ($label) failed: $(cat "$TMP/fetch-$label.err")"
    log "$label: $(get "$label.ok")/$(get "$label.checked") files byte-exact in $(get "$label.seconds") s (statuses $(get "$label.statuses"))"
    if [[ $(get "$label.ok") != "$(get "$label.checked")" ]]; then
        problem "$label: only $(get "$label.ok") of $(get "$label.checked") files of site $site served exactly; mismatches $(get "$label.mismatches"), errors $(get "$label.errors"); first: $(get "$label.first_problem")"
    fi
}

# ---------------------------------------------------------------- wrk
# run_wrk NAME DURATION WRK_ARGS...: one run of wrk -t2 -c64 into R[NAME.*]; with a fazt process
# running, also the cache counters' deltas over the run from its health JSON.
run_wrk() {
    local name=$1 dur=$2 k
    shift 2
    if [[ -n $FAZT_PID ]]; then health "$name.h0"; fi
    spawn_wait timeout $((dur + 30)) wrk -t2 -c64 -d"${dur}s" --timeout 5s --latency "$@" \
        >"$TMP/wrk-$name.txt" 2>&1 || die "wrk ($name) failed: $(tail -5 "$TMP/wrk-$name.txt")"
    python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-$name.txt" >"$TMP/wrk-$name.kv"
    kv_into "$name" "$TMP/wrk-$name.kv"
    if [[ -n $FAZT_PID ]]; then
        fazt_alive "during wrk run $name"
        health "$name.h1"
        for k in hits misses evictions streamed_bytes; do
            R[$name.$k]=$(($(get "$name.h1.cache.$k") - $(get "$name.h0.cache.$k")))
        done
        R[$name.hit_ratio]=$(awk -v h="${R[$name.hits]}" -v m="${R[$name.misses]}" \
            'BEGIN { if (h + m > 0) printf "%.3f", h / (h + m); else printf "n/a" }')
    fi
    log "$name: $(get "$name.rps") req/s, p99 $(get "$name.p99_ms") ms, non-2xx $(get "$name.non2xx"), socket errors $(get "$name.socket_errors")$([[ -n $FAZT_PID ]] && printf ', hit ratio %s (hits %s, misses %s)' "$(get "$name.hit_ratio")" "$(get "$name.hits")" "$(get "$name.misses")")"
    [[ $(get "$name.non2xx") == 0 ]] || problem "wrk $name: $(get "$name.non2xx") non-2xx responses"
    [[ $(get "$name.socket_errors") == 0 ]] || problem "wrk $name: socket errors ($(get "$name.socket_errors_detail"))"
}

warm() { # DURATION WRK_ARGS...: unmeasured wrk run
    local dur=$1
    shift
    ((dur > 0)) || return 0
    spawn_wait timeout $((dur + 30)) wrk -t2 -c64 -d"${dur}s" --timeout 5s "$@" >/dev/null 2>&1 || true
}

# pick_median NAME: R[NAME.*] from the round NAME.rK with the median req/s; R[NAME.rps_all]
pick_median() {
    median_round "$1" rps requests p50_ms p99_ms non2xx socket_errors hits misses evictions streamed_bytes hit_ratio
}

# ---------------------------------------------------------------- start
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temp dir $TMP; sections: $ONLY; wrk ${WARMUP}s warm-up + $ROUNDS x ${DURATION}s; load avg $LOAD_START"
ensure_tools hit
build_fazt

MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r)"
FAZT_VERSION=$("$FAZT_BIN" --version 2>&1 | head -1)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null | wc -l)
"$FAZT_BIN" probe >"$TMP/probe.txt" 2>&1 || die "fazt probe failed: $(cat "$TMP/probe.txt")"
PROBE_MEM=$(grep -m1 -E '^\s*memory limit' "$TMP/probe.txt" | sed -E 's/^\s+//; s/\s+/ /g')
PROBE_SQLITE=$(grep -E '^\s*SQLite (cache|mmap)' "$TMP/probe.txt" | sed -E 's/^\s+//; s/\s+/ /g' | paste -sd';' | sed 's/;/; /g')

# ---------------------------------------------------------------- data
SITES=$TMP/sites
mkdir -p "$SITES" "$DATA"
chmod 755 "$TMP" "$SITES"
gen() { # DIR COUNT MIN MAX -> R[gen.DIR.*]
    local d=$1
    python3 "$HELPERS/vfs_gen.py" "$SITES/$d" "$2" "$3" "$4" --seed "$SEED" >"$TMP/gen-$d.kv" 2>"$TMP/gen-$d.err" ||
        die "vfs_gen.py $d failed: $(cat "$TMP/gen-$d.err")"
    kv_into "gen.$d" "$TMP/gen-$d.kv"
}
import_site() { # NAME: publish $SITES/NAME as site NAME
    "$FAZT_BIN" site import "$1" "$SITES/$1" --data "$DATA" >"$TMP/import-$1.out" 2>&1 ||
        die "fazt site import $1 failed: $(cat "$TMP/import-$1.out")"
    log "import $1: $(tail -1 "$TMP/import-$1.out")"
}
t0=$(date +%s)
log "generating test files"
if selected hit; then
    mkdir -p "$SITES/hot"
    head -c 1024 /dev/urandom >"$SITES/hot/1k.bin"
    head -c 102400 /dev/urandom >"$SITES/hot/100k.bin"
    chmod 644 "$SITES"/hot/*
    import_site hot
fi
if selected miss; then gen many "$MANY_FILES" 2048 20480; import_site many; fi
if selected churn; then gen churn "$CHURN_FILES" $((CHURN_KIB * 1024)) $((CHURN_KIB * 1024)); import_site churn; fi
if selected stream; then
    mkdir -p "$SITES/stream"
    STREAM_BYTES=$((STREAM_MIB * 1024 * 1024))
    head -c "$STREAM_BYTES" /dev/urandom >"$SITES/stream/big.bin"
    [[ $(stat -c %s "$SITES/stream/big.bin") == "$STREAM_BYTES" ]] || die "could not write $STREAM_BYTES bytes of test data"
    STREAM_SHA=$(sha256sum "$SITES/stream/big.bin" | cut -d' ' -f1)
    import_site stream
fi
R[data.db_bytes]=$(stat -c %s "$DATA/fazt.db" 2>/dev/null || echo n/a)
log "test data ready in $(($(date +%s) - t0)) s (database $(get data.db_bytes) bytes)"
"$FAZT_BIN" key create bench-vfs --data "$DATA" >"$TMP/key.out" 2>&1 || die "fazt key create failed: $(cat "$TMP/key.out")"
TOKEN=$(grep -oE 'fzt_[A-Za-z0-9_]+' "$TMP/key.out" | tail -1)
[[ -n $TOKEN ]] || die "no token in the output of 'fazt key create': $(cat "$TMP/key.out")"

LUA=$HELPERS/vfs_random.lua
[[ -r $LUA ]] || die "$LUA missing"

# ---------------------------------------------------------------- 1. cache hits: fazt vs nginx
if selected hit || selected miss; then start_fazt large "$LARGE_CACHE"; fi
if selected hit; then
    # The static setup of start_nginx in bench/lib.sh, as in bench/bench.sh.
    start_nginx "$SITES/hot" /1k.bin 'default_type application/octet-stream;'
    for f in 1k 100k; do
        for srv in fazt nginx; do
            if [[ $srv == fazt ]]; then url="http://$PUBLIC/$f.bin"; hdr=(-H 'Host: hot.localhost'); else url="http://127.0.0.1:$NGX_PORT/$f.bin"; hdr=(); fi
            code=$(curl -sS --max-time 10 -D "$TMP/check-$srv-$f.headers" -o "$TMP/check-$srv-$f.body" -w '%{http_code}' \
                "${hdr[@]+"${hdr[@]}"}" "$url") || die "$srv: GET $url failed"
            [[ $code == 200 ]] || die "$srv: $url answered HTTP $code"
            cmp -s "$TMP/check-$srv-$f.body" "$SITES/hot/$f.bin" || problem "$srv: /$f.bin body differs from the file"
            R[$srv.$f.head_bytes]=$(stat -c %s "$TMP/check-$srv-$f.headers")
        done
    done
    for f in 1k 100k; do
        log "cache-hit serving, /$f.bin: fazt and nginx alternate, ${WARMUP}s warm-up each, then $ROUNDS rounds"
        warm "$WARMUP" -H 'Host: hot.localhost' "http://$PUBLIC/$f.bin"
        warm "$WARMUP" "http://127.0.0.1:$NGX_PORT/$f.bin"
        for ((r = 1; r <= ROUNDS; r++)); do
            run_wrk "fazt_$f.r$r" "$DURATION" -H 'Host: hot.localhost' "http://$PUBLIC/$f.bin"
            NGX_FAZT_PID=$FAZT_PID
            FAZT_PID= # no health deltas for nginx runs
            run_wrk "nginx_$f.r$r" "$DURATION" "http://127.0.0.1:$NGX_PORT/$f.bin"
            FAZT_PID=$NGX_FAZT_PID
        done
        pick_median "fazt_$f"
        pick_median "nginx_$f"
    done
    R[nginx.rss_kib]=$(python3 "$HELPERS/util.py" rss-tree "$NGX_PID")
    R[large.rss_after_hit_kib]=$(rss_kib "$FAZT_PID")
    stop_pid "$NGX_PID"
fi

# ---------------------------------------------------------------- 2. cache misses: small vs large cache
if selected miss; then
    MANY_DIR=$SITES/many
    # Large cache (the server from section 1): one pass over every file fills the cache and checks
    # each file byte for byte; then the same random workload as below.
    check_files many_large_fill many "$MANY_DIR"
    health large.filled
    log "large cache after the fill pass: $(get large.filled.cache.entries) entries, $(get large.filled.cache.bytes_used) bytes, evictions $(get large.filled.cache.evictions)"
    WRK_MANY=(-H 'Host: many.localhost' -s "$LUA" "http://$PUBLIC/" -- "$MANY_FILES" "$SEED")
    warm "$WARMUP" "${WRK_MANY[@]}"
    for ((r = 1; r <= ROUNDS; r++)); do run_wrk "miss_large.r$r" "$DURATION" "${WRK_MANY[@]}"; done
    pick_median miss_large
    R[large.rss_after_miss_kib]=$(rss_kib "$FAZT_PID")
    stop_fazt

    start_fazt small "$SMALL_CACHE"
    check_files many_small_pre many "$MANY_DIR" 200
    WRK_MANY=(-H 'Host: many.localhost' -s "$LUA" "http://$PUBLIC/" -- "$MANY_FILES" "$SEED")
    warm "$WARMUP" "${WRK_MANY[@]}"
    for ((r = 1; r <= ROUNDS; r++)); do run_wrk "miss_small.r$r" "$DURATION" "${WRK_MANY[@]}"; done
    pick_median miss_small
    check_files many_small_post many "$MANY_DIR" 500
    R[small.rss_after_miss_kib]=$(rss_kib "$FAZT_PID")
    health small.end
    stop_fazt
elif selected hit; then
    stop_fazt
fi

# ---------------------------------------------------------------- 3. memory under churn
if selected churn; then
    start_fazt churn "$SMALL_CACHE"
    check_files churn_pre churn "$SITES/churn" 50
    log "churn: $CHURN_FILES x $CHURN_KIB KiB at random for ${CHURN_SECS}s, VmRSS every 0.5 s"
    health churn.h0
    spawn_wait python3 "$HELPERS/vfs_rss.py" --pid "$FAZT_PID" --interval 0.5 --before 1 --after 2 \
        --samples "$TMP/rss-churn.tsv" --cmd-out "$TMP/wrk-churn.txt" -- \
        timeout $((CHURN_SECS + 30)) wrk -t2 -c64 -d"${CHURN_SECS}s" --timeout 5s --latency \
        -H 'Host: churn.localhost' -s "$LUA" "http://$PUBLIC/" -- "$CHURN_FILES" "$SEED" \
        >"$TMP/rss-churn.kv" 2>"$TMP/rss-churn.err" || die "vfs_rss.py (churn) failed: $(cat "$TMP/rss-churn.err")"
    kv_into churn "$TMP/rss-churn.kv"
    [[ $(get churn.cmd_rc) == 0 ]] || die "wrk (churn) failed: $(tail -5 "$TMP/wrk-churn.txt")"
    fazt_alive "during the churn run"
    python3 "$HELPERS/util.py" wrk-parse "$TMP/wrk-churn.txt" >"$TMP/wrk-churn.kv"
    kv_into churn "$TMP/wrk-churn.kv"
    health churn.h1
    for k in hits misses evictions; do R[churn.$k]=$(($(get "churn.h1.cache.$k") - $(get "churn.h0.cache.$k"))); done
    [[ $(get churn.non2xx) == 0 ]] || problem "churn: $(get churn.non2xx) non-2xx responses"
    [[ $(get churn.socket_errors) == 0 ]] || problem "churn: socket errors ($(get churn.socket_errors_detail))"
    check_files churn_post churn "$SITES/churn" 200
    R[churn.bound_kib]=$(($(get churn.cache_limit) / 1024 + 32 * 1024))
    log "churn: $(get churn.rps) req/s, peak VmRSS $(mib "$(get churn.rss_peak_kib)") MiB (anon $(mib "$(get churn.anon_peak_kib)"), file $(mib "$(get churn.file_peak_kib)")), bound $(mib "$(get churn.bound_kib)") MiB, evictions $(get churn.evictions)"
    stop_fazt
fi

# ---------------------------------------------------------------- 4. streaming a large file
if selected stream; then
    start_fazt stream "$SMALL_CACHE"
    sleep 1
    log "streaming: $STREAM_CLIENTS clients fetch the $STREAM_MIB MiB file at once, VmRSS every 0.2 s"
    health stream.h0
    spawn_wait python3 "$HELPERS/vfs_stream.py" --url "http://$PUBLIC/big.bin" --host-header stream.localhost \
        --pid "$FAZT_PID" --clients "$STREAM_CLIENTS" --expect-bytes "$STREAM_BYTES" --expect-sha256 "$STREAM_SHA" \
        --save "$TMP/stream-client0.body" --samples "$TMP/rss-stream.tsv" --interval 0.2 --before 2 --after 2 \
        >"$TMP/stream.kv" 2>"$TMP/stream.err" || die "vfs_stream.py failed: $(cat "$TMP/stream.err")"
    kv_into stream "$TMP/stream.kv"
    fazt_alive "during the streaming run"
    health stream.h1
    R[stream.streamed]=$(($(get stream.h1.cache.streamed_bytes) - $(get stream.h0.cache.streamed_bytes)))
    [[ $(get stream.ok_clients) == "$STREAM_CLIENTS" ]] ||
        problem "streaming: $(get stream.ok_clients) of $STREAM_CLIENTS clients got exactly $STREAM_BYTES bytes with HTTP 200 (statuses $(get stream.statuses), sizes $(get stream.sizes)): $(get stream.problems)"
    [[ $(get stream.sha_ok) == 1 ]] || problem "streaming: client 0's body is not the file: $(get stream.problems)"
    [[ $(get stream.etag_ok) == 1 ]] || problem "streaming: ETag $(get stream.etag) is not the file's sha256 $STREAM_SHA"
    R[stream.growth_kib]=$(($(get stream.rss_peak_kib) - $(get stream.rss_before_kib)))
    R[stream.anon_growth_kib]=$(($(get stream.anon_peak_kib) - $(get stream.anon_before_kib)))
    R[stream.allow_kib]=$((4 * 1024 + STREAM_CLIENTS * 128))
    log "streaming: $(get stream.ok_clients)/$STREAM_CLIENTS ok in $(get stream.wall_s) s ($(get stream.mib_per_s) MiB/s), VmRSS $(mib "$(get stream.rss_before_kib)") -> $(mib "$(get stream.rss_peak_kib)") -> $(mib "$(get stream.rss_after_kib)") MiB"
    stop_fazt
fi

# ---------------------------------------------------------------- summary
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
row() { printf '  %-50s %-26s %-16s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
summary() {
    local f r
    echo
    echo "================ fazt VFS benchmark ================"
    echo "machine: $MACHINE"
    echo "fazt: $FAZT_VERSION, commit $GIT_REV$( ((GIT_DIRTY > 0)) && printf ' + %s modified tracked files' "$GIT_DIRTY"), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "fazt probe: $PROBE_MEM"
    echo "            $PROBE_SQLITE"
    echo "load avg: start $LOAD_START, end $LOAD_END"
    echo "FAZT_* in the environment (besides FAZT_CACHE_BYTES, set per section): $(env | grep -E '^FAZT_' | grep -v '^FAZT_CACHE_BYTES=' | sort | paste -sd' ' | grep . || echo none)"
    echo "wrk: -t2 -c64 keep-alive, ${WARMUP}s warm-up, then $ROUNDS x ${DURATION}s (median round shown); client and server share the same $(nproc) cores"
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    if selected hit; then
        echo "1. cache-hit serving, one site (FAZT_CACHE_BYTES=$LARGE_CACHE)      req/s (p99 latency)"
        for f in 1k 100k; do
            r=$(ratio "$(get "fazt_$f.rps")" "$(get "nginx_$f.rps")")
            row "fazt /$f.bin" "$(get "fazt_$f.rps") ($(get "fazt_$f.p99_ms") ms)" "" "rounds $(get "fazt_$f.rps_all"); hit ratio $(get "fazt_$f.hit_ratio"), head $(get "fazt.$f.head_bytes") B"
            row "nginx $(get nginx.version) /$f.bin (2 workers, access_log off)" "$(get "nginx_$f.rps") ($(get "nginx_$f.p99_ms") ms)" "" "rounds $(get "nginx_$f.rps_all"); head $(get "nginx.$f.head_bytes") B"
            row "  fazt / nginx, $f" "${r}x" ">= 0.8x" "$(verdict "$r" '>=' 0.8)"
        done
    fi
    if selected miss; then
        echo "2. cache-miss workload: $(get gen.many.files) files, $(mib $(($(get gen.many.bytes) / 1024))) MiB, uniform random paths (vfs_random.lua, seed $SEED)"
        row "small cache ($SMALL_CACHE): req/s (p99)" "$(get miss_small.rps) ($(get miss_small.p99_ms) ms)" "" "rounds $(get miss_small.rps_all); non-2xx $(get miss_small.non2xx), sock err $(get miss_small.socket_errors)"
        row "  hit ratio (health delta, median round)" "$(get miss_small.hit_ratio)" "" "hits $(get miss_small.hits), misses $(get miss_small.misses), evictions $(get miss_small.evictions)"
        row "large cache ($LARGE_CACHE, after a fill pass): req/s (p99)" "$(get miss_large.rps) ($(get miss_large.p99_ms) ms)" "" "rounds $(get miss_large.rps_all); non-2xx $(get miss_large.non2xx), sock err $(get miss_large.socket_errors)"
        row "  hit ratio (health delta, median round)" "$(get miss_large.hit_ratio)" "" "hits $(get miss_large.hits), misses $(get miss_large.misses), evictions $(get miss_large.evictions); $(get large.filled.cache.entries) entries after fill"
        r=$(ratio "$(get miss_small.rps)" "$(get miss_large.rps)")
        row "  small / large" "${r}x" "" ""
        row "  byte-exact checks (fill pass; small before/after)" "$(get many_large_fill.ok)/$(get many_large_fill.checked); $(get many_small_pre.ok)/$(get many_small_pre.checked); $(get many_small_post.ok)/$(get many_small_post.checked)"
        row "  VmRSS after: small / large" "$(mib "$(get small.rss_after_miss_kib)") / $(mib "$(get large.rss_after_miss_kib)") MiB"
    fi
    if selected churn; then
        echo "3. memory under churn: $(get gen.churn.files) x $CHURN_KIB KiB ($(mib $(($(get gen.churn.bytes) / 1024))) MiB) random for ${CHURN_SECS}s, FAZT_CACHE_BYTES=$SMALL_CACHE, VmRSS every 0.5 s"
        row "peak VmRSS" "$(mib "$(get churn.rss_peak_kib)") MiB" "<= $(mib "$(get churn.bound_kib)") MiB" "$(verdict "$(mib "$(get churn.rss_peak_kib)")" '<=' "$(mib "$(get churn.bound_kib)")") (cache limit $(mib $(($(get churn.cache_limit) / 1024))) MiB + 32 MiB)"
        row "  peak RssAnon / RssFile (separate maxima)" "$(mib "$(get churn.anon_peak_kib)") / $(mib "$(get churn.file_peak_kib)") MiB" "" "RssAnon alone $(verdict "$(mib "$(get churn.anon_peak_kib)")" '<=' "$(mib "$(get churn.bound_kib)")") the bound; RssFile = mapped file pages (binary, SQLite mmap)"
        row "  VmRSS before / after the churn" "$(mib "$(get churn.rss_before_kib)") / $(mib "$(get churn.rss_after_kib)") MiB" "" "$(get churn.samples_during) samples during the load"
        row "  load: req/s (p99)" "$(get churn.rps) ($(get churn.p99_ms) ms)" "" "non-2xx $(get churn.non2xx), sock err $(get churn.socket_errors); hits $(get churn.hits), misses $(get churn.misses), evictions $(get churn.evictions)"
        row "  byte-exact checks before / after" "$(get churn_pre.ok)/$(get churn_pre.checked); $(get churn_post.ok)/$(get churn_post.checked)"
    fi
    if selected stream; then
        echo "4. streaming: $STREAM_CLIENTS curl clients at once, one $STREAM_MIB MiB file (random bytes), FAZT_CACHE_BYTES=$SMALL_CACHE, VmRSS every 0.2 s"
        row "VmRSS before / peak during / after" "$(mib "$(get stream.rss_before_kib)") / $(mib "$(get stream.rss_peak_kib)") / $(mib "$(get stream.rss_after_kib)") MiB" "" "$(get stream.samples_during) samples during"
        row "  growth (peak - before)" "$(mib "$(get stream.growth_kib)") MiB" "<= $(mib "$(get stream.allow_kib)") MiB" "$(verdict "$(mib "$(get stream.growth_kib)")" '<=' "$(mib "$(get stream.allow_kib)")") (4 MiB + $STREAM_CLIENTS x 128 KiB)"
        row "  RssAnon before / peak / after" "$(mib "$(get stream.anon_before_kib)") / $(mib "$(get stream.anon_peak_kib)") / $(mib "$(get stream.anon_after_kib)") MiB" "" "anon growth $(mib "$(get stream.anon_growth_kib)") MiB: $(verdict "$(mib "$(get stream.anon_growth_kib)")" '<=' "$(mib "$(get stream.allow_kib)")") the allowance"
        row "  RssFile before / peak" "$(mib "$(get stream.file_before_kib)") / $(mib "$(get stream.file_peak_kib)") MiB" "" "mapped file pages (binary, SQLite mmap)"
        row "  wall time / total throughput" "$(get stream.wall_s) s / $(get stream.mib_per_s) MiB/s" "" "per client $(get stream.client_s_min)-$(get stream.client_s_max) s; streamed_bytes delta $(get stream.streamed)"
        row "  clients with HTTP 200 and exactly $STREAM_BYTES B" "$(get stream.ok_clients)/$STREAM_CLIENTS" "all" "statuses $(get stream.statuses); sizes $(get stream.sizes)"
        row "  client 0 sha256 / ETag = sha256" "$( [[ $(get stream.sha_ok) == 1 ]] && echo match || echo MISMATCH ) / $( [[ $(get stream.etag_ok) == 1 ]] && echo match || echo MISMATCH )" "" "sha256 ${STREAM_SHA:0:16}..."
    fi
    echo "fazt processes on SIGTERM: $(for l in large small churn stream; do if [[ -n ${R[$l.exit]:-} ]]; then printf '%s %s\n' "$l" "${R[$l.exit]}"; fi; done | paste -sd';' | sed 's/;/; /g')"
    if ((${#PROBLEMS[@]})); then
        echo "PROBLEMS seen:"
        printf '  - %s\n' "${PROBLEMS[@]}"
    else
        echo "no problems seen (all bodies byte-exact, no non-2xx, no socket errors, fazt exited cleanly)"
    fi
    echo "===================================================="
}
summary | tee "${BENCH_SUMMARY:-/dev/null}"
