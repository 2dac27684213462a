#!/usr/bin/env bash
# fazt deploy benchmark: a generated static site (100 MiB, 1,000 files by default) deployed through
# POST /api/deploy, then deployed again unchanged, then again with one file changed. For each deploy:
# the client's wall time (upload + apply: fazt answers once the deploy is committed), the server's
# resident memory growth while it ran, the bytes the deploy stored (new_bytes, after dedup), the
# database's growth, a byte-exact check of a sample of the site's files and a check that the temp
# dir is empty afterwards.
#
# Numbers are printed, never asserted: the script exits 0 when every step ran, whatever the numbers
# (targets are shown next to them). It exits non-zero, with the reason, when a step fails (a deploy
# answered other than 200, fazt died), and it reports (without stopping) wrong bytes served and
# temp files left behind.
#
#     bench/bench_deploy.sh
#
# The upload is what the earlier Go client sends: multipart/form-data with the fields site_name and
# file (the zip), sent by curl -F; the zip is built by python's zipfile (deflate), like the Go
# client's archive/zip. The server's VmRSS/RssAnon are sampled from /proc/PID/status every
# BENCH_SAMPLE_MS ms from half a second before the upload starts until half a second after the
# answer; growth = highest sample during the deploy - last sample before it. VmHWM (the process's
# lifetime peak) is read before and after.
#
# Environment:
#   BENCH_SITE_MB=100        size of the generated site in MiB (exact total of the files)
#   BENCH_SITE_FILES=1000    files in it: ~10% HTML/CSS/JS text, the rest incompressible bytes with
#                            log-normal sizes (a few KiB to a few MiB) in subdirectories
#   BENCH_SEED=1             seed of the file sizes and contents (the same seed, the same site and zip)
#   BENCH_SAMPLE_MS=20       RSS sampling interval
#   BENCH_CHECK_FILES=20     files fetched and compared byte for byte after each deploy
#   BENCH_NO_BUILD=1         use the existing target/release/fazt
#   BENCH_KEEP_TMP=1         keep the temp dir (site, zips, data dir, logs, RSS samples) and print its path
#   BENCH_SUMMARY=PATH       also write the summary table to PATH
#   FAZT_*                   passed through to fazt (e.g. FAZT_UPLOAD_RAM, FAZT_SQLITE_CACHE_BYTES)
#
# Every request targets 127.0.0.1 and is bounded in time; every process started here is stopped on exit.
# Helpers: bench/lib.sh (processes, results, starting fazt), deploy_site.py (site, zip, the
# measured upload with its RSS sampler, byte checks), util.py (health JSON), vfs_rss.py (the sampler).
set -euo pipefail

SCRIPT_TAG=bench_deploy
# ROOT, HELPERS (bench/) and the shared functions:
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SITE_MB=${BENCH_SITE_MB:-100}
SITE_FILES=${BENCH_SITE_FILES:-1000}
SEED=${BENCH_SEED:-1}
SAMPLE_MS=${BENCH_SAMPLE_MS:-20}
CHECK_FILES=${BENCH_CHECK_FILES:-20}
SITE_NAME=bench
for v in SITE_MB SITE_FILES SEED SAMPLE_MS CHECK_FILES; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be an integer >= 1"
done
((SITE_FILES >= 20)) || die "BENCH_SITE_FILES must be at least 20"
((SITE_MB * 1024 >= SITE_FILES)) || die "BENCH_SITE_MB must give at least 1 KiB per file"

# ---------------------------------------------------------------- temp dir; processes stopped on exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fazt-bench-deploy.XXXXXX")
install_traps

PROBLEMS=()
problem() {
    log "PROBLEM: $*"
    PROBLEMS+=("$*")
}


# ---------------------------------------------------------------- fazt
DATA=$TMP/fazt-data
FAZT_PID=
TOKEN=

fazt_alive() { # WHEN: die with fazt's stderr if the fazt process is gone
    alive "$FAZT_PID" && return 0
    local rc=0
    wait "$FAZT_PID" 2>/dev/null || rc=$?
    forget_pid "$FAZT_PID"
    die "fazt exited (status $rc) $1. stderr:
$(tail -n 40 "$TMP/fazt.err")"
}

