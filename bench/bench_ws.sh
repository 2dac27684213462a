#!/usr/bin/env bash
# fazt WebSocket benchmark (issue #15): fan-out latency of one site's hub, memory of idle clients,
# and echo throughput against a Node.js `ws` echo server.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them). It exits non-zero, with the reason, when a step fails.
#
# Run as root on a Debian machine (it apt-get installs curl, wrk and nodejs if missing, and npm
# installs the `ws` package into bench/node_modules, which git ignores):
#     bench/bench_ws.sh
#
# Sections (BENCH_ONLY=LIST, comma list, default all: fanout,idle,echo); each starts a fresh fazt
# (--domain localhost) and deploys its sites (an index.html each) with `fazt deploy`. The clients
# are bench/ws_load.js (Node.js, one process, `ws`), on the same machine as fazt:
#   fanout  site `fan`: BENCH_WS_FANOUT_CLIENTS (1,000) receivers and one sender; the sender sends
#           one 1 KiB text a second for BENCH_DURATION s, carrying its send time; each receiver
#           notes the delivery latency (sender and receivers share one clock): p50 / p99 / max over
#           every delivery, deliveries / expected, and fazt's CPU seconds over the run.
#   idle    site `idle`: fazt's RSS before and with BENCH_WS_IDLE_CLIENTS (10,000) idle clients
#           connected (spread over source addresses 127.0.0.1..127.0.0.N when one address has too
#           few ephemeral ports), and fazt_ws_connections. Target: <= 64 MiB above idle.
#   echo    BENCH_WS_ECHO_CLIENTS (32) sites `e-01`..: one client each (a hub with one client is an
#           echo), each sending a 128-byte text and awaiting it, again and again; and the same
#           clients against one Node.js `ws` echo server (bench/ws_load.js server). The two take
#           turns for BENCH_ROUNDS rounds of BENCH_DURATION s; the median round, and the median of
#           the per-round ratios. FAZT_WS_RATE is 1,000,000 here (the default 100/s would close
#           these clients by design). Target: >= 1.0x Node.
#
# Environment:
#   BENCH_DURATION=10 BENCH_WARMUP=2 BENCH_ROUNDS=3   as in bench.sh (seconds; rounds, median shown)
#   BENCH_WS_FANOUT_CLIENTS=1000  BENCH_WS_IDLE_CLIENTS=10000  BENCH_WS_ECHO_CLIENTS=32
#   BENCH_WS_SOURCES=N       client source addresses 127.0.0.1..N (default: as many as the
#                            ephemeral port range needs)
#   BENCH_PIN=1              servers (fazt, the Node.js echo server) on CPU 0, clients on CPU 1
#   BENCH_NO_BUILD=1         use the existing target/release/fazt (BENCH_FAZT_BIN: another binary)
#   BENCH_KEEP_TMP=1         keep the temp dir (logs, outputs, sites) and print its path
#   BENCH_SUMMARY=PATH       also write the summary table to PATH
#   FAZT_*                   passed through to fazt; FAZT_MAX_CONNECTIONS, FAZT_CONNS_PER_CLIENT,
#                            FAZT_WS_MAX and FAZT_WS_PER_SITE default to 30000 here, FAZT_AUTO_PAGEVIEWS
#                            to 0, FAZT_DEPLOY_RATE to 100000
#
# Every load targets 127.0.0.1 (sources 127.0.0.x) and is bounded in time; every process started
# here is stopped on exit. Helpers: bench/lib.sh (processes, results, tools, starting fazt), util.py
# (CPU and RSS of a process), js_util.py (metrics), ws_load.js (the clients and the Node server).
set -euo pipefail

