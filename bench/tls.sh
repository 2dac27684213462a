#!/usr/bin/env bash
# fazt HTTPS benchmark (issue #12): fazt's own TLS against nginx with TLS, same run, same ECDSA P-256
# certificate, same 1 KiB file. Numbers are printed, never asserted: the script exits non-zero only
# when a step fails (a server died, a client failed).
#
# Sections (BENCH_ONLY, comma list; default all, run in this order):
#   idle:  fazt's RSS with BENCH_TLS_IDLE idle TLS keep-alive connections, each after its handshake
#          and one GET, opened one at a time on the freshly started fazt; total RSS and the growth
#          per connection (target: <= 160 MB in all at 10,000). The connections come round-robin
#          from BENCH_TLS_IDLE_SOURCES loopback addresses (127.0.0.2, ...), so fazt's per-client
#          share (FAZT_CONNS_PER_CLIENT, default max connections / 16) sees many clients;
#   nginx: fazt against nginx (2 workers, TLS 1.2/1.3, shared session cache):
#          keep-alive: requests/s over TLS 1.3, `wrk -t2 -c64`, one file, connections kept open;
#          full handshakes/s: one request per connection, no session offered: two `openssl s_time
#                         -new` clients side by side (the handshake's client half costs about what
#                         the server's does, so these figures are bounded by the 2 shared CPUs);
#          resumed handshakes/s: one request per connection with wrk -H 'Connection: close' (wrk
#                         offers the session of its previous connection: fazt counts them resumed);
#   admin: GET /api/system/health over TLS on fazt's admin listener (--admin-listen --admin-tls),
#          one keep-alive connection, one request at a time every BENCH_ADMIN_INTERVAL_MS
#          (bench/latency.py --tls), p50/p99/max (target p99 <= 10 ms): alone, then while the public
#          TLS port is saturated by (a) `wrk -t2 -c128` keep-alive, (b) the same with
#          -H 'Connection: close' (a resumed handshake per request), (c) two `openssl s_time -new`
#          (a full handshake per request). The sampler starts 1 s into the load and stops 1 s
#          before it ends. fazt answers admin requests on its own admin thread, the public port on
#          its FAZT_THREADS core threads; the sampler is never pinned. Also shown per load: the
#          admin thread's CPU time and run-queue wait per wakeup (/proc/PID/task/TID/schedstat: a
#          wait that grows under load is CPU scheduling, not fazt's work), and the CPUs that other
#          processes on the machine used meanwhile (a shared machine's builds show up here).
#
#     bench/tls.sh                                   everything
#     BENCH_ONLY=idle bench/tls.sh                   RSS with 10,000 idle TLS connections
#     BENCH_ONLY=admin BENCH_ROUNDS=2 bench/tls.sh   admin latency under public TLS load
#
# Environment:
#   BENCH_ONLY=idle,nginx,admin        sections (see above)
#   BENCH_DURATION=10 BENCH_ROUNDS=3   seconds per load run, runs per server/load (alternating)
#   BENCH_TLS_IDLE=10000               idle connections for the memory figure
#   BENCH_TLS_IDLE_SOURCES=64          loopback source addresses they come from (0: 127.0.0.1 only)
#   BENCH_ADMIN_INTERVAL_MS=2          admin sampler pace
#   BENCH_ADMIN_LOADS="none keepalive close full"   the admin section's public loads (see above)
#   BENCH_SAMPLER_RT=1                 the admin sampler runs SCHED_FIFO (chrt -f 10; root): its own
#                                      wakeups on the busy CPUs then stay out of the figures
#   BENCH_CORE_NICE=N                  renice fazt's core threads (fazt-core-*) to N after start: a
#                                      what-if for giving the admin thread precedence over them
#   BENCH_CORE_BATCH=1                 the same what-if with SCHED_BATCH for the core threads
#                                      (chrt -b): they no longer preempt on wakeup, same CPU share
#   BENCH_PIN=1                        fazt and nginx on CPU 0, wrk and openssl on CPU 1 (lib.sh)
#   FAZT_THREADS                       fazt core threads: default 2 (1 with BENCH_PIN=1)
#   FAZT_*                             passed through to fazt
#   BENCH_NO_BUILD=1                   use the existing target/release/fazt
#   BENCH_KEEP_TMP=1                   keep the temp dir (logs, wrk output) and print its path
set -euo pipefail
SCRIPT_TAG=tls
source "$(dirname "$0")/lib.sh"

