"""Adding a tool: a handler with its input and output models (this file) plus one registry line (a ToolSpec),
served and called through a real MCP session, with the registry's scope and name resolution."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import Field, ValidationError
from typer.testing import CliRunner

from agent.guardrails.tool_args import Scope, Verdict, approval, check_tool_args
from tools.market.store import MarketStore
from tools.mcp_server import call, connect_in_memory
from tools.mcp_server.cache import ToolCache
from tools.mcp_server.cli import tools_app
from tools.mcp_server.context import ToolContext
from tools.mcp_server.schemas import (
    TOOLS,
    TOOLS_BY_NAME,
    Approval,
    EntityKind,
    Reference,
    ToolInput,
    ToolOutput,
    ToolSpec,
    entity_arguments,
    openai_tools,
)

ADV = "adv_0001"


class KeywordCountIn(ToolInput):
    campaign_id: str | None = Field(None, description="default: every campaign")


class KeywordCountOut(ToolOutput):
    advertiser_id: str
    campaign_id: str | None
    keywords: int


def keyword_count(ctx: ToolContext, args: KeywordCountIn) -> KeywordCountOut:
    return KeywordCountOut(
        advertiser_id=ctx.advertiser_id,
        campaign_id=args.campaign_id,
        keywords=len(ctx.adv.keywords(campaign_id=args.campaign_id)),
    )


# the one registry line
KEYWORD_COUNT = ToolSpec(
    name="keyword_count",
    handler=f"{__name__}:keyword_count",
    description="How many keywords a campaign (or the account) has.",
    input=KeywordCountIn,
    output=KeywordCountOut,
    references={"campaign_id": Reference(kinds=(EntityKind.CAMPAIGN,))},
)


async def test_a_new_tool_is_one_handler_and_one_spec(tiny_world_path: Path) -> None:
    store = MarketStore.open(tiny_world_path)
    adv = store.scoped(ADV)
    camp = adv.campaigns()[0]
    expected = len(adv.keywords(campaign_id=camp.id)), len(adv.keywords())
    store.close()
    registry = [*TOOLS, KEYWORD_COUNT]
    async with connect_in_memory(
        tiny_world_path, ADV, cache=ToolCache(enabled=False), tools=registry
    ) as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
        by_id = await call(session, "keyword_count", {"campaign_id": camp.id})
        by_name = await call(session, "keyword_count", {"campaign_id": camp.name})  # words, resolved in scope
        everything = await call(session, "keyword_count")
        bad = (await call(session, "keyword_count", {"campaign": camp.id}))["error"]
    assert set(listed) == {spec.name for spec in registry}
    annotations = listed["keyword_count"].annotations
    assert annotations is not None and annotations.readOnlyHint is True
    assert listed["keyword_count"].inputSchema["properties"]["campaign_id"]["type"] == "string"
    assert by_id == {"advertiser_id": ADV, "campaign_id": camp.id, "keywords": expected[0]}
    assert by_name["campaign_id"] == camp.id and by_name["resolved"][0]["query"] == camp.name
    assert everything["keywords"] == expected[1]
    assert bad["type"] == "InvalidInputError" and bad["field"] == "campaign"


async def test_the_default_registry_is_left_alone(tiny_world_path: Path) -> None:
    async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
        listed = {t.name for t in (await session.list_tools()).tools}
        err = (await call(session, "keyword_count"))["error"]
    assert "keyword_count" not in listed and listed == {spec.name for spec in TOOLS}
    assert err["type"] == "UnknownToolError"


def test_a_tool_that_writes_must_wait_for_approval() -> None:
    """The spec's hints: a writing tool is approval=apply (run by the graph after the user's yes), and only it."""
    writes = {"read_only": False, "destructive": True}
    with pytest.raises(ValidationError, match="approval=apply"):
        KEYWORD_COUNT.model_validate({**KEYWORD_COUNT.model_dump(), **writes})
    with pytest.raises(ValidationError, match="approval=apply"):
        KEYWORD_COUNT.model_validate({**KEYWORD_COUNT.model_dump(), "approval": Approval.APPLY})
    applies = KEYWORD_COUNT.model_validate(
        {**KEYWORD_COUNT.model_dump(), **writes, "approval": Approval.APPLY}
    )
    assert applies.approval == Approval.APPLY
    assert {s.name for s in TOOLS if s.approval == Approval.APPLY} == {
        s.name for s in TOOLS if not s.read_only
    }
    assert KEYWORD_COUNT.entity_arguments == ("campaign_id",)
    assert {a for s in TOOLS for a in s.references} == entity_arguments()
    assert "campaign_ids" in entity_arguments() and "campaign_ids" not in entity_arguments(lists=False)


@contextmanager
def registered(spec: ToolSpec) -> Iterator[None]:
    """What one more line in `TOOLS` (schemas.py) does, undone after the test."""
    TOOLS.append(spec)
    TOOLS_BY_NAME[spec.name] = spec
    try:
        yield
    finally:
        TOOLS.remove(spec)
        del TOOLS_BY_NAME[spec.name]


async def test_one_registry_line_reaches_every_reader(tiny_world_path: Path) -> None:
    """With the spec in the registry and nothing else edited: the default server serves it over MCP, the
    model's specs list it, the CLI's table shows it and the guardrails read its hints."""
    with registered(KEYWORD_COUNT):
        async with connect_in_memory(tiny_world_path, ADV, cache=ToolCache(enabled=False)) as session:
            listed = {t.name for t in (await session.list_tools()).tools}
            counted = await call(session, "keyword_count")
        specs = {t["function"]["name"]: t["function"] for t in openai_tools()}
        table = CliRunner().invoke(tools_app, ["list", "--json"])
        read_only = Scope(advertiser_id=ADV, allow_writes=False)
        check = check_tool_args("keyword_count", {"campaign_id": "cmp_nope"}, schema=None, scope=read_only)
        hint = approval("keyword_count")
    assert "keyword_count" in listed and counted["advertiser_id"] == ADV and counted["keywords"] > 0
    assert specs["keyword_count"]["parameters"]["properties"]["campaign_id"]["type"] == "string"
    assert '"keyword_count"' in table.output
    assert hint == Approval.NONE and check.verdict == Verdict.OK  # a read: allowed in a read-only session
    assert "keyword_count" not in TOOLS_BY_NAME  # and gone again for the other tests
