"""Chat: threads, a turn streamed as server-sent events, history, and confirming or rejecting a proposal.

A turn runs in its own task and writes events to a queue; the response reads the queue. So a client that
disconnects doesn't cut a turn in half (it finishes and is checkpointed; the history shows it), and the
per-turn time budget is enforced in one place. The events are agent/events.py's typed union, sent as
SSE (`event:` = the type, `data:` = the event's JSON, `type` included); the list of types and fields is there:
token, tool_call, tool_result, guardrail, confirmation, extra_confirmation, final, then error (the turn
failed; the message says what to do) and done (always last) from this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from langchain_core.messages import convert_to_openai_messages
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from agent import events as ev
from agent.graph import AgentError
from server.auth import Principal, require_advertiser
from server.db import iso
from server.deps import Services, ThreadId, caller, services
from server.errors import ApiError, DependencyDown
from server.limits import acquire_thread, release_thread
from server.logs import request_id_var
from tools.mcp_server.outputs import failure, payload

log = logging.getLogger("adguide.server.chat")
router = APIRouter(prefix="/v1", tags=["chat"])

GRACE_S = 10.0  # beyond the agent's own per-turn bound, before the server gives up on a turn


class NewThread(BaseModel):
    title: str = Field(default="", max_length=200, description="a label for the thread list")


class ThreadOut(BaseModel):
    thread_id: str
    title: str
    created_at: str | None


class MessageIn(BaseModel):
    message: str = Field(
        min_length=1, description="the advertiser's message (length limit: see max_message_chars)"
    )


class DecisionIn(BaseModel):
    decision: Literal["confirm", "reject"]
    acknowledge_risk: bool = Field(
        default=False, description="answers the second confirmation a policy bound asks"
    )
    token: str | None = Field(
        default=None, description="the proposal's token; refused if a newer one replaced it"
    )


class TurnOut(BaseModel):
    """A whole turn, for clients that ask for JSON (Accept: application/json) instead of an event stream."""

    thread_id: str
    text: str
    confirmation: ev.Proposal | None = None
    events: list[ev.Event]
    stop_reason: str = ""


class HistoryOut(BaseModel):
    thread_id: str
    title: str
    messages: list[dict[str, Any]] = Field(description="OpenAI-style chat messages (user, assistant, tool)")
    pending: dict[str, Any] | None = Field(description="the proposal awaiting confirmation, if any")


def _thread_out(row: dict[str, Any]) -> ThreadOut:
    return ThreadOut(thread_id=row["thread_id"], title=row["title"], created_at=iso(row["created_at"]))


async def _own_thread(svc: Services, thread_id: str, advertiser_id: str) -> dict[str, Any]:
    await svc.ready()
    row = await svc.db.thread(thread_id, advertiser_id)
    if row is None:  # another advertiser's thread is reported exactly like a missing one
        raise ApiError(
            404,
            "thread_not_found",
            f"no thread {thread_id!r} for this API key; create one with POST /v1/threads",
        )
    return row


@router.post("/threads", status_code=201, response_model=ThreadOut, summary="Create a conversation thread")
async def create_thread(
    body: NewThread | None = None, principal: Principal = Depends(caller), svc: Services = Depends(services)
) -> ThreadOut:
    advertiser_id = require_advertiser(principal)
    await svc.ready()
    row = await svc.db.create_thread(f"th_{uuid.uuid4().hex}", advertiser_id, (body or NewThread()).title)
    return _thread_out(row)


@router.get("/threads", response_model=list[ThreadOut], summary="Your threads, newest first")
async def list_threads(
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(caller),
    svc: Services = Depends(services),
) -> list[ThreadOut]:
    advertiser_id = require_advertiser(principal)
    await svc.ready()
    return [_thread_out(r) for r in await svc.db.threads(advertiser_id, limit)]


async def _snapshot(svc: Services, thread_id: str) -> Any:
    try:
        return await svc.reader.aget_state({"configurable": {"thread_id": thread_id}})
    except Exception as exc:  # the checkpointer lives in PostgreSQL
        raise DependencyDown("PostgreSQL", exc) from exc


def _pending_of(snapshot: Any) -> dict[str, Any] | None:
    for task in snapshot.tasks:
        for intr in task.interrupts:
            return dict(intr.value)
    return None


@router.get(
    "/threads/{thread_id}", response_model=HistoryOut, summary="A thread's history and pending proposal"
)
async def history(
    thread_id: ThreadId, principal: Principal = Depends(caller), svc: Services = Depends(services)
) -> HistoryOut:
    advertiser_id = require_advertiser(principal)
    row = await _own_thread(svc, thread_id, advertiser_id)
    snapshot = await _snapshot(svc, thread_id)
    messages = list((snapshot.values or {}).get("messages", []))
    return HistoryOut(
        thread_id=thread_id,
        title=row["title"],
        messages=convert_to_openai_messages(messages) if messages else [],
        pending=_pending_of(snapshot),
    )


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/event-stream" not in accept


@router.post(
    "/threads/{thread_id}/messages",
    summary="Send a message; the turn streams back as server-sent events",
    responses={
        200: {
            "content": {"text/event-stream": {}, "application/json": {}},
            "description": "SSE events (see module doc), or a TurnOut with Accept: application/json",
        }
    },
)
async def post_message(
    thread_id: ThreadId,
    body: MessageIn,
    request: Request,
    principal: Principal = Depends(caller),
    svc: Services = Depends(services),
) -> Any:
    advertiser_id = require_advertiser(principal)
    limit = svc.settings.max_message_chars
    if len(body.message) > limit:
        raise ApiError(
            422,
            "message_too_long",
            f"message: at most {limit} characters (got {len(body.message)}); "
            "shorten it or split it into several messages",
        )
    if not body.message.strip():
        raise ApiError(422, "empty_message", "message: must contain some text")
    await _own_thread(svc, thread_id, advertiser_id)
    return await _start_turn(svc, request, advertiser_id, thread_id, message=body.message)


@router.post(
    "/threads/{thread_id}/confirmation",
    summary="Confirm or reject the pending proposal (streams the result)",
    responses={
        200: {"content": {"text/event-stream": {}, "application/json": {}}},
        409: {"description": "nothing waits for confirmation, or the token was superseded"},
        410: {"description": "the proposal expired; nothing was applied"},
    },
)
async def confirm(
    thread_id: ThreadId,
    body: DecisionIn,
    request: Request,
    principal: Principal = Depends(caller),
    svc: Services = Depends(services),
) -> Any:
    advertiser_id = require_advertiser(principal)
    await _own_thread(svc, thread_id, advertiser_id)
    pending = _pending_of(await _snapshot(svc, thread_id))
    if pending is None:
        raise ApiError(
            409,
            "nothing_to_confirm",
            "this thread has no proposal waiting for confirmation; ask for a change first",
        )
    if body.token is not None and body.token != pending.get("token"):
        raise ApiError(
            409,
            "proposal_superseded",
            "that proposal was replaced by a newer one; confirm the "
            "current proposal (GET the thread to see it)",
        )
    resume: Any = {"decision": body.decision, "acknowledge_risk": body.acknowledge_risk}
    expires_at = float(pending.get("expires_at") or 0)
    if body.decision == "confirm" and expires_at and time.time() > expires_at:
        # The agent records the expiry in the thread and applies nothing; the caller gets a 410.
        out = await _collect(svc, await _launch(svc, advertiser_id, thread_id, None, resume))
        raise ApiError(
            410,
            "proposal_expired",
            "this proposal expired before it was confirmed; nothing was "
            "changed. Ask again for a fresh proposal",
            extra={"text": out.text},
        )
    return await _start_turn(svc, request, advertiser_id, thread_id, resume=resume)


async def _start_turn(
    svc: Services,
    request: Request,
    advertiser_id: str,
    thread_id: str,
    *,
    message: str | None = None,
    resume: Any = None,
) -> Any:
    queue = await _launch(svc, advertiser_id, thread_id, message, resume)
    if _wants_json(request):
        return JSONResponse((await _collect(svc, queue)).model_dump())
    return EventSourceResponse(_sse(svc, queue), ping=15)


Events = asyncio.Queue[ev.Event | None]  # a turn's events; None after the last


async def _launch(
    svc: Services, advertiser_id: str, thread_id: str, message: str | None, resume: Any
) -> Events:
    """Take the thread's lock and start the turn's task; its events arrive on the returned queue."""
    settings = svc.settings
    budget = settings.turn_seconds + GRACE_S
    token = await acquire_thread(svc.redis, settings.redis_prefix, thread_id, budget + 30)
    queue: Events = asyncio.Queue()
    rid = request_id_var.get()

    async def produce() -> None:
        request_id_var.set(rid)
        started = time.perf_counter()
        tool_started: dict[str, float] = {}
        outcome = "ok"
        stop_reason = ""
        try:
            assert svc.pool is not None
            async with svc.pool.agent(advertiser_id) as agent:
                async for event in agent.stream(thread_id, message, resume=resume):
                    _observe(svc, event, tool_started)
                    await queue.put(event)
                values = (await agent.graph.aget_state({"configurable": {"thread_id": thread_id}})).values
                turn = values.get("turn") or {}
                stop_reason = str(turn.get("stop_reason") or "")
                if resume is None:
                    svc.metrics.tokens.inc(int(turn.get("tokens") or 0))
        except AgentError as exc:
            outcome = "conflict"
            await queue.put(ev.Error(code="conflict", message=str(exc)))
        except asyncio.CancelledError:
            outcome = "timeout"
            raise
        except Exception as exc:
            outcome = "error"
            log.exception("turn failed on thread %s", thread_id)
            await queue.put(ev.Error(code="turn_failed", message=_failure_message(exc)))
        finally:
            seconds = time.perf_counter() - started
            svc.metrics.turn_latency.labels(kind="confirm" if resume is not None else "message").observe(
                seconds
            )
            svc.metrics.turns.labels(outcome=outcome).inc()
            await release_thread(svc.redis, settings.redis_prefix, thread_id, token)
            log.info(
                "turn finished",
                extra={
                    "thread_id": thread_id,
                    "advertiser_id": advertiser_id,
                    "outcome": outcome,
                    "seconds": round(seconds, 3),
                },
            )
            queue.put_nowait(ev.Done(thread_id=thread_id, stop_reason=stop_reason, seconds=round(seconds, 3)))
            queue.put_nowait(None)

    task = asyncio.create_task(produce(), name=f"turn:{thread_id}")
    svc.background.add(task)
    task.add_done_callback(svc.background.discard)
    loop = asyncio.get_running_loop()
    # The per-turn time budget: the agent ends a turn gracefully at turn_seconds; this is the hard stop.
    loop.call_later(budget, _expire, task, queue, budget)
    return queue


def _expire(task: asyncio.Task[None], queue: Events, budget: float) -> None:
    if not task.done():
        queue.put_nowait(
            ev.Error(
                code="turn_timeout",
                message=f"the turn ran past its {budget:g} s budget and was stopped; what was done "
                "so far is kept in the thread; ask again, perhaps a narrower question",
            )
        )
        task.cancel()


def _failure_message(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the advertiser data is not available on this server (world file missing); tell your admin"
    if isinstance(exc, DependencyDown):
        return exc.message
    return "the turn failed on our side and was logged; your message is kept in the thread, try again"


def _observe(svc: Services, event: ev.Event, tool_started: dict[str, float]) -> None:
    match event:
        case ev.ToolCall():
            tool_started[event.call_id or event.name] = time.perf_counter()
        case ev.ToolResult():
            if (started := tool_started.pop(event.call_id or event.name, None)) is not None:
                svc.metrics.tool_latency.labels(tool=event.name).observe(time.perf_counter() - started)
            if not event.ok:
                svc.metrics.tool_errors.labels(tool=event.name).inc()
        case ev.Guardrail():
            svc.metrics.guardrail_trips.labels(stage=event.stage, action=event.action).inc()
        case _:
            pass


async def _sse(svc: Services, queue: Events) -> AsyncIterator[dict[str, str]]:
    while (event := await queue.get()) is not None:
        yield {"event": event.type, "data": json.dumps(event.wire(), default=str)}


async def _collect(svc: Services, queue: Events) -> TurnOut:
    events: list[ev.Event] = []
    while (event := await queue.get()) is not None:
        events.append(event)
    summary = ev.TurnSummary.of(events)
    done = summary.done
    return TurnOut(
        thread_id=done.thread_id if done else "",
        text=summary.text,
        confirmation=summary.confirmation,
        events=events,
        stop_reason=done.stop_reason if done else "",
    )


@router.get(
    "/charts/bid-landscape",
    summary="Simulated clicks, spend, sales and profit of one of your keywords "
    "at several bids (for the chat page's chart)",
)
async def bid_landscape(
    keyword_id: str = Query(min_length=1, max_length=64),
    days: int = Query(14, ge=1, le=90),
    principal: Principal = Depends(caller),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    advertiser_id = require_advertiser(principal)
    assert svc.pool is not None
    async with svc.pool.agent(advertiser_id) as agent:
        assert agent.context is not None
        tool = agent.context.tools.get("bid_landscape")
        if tool is None:
            raise ApiError(503, "tool_unavailable", "the simulator tools are not available on this server")
        raw = await tool.ainvoke({"keyword_id": keyword_id, "days": days})
    text = (
        raw
        if isinstance(raw, str)
        else "".join(
            b.get("text", "") if isinstance(b, dict) else str(b)
            for b in (raw if isinstance(raw, list) else [raw])
        )
    )
    result = payload(text)
    if result is None:
        raise ApiError(502, "tool_failed", "the simulator returned something unreadable; try again")
    if (err := failure(result)) is not None:
        if err.type in ("UnknownIdError", "ScopeError"):
            raise ApiError(404, "keyword_not_found", f"no keyword {keyword_id!r} in your account")
        raise ApiError(422, "invalid_input", err.message or "the simulator refused the request")
    return result  # the tool's JSON as it came (LandscapeOut's fields), the API's response body