ONLY=${BENCH_ONLY:-idle,nginx,admin}
for sec in ${ONLY//,/ }; do
    case $sec in idle | nginx | admin) ;; *) die "unknown BENCH_ONLY section '$sec' (idle,nginx,admin)" ;; esac
done
IDLE=${BENCH_TLS_IDLE:-10000}
IDLE_SOURCES=${BENCH_TLS_IDLE_SOURCES:-64}
ADMIN_MS=${BENCH_ADMIN_INTERVAL_MS:-2}
read -ra ADMIN_LOADS <<<"${BENCH_ADMIN_LOADS:-none keepalive close full}"
for kind in "${ADMIN_LOADS[@]}"; do
    case $kind in none | keepalive | close | full) ;; *) die "unknown BENCH_ADMIN_LOADS entry '$kind' (none keepalive close full)" ;; esac
done
SAMPLER_PREFIX=()
if [[ ${BENCH_SAMPLER_RT:-0} == 1 ]]; then SAMPLER_PREFIX=(chrt -f 10); fi
CORE_NICE=${BENCH_CORE_NICE:-}
CORE_BATCH=${BENCH_CORE_BATCH:-0}
[[ -z $CORE_NICE || $CORE_NICE =~ ^-?[0-9]+$ ]] || die "BENCH_CORE_NICE must be an integer (a nice value)"
THREADS=${FAZT_THREADS:-$([[ ${BENCH_PIN:-0} == 1 ]] && echo 1 || echo 2)}
[[ $IDLE =~ ^[1-9][0-9]*$ ]] || die "BENCH_TLS_IDLE must be an integer >= 1"
[[ $IDLE_SOURCES =~ ^[0-9]+$ ]] && ((IDLE_SOURCES <= 250)) || die "BENCH_TLS_IDLE_SOURCES must be from 0 to 250"
((DURATION >= 4)) || die "BENCH_DURATION must be at least 4 (the admin sampler skips the first and last second)"
TMP=$(mktemp -d /tmp/fazt-tls.XXXXXX)
install_traps
ensure_tools nginx
command -v openssl >/dev/null || die "openssl is required"
build_fazt
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "certificate: ECDSA P-256, localhost and *.localhost"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj /CN=localhost \
    -addext 'subjectAltName=DNS:localhost,DNS:*.localhost' >"$TMP/openssl.log" 2>&1 ||
    die "openssl failed: $(cat "$TMP/openssl.log")"
mkdir -p "$TMP/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/index.html"

log "fazt: site 'bench' with the 1 KiB file, $THREADS core threads, TLS and admin TLS on free ports"
"$FAZT_BIN" site import bench "$TMP/www" --data "$TMP/data" >"$TMP/import.log" 2>&1 ||
    die "fazt site import failed: $(cat "$TMP/import.log")"
FAZT_THREADS=$THREADS FAZT_AUTO_PAGEVIEWS=0 "${SERVER_PIN[@]+"${SERVER_PIN[@]}"}" "$FAZT_BIN" server start \
    --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" \
    --admin-listen 127.0.0.1:0 --admin-tls --domain localhost --data "$TMP/data" >"$TMP/fazt.out" 2>"$TMP/fazt.err" &
FAZT_PID=$!
PIDS+=("$FAZT_PID")
wait_for_line "$TMP/fazt.out" 'listening on https://[^ ]+ \(tls\)' "$FAZT_PID" fazt "$TMP/fazt.err"
wait_for_line "$TMP/fazt.out" 'listening on https://[^ ]+ \(admin\)' "$FAZT_PID" fazt "$TMP/fazt.err"
FAZT_TLS=$(sed -nE 's|.*listening on https://([^ ]+) \(tls\).*|\1|p' "$TMP/fazt.out" | head -1)
FAZT_ADMIN=$(sed -nE 's|.*listening on https://([^ ]+) \(admin\).*|\1|p' "$TMP/fazt.out" | head -1)
TOKEN=$(sed -nE 's/^owner API key[^:]*: *(fzt_[A-Za-z0-9_]+).*/\1/p' "$TMP/fazt.out" | head -1)
[[ -n $TOKEN ]] || die "fazt printed no owner API key on its first start: $(cat "$TMP/fazt.out")"

fazt_alive() { # WHEN: die with fazt's stderr if the fazt process is gone
    alive "$FAZT_PID" || die "fazt exited $1. stderr:
$(tail -n 40 "$TMP/fazt.err")"
}

