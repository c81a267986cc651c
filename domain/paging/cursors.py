"""Page cursors of list endpoints: opaque to clients, the sort key of a page's last item inside."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import msgspec

from domain.errors import InvalidInput

MAX_CURSOR_CHARS = 512


def encode_cursor(*values: str | int | datetime) -> str:
    """An opaque cursor for the sort key ``values`` (datetimes travel as ISO 8601)."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(msgspec.json.encode(plain)).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: type) -> tuple[Any, ...]:
    """The sort key inside a cursor, each value of the given type; InvalidInput if malformed."""
    problem = InvalidInput("cursor is not one this endpoint returned; start again without it")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise problem from None
    if not isinstance(values, list) or len(values) != len(kinds):
        raise problem
    try:
        return tuple(_value(v, kind) for v, kind in zip(values, kinds, strict=True))
    except (TypeError, ValueError):
        raise problem from None


def _value(value: Any, kind: type) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive time")
        return parsed
    valid = isinstance(value, kind) and type(value) is not bool
    if kind is int and valid and not 0 <= value < 2**62:
        valid = False
    if kind is str and valid and "\x00" in value:
        valid = False
    if not valid:
        raise ValueError(f"not a {kind.__name__}")
    return value


def page_of(rows: list[Any], limit: int, key) -> tuple[list[Any], str | None]:
    """Split ``limit + 1`` fetched rows into a page and the cursor of the next page."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(*key(page[-1]))
