#!/usr/bin/env bash
# Serves a model dir with vLLM's OpenAI-compatible server on CPU (the flags STACK.md measured), with hermes
# tool calling. Usage: scripts/serve_vllm.sh MODEL_DIR [PORT]. A GPU deployment runs the same server
# (the `vllm` wheel, without --dtype float32/--enforce-eager) and the agent's "openai" backend talks to both.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: scripts/serve_vllm.sh MODEL_DIR [PORT]}
PORT=${2:-8000}
if grep -qs '"adguide_prefix_lm"' "$MODEL/config.json"; then
  echo "$MODEL is the embedded model (a MiniLM prefix LM that runs in process: adguide ask -b local)." >&2
  echo "vLLM serves hermes chat models: the gpu recipe's output (adguide train all --config gpu) or an instruct model." >&2
  exit 2
fi
VENV=${ADGUIDE_VLLM_VENV:-.venv-vllm}
bash scripts/setup_vllm.sh
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
# --max-model-len: STACK.md measured 2048; the agent's prompt (system + 15 tool specs) is ~3k tokens with the
# project's tokenizer, so 4096 is the default here (ADGUIDE_VLLM_MAX_LEN overrides).
# `vllm serve` looks up the distribution named `vllm`; the module entry point does not.
exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL" --host 127.0.0.1 --port "$PORT" \
  --dtype float32 --enforce-eager --max-model-len "${ADGUIDE_VLLM_MAX_LEN:-4096}" --enable-auto-tool-choice --tool-call-parser hermes
