"""In-process backend: transformers over the project's own model dir (the embedded default on a laptop).

The chat template (tokenizer_config.json, contract E) renders the tools and the conversation; the model's
hermes `<tool_call>` blocks are parsed into LangChain tool calls. Greedy decoding, fp32 on CPU, one thread
(STACK.md: one beat two on a loaded 2-core machine). Tool arguments are checked against the schemas, with
the advertiser's own ids as enums, by the tool-argument guardrail before any call runs.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from agent.backends.hermes import parse_tool_calls, to_openai_messages


class LocalChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_dir: str
    max_new_tokens: int = 384
    threads: int = 1
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_dir(cls, model_dir: Path | str, **kw: Any) -> LocalChatModel:
        path = Path(model_dir)
        missing = [f for f in ("config.json", "tokenizer.json", "tokenizer_config.json") if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"model dir {path} is incomplete (missing {', '.join(missing)})")
        return cls(model_dir=str(path), **kw)

    @property
    def _llm_type(self) -> str:
        return "adguide-local"

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        torch.set_num_threads(self.threads)
        # PreTrainedTokenizerFast, not AutoTokenizer: on a qwen2 dir the latter swaps in Qwen's pre-tokenizer.
        self._tokenizer = PreTrainedTokenizerFast.from_pretrained(self.model_dir)
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32, attn_implementation="eager")
        self._model = model.eval()

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def render(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> str:
        self._load()
        return str(self._tokenizer.apply_chat_template(to_openai_messages(messages), tools=tools or None,
                                                       add_generation_prompt=True, tokenize=False))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        import torch

        prompt = self.render(messages, kwargs.get("tools"))
        with self._lock, torch.inference_mode():  # one generation at a time per loaded model
            inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            n_prompt = inputs["input_ids"].shape[1]
            limit = getattr(self._model.config, "max_position_embeddings", 4096)
            if n_prompt >= limit:
                raise ValueError(f"the conversation is {n_prompt} tokens; this model reads at most {limit}")
            out = self._model.generate(**inputs, max_new_tokens=min(self.max_new_tokens, limit - n_prompt),
                                       do_sample=False)
        new = out[0, n_prompt:]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        message = parse_tool_calls(text)
        message.usage_metadata = {"input_tokens": n_prompt, "output_tokens": int(new.shape[0]),
                                  "total_tokens": n_prompt + int(new.shape[0])}
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        # Generation is CPU-bound: run it off the event loop so streaming and timeouts keep working.
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)
