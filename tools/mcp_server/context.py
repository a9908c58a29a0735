"""What a tool handler gets: the store, the advertiser-scoped view it may read, and who is acting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tools.errors import UnknownIdError

if TYPE_CHECKING:
    from tools.market.store import AdvertiserStore, MarketStore
    from tools.mcp_server.resolve import Resolver


@dataclass(frozen=True)
class ToolContext:
    store: MarketStore
    adv: AdvertiserStore  # every read and write goes through this advertiser-scoped view
    advertiser_id: str
    actor: str  # written into audit records, e.g. "mcp:advertiser:adv_0001:agent"
    store_key: str = ""  # the store's resolved path: proposals made on one world never apply to another
    resolver: Resolver | None = None  # the advertiser's names -> ids (tools/mcp_server/resolve.py)


def check_member(kind: str, entity_id: str, ids: set[str], advertiser_id: str, field: str) -> None:
    """The same message for an id that does not exist and one of another advertiser (no existence leak)."""
    if entity_id not in ids:
        raise UnknownIdError(f"{kind} {entity_id} is not one of {advertiser_id}'s {kind}s", field=field)