# health PREFIX: GET /api/system/health on the admin listener, flattened into R[PREFIX.*]
health() {
    python3 "$HELPERS/util.py" json-kv "http://$ADMIN/api/system/health" "Authorization: Bearer $TOKEN" \
        >"$TMP/health-$1.kv" 2>"$TMP/health-$1.err" ||
        die "GET /api/system/health failed ($1): $(cat "$TMP/health-$1.err")"
    kv_into "$1" "$TMP/health-$1.kv"
}

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# db_sizes PREFIX: R[PREFIX.db_bytes] (fazt.db) and R[PREFIX.wal_bytes] (fazt.db-wal)
db_sizes() {
    R[$1.db_bytes]=$(file_size "$DATA/fazt.db")
    R[$1.wal_bytes]=$(file_size "$DATA/fazt.db-wal")
}

# deploy LABEL ZIP [ALSO_PATH...]: one measured deploy of ZIP to the site into R[LABEL.*]; then the
# temp dir must be empty and a sample of the site's files (plus ALSO_PATHs) must be served exactly.
deploy() {
    local label=$1 zip=$2 left
    shift 2
    db_sizes "$label.pre"
    log "$label: deploying $(file_size "$zip") bytes to '$SITE_NAME' (VmRSS every $SAMPLE_MS ms)"
    spawn_wait python3 "$HELPERS/deploy_site.py" deploy --pid "$FAZT_PID" --url "http://$ADMIN/api/deploy" \
        --token "$TOKEN" --site "$SITE_NAME" --zip "$zip" --response "$TMP/deploy-$label.json" \
        --samples "$TMP/rss-$label.tsv" --interval "$(awk -v ms="$SAMPLE_MS" 'BEGIN { printf "%.3f", ms / 1000 }')" \
        >"$TMP/deploy-$label.kv" 2>"$TMP/deploy-$label.err" ||
        die "$label: the upload failed: $(cat "$TMP/deploy-$label.err")"
    kv_into "$label" "$TMP/deploy-$label.kv"
    fazt_alive "during the $label deploy"
    [[ $(get "$label.http_status") == 200 ]] ||
        die "$label: POST /api/deploy answered HTTP $(get "$label.http_status"): $(cat "$TMP/deploy-$label.json")"
    db_sizes "$label.post"
    R[$label.db_growth]=$(($(get "$label.post.db_bytes") - $(get "$label.pre.db_bytes")))
    left=$(find "$TEMP_DIR" -mindepth 1 2>/dev/null | wc -l)
    R[$label.tmp_left]=$left
    ((left == 0)) || problem "$label: $left entries left in the temp dir $TEMP_DIR: $(find "$TEMP_DIR" -mindepth 1 | head -5 | paste -sd' ')"
    spawn_wait python3 "$HELPERS/deploy_site.py" check --public "$PUBLIC" --site "$SITE_NAME" --dir "$SITE" \
        --sample "$CHECK_FILES" --also index.html "$@" >"$TMP/check-$label.kv" 2>"$TMP/check-$label.err" || true
    [[ -s $TMP/check-$label.kv ]] || die "$label: deploy_site.py check failed: $(cat "$TMP/check-$label.err")"
    kv_into "$label.check" "$TMP/check-$label.kv"
    [[ $(get "$label.check.ok") == "$(get "$label.check.checked")" ]] ||
        problem "$label: $(get "$label.check.ok") of $(get "$label.check.checked") files served exactly (statuses $(get "$label.check.statuses")); first: $(get "$label.check.first_problem")"
    log "$label: HTTP 200 in $(get "$label.wall_s") s; new_bytes $(get "$label.resp_new_bytes"); VmRSS $(mib "$(get "$label.rss_before_kib")") -> peak $(mib "$(get "$label.rss_peak_kib")") MiB (growth $(mib "$(get "$label.growth_kib")") MiB, RssAnon $(mib "$(get "$label.anon_growth_kib")") MiB); VmHWM $(mib "$(get "$label.hwm_after_kib")") MiB; fazt.db +$(get "$label.db_growth") B; temp dir entries left $left; files exact $(get "$label.check.ok")/$(get "$label.check.checked")"
}

# ---------------------------------------------------------------- start
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "temp dir $TMP; site $SITE_MB MiB in $SITE_FILES files (seed $SEED); load avg $LOAD_START"
command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"
build_fazt