SCRIPT_TAG=bench_ws
# ROOT, HELPERS (bench/), DURATION, WARMUP and ROUNDS (from BENCH_*), and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY=${BENCH_ONLY:-fanout,idle,echo}
FANOUT_CLIENTS=${BENCH_WS_FANOUT_CLIENTS:-1000}
IDLE_CLIENTS=${BENCH_WS_IDLE_CLIENTS:-10000}
ECHO_CLIENTS=${BENCH_WS_ECHO_CLIENTS:-32}
WS_NPM_VERSION=8.23.1
export FAZT_MAX_CONNECTIONS=${FAZT_MAX_CONNECTIONS:-30000}
export FAZT_CONNS_PER_CLIENT=${FAZT_CONNS_PER_CLIENT:-$FAZT_MAX_CONNECTIONS}
export FAZT_WS_MAX=${FAZT_WS_MAX:-30000}
export FAZT_WS_PER_SITE=${FAZT_WS_PER_SITE:-$FAZT_WS_MAX}
export FAZT_AUTO_PAGEVIEWS=${FAZT_AUTO_PAGEVIEWS:-0}
export FAZT_DEPLOY_RATE=${FAZT_DEPLOY_RATE:-100000}

for s in ${ONLY//,/ }; do
    case $s in fanout|idle|echo) ;; *) die "unknown BENCH_ONLY section '$s' (fanout,idle,echo)";; esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 ]] || die "BENCH_DURATION must be an integer >= 2 (seconds)"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be an integer (seconds)"
for v in ROUNDS FANOUT_CLIENTS IDLE_CLIENTS ECHO_CLIENTS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be an integer >= 1"
done
((ECHO_CLIENTS <= 999)) || die "BENCH_WS_ECHO_CLIENTS must be <= 999"

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-ws.XXXXXX")
install_traps
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
log "temp dir $TMP; sections: $ONLY; duration ${DURATION}s; open files limit $(ulimit -n)"
(($(ulimit -n) > IDLE_CLIENTS + 1000)) || ! selected idle ||
    die "the open files limit $(ulimit -n) is too low for $IDLE_CLIENTS clients (run as root)"

ensure_tools none
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    [[ $EUID -eq 0 ]] || die "node or npm is missing; run as root (it installs them) or install them"
    log "installing nodejs and npm with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >>"$TMP/apt.log" 2>&1 ||
        die "apt-get install nodejs npm failed: $(tail -5 "$TMP/apt.log")"
fi
# The `ws` package, pinned, in bench/node_modules (ignored by git), installed once.
if [[ $(node -p "try { require('$HELPERS/node_modules/ws/package.json').version } catch { '' }") != "$WS_NPM_VERSION" ]]; then
    log "npm install ws@$WS_NPM_VERSION into bench/node_modules"
    npm install --prefix "$HELPERS" --no-save --no-package-lock --no-audit --no-fund "ws@$WS_NPM_VERSION" \
        >"$TMP/npm.log" 2>&1 || die "npm install ws failed: $(tail -5 "$TMP/npm.log")"
fi
build_fazt
MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"

# sources N: how many source addresses 127.0.0.x N connections need (ephemeral ports per address,
# with a quarter left for everything else on the machine).
sources() {
    local lo hi
    if [[ -n ${BENCH_WS_SOURCES:-} ]]; then echo "$BENCH_WS_SOURCES"; return; fi
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
    awk -v n="$1" -v p="$(((hi - lo) * 3 / 4))" 'BEGIN { s = int((n + p - 1) / p); print (s < 1) ? 1 : (s > 250 ? 250 : s) }'
}

# ---------------------------------------------------------------- fazt, sites, metrics

# deploy NAME: a site NAME with one index.html, by `fazt deploy`; then its /ws answers 101.
deploy() {
    local dir=$TMP/sites/$1 status
    mkdir -p "$dir"
    printf '<h1>%s</h1>\n' "$1" >"$dir/index.html"
    "$FAZT_BIN" deploy --site "$1" --server "http://$ADMIN" --token "$TOKEN" "$dir" \
        >"$TMP/deploy-$1.log" 2>&1 || die "fazt deploy $1 failed: $(tail -5 "$TMP/deploy-$1.log")"
    status=$(upgrade_status "$1.localhost")
    [[ $status == 101 ]] || die "GET /ws of $1 answered '$status', not 101 (does this fazt have WebSockets?)"
}

