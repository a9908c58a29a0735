"""Engine-backed tools: auction simulator, optimizers, uplift, keyword recommendations.

Each handler adapts one engine function to its schema in schemas.py. Engines raise tools.errors
types for bad input; the server turns those into structured tool errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from tools.mcp_server.context import ToolContext
from tools.mcp_server.schemas import Impact, ProposeIn

HANDLERS: dict[str, Callable[[ToolContext, Any], BaseModel]] = {}


def change_impact(ctx: ToolContext, args: ProposeIn) -> Impact | None:
    """Simulated effect of a proposed change (status quo vs change); None where no simulation applies."""
    return None
