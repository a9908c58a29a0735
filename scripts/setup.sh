#!/usr/bin/env bash
# Creates .venv with everything adguide needs (CPU torch pinned) and installs the project in editable mode.
# Safe to re-run: it skips the install when pyproject.toml and constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${ADGUIDE_EXTRAS:-agent,train,serve,eval,dev}
stamp=.venv/.adguide-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-$EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
echo "adguide: installing into .venv (about 2 minutes on a fresh machine)..." >&2
.venv/bin/pip install -q --upgrade pip
# The local CPU wheel first; the constraints file keeps every later resolve on it (no CUDA downloads).
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -c constraints.txt -e ".[$EXTRAS]"
echo "$want" > "$stamp"
echo "adguide: .venv ready" >&2
