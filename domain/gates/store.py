"""The gates' store in the unit of work: gate streams and lookups on the gates projection."""

from __future__ import annotations

from typing import Protocol

from domain.gates.state import GateState
from domain.registry.gate_policy import GateOutcome
from events.base import Event, EventMetadata, RecordedEvent


class GateStore(Protocol):
    """Regression gates: their streams, and lookups on the gates projection."""

    async def load(self, gate_id: str) -> GateState:
        """The gate's state folded from its stream (empty state if unknown)."""
        ...

    async def save(
        self, state: GateState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` (ConcurrencyConflict if stale) and project."""
        ...

    async def outcomes(self, model_name: str, candidate_version: str) -> list[GateOutcome]:
        """Finished gates of one candidate version (for the promotion rule)."""
        ...

    async def waiting_on(self, job_id: str) -> list[str]:
        """Ids of gates still evaluating that compare the predictions of ``job_id``."""
        ...

    async def submitted_by(self, job_id: str) -> str | None:
        """The gate that submitted evaluation job ``job_id``, if a gate did."""
        ...
