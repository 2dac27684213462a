#!/usr/bin/env bash
# fazt junk-analytics benchmark (issue #11): what 500k /track events with unique strings cost.
#
# One fazt on a fresh data dir (release build) gets a little real traffic, rests, and then
# BENCH_JUNK_EVENTS events from BENCH_JUNK_SOURCES loopback client addresses (127.0.0.2, .3, ...),
# every event with its own path, referrer host, tag and utm_source/medium/campaign (every fourth
# with its own event type), over keep-alive connections with requests pipelined
# (bench/junk_load.py). Then it prints:
#   RSS         before the burst (after a rest), peak during it, once the writer has committed
#               everything, and after BENCH_JUNK_IDLE more seconds idle (target: back within 32 MiB
#               of before)
#   stats       GET /api/stats as the dashboard asks it (bucket=day, the default last 7 days),
#               for all sites and for the junk site: median of BENCH_JUNK_STATS_CALLS calls one
#               after another (target: <= 50 ms)
#   lists       the size of the /api/domains and /api/tags answers (default page)
#   storage     the size of the database (fazt.db + its WAL), rows of `strings` and of the
#               roll-up tables
# Numbers are printed, never asserted: the script exits 0 when every step ran. It exits non-zero
# when a step fails (fazt not starting, the writer not draining within BENCH_DRAIN_TIMEOUT, a
# non-zero exit on SIGTERM).
#
# Run as root or not, on a machine with python3 (stdlib only):
#     bench/junk.sh
#     BENCH_FAZT_BIN=/path/to/older/fazt bench/junk.sh      # the same run on another build
#
# Environment:
#   BENCH_JUNK_EVENTS=500000   events sent          BENCH_JUNK_SOURCES=4   client addresses
#   BENCH_JUNK_CONNS=4         connections per address
#   BENCH_JUNK_PIPELINE=32     requests in flight per connection
#   BENCH_JUNK_SITES=1         sites the junk is spread over (>1: s0.junk.example, s1..., through
#                              the wildcard *.junk.example in FAZT_TRACK_DOMAINS)
#   BENCH_JUNK_IDLE=10         seconds idle before the last RSS reading
#   BENCH_JUNK_STATS_CALLS=9   /api/stats calls per measurement (the median is printed)
#   BENCH_DRAIN_TIMEOUT=600    seconds the writer gets to commit everything after the burst
#   BENCH_FAZT_BIN=PATH        measure this binary (no build)
#   BENCH_NO_BUILD=1           use the existing target/release/fazt
#   BENCH_KEEP_TMP=1           keep the temp dir (data dir, logs) and print its path
#   FAZT_*                     passed through to fazt. The per-client ingestion limit
#                              (FAZT_INGEST_RATE, 20 events/s an address by default) would turn
#                              most of this junk into 429s; the script sets FAZT_INGEST_RATE=0
#                              (off) unless it is given, to measure what gets through. A build
#                              without that setting ignores the variable.
#
# Every load targets 127.0.0.1 and is bounded (a fixed number of events); every process started
# here is stopped on exit. Helpers: bench/lib.sh, junk_load.py, analytics_util.py.
set -euo pipefail

SCRIPT_TAG=junk
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EVENTS=${BENCH_JUNK_EVENTS:-500000}
SOURCES=${BENCH_JUNK_SOURCES:-4}
CONNS=${BENCH_JUNK_CONNS:-4}
PIPELINE=${BENCH_JUNK_PIPELINE:-32}
SITES=${BENCH_JUNK_SITES:-1}
IDLE=${BENCH_JUNK_IDLE:-10}
STATS_CALLS=${BENCH_JUNK_STATS_CALLS:-9}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-600}
export FAZT_INGEST_RATE=${FAZT_INGEST_RATE:-0}
export FAZT_TRACK_DOMAINS=${FAZT_TRACK_DOMAINS:-junk.example,*.junk.example,real.example}

command -v python3 >/dev/null || die "python3 is required"
build_fazt
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-junk.XXXXXX")
install_traps
DATA=$TMP/data
OUT=$TMP/fazt.out
ERR=$TMP/fazt.err

sql() { # SQL: one value from the database, read-only
    python3 -c 'import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(con.execute(sys.argv[2]).fetchone()[0])' "$DATA/fazt.db" "$1"
}
file_kib() { local total=0 f; for f in "$@"; do [[ -f $f ]] && total=$((total + $(stat -c %s "$f"))); done; echo $((total / 1024)); }
kv() { sed -n "s/^$1=//p" "$2" | head -1; }