MACHINE="$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r)"
FAZT_VERSION=$("$FAZT_BIN" --version 2>&1 | head -1)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
GIT_DIRTY=$(git -C "$ROOT" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null | wc -l)
FS_TYPE=$(df -PT "$TMP" 2>/dev/null | awk 'NR == 2 { print $2 }')

# ---------------------------------------------------------------- the site and its zip
SITE=$TMP/site
t0=$(date +%s.%N)
python3 "$HELPERS/deploy_site.py" gen "$SITE" --bytes $((SITE_MB * 1024 * 1024)) --files "$SITE_FILES" --seed "$SEED" \
    >"$TMP/gen.kv" 2>"$TMP/gen.err" || die "deploy_site.py gen failed: $(cat "$TMP/gen.err")"
kv_into gen "$TMP/gen.kv"
python3 "$HELPERS/deploy_site.py" zip "$SITE" "$TMP/site.zip" >"$TMP/zip.kv" 2>"$TMP/zip.err" ||
    die "deploy_site.py zip failed: $(cat "$TMP/zip.err")"
kv_into zip "$TMP/zip.kv"
log "site: $(get gen.files) files, $(get gen.bytes) bytes ($(get gen.text_files) text files, $(get gen.text_bytes) bytes; largest $(get gen.largest) bytes); zip $(get zip.zip_bytes) bytes; built in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"

