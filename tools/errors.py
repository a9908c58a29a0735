"""Error types every engine raises for bad input; their text is written for the person who sent it.

`AdguideError` subclasses `ValueError`, so code that already catches `ValueError` keeps working.
`field` names the offending input and `allowed` says what would have been accepted, so the MCP server
and the CLI can turn an error into a structured tool error or a one-line message without a traceback.
"""

from __future__ import annotations


class AdguideError(ValueError):
    """Base class: `str(err)` is the user-facing message."""

    def __init__(self, message: str, *, field: str | None = None, allowed: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.allowed = allowed

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str | None]:
        """A structured form for tool results and JSON responses."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "field": self.field,
            "allowed": self.allowed,
        }


class UnknownIdError(AdguideError):
    """An id that does not exist, or that belongs to another advertiser (the two are indistinguishable)."""


class InvalidInputError(AdguideError):
    """A value outside its allowed range or of the wrong form."""


def check_range(
    field: str,
    value: float,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> float:
    """Return `value` if it lies in the range, else raise InvalidInputError naming the field and the range.

    >>> check_range("bid", 0.5, gt=0, le=100)
    0.5
    """
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    if ge is not None:
        parts.append(f">= {ge:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    if le is not None:
        parts.append(f"<= {le:g}")
    allowed = " and ".join(parts)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value  # rejects NaN
    if ok:
        ok = (
            (gt is None or value > gt)
            and (ge is None or value >= ge)
            and (lt is None or value < lt)
            and (le is None or value <= le)
        )
    if not ok:
        raise InvalidInputError(f"{field} must be {allowed} (got {value!r})", field=field, allowed=allowed)
    return value
