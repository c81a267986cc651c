"""Events of API keys (area ``access``), one ``key-<name>`` stream per key name."""

from __future__ import annotations

from typing import ClassVar, Literal

from events.base import Event

# Lowest first: each role may do everything the roles before it may.
ROLES: tuple[str, ...] = ("reader", "predictor", "operator", "admin")
Role = Literal["reader", "predictor", "operator", "admin"]
KEY_STREAM_PREFIX = "key-"


def key_stream_id(key_name: str) -> str:
    """The event-log stream id of one API key name."""
    return f"{KEY_STREAM_PREFIX}{key_name}"


class ApiKeyCreated(Event, frozen=True, kw_only=True):
    """A key was issued to ``key_name`` with a role; only the key's SHA-256 is ever recorded."""

    area: ClassVar[str] = "access"
    key_name: str
    role: str
    key_hash: str
    reason: str | None = None


class ApiKeyRevoked(Event, frozen=True, kw_only=True):
    """The key of ``key_name`` stopped working."""

    area: ClassVar[str] = "access"
    key_name: str
    reason: str | None = None


KeyEvent = ApiKeyCreated | ApiKeyRevoked
