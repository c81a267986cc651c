"""The API keys' store in the unit of work: one ``key-<name>`` stream per key name."""

from __future__ import annotations

from typing import Protocol

from domain.keys.aggregate import ApiKeyState
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

    async def active_admins(self) -> list[str]:
        """Names of the active admin keys, held until the transaction ends (so two revocations
        at once cannot each leave the other as the last one)."""
        ...