# upgrade_status HOST: the status of one WebSocket upgrade of HOST's /ws (the connection is closed
# right after the status line; curl would wait on the open socket).
upgrade_status() {
    local line=""
    exec 3<>"/dev/tcp/${PUBLIC%:*}/${PUBLIC##*:}"
    printf 'GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' "$1" >&3
    read -r -t 5 line <&3 || true
    exec 3<&-
    line=${line#HTTP/1.1 }
    printf '%s' "${line%% *}"
}

CLOSED_NAMES=()
for r in slow oversized rate idle protocol; do CLOSED_NAMES+=("fazt_ws_closed_total{reason=\"$r\"}"); done
# closed PREFIX: "slow 3, rate 1" from R[PREFIX.fazt_ws_closed_total:*] (non-zero ones).
closed() {
    local r v out=()
    for r in slow oversized rate idle protocol; do
        v=$(get "$1.fazt_ws_closed_total:$r")
        [[ $v == 0 || $v == n/a ]] || out+=("$r $v")
    done
    local IFS=,
    printf '%s' "${out[*]:-none}"
}

cpu() { python3 "$HELPERS/util.py" cpu-tree "$1"; }

# ---------------------------------------------------------------- fanout
section_fanout() {
    local before after
    start_fazt fanout
    deploy fan
    before=$(cpu "$FAZT_PID")
    log "fanout: $FANOUT_CLIENTS receivers, one 1 KiB message a second for ${DURATION}s"
    SERVER_PID=$FAZT_PID spawn_wait timeout $((DURATION + 120)) "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" node "$HELPERS/ws_load.js" fanout "ws://$PUBLIC/ws" "fan.localhost:${PUBLIC##*:}" \
        "$FANOUT_CLIENTS" "$DURATION" 1024 "$(sources "$FANOUT_CLIENTS")" >"$TMP/fanout.kv" 2>"$TMP/fanout.err" ||
        die "the fan-out client failed: $(tail -5 "$TMP/fanout.err")"
    after=$(cpu "$FAZT_PID")
    kv_into fanout "$TMP/fanout.kv"
    R[fanout.cpu_s]=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }')
    metrics fanout 'fazt_ws_messages_total{direction="in"}' 'fazt_ws_messages_total{direction="out"}' "${CLOSED_NAMES[@]}"
    log "fanout: delivered $(get fanout.delivered)/$(get fanout.expected), p50 $(get fanout.p50_ms) ms, p99 $(get fanout.p99_ms) ms, fazt CPU $(get fanout.cpu_s) s"
    stop_fazt fanout
}

# ---------------------------------------------------------------- idle
section_idle() {
    local pid
    start_fazt idle
    deploy idle
    sleep 2
    R[idle.rss_before_kib]=$(rss_kib "$FAZT_PID")
    R[idle.sources]=$(sources "$IDLE_CLIENTS")
    log "idle: $IDLE_CLIENTS clients from $(get idle.sources) source address(es)"
    "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" node "$HELPERS/ws_load.js" idle "ws://$PUBLIC/ws" "idle.localhost:${PUBLIC##*:}" "$IDLE_CLIENTS" "$(get idle.sources)" 600 \
        >"$TMP/idle.out" 2>"$TMP/idle.err" &
    pid=$!
    PIDS+=("$pid")
    # Opening 10,000 connections takes a while: up to 300 s for the "ready" line.
    for ((i = 0; i < 3000; i++)); do
        grep -q '^ready' "$TMP/idle.out" && break
        alive "$pid" || die "the idle client exited: $(tail -5 "$TMP/idle.err")"
        sleep 0.1
    done
    grep -q '^ready' "$TMP/idle.out" || die "the idle clients did not connect within 300 s"
    R[idle.ready]=$(grep -m1 '^ready' "$TMP/idle.out" | cut -d' ' -f2-)
    sleep 3
    R[idle.rss_with_kib]=$(rss_kib "$FAZT_PID")
    R[idle.node_rss_kib]=$(rss_kib "$pid")
    metrics idle fazt_ws_connections
    R[idle.growth_kib]=$(awk -v a="$(get idle.rss_before_kib)" -v b="$(get idle.rss_with_kib)" 'BEGIN { print b - a }')
    R[idle.per_client_b]=$(awk -v g="$(get idle.growth_kib)" -v n="$(get idle.fazt_ws_connections)" \
        'BEGIN { if (n + 0 > 0) printf "%.0f", g * 1024 / n; else printf "n/a" }')
    log "idle: $(get idle.ready); fazt_ws_connections $(get idle.fazt_ws_connections); RSS $(mib "$(get idle.rss_before_kib)") -> $(mib "$(get idle.rss_with_kib)") MiB"
    stop_pid "$pid"
    stop_fazt idle
}

