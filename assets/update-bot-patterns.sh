#!/usr/bin/env bash
# Refreshes assets/bot-patterns.txt from the npm package `isbot` (the maintained list of
# bot and crawler user-agent patterns fazt filters analytics with). Needs npm and node.
# Usage: assets/update-bot-patterns.sh [VERSION]   (default: the latest release)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "isbot@${1:-latest}" >/dev/null && tar xzf isbot-*.tgz)
version=$(node -p "require('$work/package/package.json').version")
{
  echo "# Bot and crawler user-agent patterns: the pattern list of the npm package isbot $version"
  echo "# (github.com/omrilotan/isbot, Unlicense), one regular expression per line, matched"
  echo "# case-insensitively. Refresh with assets/update-bot-patterns.sh; do not edit by hand."
  node -e "console.log(require('$work/package/index.js').list.join('\n'))"
} > assets/bot-patterns.txt
echo "assets/bot-patterns.txt: isbot $version, $(grep -vc '^#' assets/bot-patterns.txt) patterns"
echo "run: cargo test --lib analytics::filter"
