"""The marketplace's plain enums (match types, statuses, targeting, interventions; the auction's
mechanisms are tools/auction/params.py's).

Apart from data_model.py so that the MCP tool schemas can name them without building every entity model
(the schemas must import fast; tests/test_mcp_contract.py). data_model.py imports them from here.
"""

from __future__ import annotations

from enum import StrEnum


class MatchType(StrEnum):
    EXACT = "exact"
    PHRASE = "phrase"
    BROAD = "broad"


class Status(StrEnum):
    ENABLED = "enabled"
    PAUSED = "paused"


class Targeting(StrEnum):
    MANUAL = "manual"
    AUTO = "auto"


class InterventionKind(StrEnum):
    BID_CHANGE = "bid_change"
    BUDGET_CHANGE = "budget_change"
    PAUSE = "pause"
    ENABLE = "enable"
    ADD_KEYWORD = "add_keyword"
    ADD_NEGATIVE = "add_negative"