# ---------------------------------------------------------------- echo
# echo_run NAME URL HOSTS SECONDS PID: one run of the echo clients into R[NAME.*], with the
# server's CPU seconds.
echo_run() {
    local name=$1 before after
    before=$(cpu "$5")
    spawn_wait timeout $(($4 + 60)) "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" node "$HELPERS/ws_load.js" echo "$2" "$3" "$4" 128 >"$TMP/$name.kv" 2>"$TMP/$name.err" ||
        die "the echo client ($name) failed: $(tail -5 "$TMP/$name.err")"
    after=$(cpu "$5")
    kv_into "$name" "$TMP/$name.kv"
    R[$name.rps]=$(get "$name.msgs_s")
    R[$name.per_cpu_s]=$(awk -v n="$(get "$name.messages")" -v a="$before" -v b="$after" \
        'BEGIN { c = b - a; if (c > 0 && n + 0 > 0) printf "%.0f", n / c; else printf "n/a" }')
    log "$name: $(get "$name.msgs_s") msgs/s, p99 $(get "$name.p99_ms") ms, closed early $(get "$name.closed_early")"
}

section_echo() {
    local i name hosts=() node_pid node_url r
    FAZT_WS_RATE=${FAZT_WS_RATE:-1000000} start_fazt echo
    local fazt_pid=$FAZT_PID port=${PUBLIC##*:}
    for ((i = 1; i <= ECHO_CLIENTS; i++)); do
        name=$(printf 'e-%03d' "$i")
        deploy "$name"
        hosts+=("$name.localhost:$port")
    done
    log "deployed $ECHO_CLIENTS sites"
    "${SERVER_PIN[@]+"${SERVER_PIN[@]}"}" node "$HELPERS/ws_load.js" server >"$TMP/node.out" 2>"$TMP/node.err" &
    node_pid=$!
    PIDS+=("$node_pid")
    wait_for_line "$TMP/node.out" 'listening on ws://' "$node_pid" "node echo server" "$TMP/node.err"
    node_url=$(sed -nE 's|.*listening on (ws://[^ ]+).*|\1|p' "$TMP/node.out" | head -1)
    R[node.version]=$(node --version)
    local fazt_hosts node_hosts
    fazt_hosts=$(IFS=,; echo "${hosts[*]}")
    node_hosts=$(for ((i = 0; i < ECHO_CLIENTS; i++)); do printf '%s,' "${node_url#ws://}"; done)
    node_hosts=${node_hosts%,}
    if ((WARMUP > 0)); then
        echo_run warm.fazt "ws://$PUBLIC/ws" "$fazt_hosts" "$WARMUP" "$fazt_pid"
        echo_run warm.node "$node_url/" "$node_hosts" "$WARMUP" "$node_pid"
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then
            echo_run "fazt.r$r" "ws://$PUBLIC/ws" "$fazt_hosts" "$DURATION" "$fazt_pid"
            echo_run "node.r$r" "$node_url/" "$node_hosts" "$DURATION" "$node_pid"
        else
            echo_run "node.r$r" "$node_url/" "$node_hosts" "$DURATION" "$node_pid"
            echo_run "fazt.r$r" "ws://$PUBLIC/ws" "$fazt_hosts" "$DURATION" "$fazt_pid"
        fi
    done
    median_round fazt rps p50_ms p99_ms per_cpu_s closed_early mismatched
    median_round node rps p50_ms p99_ms per_cpu_s closed_early mismatched
    round_ratio fazt node rps
    round_ratio fazt node per_cpu_s
    FAZT_PID=$fazt_pid
    metrics echo "${CLOSED_NAMES[@]}"
    R[echo.rss_kib]=$(rss_kib "$fazt_pid")
    R[node.rss_kib]=$(rss_kib "$node_pid")
    stop_pid "$node_pid"
    stop_fazt echo
}

for s in fanout idle echo; do
    if selected "$s"; then "section_$s"; fi
done

# ---------------------------------------------------------------- summary
row() { printf '  %-52s %-26s %-14s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
summary() {
    echo
    echo "================ fazt WebSocket benchmark ================"
    echo "machine: $MACHINE"
    echo "fazt: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree), $FAZT_BIN, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "clients: bench/ws_load.js, Node.js $(node --version), ws $WS_NPM_VERSION, one process on the same $(nproc) cores as the servers; BENCH_PIN=${BENCH_PIN:-0}"
    echo "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    if selected fanout; then
        echo "fan-out: $FANOUT_CLIENTS receivers on one site, one 1 KiB text a second for ${DURATION}s"
        row "clients open / failed" "$(get fanout.open) / $(get fanout.failed)" "" "connected in $(get fanout.connect_s) s; $(get fanout.first_error)"
        row "delivered / expected" "$(get fanout.delivered) / $(get fanout.expected)" "" "closed early $(get fanout.closed_early), stray $(get fanout.stray)"
        row "delivery latency p50 / p99 / max" "$(get fanout.p50_ms) / $(get fanout.p99_ms) / $(get fanout.max_ms) ms"
        row "per message: first / last delivery (median)" "$(get fanout.first_p50_ms) / $(get fanout.last_p50_ms) ms" "" "the gap is mostly the one Node.js client process"
        row "fazt CPU: the run / the sending alone" "$(get fanout.cpu_s) / $(get fanout.server_cpu_send_s) s" "" "fazt_ws_messages_total in $(get fanout.fazt_ws_messages_total:in), out $(get fanout.fazt_ws_messages_total:out)"
        row "clients closed by fazt (fazt_ws_closed_total)" "$(closed fanout)"
    fi
    if selected idle; then
        echo "idle: $IDLE_CLIENTS idle clients on one site, from $(get idle.sources) source address(es)"
        row "clients" "$(get idle.ready)"
        row "fazt_ws_connections" "$(get idle.fazt_ws_connections)" "$IDLE_CLIENTS"
        row "fazt RSS: before / with the clients" "$(mib "$(get idle.rss_before_kib)") / $(mib "$(get idle.rss_with_kib)") MiB"
        row "RSS growth (per client)" "$(mib "$(get idle.growth_kib)") MiB ($(get idle.per_client_b) B)" "<= 64 MiB" "$(verdict "$(mib "$(get idle.growth_kib)")" '<=' 64); Node client RSS $(mib "$(get idle.node_rss_kib)") MiB"
    fi
    if selected echo; then
        echo "echo: $ECHO_CLIENTS clients, each a 128-byte text and await its echo; fazt one site per client; FAZT_WS_RATE=${FAZT_WS_RATE:-1000000}"
        row "fazt (one hub per client) msgs/s (p50 / p99 rtt)" "$(get fazt.rps) ($(get fazt.p50_ms) / $(get fazt.p99_ms) ms)" "" "rounds $(get fazt.rps_all); closed early $(get fazt.closed_early)"
        row "Node.js $(get node.version) ws echo server, 1 process" "$(get node.rps) ($(get node.p50_ms) / $(get node.p99_ms) ms)" "" "rounds $(get node.rps_all); closed early $(get node.closed_early)"
        row "fazt / Node.js (median of per-round ratios)" "$(get fazt/node.rps)x" ">= 1.0x" "$(verdict "$(get fazt/node.rps)" '>=' 1.0); rounds: $(get fazt/node.rps.all)"
        row "messages per server CPU-second: fazt / Node.js" "$(get fazt.per_cpu_s) / $(get node.per_cpu_s)" "" "ratio $(get fazt/node.per_cpu_s)x"
        row "clients closed by fazt (fazt_ws_closed_total)" "$(closed echo)"
        row "RSS after: fazt / Node.js" "$(mib "$(get echo.rss_kib)") / $(mib "$(get node.rss_kib)") MiB"
    fi
    echo "fazt exits (SIGTERM):$(for s in fanout idle echo; do if selected "$s"; then printf ' %s %s;' "$s" "$(get "$s.exit")"; fi; done)"
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then echo "temp dir: $TMP"; fi
}
summary | tee "${BENCH_SUMMARY:-/dev/null}"
