# The model server: vLLM's official GPU image with tool calling for the agent (hermes-style <tool_call>).
#   docker build -f docker/vllm.Dockerfile -t adguide-vllm .
# The model dir (HF format: config.json, model.safetensors, tokenizer files with a chat template) is
# mounted at /models/adguide, or set MODEL to a hub id where downloads are allowed.
FROM vllm/vllm-openai:v0.33.0
ENV MODEL=/models/adguide \
    SERVED_NAME=adguide \
    MAX_MODEL_LEN=8192 \
    GPU_MEMORY_UTILIZATION=0.90
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=5 \
    CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
# Shell form on purpose: the settings come from the environment at run time.
# hadolint ignore=DL3025
ENTRYPOINT python3 -m vllm.entrypoints.openai.api_server \
    --model "$MODEL" --served-model-name "$SERVED_NAME" \
    --host 0.0.0.0 --port 8000 \
    --max-model-len "$MAX_MODEL_LEN" --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION" \
    --enable-auto-tool-choice --tool-call-parser hermes \
    --enable-prefix-caching