log "fazt: $FAZT_BIN ($("$FAZT_BIN" --version 2>/dev/null || echo '?'))"
launch_fazt "$DATA" "$OUT" "$ERR" fazt
TOKEN=$(grep -m1 'owner API key' "$OUT" | awk '{ print $NF }' || true)
[[ -n $TOKEN ]] || die "fazt printed no 'owner API key ...: TOKEN' line: $(cat "$OUT")"
PORT=${PUBLIC##*:}

drain() { # wait until the writer has committed everything accepted
    python3 "$HELPERS/analytics_util.py" drain --admin "$ADMIN" --token "$TOKEN" \
        --after "$(date +%s.%N)" --timeout "$DRAIN_TIMEOUT" >"$TMP/drain.kv"
    [[ $(kv timed_out "$TMP/drain.kv") == 0 ]] || die "the writer did not commit everything within $DRAIN_TIMEOUT s: $(cat "$TMP/drain.kv")"
}

# A little real traffic first, so "before" is a server that has done some work.
log "warm-up: 2000 events of a real site"
python3 "$HELPERS/junk_load.py" send --port "$PORT" --events 2000 --sources 1 --conns 1 \
    --pipeline 8 --domain real.example >"$TMP/warm.kv"
drain
sleep "$IDLE"
RSS_BEFORE=$(rss_kib "$FAZT_PID")
log "RSS before: $RSS_BEFORE KiB"

log "junk: $EVENTS events from $SOURCES addresses x $CONNS connections, $PIPELINE in flight each"
python3 "$HELPERS/junk_load.py" send --port "$PORT" --events "$EVENTS" --sources "$SOURCES" \
    --conns "$CONNS" --pipeline "$PIPELINE" --domain junk.example --sites "$SITES" \
    --pid "$FAZT_PID" >"$TMP/load.kv"
log "sent: $(kv statuses "$TMP/load.kv") in $(kv secs "$TMP/load.kv") s"
T_DRAIN0=$(date +%s.%N)
drain
DRAIN_SECS=$(awk -v a="$T_DRAIN0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
RSS_DRAINED=$(rss_kib "$FAZT_PID")
sleep "$IDLE"
RSS_IDLE=$(rss_kib "$FAZT_PID")
PEAK=$(kv rss_peak_kib "$TMP/load.kv")
[[ $RSS_DRAINED =~ ^[0-9]+$ && $RSS_DRAINED -gt ${PEAK:-0} ]] && PEAK=$RSS_DRAINED

get() { # NAME PATH: time GET PATH on the admin listener
    python3 "$HELPERS/junk_load.py" get --admin "$ADMIN" --token "$TOKEN" --path "$2" \
        --count "$STATS_CALLS" >"$TMP/$1.kv"
}
log "timing /api/stats"
get stats_all "/api/stats?bucket=day"
get stats_site "/api/stats?bucket=day&site=junk.example"
get stats_hour "/api/stats?site=junk.example"
get domains "/api/domains"
get tags "/api/tags"

stop_pid "$FAZT_PID" 60
EXIT_RC=$STOP_RC
DB_KIB=$(file_kib "$DATA/fazt.db" "$DATA/fazt.db-wal")
STRINGS=$(sql "SELECT count(*) FROM strings")
DIM_ROWS=$(sql "SELECT (SELECT count(*) FROM rollup_hourly_dims) + (SELECT count(*) FROM rollup_daily_dims) + (SELECT count(*) FROM rollup_monthly_dims)")
EVENT_ROWS=$(sql "SELECT count(*) FROM events")

cat <<EOF

== bench/junk.sh: $EVENTS junk /track events, $SOURCES client addresses, $SITES site(s) ==
fazt                      $FAZT_BIN
sent                      $(kv statuses "$TMP/load.kv") in $(kv secs "$TMP/load.kv") s ($(kv rate "$TMP/load.kv")/s); writer drained $DRAIN_SECS s later
events stored             $EVENT_ROWS (2000 of them warm-up)
RSS before                $(mib "$RSS_BEFORE") MiB
RSS peak                  $(mib "$PEAK") MiB
RSS drained               $(mib "$RSS_DRAINED") MiB
RSS after ${IDLE} s idle       $(mib "$RSS_IDLE") MiB   (target: within 32 MiB of before)
/api/stats all sites      $(kv median_ms "$TMP/stats_all.kv") ms median of $STATS_CALLS (min $(kv min_ms "$TMP/stats_all.kv"), max $(kv max_ms "$TMP/stats_all.kv")), $(kv bytes "$TMP/stats_all.kv") bytes   (target: <= 50 ms)
/api/stats junk site      $(kv median_ms "$TMP/stats_site.kv") ms median (bucket=day), $(kv median_ms "$TMP/stats_hour.kv") ms (bucket=hour)
/api/domains              $(kv bytes "$TMP/domains.kv") bytes, $(kv median_ms "$TMP/domains.kv") ms
/api/tags                 $(kv bytes "$TMP/tags.kv") bytes, $(kv median_ms "$TMP/tags.kv") ms
database                  $(mib "$DB_KIB") MiB (fazt.db + WAL), $STRINGS strings, $DIM_ROWS dimension roll-up rows
exit on SIGTERM           $EXIT_RC
EOF
[[ $EXIT_RC == 0 ]] || die "fazt exited $EXIT_RC on SIGTERM"