check() { # URL HOST: answered 200 with the 1 KiB file, or die
    local got
    got=$(curl -sk --max-time 5 -H "Host: $2" -o /dev/null -w '%{http_code} %{size_download}' "$1")
    [[ $got == "200 1024" ]] || die "$1 (Host: $2) answered '$got' (status, bytes), not the 1 KiB file"
}
# wrk's URLs name localhost (it resolves to 127.0.0.1 only): wrk sends the URL's host as SNI, and an
# IP address there is what browsers never send (rustls logs a warning for each such handshake).
FAZT_URL=https://localhost:${FAZT_TLS##*:}/
[[ $(getent ahosts localhost | awk '{ print $1 }' | sort -u) == 127.0.0.1 ]] ||
    die "localhost must resolve to 127.0.0.1 only (wrk connects to the first address): $(getent ahosts localhost | head -3)"
check "$FAZT_URL" bench.localhost
code=$(curl -sk --max-time 5 -o "$TMP/health.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "https://$FAZT_ADMIN/api/system/health") || die "GET /api/system/health over TLS on the admin listener failed"
[[ $code == 200 ]] || die "GET /api/system/health on the admin listener answered HTTP $code: $(head -c 300 "$TMP/health.json")"
# The threads run by now: the admin thread answered.
for task in /proc/"$FAZT_PID"/task/*; do
    [[ $(cat "$task/comm") == fazt-core-* ]] || continue
    if [[ -n $CORE_NICE ]]; then
        renice -n "$CORE_NICE" -p "${task##*/}" >/dev/null || die "renice of fazt's core thread ${task##*/} failed"
    fi
    if [[ $CORE_BATCH == 1 ]]; then
        chrt -b -p 0 "${task##*/}" >/dev/null || die "chrt -b of fazt's core thread ${task##*/} failed"
    fi
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ---------------------------------------------------------------- idle: RSS with many TLS connections
if selected idle; then
    log "idle memory: $IDLE TLS keep-alive connections to fazt from $IDLE_SOURCES source addresses"
    spawn_wait python3 "$HELPERS/tls_idle.py" --port "${FAZT_TLS##*:}" --pid "$FAZT_PID" --count "$IDLE" \
        --sources "$IDLE_SOURCES" >"$TMP/idle.kv" 2>"$TMP/idle.err" || die "tls_idle.py failed: $(tail -5 "$TMP/idle.err")"
    kv_into idle "$TMP/idle.kv"
    fazt_alive "during the idle-connections test"
    log "idle: opened $(get idle.opened) (failures $(get idle.failures)) in $(get idle.open_s) s, RSS $(get idle.rss_before_kib) -> $(get idle.rss_idle_kib) KiB"
    # fazt sees the connections closed a moment after the client exits; let it settle before loads.
    sleep 2
fi

# ---------------------------------------------------------------- nginx: fazt against nginx
# run URL [wrk args...]: one wrk -t2 -c64 run; prints requests/s.
run() {
    local url=$1
    shift
    "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" wrk -t2 -c64 -d"${DURATION}s" -H 'Host: bench.localhost' "$@" "$url" 2>&1 |
        awk '/Requests\/sec/ { printf "%d", $2 }'
}

# full HOST:PORT: full handshakes/s of two `openssl s_time -new` clients running together.
full() {
    local start end n=0 c
    start=$(date +%s.%N)
    for c in 1 2; do
        timeout $((DURATION + 30)) "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" openssl s_time -connect "$1" -new \
            -time "$DURATION" -www / >"$TMP/stime.$1.$c" 2>&1 &
    done
    wait
    end=$(date +%s.%N)
    for c in 1 2; do
        n=$((n + $(sed -nE 's|^([0-9]+) connections in [0-9.]+ real seconds.*|\1|p' "$TMP/stime.$1.$c" | head -1)))
    done
    awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%d", n / (e - s) }'
}

