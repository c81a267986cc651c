"""Ports of API keys: the write store (UnitOfWork.keys in domain.ports) and the read-side lookup."""

from __future__ import annotations

from typing import Protocol

from domain.keys.aggregate import ApiKeyState, KeyIdentity, KeyView
from events.base import Event, EventMetadata, RecordedEvent


class KeyStore(Protocol):
    """API keys, loaded from and saved to their ``key-<name>`` streams."""

    async def load(self, key_name: str) -> ApiKeyState:
        """The key name's state folded from its stream (empty state if unknown)."""
        ...

    async def save(
        self, state: ApiKeyState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` and project into api_keys."""
        ...


class KeyReader(Protocol):
    """Read side of API keys: the lookup every authenticated request makes."""

    async def identify(self, key_hash: str) -> KeyIdentity | None:
        """The active key with this SHA-256, None if there is none."""
        ...

    async def any_active(self) -> bool:
        """Whether any key is active (no key at all means anonymous use, on loopback only)."""
        ...

    async def list_keys(self, after: str | None, limit: int) -> list[KeyView]:
        """Keys ordered by name, after the name ``after``."""
        ...
