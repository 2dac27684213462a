#!/usr/bin/env bash
# Builds the release binary if needed, places it at ./fazt, and starts the server with
# data under ./data on http://127.0.0.1:4698 (domain localhost). Any FAZT_* variable or
# extra `fazt server start` flag given here is passed through.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v cargo >/dev/null 2>&1; then
    cargo build --release --quiet
    if ! cmp -s target/release/fazt ./fazt; then
        cp target/release/fazt ./fazt.new && mv ./fazt.new ./fazt
    fi
elif [ ! -x ./fazt ]; then
    echo "start.sh: no ./fazt binary and no cargo to build one" >&2
    exit 1
fi

exec ./fazt server start "$@"