if selected nginx; then
    log "nginx: 2 workers, TLS 1.2/1.3, shared session cache, same certificate"
    start_nginx "$TMP/www" / 'default_type text/html;'
    NGX_TLS_PORT=$(python3 "$HELPERS/util.py" free-port)
    # A second server block with TLS, in the same nginx: the plain one only serves start_nginx's probe.
    sed -i "s|^    server {|    server {\n        listen 127.0.0.1:$NGX_TLS_PORT ssl;\n        ssl_certificate $TMP/cert.pem;\n        ssl_certificate_key $TMP/key.pem;\n        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache shared:SSL:10m;|" "$NGX/nginx.conf"
    "$NGINX_BIN" -p "$NGX/" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" -s reload
    for ((i = 0; i < 100; i++)); do
        curl -sk --max-time 1 -o /dev/null "https://127.0.0.1:$NGX_TLS_PORT/" && break
        sleep 0.1
    done
    NGX_URL=https://localhost:$NGX_TLS_PORT/
    check "$NGX_URL" bench.localhost

    declare -a FK FN FH NH FF NF
    for ((r = 1; r <= ROUNDS; r++)); do
        log "round $r/$ROUNDS: keep-alive"
        FK+=("$(run "$FAZT_URL")")
        FN+=("$(run "$NGX_URL")")
        log "round $r/$ROUNDS: full handshakes (openssl s_time -new)"
        FF+=("$(full "$FAZT_TLS")")
        NF+=("$(full "127.0.0.1:$NGX_TLS_PORT")")
        log "round $r/$ROUNDS: one request per connection, sessions resumed (wrk)"
        FH+=("$(run "$FAZT_URL" -H 'Connection: close')")
        NH+=("$(run "$NGX_URL" -H 'Connection: close')")
    done
    fazt_alive "during the nginx comparison"
    stop_pid "$NGX_PID"
fi

# ---------------------------------------------------------------- admin: admin latency under public load
# load_start KIND NAME: saturates fazt's public TLS port for DURATION s in the background (KIND
# keepalive, close or full; none starts nothing); sets LOAD_PID.
load_start() {
    local kind=$1 name=$2
    LOAD_PID=
    case $kind in
    none) return 0 ;;
    keepalive | close)
        local close=()
        if [[ $kind == close ]]; then close=(-H 'Connection: close'); fi
        timeout $((DURATION + 30)) "${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"}" wrk -t2 -c128 -d"${DURATION}s" --timeout 5s --latency \
            -H 'Host: bench.localhost' "${close[@]+"${close[@]}"}" "$FAZT_URL" >"$TMP/load-$name.txt" 2>&1 &
        ;;
    full) (full "$FAZT_TLS" >"$TMP/load-$name.hs") & ;;
    esac
    LOAD_PID=$!
    PIDS+=("$LOAD_PID")
}

# load_done NAME: waits for the load; R[NAME.load] is what it did (req/s, or handshakes/s).
load_done() {
    local name=$1
    [[ -n $LOAD_PID ]] || { R[$name.load]="none"; return 0; }
    wait "$LOAD_PID" || die "the load for $name failed: $(tail -5 "$TMP/load-$name".* 2>/dev/null)"
    forget_pid "$LOAD_PID"
    if [[ -e $TMP/load-$name.txt ]]; then
        python3 "$HELPERS/util.py" wrk-parse "$TMP/load-$name.txt" >"$TMP/load-$name.kv"
        kv_into "$name.wrk" "$TMP/load-$name.kv"
        R[$name.load]="$(get "$name.wrk.rps") req/s (non-2xx $(get "$name.wrk.non2xx"), socket errors $(get "$name.wrk.socket_errors"))"
    else
        R[$name.load]="$(cat "$TMP/load-$name.hs") full handshakes/s"
    fi
}

# cpu_snapshot: sets CPU_SNAP to "SECONDS BUSY FAZT OURS", CPU seconds so far: the machine's busy
# time (all CPUs, /proc/stat: user, nice, system and steal; not irq/softirq, which is mostly this
# benchmark's own loopback traffic and charged to no process), fazt's, and this script's reaped children's (wrk, openssl, the
# sampler), from `times`, which must run in this shell (a subshell starts from zero): no $(...).
cpu_snapshot() {
    times >"$TMP/times"
    CPU_SNAP="$(date +%s.%N) $(awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $9) / 100 }' /proc/stat)"
    CPU_SNAP+=" $(python3 "$HELPERS/util.py" cpu-tree "$FAZT_PID")"
    CPU_SNAP+=" $(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } printf "%.2f", s }' "$TMP/times")"
}

# others_cpu NAME SNAPSHOT: R[NAME.others]: CPUs (on average) used since SNAPSHOT by other processes
# on the machine, neither fazt nor this benchmark's clients: other work competing for the CPUs.
others_cpu() {
    local t0 b0 f0 o0 t1 b1 f1 o1
    read -r t0 b0 f0 o0 <<<"$2"
    cpu_snapshot
    read -r t1 b1 f1 o1 <<<"$CPU_SNAP"
    R[$1.others]=$(awk -v t="$t1" -v T="$t0" -v b="$b1" -v B="$b0" -v f="$f1" -v F="$f0" -v o="$o1" -v O="$o0" 'BEGIN {
        x = ((b - B) - (f - F) - (o - O)) / (t - T); printf "%.2f", x < 0 ? 0 : x }')
}

