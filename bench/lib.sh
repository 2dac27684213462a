# shellcheck shell=bash disable=SC2034,SC2153 # globals set here are read by the sourcing scripts
# Shell functions shared by the benchmark scripts in bench/ (bench.sh, bench_vfs.sh, bench_analytics.sh,
# bench_deploy.sh, admin_latency.sh, bench_js.sh); sourced, never run.
#
# The sourcing script sets SCRIPT_TAG, its name without .sh, before `source` (log lines read
# "[SCRIPT_TAG HH:MM:SS] ...", errors "SCRIPT_TAG.sh: ..."), and later ONLY (comma list of the
# selected sections, see selected), TMP (the temp dir; then it calls install_traps) and FAZT_BIN
# (before launch_fazt). Sourcing sets the settings common to both scripts, defines the functions and
# the result table R, and installs the ERR trap.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPERS=$ROOT/bench
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
export PYTHONDONTWRITEBYTECODE=1

log() { printf '[%s %s] %s\n' "$SCRIPT_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\n%s.sh: ERROR: %s\n' "$SCRIPT_TAG" "$*" >&2; exit 1; }
trap 'rc=$?; printf "%s.sh: command failed (exit %s) at line %s: %s\n" "$SCRIPT_TAG" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

selected() { [[ ",$ONLY," == *",$1,"* ]]; }

# ---------------------------------------------------------------- processes and cleanup
PIDS=()

alive() { # pid: running and not a zombie
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $st && $st != Z ]]
}

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# stop_pid PID [GRACE]: SIGTERM, up to GRACE seconds (default 10) to exit, then SIGKILL (also its
# direct children, e.g. nginx workers). Sets STOP_RC to the exit status, STOP_SECS to the time it
# took and STOP_KILLED to 1 if SIGKILL was needed (else 0).
stop_pid() {
    local pid=$1 grace=${2:-10} kids i t0 k
    STOP_RC=0
    STOP_KILLED=0
    t0=$(date +%s.%N)
    kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < grace * 10; i++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            log "pid $pid did not stop within $grace s of SIGTERM; sending SIGKILL"
            STOP_KILLED=1
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    for k in $kids; do if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi; done
    wait "$pid" 2>/dev/null || STOP_RC=$?
    STOP_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    forget_pid "$pid"
}

# spawn_wait CMD...: run CMD as a tracked child and wait for it. `wait` returns as soon as a signal
# arrives, so SIGTERM/SIGINT to the script stops a measurement at once (cleanup stops the child)
# instead of after it.
spawn_wait() {
    local p rc=0
    "$@" &
    p=$!
    PIDS+=("$p")
    wait "$p" || rc=$?
    forget_pid "$p"
    return "$rc"
}

cleanup() {
    local rc=$? p
    trap - ERR
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do stop_pid "$p" || true; done
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}

# install_traps: once TMP exists, every tracked process is stopped and TMP removed on exit.
install_traps() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# wait_for_line FILE REGEX PID WHAT ERRFILE: up to 10 s for a line matching REGEX in FILE.
wait_for_line() {
    local file=$1 re=$2 pid=$3 what=$4 errf=$5 i rc
    for ((i = 0; i < 100; i++)); do
        grep -qE "$re" "$file" 2>/dev/null && return 0
        if ! alive "$pid"; then
            wait "$pid" 2>/dev/null && rc=0 || rc=$?
            forget_pid "$pid"
            die "$what exited (status $rc) before printing '$re'. stdout:
$(tail -n 20 "$file" 2>/dev/null)
stderr:
$(tail -n 40 "$errf" 2>/dev/null)"
        fi
        sleep 0.1
    done
    die "$what did not print '$re' within 10 s. stdout:
$(tail -n 20 "$file" 2>/dev/null)
stderr:
$(tail -n 40 "$errf" 2>/dev/null)"
}

# ---------------------------------------------------------------- results
declare -gA R=()
kv_into() { # PREFIX FILE: key=value lines into R[PREFIX.key]
    local k v
    while IFS="=" read -r k v; do if [[ -n $k ]]; then R[$1.$k]=$v; fi; done <"$2"
}
get() { printf '%s' "${R[$1]:-n/a}"; }
num() { [[ ${1:-} =~ ^[0-9]+$ ]]; }
mib() { num "${1:-}" && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || printf 'n/a'; }
ratio() { awk -v a="${1:-x}" -v b="${2:-x}" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "n/a" }'; }
# verdict VALUE OP TARGET -> "meets" / "MISSES" / "-" (informational only)
verdict() {
    awk -v v="${1:-x}" -v op="$2" -v t="$3" 'BEGIN {
        if (v !~ /^-?[0-9.]+$/) { printf "-"; exit }
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
        printf "%s", ok ? "meets" : "MISSES" }'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo n/a; }

