"""Model backends behind one LangChain chat-model interface (tool calling included).

- "openai": any OpenAI-compatible server with native tool calling (vLLM: `--enable-auto-tool-choice
  --tool-call-parser hermes`); the same code for a GPU deployment and the CPU server in CI.
- "local": in process over a model dir: the project's own embedded model (embedded.py), or any transformers
  causal LM with a chat template (local.py, e.g. the GPU recipe's fine-tuned instruct model); hermes parsing.
- "rules": a deterministic rule-based policy (no weights), see rules.py.
- "teacher": keyword rules read the intent, the expert policy (agent/expert.py) plans it (teacher.py).
"""

from __future__ import annotations

from typing import Any

from agent.backends.openai import make_openai_model
from agent.configuration import AgentConfig, BackendKind, default_model_dir


class BackendUnavailableError(RuntimeError):
    """The configured backend can't be built here; the message says what to do."""


def make_model(config: AgentConfig, model_tools: list[dict[str, Any]] | None = None) -> Any:
    kind = config.resolved_backend()
    if kind == BackendKind.RULES:
        # lazy: pulls in langchain_core at import
        from agent.backends.rules import RulesChatModel

        return RulesChatModel()
    if kind == BackendKind.TEACHER:
        # lazy: pulls in langchain_core at import
        from agent.backends.teacher import TeacherChatModel

        return TeacherChatModel(advertiser_id=config.advertiser_id)
    if kind == BackendKind.OPENAI:
        if not config.base_url:
            raise BackendUnavailableError("the openai backend needs base_url (ADGUIDE_LLM_BASE_URL)")
        return make_openai_model(config)
    model_dir = config.model_dir or default_model_dir()
    if model_dir is None:
        raise BackendUnavailableError(
            "no model dir: train one (adguide train) or pass --model-dir / use --backend rules"
        )
    # lazy: pulls in langchain_core at import
    from agent.backends.embedded import EmbeddedChatModel, is_embedded_dir

    if is_embedded_dir(model_dir):  # the project's own model (MiniLM prefix LM)
        return EmbeddedChatModel.from_dir(model_dir, advertiser_id=config.advertiser_id)
    # lazy: torch and transformers; any HF causal LM with a chat template (the GPU path)
    from agent.backends.local import LocalChatModel

    return LocalChatModel.from_dir(model_dir, max_new_tokens=config.limits.max_new_tokens)