# admin_sample KIND ROUND: the health sampler on the admin listener during a load of KIND.
admin_sample() {
    local name=admin_$1.r$2 cpu0
    cpu_snapshot
    cpu0=$CPU_SNAP
    load_start "$1" "$name"
    sleep 1
    local before after r0 w0 n0 r1 w1 n1
    before=$(cat "$ADMIN_TASK/schedstat")
    spawn_wait "${SAMPLER_PREFIX[@]+"${SAMPLER_PREFIX[@]}"}" python3 "$HELPERS/latency.py" --tls --port "${FAZT_ADMIN##*:}" --host-header "localhost:${FAZT_ADMIN##*:}" \
        --header "Authorization: Bearer $TOKEN" --count 1000000 --interval-ms "$ADMIN_MS" \
        --max-seconds $((DURATION - 2)) --samples "$TMP/$name.ms" >"$TMP/$name.kv" 2>"$TMP/$name.err" ||
        die "latency.py ($name) failed: $(tail -5 "$TMP/$name.err")"
    after=$(cat "$ADMIN_TASK/schedstat")
    kv_into "$name" "$TMP/$name.kv"
    # schedstat: ns on the CPU, ns waiting on a run queue, times scheduled in.
    read -r r0 w0 n0 <<<"$before"
    read -r r1 w1 n1 <<<"$after"
    R[admin_$1.run_ns]=$((${R[admin_$1.run_ns]:-0} + r1 - r0))
    R[admin_$1.wait_ns]=$((${R[admin_$1.wait_ns]:-0} + w1 - w0))
    R[admin_$1.slices]=$((${R[admin_$1.slices]:-0} + n1 - n0))
    load_done "$name"
    others_cpu "$name" "$cpu0"
    fazt_alive "during $name"
    log "$name: other processes used $(get "$name.others") CPUs; n=$(get "$name.n") p50 $(get "$name.p50_ms") p99 $(get "$name.p99_ms") max $(get "$name.max_ms") ms, statuses $(get "$name.statuses"), errors $(get "$name.errors"); load: $(get "$name.load")"
}

