"""OpenTelemetry spans for a turn, hung on the turn's typed events (agent/events.py).

    invoke_agent adguide            a turn (gen_ai.conversation.id = the thread); its events as span events
    ├── guardrail input             the input screens (adguide.guardrail.action: pass | refused | redacted)
    ├── chat <model>                one model call (gen_ai.usage.*, gen_ai.response.finish_reasons)
    ├── guardrail tool_args         a tool call's arguments checked against schema, scope and bounds
    ├── execute_tool <name>         one MCP tool call (gen_ai.tool.name, gen_ai.tool.call.id)
    └── guardrail output            grounding, promises and ad policy on the answer

Names and attributes follow OpenTelemetry's GenAI semantic conventions where they define one
(gen_ai.operation.name, gen_ai.tool.*, gen_ai.usage.*); the rest is under `adguide.`.

Off by default, and then nearly free: every helper yields None and does nothing (about 1 µs a span, measured
on the 2-core machine), no provider or exporter is made, and this module imports no SDK (langsmith, under
langchain-core, imports the SDK's TracerProvider by itself when it is installed: ~25 ms once). It is on when
- OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: spans go over OTLP/HTTP in
  batches (the exporter reads the other standard OTEL_EXPORTER_OTLP_* variables; OTEL_SERVICE_NAME defaults to
  "adguide"; OTEL_SDK_DISABLED=true keeps it off). `Agent` reads this once per process.
- `adguide ask --trace` asks: spans are kept in memory and printed as a tree after the answer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent import events as ev
from tools.mcp_server.outputs import failure

if TYPE_CHECKING:  # the SDK is imported only when tracing is turned on
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("adguide.tracing")

SCOPE = "adguide.agent"
MAX_ATTRIBUTE_CHARS = 1000  # a tool's arguments or a proposal's diff on a span event, cut here
_tracer: Tracer | None = None  # None: tracing is off and every helper is a no-op
_provider: TracerProvider | None = None
_env_read = False


class TracingConfigError(ValueError):
    """A tracing variable (OTEL_*) with a value adguide cannot use; the message says which and what to set."""


def enabled() -> bool:
    return _tracer is not None


def enable(provider: TracerProvider) -> None:
    """Send the agent's spans to `provider` (an SDK TracerProvider with its processors and exporters)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer(SCOPE)


def disable() -> None:
    """Stop tracing; spans already handed to the provider are flushed."""
    global _tracer, _provider
    if _provider is not None:
        _provider.force_flush()
    _tracer, _provider = None, None


def provider() -> TracerProvider | None:
    return _provider


def flush() -> None:
    """Hand every finished span to the exporters now (a server shutting down, a test reading them)."""
    if _provider is not None:
        _provider.force_flush()


def new_provider(environ: Mapping[str, str] = os.environ) -> TracerProvider:
    # lazy: opentelemetry is heavy and needed only here
    from opentelemetry.sdk.resources import Resource

    # lazy: pulls in opentelemetry at import
    from opentelemetry.sdk.trace import TracerProvider

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the default name is ours
    return TracerProvider(
        resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "adguide"})
    )


def otlp_endpoint(environ: Mapping[str, str] = os.environ) -> str | None:
    """The OTLP endpoint configured by the standard variables, or None (tracing stays off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    if not endpoint.startswith(("http://", "https://")):
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_ENDPOINT: {endpoint!r} is not an http(s) URL; adguide exports "
            "traces over OTLP/HTTP, e.g. http://127.0.0.1:4318"
        )
    return endpoint


def add_otlp(target: TracerProvider, environ: Mapping[str, str] = os.environ) -> bool:
    """Export `target`'s spans over OTLP/HTTP (batched) when an endpoint is configured; whether it is."""
    if otlp_endpoint(environ) is None:
        return False
    # lazy: opentelemetry is heavy and needed only here
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # lazy: pulls in opentelemetry at import
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # the exporter reads the endpoint (adding /v1/traces to the generic one), headers and timeout from the env
    target.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return True


def configure_from_env(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on over OTLP when the environment configures an endpoint; once per process (every `Agent`
    calls it). Whether tracing is on."""
    global _env_read
    if _env_read or _tracer is not None:
        return _tracer is not None
    endpoint = otlp_endpoint(environ)  # a bad value raises here, and again on the next call
    _env_read = True
    if endpoint is None:
        return False
    target = new_provider(environ)
    add_otlp(target, environ)
    enable(target)
    log.info("tracing: spans go over OTLP to %s", endpoint)
    return True


def in_memory(environ: Mapping[str, str] = os.environ) -> InMemorySpanExporter:
    """Tracing on, with every span kept in memory (and exported over OTLP as well where configured): what
    `adguide ask --trace` prints."""
    # lazy: opentelemetry is heavy and needed only here
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    # lazy: pulls in opentelemetry at import
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    global _env_read
    exporter = InMemorySpanExporter()
    target = new_provider(environ)
    target.add_span_processor(SimpleSpanProcessor(exporter))
    add_otlp(target, environ)
    _env_read = True  # this provider replaces the one the environment would make
    enable(target)
    return exporter


# --- spans -------------------------------------------------------------------------------------------


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span | None]:
    """A span as the current one (its children nest under it), or None when tracing is off. An exception that
    leaves it marks it as failed."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
        name, attributes={k: v for k, v in (attributes or {}).items() if v is not None}
    ) as current:
        yield current