# ---------------------------------------------------------------- fazt
mkdir -p "$DATA"
log "starting fazt on $DATA"
launch_fazt "$DATA" "$TMP/fazt.out" "$TMP/fazt.err" fazt
TOKEN=$(sed -nE 's/^owner API key[^:]*: *(fzt_[A-Za-z0-9_]+).*/\1/p' "$TMP/fazt.out" | head -1)
[[ -n $TOKEN ]] || die "fazt printed no owner API key on its first start: $(cat "$TMP/fazt.out")"
health start
TEMP_DIR=$(get start.limits.temp_dir)
[[ $TEMP_DIR == /* ]] || TEMP_DIR=$DATA/tmp # relative to fazt's working dir; the default is <data>/tmp
[[ -d $TEMP_DIR ]] || die "fazt's temp dir $TEMP_DIR does not exist"
log "fazt pid $FAZT_PID public $PUBLIC admin $ADMIN; upload RAM $(get start.limits.upload_ram_bytes) B, SQLite cache $(get start.limits.sqlite_cache_bytes) B per connection, VmRSS $(mib "$(rss_kib "$FAZT_PID")") MiB"
sleep 1 # let the start-up settle before the first baseline

# ---------------------------------------------------------------- 1. first deploy
deploy first "$TMP/site.zip"

# ---------------------------------------------------------------- 2. unchanged re-deploy
deploy same "$TMP/site.zip"

# ---------------------------------------------------------------- 3. one file changed
python3 "$HELPERS/deploy_site.py" change "$SITE" --seed $((SEED + 1000)) >"$TMP/change.kv" 2>"$TMP/change.err" ||
    die "deploy_site.py change failed: $(cat "$TMP/change.err")"
kv_into change "$TMP/change.kv"
python3 "$HELPERS/deploy_site.py" zip "$SITE" "$TMP/site-changed.zip" >"$TMP/zip-changed.kv" 2>"$TMP/zip-changed.err" ||
    die "deploy_site.py zip failed: $(cat "$TMP/zip-changed.err")"
log "changed /$(get change.changed_path) ($(get change.changed_bytes) bytes)"
deploy onefile "$TMP/site-changed.zip" "$(get change.changed_path)"

health end
R[fazt.rss_end_kib]=$(rss_kib "$FAZT_PID")
R[fazt.hwm_end_kib]=$(awk '/^VmHWM:/ { print $2 }' "/proc/$FAZT_PID/status" 2>/dev/null || echo n/a)
fazt_alive "before it was stopped"
stop_pid "$FAZT_PID"
R[fazt.exit]="status $STOP_RC after ${STOP_SECS}s"
[[ $STOP_RC == 0 ]] || problem "fazt exited with status $STOP_RC on SIGTERM"

# ---------------------------------------------------------------- summary
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
row() { printf '  %-44s %-28s %-14s %s\n' "$1" "$2" "${3:-}" "${4:-}"; }
secs() { printf '%s s' "$(get "$1")"; }
deploy_rows() { # LABEL WALL_TARGET
    local l=$1 wt=$2
    row "wall time (upload + apply, client side)" "$(secs "$l.wall_s")" "${wt:+<= $wt s}" "${wt:+$(verdict "$(get "$l.wall_s")" '<=' "$wt")}"
    row "  new_bytes / bytes (from the answer)" "$(get "$l.resp_new_bytes") / $(get "$l.resp_bytes")" "" "deployment $(get "$l.resp_deployment") (previous $(get "$l.resp_previous")), files $(get "$l.resp_files")"
    row "  VmRSS growth (peak - before)" "$(mib "$(get "$l.growth_kib")") MiB" "<= 16 MiB" "$(verdict "$(mib "$(get "$l.growth_kib")")" '<=' 16); $(mib "$(get "$l.rss_before_kib")") -> $(mib "$(get "$l.rss_peak_kib")") -> $(mib "$(get "$l.rss_after_kib")") MiB, $(get "$l.samples_during") samples"
    row "  RssAnon growth" "$(mib "$(get "$l.anon_growth_kib")") MiB" "" "$(mib "$(get "$l.anon_before_kib")") -> $(mib "$(get "$l.anon_peak_kib")") MiB"
    row "  VmHWM before / after" "$(mib "$(get "$l.hwm_before_kib")") / $(mib "$(get "$l.hwm_after_kib")") MiB" "" ""
    row "  fazt.db growth / WAL after" "$(get "$l.db_growth") B / $(get "$l.post.wal_bytes") B" "" "fazt.db $(get "$l.post.db_bytes") B"
    row "  temp dir entries left / files exact" "$(get "$l.tmp_left") / $(get "$l.check.ok") of $(get "$l.check.checked")" "0 / all" "statuses $(get "$l.check.statuses")"
}
summary() {
    echo
    echo "================ fazt deploy benchmark ================"
    echo "machine: $MACHINE; temp dir on $FS_TYPE"
    echo "fazt: $FAZT_VERSION, commit $GIT_REV$( ((GIT_DIRTY > 0)) && printf ' + %s modified tracked files' "$GIT_DIRTY"), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "limits in force: upload RAM $(get start.limits.upload_ram_bytes) B, SQLite cache $(get start.limits.sqlite_cache_bytes) B per connection, SQLite mmap $(get start.limits.sqlite_mmap_bytes) B, file cache $(get start.limits.cache_bytes) B"
    echo "load avg: start $LOAD_START, end $LOAD_END"
    echo "FAZT_* in the environment: $(env | grep -E '^FAZT_' | sort | paste -sd' ' | grep . || echo none)"
    echo "site: $(get gen.files) files, $(get gen.bytes) bytes ($(get gen.text_files) HTML/CSS/JS, $(get gen.text_bytes) bytes; the rest random bytes, largest $(get gen.largest)), seed $SEED"
    echo "archive: $(get zip.zip_bytes) bytes (deflate), $(get zip.entries) entries; upload: curl -F site_name=... -F file=@site.zip"
    echo "VmRSS sampled every $SAMPLE_MS ms; growth = peak during the deploy - last sample before it"
    echo "(numbers are informational; targets are not enforced)"
    echo
    row "" "measured" "target" ""
    echo "1. first deploy (empty site, fresh server)"
    deploy_rows first 5
    echo "2. unchanged re-deploy"
    deploy_rows same 1
    echo "3. one file changed (/$(get change.changed_path), $(get change.changed_bytes) bytes)"
    deploy_rows onefile ""
    row "VmRSS / VmHWM at the end" "$(mib "$(get fazt.rss_end_kib)") / $(mib "$(get fazt.hwm_end_kib)") MiB" "" "deploys succeeded $(get end.deploys.succeeded), failed $(get end.deploys.failed)"
    echo "fazt on SIGTERM: $(get fazt.exit)"
    if ((${#PROBLEMS[@]})); then
        echo "PROBLEMS seen:"
        printf '  - %s\n' "${PROBLEMS[@]}"
    else
        echo "no problems seen (every sampled file byte-exact after each deploy, temp dir empty, fazt exited cleanly)"
    fi
    echo "======================================================="
}
summary | tee "${BENCH_SUMMARY:-/dev/null}"
