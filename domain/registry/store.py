"""The registry's store in the unit of work: registered models on their event-log streams."""

from __future__ import annotations

from typing import Protocol

from domain.registry.state import ModelState
from events.base import Event, EventMetadata, RecordedEvent


class ModelStore(Protocol):
    """Registered models, loaded from and saved to their event-log streams."""

    async def load(self, model_name: str) -> ModelState:
        """The model's state folded from its stream (empty state if unknown)."""
        ...

    async def save(
        self, state: ModelState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` (ConcurrencyConflict if stale) and project."""
        ...
