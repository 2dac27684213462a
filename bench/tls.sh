#!/usr/bin/env bash
# fazt HTTPS benchmark (issue #12): fazt's own TLS against nginx with TLS, same run, same ECDSA P-256
# certificate, same 1 KiB file. Numbers are printed, never asserted.
#
#   keep-alive:  requests/s over TLS 1.3, `wrk -t2 -c64`, one file, connections kept open;
#   full handshakes/s:    one request per connection, no session offered: two `openssl s_time -new`
#                         clients side by side (the handshake's client half costs about what the
#                         server's does, so these figures are bounded by the 2 shared CPUs);
#   resumed handshakes/s: one request per connection with wrk -H 'Connection: close' (wrk offers
#                         the session of its previous connection: fazt counts them resumed);
#   idle memory: fazt's RSS growth with BENCH_TLS_IDLE idle TLS keep-alive connections, per connection.
#
#     bench/tls.sh
#
# Environment:
#   BENCH_DURATION=10 BENCH_ROUNDS=3   seconds per wrk run, runs per server (alternating)
#   BENCH_TLS_IDLE=2000                idle connections for the memory figure
#   BENCH_NO_BUILD=1                   use the existing target/release/fazt
set -euo pipefail
SCRIPT_TAG=tls
source "$(dirname "$0")/lib.sh"

ONLY=nginx
IDLE=${BENCH_TLS_IDLE:-2000}
TMP=$(mktemp -d /tmp/fazt-tls.XXXXXX)
install_traps
ensure_tools nginx
command -v openssl >/dev/null || die "openssl is required"
build_fazt

log "certificate: ECDSA P-256, localhost and *.localhost"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj /CN=localhost \
    -addext 'subjectAltName=DNS:localhost,DNS:*.localhost' >"$TMP/openssl.log" 2>&1 ||
    die "openssl failed: $(cat "$TMP/openssl.log")"
mkdir -p "$TMP/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$TMP/www/index.html"

log "fazt: site 'bench' with the 1 KiB file, 2 core threads, TLS on a free port"
"$FAZT_BIN" site import bench "$TMP/www" --data "$TMP/data" >"$TMP/import.log" 2>&1 ||
    die "fazt site import failed: $(cat "$TMP/import.log")"
# All clients are 127.0.0.1: their share must hold the idle connections.
FAZT_THREADS=2 FAZT_AUTO_PAGEVIEWS=0 FAZT_CONNS_PER_CLIENT=$((IDLE + 1000)) "$FAZT_BIN" server start --listen 127.0.0.1:0 \
    --tls-listen 127.0.0.1:0 --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" \
    --domain localhost --data "$TMP/data" >"$TMP/fazt.out" 2>"$TMP/fazt.err" &
FAZT_PID=$!
PIDS+=("$FAZT_PID")
wait_for_line "$TMP/fazt.out" 'listening on https://[^ ]+ \(tls\)' "$FAZT_PID" fazt "$TMP/fazt.err"
FAZT_TLS=$(sed -nE 's|.*listening on https://([^ ]+) \(tls\).*|\1|p' "$TMP/fazt.out" | head -1)

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

check() { # URL HOST: the body is the 1 KiB file
    local got
    got=$(curl -sk --max-time 5 -H "Host: $2" "$1" | wc -c)
    [[ $got == 1024 ]] || die "$1 (Host: $2) answered $got bytes, not the 1 KiB file"
}
check "https://$FAZT_TLS/" bench.localhost
check "https://127.0.0.1:$NGX_TLS_PORT/" bench.localhost

# run NAME URL [wrk args...]: one wrk run; prints requests/s.
run() {
    local url=$1
    shift
    wrk -t2 -c64 -d"${DURATION}s" -H 'Host: bench.localhost' "$@" "$url" 2>&1 |
        awk '/Requests\/sec/ { printf "%d", $2 }'
}

# full URL_HOSTPORT: full handshakes/s of two `openssl s_time -new` clients running together.
full() {
    local start end n=0 c
    start=$(date +%s.%N)
    for c in 1 2; do
        timeout $((DURATION + 30)) openssl s_time -connect "$1" -new -time "$DURATION" -www / \
            >"$TMP/stime.$c" 2>&1 &
    done
    wait
    end=$(date +%s.%N)
    for c in 1 2; do
        n=$((n + $(sed -nE 's|^([0-9]+) connections in [0-9.]+ real seconds.*|\1|p' "$TMP/stime.$c" | head -1)))
    done
    awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%d", n / (e - s) }'
}

declare -a FK FN FH NH FF NF
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: keep-alive"
    FK+=("$(run "https://$FAZT_TLS/")")
    FN+=("$(run "https://127.0.0.1:$NGX_TLS_PORT/")")
    log "round $r/$ROUNDS: full handshakes (openssl s_time -new)"
    FF+=("$(full "$FAZT_TLS")")
    NF+=("$(full "127.0.0.1:$NGX_TLS_PORT")")
    log "round $r/$ROUNDS: one request per connection, sessions resumed (wrk)"
    FH+=("$(run "https://$FAZT_TLS/" -H 'Connection: close')")
    NH+=("$(run "https://127.0.0.1:$NGX_TLS_PORT/" -H 'Connection: close')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

log "idle memory: $IDLE TLS keep-alive connections to fazt"
python3 "$HELPERS/tls_idle.py" --port "${FAZT_TLS##*:}" --pid "$FAZT_PID" --count "$IDLE" >"$TMP/idle.kv" ||
    die "tls_idle.py failed"

fk=$(median "${FK[@]}") fn=$(median "${FN[@]}") fh=$(median "${FH[@]}") nh=$(median "${NH[@]}")
ff=$(median "${FF[@]}") nf=$(median "${NF[@]}")
echo
echo "fazt HTTPS ($(nproc) CPUs, $(openssl version | cut -d' ' -f1-2) on the client side, $(get nginx.version))"
printf '  %-52s %10s %10s %8s  %s\n' "" fazt nginx ratio "target"
printf '  %-52s %10s %10s %8s  %s\n' "keep-alive req/s, TLS 1.3, 1 KiB, wrk -t2 -c64" "$fk" "$fn" "$(ratio "$fk" "$fn")x" ">= 1.0x"
printf '  %-52s %10s %10s %8s  %s\n' "new full handshakes/s (openssl s_time -new x2)" "$ff" "$nf" "$(ratio "$ff" "$nf")x" ">= 0.9x"
printf '  %-52s %10s %10s %8s  %s\n' "resumed handshakes/s (wrk, Connection: close)" "$fh" "$nh" "$(ratio "$fh" "$nh")x" "reported"
echo "  rounds: keep-alive fazt ${FK[*]} / nginx ${FN[*]}; full fazt ${FF[*]} / nginx ${NF[*]}; resumed fazt ${FH[*]} / nginx ${NH[*]}"
echo "  idle TLS keep-alive connections to fazt: $(grep -E '^(opened|rss_before_kib|rss_idle_kib|bytes_per_conn)=' "$TMP/idle.kv" | tr '\n' ' ')"