# median_round NAME KEY...: R[NAME.KEY] from the round NAME.rK (K = 1..ROUNDS) with the median
# req/s (the machine is shared: one noisy run should not decide); R[NAME.rps_all] lists every round.
median_round() {
    local name=$1 r k all=() med
    shift
    for ((r = 1; r <= ROUNDS; r++)); do all+=("$(get "$name.r$r.rps") $r"); done
    med=$(printf '%s\n' "${all[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p" | cut -d' ' -f2)
    for k in "$@"; do R[$name.$k]=${R[$name.r$med.$k]:-n/a}; done
    R[$name.rps_all]=$(printf '%s\n' "${all[@]}" | cut -d' ' -f1 | paste -sd' ')
}

# round_ratio A B KEY: R[A/B.KEY] = the median over rounds of A's KEY / B's KEY in the same round
# (KEY rps or per_cpu_s); R[A/B.KEY.all] lists the per-round ratios.
round_ratio() {
    local a=$1 b=$2 k=$3 r all=()
    for ((r = 1; r <= ROUNDS; r++)); do all+=("$(ratio "$(get "$a.r$r.$k")" "$(get "$b.r$r.$k")")"); done
    R[$a/$b.$k.all]=${all[*]}
    R[$a/$b.$k]=$(printf '%s\n' "${all[@]}" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p")
}

# ---------------------------------------------------------------- tools
# ensure_tools SECTION: python3, curl and wrk, and nginx if SECTION is selected; apt-get installs
# the missing ones when run as root. Sets NGINX_BIN.
ensure_tools() {
    local missing=()
    command -v python3 >/dev/null || die "python3 is required"
    command -v curl >/dev/null || missing+=(curl)
    command -v wrk >/dev/null || missing+=(wrk)
    if selected "$1" && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then missing+=(nginx); fi
    if ((${#missing[@]})); then
        [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; run as root (it installs them) or install them"
        log "installing ${missing[*]} with apt-get"
        apt-get update -qq >"$TMP/apt.log" 2>&1 || die "apt-get update failed: $(tail -5 "$TMP/apt.log")"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$TMP/apt.log" 2>&1 ||
            die "apt-get install ${missing[*]} failed: $(tail -5 "$TMP/apt.log")"
    fi
    NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
}

# build_fazt: target/release/fazt into FAZT_BIN, unless BENCH_NO_BUILD=1 (then it must exist) or
# BENCH_FAZT_BIN names another binary (say, a build of an older commit, for a before/after).
build_fazt() {
    FAZT_BIN=${BENCH_FAZT_BIN:-$ROOT/target/release/fazt}
    if [[ ${BENCH_NO_BUILD:-0} != 1 && -z ${BENCH_FAZT_BIN:-} ]]; then
        command -v cargo >/dev/null || die "cargo is required (install Rust with rustup)"
        cargo_build_release
    fi
    [[ -x $FAZT_BIN ]] || die "$FAZT_BIN not found (build it, or unset BENCH_NO_BUILD)"
}

cargo_build_release() {
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
}

# ---------------------------------------------------------------- servers
# BENCH_PIN=1: every server on CPU 0 and the load generator on CPU 1, so a server's throughput is
# what one core gives it, not what it wins from the client in the scheduler (fazt's probe then
# sees one CPU and runs one core thread). Expand as "${SERVER_PIN[@]+"${SERVER_PIN[@]}"}".
SERVER_PIN=()
CLIENT_PIN=()
if [[ ${BENCH_PIN:-0} == 1 ]]; then
    SERVER_PIN=(taskset -c 0)
    CLIENT_PIN=(taskset -c 1)
fi

# launch_fazt DATA OUT ERR WHAT: `fazt server start` on DATA (--domain localhost) with a public and an
# admin listener on free loopback ports, stdout to OUT, stderr to ERR; waits for both "listening on"
# lines (WHAT names the process in errors). Sets FAZT_PID (tracked), PUBLIC and ADMIN (host:port).
launch_fazt() {
    local data=$1 out=$2 err=$3 what=$4
    "${SERVER_PIN[@]+"${SERVER_PIN[@]}"}" "$FAZT_BIN" server start --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --domain localhost \
        --data "$data" >"$out" 2>"$err" &
    FAZT_PID=$!
    PIDS+=("$FAZT_PID")
    wait_for_line "$out" 'listening on http://[^ ]+ \(public\)' "$FAZT_PID" "$what" "$err"
    wait_for_line "$out" 'listening on http://[^ ]+ \(admin\)' "$FAZT_PID" "$what" "$err"
    PUBLIC=$(sed -nE 's|.*listening on http://([^ ]+) \(public\).*|\1|p' "$out" | head -1)
    ADMIN=$(sed -nE 's|.*listening on http://([^ ]+) \(admin\).*|\1|p' "$out" | head -1)
}

# start_fazt NAME: a fresh fazt on $TMP/NAME-data (FAZT_PID, PUBLIC, ADMIN, TOKEN; its limits line in
# R[NAME.limits]), for the scripts that keep their results in R (bench_js.sh, bench_ws.sh).
start_fazt() {
    local name=$1 i
    mkdir -p "$TMP/$name-data"
    launch_fazt "$TMP/$name-data" "$TMP/$name.out" "$TMP/$name.err" "fazt ($name)"
    TOKEN=
    for ((i = 0; i < 20; i++)); do
        TOKEN=$(grep -m1 'owner API key' "$TMP/$name.out" | awk '{ print $NF }' || true)
        [[ -n $TOKEN ]] && break
        sleep 0.1
    done
    [[ -n $TOKEN ]] || die "fazt ($name) printed no 'owner API key'; stdout: $(cat "$TMP/$name.out")"
    R[$name.limits]=$(grep -m1 -o 'with [0-9]* core thread.*' "$TMP/$name.err" 2>/dev/null || true)
    log "fazt ($name) pid $FAZT_PID public $PUBLIC admin $ADMIN"
}

# metrics PREFIX NAME...: the metrics NAME (see js_util.py) of the fazt start_fazt started, into
# R[PREFIX.NAME].
metrics() {
    local prefix=$1
    shift
    python3 "$HELPERS/js_util.py" metrics "http://$ADMIN/metrics" "$TOKEN" "$@" >"$TMP/metrics.kv" ||
        die "reading fazt's /metrics failed"
    kv_into "$prefix" "$TMP/metrics.kv"
}

# stop_fazt NAME: SIGTERM, its exit status in R[NAME.exit].
stop_fazt() {
    alive "$FAZT_PID" || die "fazt ($1) exited during the benchmark; stderr: $(tail -n 40 "$TMP/$1.err")"
    stop_pid "$FAZT_PID" 30
    R[$1.exit]="status $STOP_RC after ${STOP_SECS}s"
}

# start_nginx DOCROOT PROBE_PATH HTTP_DIRECTIVE...: nginx on a free loopback port serving DOCROOT
# from $TMP/nginx, each HTTP_DIRECTIVE (e.g. 'default_type text/html;') on a line of its http block.
# A strong, ordinary static setup: 2 workers (one per core), no access log, sendfile, file metadata
# cached, keep-alive without a request cap so wrk never reconnects mid-run. Waits (up to 10 s) until
# PROBE_PATH answers. Sets NGX, NGX_PORT, NGX_PID (tracked) and R[nginx.version].
start_nginx() {
    local docroot=$1 probe=$2 user_line="" directives i
    shift 2
    directives=$(printf '    %s\n' "$@")
    NGX=$TMP/nginx
    mkdir -p "$NGX/logs" "$NGX/tmp"
    NGX_PORT=$(python3 "$HELPERS/util.py" free-port)
    if [[ $EUID -eq 0 ]]; then user_line="user root root;"; fi
    cat >"$NGX/nginx.conf" <<EOF
$user_line
worker_processes 2;
daemon off;
master_process on;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
$directives
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=64 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path $NGX/tmp/body;
    proxy_temp_path $NGX/tmp/proxy;
    fastcgi_temp_path $NGX/tmp/fastcgi;
    uwsgi_temp_path $NGX/tmp/uwsgi;
    scgi_temp_path $NGX/tmp/scgi;
    server {
        listen 127.0.0.1:$NGX_PORT;
        server_name _;
        root $docroot;
        index index.html;
    }
}
EOF
    "$NGINX_BIN" -t -q -p "$NGX/" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" >"$NGX/test.log" 2>&1 ||
        die "nginx config test failed: $(cat "$NGX/test.log" "$NGX/logs/error.log" 2>/dev/null)"
    "${SERVER_PIN[@]+"${SERVER_PIN[@]}"}" "$NGINX_BIN" -p "$NGX/" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" >"$NGX/stdout.log" 2>&1 &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    for ((i = 0; i < 100; i++)); do
        curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$NGX_PORT$probe" && break
        alive "$NGX_PID" || die "nginx exited: $(cat "$NGX/stdout.log" "$NGX/logs/error.log" 2>/dev/null)"
        sleep 0.1
    done
    R[nginx.version]=$("$NGINX_BIN" -v 2>&1 | sed 's|.*nginx/||')
}
