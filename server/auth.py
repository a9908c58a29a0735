"""API keys -> who the caller is: one advertiser, or admin (batch jobs).

The scope comes only from the key, never from a path, a body or a message; routes take the advertiser
from the principal. Keys are kept as SHA-256 digests so a key never sits in memory dumps or logs, and
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

from fastapi import Request
from pydantic import BaseModel

from server.errors import ApiError


class Role(StrEnum):
    ADVERTISER = "advertiser"
    ADMIN = "admin"


class Principal(BaseModel):
    role: Role
    advertiser_id: str | None = None
    key_id: str  # the first 12 hex digits of the key's digest: for logs and rate limits, not secret

    @property
    def label(self) -> str:
        return "admin" if self.role == Role.ADMIN else f"advertiser:{self.advertiser_id}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scope(label: str) -> tuple[Role, str | None]:
    if label == "admin":
        return Role.ADMIN, None
    kind, _, adv = label.partition(":")
    if kind != "advertiser" or not adv:
        raise ValueError(f"an API key's scope must be 'admin' or 'advertiser:<id>' (got {label!r})")
    return Role.ADVERTISER, adv


class KeyRing:
    """The configured keys, by digest."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._by_digest = {digest(k): parse_scope(v) for k, v in keys.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, key: str) -> Principal | None:
        d = digest(key)
        for known, (role, adv) in self._by_digest.items():
            if hmac.compare_digest(known, d):
                return Principal(role=role, advertiser_id=adv, key_id=d[:12])
        return None


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def authenticate(request: Request, ring: KeyRing) -> Principal:
    key = presented_key(request)
    if key is None:
        raise ApiError(
            401,
            "unauthenticated",
            "send your API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = ring.lookup(key)
    if principal is None:
        raise ApiError(
            401,
            "unauthenticated",
            "this API key is not valid; ask your admin for a key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require_advertiser(principal: Principal) -> str:
    if principal.role != Role.ADVERTISER or principal.advertiser_id is None:
        raise ApiError(403, "forbidden", "this endpoint acts for one advertiser; use an advertiser's API key")
    return principal.advertiser_id


def require_admin(principal: Principal) -> None:
    if principal.role != Role.ADMIN:
        raise ApiError(403, "forbidden", "batch jobs need an admin API key")