def turn(thread_id: str, advertiser_id: str, *, kind: str) -> Any:
    """A turn's span; `kind`: message | confirmation | guide (a proactive run)."""
    return span(
        "invoke_agent adguide",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "adguide",
            "gen_ai.conversation.id": thread_id,
            "adguide.advertiser_id": advertiser_id,
            "adguide.turn.kind": kind,
        },
    )


def model_call(model: Any, backend: str) -> Any:
    name = str(getattr(model, "model_name", None) or getattr(model, "_llm_type", None) or backend)
    return span(
        f"chat {name}",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": backend,
            "gen_ai.request.model": name,
            "adguide.backend": backend,
        },
    )


def tool_call(name: str, call_id: str = "") -> Any:
    return span(
        f"execute_tool {name}",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": call_id or None,
        },
    )


def guardrail(stage: str, tool: str | None = None) -> Any:
    return span(f"guardrail {stage}", {"adguide.guardrail.stage": stage, "gen_ai.tool.name": tool})


def model_response(current: Span | None, message: Any) -> None:
    """A model call's usage and outcome on its span."""
    if current is None:
        return
    usage = getattr(message, "usage_metadata", None) or {}
    calls = getattr(message, "tool_calls", None) or []
    finish = (getattr(message, "response_metadata", None) or {}).get("finish_reason")
    if usage:  # the rules and teacher backends count no tokens
        current.set_attributes(
            {
                "gen_ai.usage.input_tokens": int(usage.get("input_tokens") or 0),
                "gen_ai.usage.output_tokens": int(usage.get("output_tokens") or 0),
            }
        )
    current.set_attributes(
        {
            "gen_ai.response.finish_reasons": [str(finish or ("tool_calls" if calls else "stop"))],
            "adguide.tool_calls": len(calls),
        }
    )


def tool_result(current: Span | None, text: str) -> None:
    """Whether a tool call succeeded (its result is not an error object), on its span."""
    if current is None:
        return
    error = failure(text)
    current.set_attribute("adguide.tool.ok", error is None)
    if error is not None:
        # lazy: opentelemetry is heavy and needed only here
        from opentelemetry.trace import StatusCode

        current.set_status(StatusCode.ERROR, error.message[:MAX_ATTRIBUTE_CHARS])
        if error.type:
            current.set_attribute("error.type", error.type)


def verdict(current: Span | None, action: str, detail: str = "") -> None:
    """A guardrail check's outcome: "pass", or what it did (refused, redacted, rejected, repaired, ...)."""
    if current is None:
        return
    current.set_attribute("adguide.guardrail.action", action)
    if detail:
        current.set_attribute("adguide.guardrail.detail", detail[:MAX_ATTRIBUTE_CHARS])


def failed(current: Span | None, exc: BaseException) -> None:
    """An exception the code handled (a model timeout ends the turn gracefully) still marks its span."""
    if current is None:
        return
    # lazy: opentelemetry is heavy and needed only here
    from opentelemetry.trace import StatusCode

    current.record_exception(exc)
    current.set_attribute("error.type", type(exc).__name__)
    current.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:MAX_ATTRIBUTE_CHARS])


def _scalar(value: Any) -> str | int | float | bool:
    if isinstance(value, str | int | float | bool):
        return value[:MAX_ATTRIBUTE_CHARS] if isinstance(value, str) else value
    return json.dumps(value, default=str)[:MAX_ATTRIBUTE_CHARS]


def on_event(current: Span | None, event: ev.Event) -> None:
    """A turn's event on the turn's span: a span event named by its type with its fields (tokens are counted,
    not recorded one by one)."""
    if current is None or isinstance(event, ev.Token):
        return
    current.add_event(
        event.type, {k: _scalar(v) for k, v in event.wire().items() if k != "type" and v is not None}
    )
    if isinstance(event, ev.Final):
        current.set_attribute("adguide.turn.answer_chars", len(event.text))
    elif isinstance(event, ev.Confirmation | ev.ExtraConfirmation):
        current.set_attribute("adguide.turn.awaiting_confirmation", True)


def turn_end(current: Span | None, stop_reason: str, token_events: int) -> None:
    if current is None:
        return
    current.set_attribute("adguide.turn.token_events", token_events)
    if stop_reason:
        current.set_attribute("adguide.turn.stop_reason", stop_reason)


# --- reading spans back ------------------------------------------------------------------------------

_SHOWN = {
    "gen_ai.conversation.id": "thread",
    "gen_ai.usage.input_tokens": "tokens_in",
    "gen_ai.usage.output_tokens": "tokens_out",
    "adguide.tool_calls": "tool_calls",
    "gen_ai.tool.call.id": "call",
    "adguide.tool.ok": "ok",
    "adguide.guardrail.action": "action",
    "adguide.turn.stop_reason": "stop_reason",
    "error.type": "error",
}


def _show(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def span_tree(spans: list[ReadableSpan]) -> list[str]:
    """Finished spans as an indented tree, one line a span: name, duration, the telling attributes. Spans whose
    parent is not among them are roots (a turn, or a tool call made outside a turn)."""
    ids = {s.context.span_id for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        children.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x.start_time or 0):
            ms = ((s.end_time or 0) - (s.start_time or 0)) / 1e6
            attrs = s.attributes or {}
            shown = " ".join(f"{label}={_show(attrs[k])}" for k, label in _SHOWN.items() if k in attrs)
            failed_mark = " ERROR" if s.status is not None and s.status.status_code.name == "ERROR" else ""
            lines.append(f"{'  ' * depth}{s.name}  {ms:.1f} ms{failed_mark}{'  ' + shown if shown else ''}")
            if s.context is not None:
                walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return lines
