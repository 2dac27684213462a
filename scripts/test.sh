#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests that start the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets "$@"
