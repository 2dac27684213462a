#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (issue #16), each for SECONDS (default 60).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 30 http_head zip
# Builds the fuzz crate with nightly (installing cargo-fuzz first if it is missing), then runs
# every target (or the ones named) from a copy of its seed corpus, with its dictionary and the
# inputs of fuzz/regressions/TARGET, so the checked-in seeds never grow. Exits non-zero on any
# crash, leak, timeout or out-of-memory, naming the target and the input that caused it (kept
# under fuzz/artifacts/TARGET/, which git ignores).
set -euo pipefail
cd "$(dirname "$0")/.."

run_secs="${1:-60}"
shift || true
case "$run_secs" in
    '' | *[!0-9]*)
        echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
        exit 2
        ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz..."
    cargo install cargo-fuzz --locked
fi

all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^fazt-fuzz$')
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets <<<"$all_targets"
fi
for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$all_targets"; then
        echo "fuzz: no target '$target' (targets: $(tr '\n' ' ' <<<"$all_targets"))" >&2
        exit 2
    fi
done

build_start=$(date +%s)
# fazt's own lock file, so the fuzzed code is built with the dependency versions it ships
# with; cargo adds what only the fuzz crate needs (libfuzzer-sys). Copied again only when
# fazt's changed, so a run needn't look up those few in the registry each time.
if [ ! -e fuzz/Cargo.lock ] || [ Cargo.lock -nt fuzz/Cargo.lock ]; then
    cp Cargo.lock fuzz/Cargo.lock
fi
# Release with debug assertions and AddressSanitizer (cargo-fuzz's defaults): leaks and
# overflows are caught as crashes.
cargo +nightly fuzz build
echo "fuzz: built in $(($(date +%s) - build_start)) s"
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$host/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/fazt-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Inputs past 8 KiB reach the head line limit; the other targets keep libFuzzer's default.
max_len_of() {
    case "$1" in
        http_head | http_conn) echo 20000 ;;
        *) echo 0 ;;
    esac
}

failed=()
for target in "${targets[@]}"; do
    corpus="$work/$target/corpus"
    artifacts="$work/$target/artifacts"
    # The zip target extracts under TMPDIR: inside $work, removed with it.
    mkdir -p "$corpus" "$artifacts" "$work/$target/tmp"
    cp fuzz/corpus/"$target"/* "$corpus"/
    dirs=("$corpus")
    options=(-max_total_time="$run_secs" -rss_limit_mb=2048 -timeout=10
        -max_len="$(max_len_of "$target")" -artifact_prefix="$artifacts/" -print_final_stats=1)
    # libFuzzer refuses an empty or missing dictionary.
    if [ -s "fuzz/dict/$target.dict" ]; then
        options+=(-dict="fuzz/dict/$target.dict")
    fi
    if [ -d "fuzz/regressions/$target" ]; then
        dirs+=("fuzz/regressions/$target")
    fi
    log="$work/$target/log"
    status=0
    # The outer timeout is a backstop for a hang libFuzzer's own -timeout does not catch.
    TMPDIR="$work/$target/tmp" timeout --kill-after=10 $((run_secs + 120)) \
        "$bin_dir/$target" "${options[@]}" "${dirs[@]}" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    if [ "$status" -eq 0 ]; then
        echo "fuzz: $target ok (${runs:-?} runs in $run_secs s)"
        continue
    fi
    failed+=("$target")
    mkdir -p "fuzz/artifacts/$target"
    kept=()
    for input in "$artifacts"/*; do
        [ -e "$input" ] || continue
        cp "$input" "fuzz/artifacts/$target/"
        kept+=("fuzz/artifacts/$target/$(basename "$input")")
    done
    echo "fuzz: $target FAILED (exit $status); input: ${kept[*]:-none saved (see the log)}" >&2
    # The panic and its message, or the sanitizer's or libFuzzer's verdict; else the log's end.
    if ! grep -E -A2 'panicked at|^==[0-9]+==ERROR|^SUMMARY|^ERROR: libFuzzer|^ParseDictionary' \
            "$log" | head -12 >&2; then
        tail -n 8 "$log" >&2
    fi
    for input in "${kept[@]}"; do
        echo "  $input (hex): $(head -c 512 "$input" | od -An -v -tx1 | tr -d ' \n')" >&2
    done
    echo "  reproduce: cargo +nightly fuzz run $target ${kept[0]:-}" >&2
    cp "$log" "fuzz/artifacts/$target/log"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash, leak or timeout in $run_secs s each"
