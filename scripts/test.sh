#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests that start the real binary.
# Ends with one summary line ("tests: N passed, N failed") over every test binary.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser check (tests/integration/browser.rs) needs Chromium. Install Debian's when it
# is missing and we can (root, apt); quietly, and bounded so a slow mirror can't hang the run.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the browser test (apt-get)..."
    if ! timeout 900 bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends chromium' >/dev/null 2>&1; then
        echo "could not install chromium; the browser test will fail and say so"
    fi
fi

# The ACME tests (tests/integration/acme.rs, acme_server.rs) run against Pebble and its mock DNS, both in
# Debian's pebble package. Installed the same way; without it they skip and say why.
if ! command -v pebble-challtestsrv >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing pebble for the ACME tests (apt-get)..."
    if ! timeout 900 bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends pebble' >/dev/null 2>&1; then
        echo "could not install pebble; the ACME tests will skip and say so"
    fi
fi

# The WebSocket test with a real client library (tests/integration/websocket.rs, running
# tests/ws/client.py) needs Python's websockets for /usr/bin/python3: Debian's package, installed
# the same way; without it that test fails and says so.
if ! /usr/bin/python3 -c "import websockets" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3-websockets for the WebSocket test (apt-get)..."
    if ! timeout 900 bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends python3-websockets' >/dev/null 2>&1; then
        echo "could not install python3-websockets; the WebSocket client test will fail and say so"
    fi
fi

# The dashboard's browser tests (tests/integration/dashboard.rs) drive that Chromium with
# playwright-core from npm, pinned by tests/browser/package-lock.json. Node from Debian when
# it is missing (playwright-core needs Node 20 or later); `npm ci` when the installed copy
# is not the locked one.
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing node and npm for the dashboard tests (apt-get)..."
    if ! timeout 900 bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends nodejs npm' >/dev/null 2>&1; then
        echo "could not install node; the dashboard tests will fail and say so"
    fi
fi
want=$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' tests/browser/package.json)
have=$(sed -n 's/^  "version": "\(.*\)",/\1/p' tests/browser/node_modules/playwright-core/package.json 2>/dev/null || true)
if command -v npm >/dev/null 2>&1 && [ "$want" != "$have" ]; then
    echo "installing playwright-core $want for the dashboard tests (npm ci)..."
    # --ignore-scripts: playwright-core downloads no browser; Debian's chromium is used.
    if ! (cd tests/browser && timeout 300 npm ci --ignore-scripts --no-audit --no-fund >/dev/null 2>&1); then
        echo "could not install playwright-core; the dashboard tests will fail and say so"
    fi
fi

# The Litestream test (tests/integration/litestream.rs) runs the real `litestream`: the binary
# npm's @flydotio/litestream-linux-x64 package carries (Litestream v0.3.13), unpacked into
# target/tools. Without it that test fails and says so.
LITESTREAM_PKG=@flydotio/litestream-linux-x64@1.0.1
if [ ! -x target/tools/litestream ] && command -v npm >/dev/null 2>&1; then
    echo "installing litestream for the replication test (npm pack $LITESTREAM_PKG)..."
    mkdir -p target/tools
    if ! (cd target/tools && timeout 300 npm pack --silent "$LITESTREAM_PKG" >/dev/null 2>&1 &&
            tar xzf flydotio-litestream-linux-x64-*.tgz package/litestream &&
            mv package/litestream . && rm -rf package flydotio-litestream-linux-x64-*.tgz); then
        echo "could not install litestream; the replication test will fail and say so"
    fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
