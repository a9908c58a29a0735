#!/usr/bin/env bash
# The test command: sets up .venv if needed, then lint, type-check and the whole pytest suite (slow included).
# For a quick local loop: .venv/bin/pytest  (skips tests marked slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_browser.sh   # Debian chromium + playwright-core for tests/test_server_browser.py
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy agent tools training evals server adguide_cli.py
echo "== import layers" && lint-imports
echo "== pytest (all suites, slow included)"
pytest -m "slow or not slow" "$@"
