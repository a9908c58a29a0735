"""Who a session may act for: one advertiser, or admin (batch jobs, naming the advertiser per call).

The scope is fixed when a session connects (in-memory/stdio: by the caller that starts the server;
HTTP: by the bearer token). It is never taken from the model or from tool arguments: an argument
can only *name* the advertiser, and it must match the scope.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from tools.errors import AdguideError
from tools.settings import ToolSettings


class ScopeError(AdguideError):
    """A request for data outside the session's scope."""


class Scope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    advertiser_id: str | None = None
    admin: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> Scope:
        if self.admin == (self.advertiser_id is not None):
            raise ValueError("a scope is either one advertiser_id or admin, not both or neither")
        return self

    @classmethod
    def advertiser(cls, advertiser_id: str) -> Scope:
        return cls(advertiser_id=advertiser_id)

    @classmethod
    def admin_scope(cls) -> Scope:
        return cls(admin=True)

    @property
    def label(self) -> str:
        return "admin" if self.admin else f"advertiser:{self.advertiser_id}"

    @classmethod
    def parse(cls, label: str) -> Scope:
        """Inverse of `label`: "admin" or "advertiser:adv_0001"."""
        if label == "admin":
            return cls.admin_scope()
        kind, _, adv = label.partition(":")
        if kind != "advertiser" or not adv:
            raise ValueError(f"scope must be 'admin' or 'advertiser:<id>' (got {label!r})")
        return cls.advertiser(adv)

    def resolve(self, named: str | None) -> str:
        """The advertiser a call acts on: the session's own, or the one an admin call names."""
        if self.admin:
            if not named:
                raise ScopeError(
                    "an admin session must name the advertiser in every call",
                    field="advertiser_id",
                    allowed="an advertiser id, e.g. adv_0001",
                )
            return named
        if named is not None and named != self.advertiser_id:
            raise ScopeError(
                f"this session acts for {self.advertiser_id} only",
                field="advertiser_id",
                allowed=str(self.advertiser_id),
            )
        assert self.advertiser_id is not None
        return self.advertiser_id


def load_token_map(source: str | Path | None = None) -> dict[str, Scope]:
    """Bearer tokens → scopes for the HTTP transport.

    From a JSON file `{"<token>": "advertiser:adv_0001" | "admin", ...}` (path given, or
    $ADGUIDE_MCP_TOKENS_FILE), or from $ADGUIDE_MCP_TOKENS holding the same JSON inline.
    """
    path = source
    if not path:
        settings = ToolSettings.from_env()
        if not (path := settings.mcp_tokens_file):
            return {token: Scope.parse(label) for token, label in settings.mcp_tokens.items()}
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError("the token map must be a JSON object of token → scope label")
    return {str(token): Scope.parse(str(label)) for token, label in data.items()}
