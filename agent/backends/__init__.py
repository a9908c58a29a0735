"""Model backends behind one LangChain chat-model interface (tool calling included).

- "openai": any OpenAI-compatible server with native tool calling (vLLM: `--enable-auto-tool-choice
  --tool-call-parser hermes`); the same code for a GPU deployment and the CPU server in CI.
- "local": transformers in process over the project's own model dir; hermes `<tool_call>` parsing.
- "rules": a deterministic rule-based policy (no weights), see rules.py.
- "teacher": the training engineer's expert policy (agent/teacher.py), when it exists.
"""

from __future__ import annotations

from typing import Any

from agent.configuration import AgentConfig, BackendKind, default_model_dir


class BackendUnavailableError(RuntimeError):
    """The configured backend can't be built here; the message says what to do."""


def make_model(config: AgentConfig, model_tools: list[dict[str, Any]] | None = None) -> Any:
    kind = config.resolved_backend()
    if kind == BackendKind.RULES:
        from agent.backends.rules import RulesChatModel

        return RulesChatModel()
    if kind == BackendKind.TEACHER:
        try:
            from agent import teacher  # type: ignore[attr-defined]
        except ImportError as exc:
            raise BackendUnavailableError("the teacher backend needs agent/teacher.py (training)") from exc
        factory = getattr(teacher, "TeacherChatModel", None) or getattr(teacher, "make_chat_model", None)
        if factory is None:
            raise BackendUnavailableError("agent/teacher.py exposes no chat model (TeacherChatModel)")
        return factory()
    if kind == BackendKind.OPENAI:
        from agent.backends.openai import make_openai_model

        if not config.base_url:
            raise BackendUnavailableError("the openai backend needs base_url (ADGUIDE_LLM_BASE_URL)")
        return make_openai_model(config)
    model_dir = config.model_dir or default_model_dir()
    if model_dir is None:
        raise BackendUnavailableError("no model dir: train one (adguide train) or pass --model-dir / use --backend rules")
    from agent.backends.local import LocalChatModel

    return LocalChatModel.from_dir(model_dir, max_new_tokens=config.limits.max_new_tokens)
