"""The account's changes as a Sponsored Products bulksheet, for the agent's command line: the changes confirmed in a
chat (the store's audit log after a record), or the changes a list of proposals would make, tried on a scratch copy
of the store through the tools themselves (tools/market/bulksheet.py writes the rows).

The agent imports this module and the package's entry points, never the market's internals (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.market.bulksheet import BulksheetExport, export_bulksheet, write_bulksheet
from tools.market.store import MarketStore, default_store

__all__ = [
    "BulksheetExport",
    "confirmed_changes",
    "last_change",
    "proposals_bulksheet",
    "store_location",
    "write_bulksheet",
]


def store_location(store: str | Path | None) -> str:
    """The store a session opens: the one named, else the default (ADGUIDE_WORLD or the generated world)."""
    return str(store or default_store())


def last_change(store: str | Path | None, advertiser_id: str) -> int:
    """The id of the advertiser's latest audit record (0 for none): changes confirmed later come after it."""
    with MarketStore.open(store_location(store)) as opened:
        return max((r.id for r in opened.scoped(advertiser_id).audit_log()), default=0)


def confirmed_changes(store: str | Path | None, advertiser_id: str, after_record: int) -> BulksheetExport:
    """The changes applied to the advertiser's account after audit record `after_record`, as bulksheet rows."""
    return export_bulksheet(store_location(store), advertiser_id, after_record=after_record)


async def proposals_bulksheet(
    store: str | Path | None,
    advertiser_id: str,
    proposals: Sequence[tuple[str, dict[str, Any]]],
    workdir: Path,
) -> BulksheetExport:
    """The rows that make `proposals` ((label, propose_change arguments) each) in the console: each is proposed and
    applied on a scratch copy of the store under `workdir` (the store itself is never written), and the copy's new
    audit records are exported, so every row is checked against the account as an accepted change is. A proposal
    that fails is left out and named, by its label, in the notes."""
    # lazy: pulls in sqlalchemy at import
    from tools.market.transfer import copy_store

    # lazy: pulls in mcp, starlette at import
    from tools.mcp_server.cache import ToolCache
    from tools.mcp_server.transports import call, connect_in_memory

    source = store_location(store)
    scratch = workdir / "proposals.sqlite"
    copy_store(source, scratch, force=True, truth=False)
    first = last_change(scratch, advertiser_id)  # the copy's earlier audit records are not these proposals'
    skipped: list[str] = []
    async with connect_in_memory(scratch, advertiser_id, cache=ToolCache(enabled=False)) as session:
        for label, args in proposals:
            proposed = await call(session, "propose_change", args)
            applied = (
                await call(session, "apply_change", {"token": proposed["token"]})
                if "token" in proposed
                else proposed
            )
            if "error" in applied:
                skipped.append(f"{label}: {applied['error'].get('message', applied['error'])}")
    export = export_bulksheet(scratch, advertiser_id, after_record=first)
    return export.model_copy(update={"store_path": source, "notes": [*export.notes, *skipped]})
