"""In-process backend: transformers over the project's own model dir (the embedded default on a laptop).

The chat template (tokenizer_config.json, contract E) renders the tools and the conversation; the model's
hermes `<tool_call>` blocks are parsed into LangChain tool calls. Greedy decoding, fp32 on CPU, one thread
(STACK.md: one beat two on a loaded 2-core machine). A call that breaks its schema is decoded again under it
with llguidance (constrained.py; the advertiser's own ids as enums when `argument_schemas` is given), the
same policy as the OpenAI backend's structured outputs. `_stream` yields text tokens as they are generated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from agent.backends.constrained import CALL_CLOSE, CALL_OPEN, breaks_schema, decode_call, ll_tokenizer
from agent.backends.hermes import parse_tool_calls, to_openai_messages

log = logging.getLogger(__name__)


class LocalChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    accepts_deadline: ClassVar[bool] = True  # the planner passes the turn's deadline (see _run)
    model_dir: str
    max_new_tokens: int = 384
    threads: int = 1
    # Re-decode a call that breaks its schema under it (constrained.py); `argument_schemas` carries the
    # advertiser's own ids as enums (agent.graph.constrain_schemas), else the bound tools' schemas are used.
    constrain: bool = True
    argument_schemas: dict[str, dict[str, Any]] | None = None
    _lltok: Any = PrivateAttr(default=None)
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_dir(cls, model_dir: Path | str, **kw: Any) -> LocalChatModel:
        path = Path(model_dir)
        missing = [
            f for f in ("config.json", "tokenizer.json", "tokenizer_config.json") if not (path / f).is_file()
        ]
        if missing:
            raise FileNotFoundError(f"model dir {path} is incomplete (missing {', '.join(missing)})")
        return cls(model_dir=str(path), **kw)

    @property
    def _llm_type(self) -> str:
        return "adguide-local"

    def _load(self) -> None:
        if self._model is not None:
            return
        # lazy: torch is heavy and needed only here
        import torch

        # lazy: transformers is heavy and needed only here
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        torch.set_num_threads(self.threads)
        # PreTrainedTokenizerFast, not AutoTokenizer: on a qwen2 dir the latter swaps in Qwen's pre-tokenizer.
        self._tokenizer = PreTrainedTokenizerFast.from_pretrained(self.model_dir)
        # sdpa: 2.6x faster than eager at the agent's ~2k-token prompts, 5.5x at 5.6k, with flat memory
        # (evals/benchmarks/bench_local_attention.py)
        model = AutoModelForCausalLM.from_pretrained(
            self.model_dir, dtype=torch.float32, attn_implementation="sdpa"
        )
        self._model = model.eval()

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def render(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None) -> str:
        self._load()
        return str(
            self._tokenizer.apply_chat_template(
                to_openai_messages(messages), tools=tools or None, add_generation_prompt=True, tokenize=False
            )
        )

    @property
    def context_window(self) -> int:
        self._load()
        return int(getattr(self._model.config, "max_position_embeddings", 4096))

    def count_tokens(self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None = None) -> int:
        """Exact prompt length: the chat template rendered with the tools, as `_run` feeds it."""
        prompt = self.render(messages, tools)  # loads the tokenizer on first use
        return len(self._tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def argument_schemas_for(self, tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
        """The schemas a call is checked and re-decoded against: `argument_schemas` (the advertiser's own ids as
        enums, from agent.graph.constrain_schemas) where given, else the bound tools' own parameters."""
        bound = {
            t["function"]["name"]: t["function"].get("parameters") or {"type": "object", "properties": {}}
            for t in tools or []
        }
        if self.argument_schemas:
            bound.update({n: s for n, s in self.argument_schemas.items() if n in bound})
        return bound

    def _run(
        self,
        messages: list[BaseMessage],
        tools: list[dict[str, Any]] | None,
        on_text: Callable[[str], None] | None = None,
        deadline: float | None = None,
    ) -> AIMessage:
        """One generation: free greedy decoding (text pieces to `on_text` as they come), then the first call that
        breaks its schema is decoded again under it (constrained.py) and the message ends with that call.

        `deadline` (time.time()) is the turn's: a caller that has given up must not keep the model busy, or
        under load every queued turn times out in turn. Past it, waiting for the model or generating stops with
        TimeoutError."""
        prompt = self.render(messages, tools)
        wait = -1.0 if deadline is None else max(0.0, deadline - time.time())
        if not self._lock.acquire(timeout=wait):  # one generation at a time per loaded model
            raise TimeoutError("the model stayed busy with other conversations past this turn's time budget")
        try:
            return self._generate_locked(prompt, tools, on_text, deadline)
        finally:
            self._lock.release()

    def _generate_locked(
        self,
        prompt: str,
        tools: list[dict[str, Any]] | None,
        on_text: Callable[[str], None] | None,
        deadline: float | None,
    ) -> AIMessage:
        # lazy: torch is heavy and needed only here
        import torch

        # lazy: transformers is heavy and needed only here
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        with torch.inference_mode():
            inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            n_prompt = int(inputs["input_ids"].shape[1])
            limit = getattr(self._model.config, "max_position_embeddings", 4096)
            if n_prompt >= limit:
                raise ValueError(f"the conversation is {n_prompt} tokens; this model reads at most {limit}")
            budget = min(self.max_new_tokens, limit - n_prompt)
            kwargs = dict(inputs, max_new_tokens=budget, do_sample=False)
            if deadline is not None:
                kwargs["stopping_criteria"] = StoppingCriteriaList([_PastDeadline(deadline)])
            if on_text is None:
                out = self._model.generate(**kwargs)
            else:
                streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
                errors: list[BaseException] = []

                def work() -> None:
                    try:
                        holder.append(self._model.generate(**kwargs, streamer=streamer))
                    except BaseException as exc:  # re-raised in the caller's thread
                        errors.append(exc)
                        streamer.end()

                holder: list[Any] = []
                worker = threading.Thread(target=work, daemon=True)
                worker.start()
                for piece in streamer:
                    on_text(piece)
                worker.join()
                if errors:
                    raise errors[0]
                out = holder[0]
            if deadline is not None and time.time() >= deadline:
                raise TimeoutError("generation stopped at this turn's time budget")
            new = out[0, n_prompt:]
            n_out = int(new.shape[0])
            text = self._tokenizer.decode(new, skip_special_tokens=True)
            message = parse_tool_calls(text)
            if self.constrain and tools:
                text, n_extra = self._redecode_broken_call(prompt, text, tools, budget - n_out)
                if n_extra:
                    message, n_out = parse_tool_calls(text), n_out + n_extra
        message.usage_metadata = {
            "input_tokens": n_prompt,
            "output_tokens": n_out,
            "total_tokens": n_prompt + n_out,
        }
        return message

    def _redecode_broken_call(
        self, prompt: str, text: str, tools: list[dict[str, Any]], budget: int
    ) -> tuple[str, int]:
        schemas = self.argument_schemas_for(tools)
        for match in _CALL_START.finditer(text):
            close = text.find(CALL_CLOSE, match.start())
            parsed = (
                parse_tool_calls(text[match.start() : close + len(CALL_CLOSE)]).tool_calls
                if close >= 0
                else []
            )
            first = parsed[0] if parsed else None  # None: cut off, or JSON that did not parse
            if not breaks_schema(dict(first) if first else None, schemas):
                continue
            head = text[: match.start()] + CALL_OPEN + "\n"
            if self._lltok is None:
                self._lltok = ll_tokenizer(self._tokenizer)
            try:
                call, n_new = decode_call(
                    self._model, self._tokenizer, self._lltok, prompt + head, schemas, max(budget, 64)
                )
            except (
                ValueError
            ) as exc:  # keep what the model wrote; the tool guardrail rejects it with a reason
                log.warning("constrained decoding failed: %s", exc)
                return text, 0
            log.info("constrained decoding replaced a call that broke its schema: %s", call.get("name"))
            return head + json.dumps(call) + "\n" + CALL_CLOSE, n_new
        return text, 0

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._run(messages, kwargs.get("tools"), deadline=kwargs.get("deadline"))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Text tokens as they are generated (the part before any `<tool_call>`), then one last chunk with the
        tool calls and token counts. Generation runs in a thread; the chunks cross over through a queue."""
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                pieces.put(
                    (
                        "done",
                        self._run(
                            messages,
                            kwargs.get("tools"),
                            on_text=lambda p: pieces.put(("text", p)),
                            deadline=kwargs.get("deadline"),
                        ),
                    )
                )
            except BaseException as exc:
                pieces.put(("error", exc))

        threading.Thread(target=work, daemon=True).start()
        visible = _VisibleText()
        while True:
            kind, value = pieces.get()
            if kind == "error":
                raise value
            if kind == "done":
                break
            if shown := visible.feed(value):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=shown))
                if run_manager:
                    run_manager.on_llm_new_token(shown, chunk=chunk)
                yield chunk
        final: AIMessage = value
        content = final.content if isinstance(final.content, str) else ""
        rest = content[len(visible.shown) :] if content.startswith(visible.shown) else ""
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content=rest,
                usage_metadata=final.usage_metadata,
                tool_call_chunks=[
                    {
                        "name": c["name"],
                        "args": json.dumps(c["args"]),
                        "id": c["id"],
                        "index": i,
                        "type": "tool_call_chunk",
                    }
                    for i, c in enumerate(final.tool_calls)
                ]
                + [
                    {
                        "name": c.get("name"),
                        "args": c.get("args"),
                        "id": c.get("id"),
                        "index": len(final.tool_calls) + i,
                        "type": "tool_call_chunk",
                    }
                    for i, c in enumerate(final.invalid_tool_calls)
                ],
            )
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Generation is CPU-bound: run it off the event loop so streaming and timeouts keep working.
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)


_CALL_START = re.compile(re.escape(CALL_OPEN))


class _PastDeadline:
    """A transformers stopping criterion: stop every sequence once the turn's deadline has passed."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        # lazy: torch is heavy and needed only here
        import torch

        return torch.full(
            (input_ids.shape[0],), time.time() >= self.deadline, dtype=torch.bool, device=input_ids.device
        )


class _VisibleText:
    """The text a user should see while it streams: everything before the first `<tool_call>`, leading
    whitespace dropped, holding back a tail that might be the start of the marker."""

    def __init__(self) -> None:
        self.buffer = ""
        self.shown = ""
        self.closed = False

    def feed(self, piece: str) -> str:
        if self.closed:
            return ""
        self.buffer += piece
        if (at := self.buffer.find(CALL_OPEN)) >= 0:
            self.closed = True
            out = self.buffer[:at]
        else:
            keep = next(
                (k for k in range(len(CALL_OPEN) - 1, 0, -1) if self.buffer.endswith(CALL_OPEN[:k])), 0
            )
            out = self.buffer[: len(self.buffer) - keep]
        self.buffer = self.buffer[len(out) :]
        if not self.shown:
            out = out.lstrip()
        self.shown += out
        return out
