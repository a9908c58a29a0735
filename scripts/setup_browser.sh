#!/usr/bin/env bash
# Installs what the browser tests need (idempotent): Debian's chromium and npm's playwright-core under
# tests/browser/node_modules. scripts/test.sh calls it before pytest; it is also safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q chromium chromium-driver
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm install --no-audit --no-fund --loglevel=error)
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p "require('./tests/browser/node_modules/playwright-core/package.json').version")" >&2