if selected admin; then
    ADMIN_TASK=
    for task in /proc/"$FAZT_PID"/task/*; do
        if [[ $(cat "$task/comm") == fazt-admin ]]; then ADMIN_TASK=$task; fi
    done
    [[ -n $ADMIN_TASK ]] || die "fazt has no thread named fazt-admin"
    for ((r = 1; r <= ROUNDS; r++)); do
        for kind in "${ADMIN_LOADS[@]}"; do
            log "round $r/$ROUNDS: admin latency, public load: $kind"
            admin_sample "$kind" "$r"
        done
    done
fi

# ---------------------------------------------------------------- summary
echo
echo "fazt HTTPS ($(nproc) CPUs, $(openssl version | cut -d' ' -f1-2) on the client side$(selected nginx && echo ", nginx $(get nginx.version)"))"
echo "fazt: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), FAZT_THREADS=$THREADS core threads, $([[ ${BENCH_PIN:-0} == 1 ]] && echo "pinned: servers CPU 0, wrk/openssl CPU 1" || echo "nothing pinned")${CORE_NICE:+, core threads at nice $CORE_NICE}$([[ $CORE_BATCH == 1 ]] && echo ", core threads SCHED_BATCH")$([[ ${BENCH_SAMPLER_RT:-0} == 1 ]] && echo ", admin sampler SCHED_FIFO"); load avg at start $LOAD_START, end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "fazt's log: $(wc -l <"$TMP/fazt.err") lines, $(grep -c ' WARN ' "$TMP/fazt.err" || true) warnings$(grep -q ' WARN ' "$TMP/fazt.err" && printf ', e.g. %s' "$(grep -m1 ' WARN ' "$TMP/fazt.err" | cut -c1-160)")"
if selected idle; then
    rss=$(get idle.rss_idle_kib)
    mb=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')
    echo
    echo "idle TLS keep-alive connections (one handshake and one GET each, then idle), fresh fazt"
    printf '  %-52s %12s  %s\n' "connections open (failed)" "$(get idle.opened) ($(get idle.failures))" "from $IDLE_SOURCES source addresses, opened in $(get idle.open_s) s, $(get idle.still_open) sampled still answer"
    printf '  %-52s %12s  %s\n' "RSS before" "$(awk -v k="$(get idle.rss_before_kib)" 'BEGIN { printf "%.1f MB", k * 1024 / 1e6 }')" ""
    printf '  %-52s %12s  %s\n' "RSS with the connections open" "$mb MB" "target <= 160 MB at 10,000: $(verdict "$mb" '<=' 160)"
    printf '  %-52s %12s  %s\n' "RSS growth per connection" "$(get idle.bytes_per_conn) B" "(160 MB / 10,000 = 16,000 B including the base)"
fi
if selected nginx; then
    fk=$(median "${FK[@]}") fn=$(median "${FN[@]}") fh=$(median "${FH[@]}") nh=$(median "${NH[@]}")
    ff=$(median "${FF[@]}") nf=$(median "${NF[@]}")
    echo
    printf '  %-52s %10s %10s %8s  %s\n' "" fazt nginx ratio "target"
    printf '  %-52s %10s %10s %8s  %s\n' "keep-alive req/s, TLS 1.3, 1 KiB, wrk -t2 -c64" "$fk" "$fn" "$(ratio "$fk" "$fn")x" ">= 1.0x"
    printf '  %-52s %10s %10s %8s  %s\n' "new full handshakes/s (openssl s_time -new x2)" "$ff" "$nf" "$(ratio "$ff" "$nf")x" ">= 0.9x"
    printf '  %-52s %10s %10s %8s  %s\n' "resumed handshakes/s (wrk, Connection: close)" "$fh" "$nh" "$(ratio "$fh" "$nh")x" "reported"
    echo "  rounds: keep-alive fazt ${FK[*]} / nginx ${FN[*]}; full fazt ${FF[*]} / nginx ${NF[*]}; resumed fazt ${FH[*]} / nginx ${NH[*]}"
fi
if selected admin; then
    echo
    echo "admin latency: GET /api/system/health over TLS on the admin listener, 1 keep-alive connection, every $ADMIN_MS ms"
    echo "  (p50 / p99 / max in ms over the samples of all $ROUNDS rounds pooled; target p99 <= 10 ms)"
    declare -A LOAD_LABEL=([none]="public port idle"
        [keepalive]="public TLS saturated: wrk -t2 -c128 keep-alive"
        [close]="  ... wrk -t2 -c128 Connection: close (resumed)"
        [full]="  ... 2x openssl s_time -new (full handshakes)")
    for kind in "${ADMIN_LOADS[@]}"; do
        files=() p99s=() others=()
        for ((r = 1; r <= ROUNDS; r++)); do
            files+=("$TMP/admin_$kind.r$r.ms")
            p99s+=("$(get "admin_$kind.r$r.p99_ms")")
            others+=("$(get "admin_$kind.r$r.others")")
        done
        python3 "$HELPERS/util.py" pctl "${files[@]}" >"$TMP/admin_$kind.kv" || die "util.py pctl failed"
        kv_into "admin_$kind" "$TMP/admin_$kind.kv"
        p99=$(get "admin_$kind.p99_ms")
        printf '  %-48s %7s / %7s / %8s  %s\n' "${LOAD_LABEL[$kind]}" "$(get "admin_$kind.p50_ms")" "$p99" \
            "$(get "admin_$kind.max_ms")" "$(verdict "$p99" '<=' 10)"
        slices=$(get "admin_$kind.slices")
        printf '      %s\n' "$(get "admin_$kind.n") samples; p99 per round: ${p99s[*]}; admin thread per wakeup: $(awk -v r="$(get "admin_$kind.run_ns")" -v w="$(get "admin_$kind.wait_ns")" -v n="$slices" 'BEGIN { if (n > 0) printf "%.0f us on CPU, %.0f us waiting for one (mean of %d)", r / n / 1000, w / n / 1000, n; else printf "n/a" }')"
        printf '      CPUs used by other processes on the machine meanwhile, per round: %s (of %s)\n' "${others[*]}" "$(nproc)"
        if [[ $kind != none ]]; then
            printf '      load per round: %s\n' "$(for ((r = 1; r <= ROUNDS; r++)); do get "admin_$kind.r$r.load"; ((r == ROUNDS)) || printf '; '; done)"
        fi
    done
fi
