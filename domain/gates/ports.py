"""Ports of regression gates: the gate store in the unit of work, paired latency, the read side."""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.gates.aggregate import GateState
from domain.gates.views import GateView
from domain.registry.decisions import VersionState
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


class LatencyRun(msgspec.Struct, frozen=True, kw_only=True):
    """A paired latency run: index i of both lists timed on the same batch, back to back."""

    baseline_ms: list[float]
    candidate_ms: list[float]
    batch_size: int
    order: str


class PairedLatencyMeter(Protocol):
    """Times two versions alternately on the same batches of a dataset, in one process."""

    async def measure(
        self, baseline: VersionState, candidate: VersionState, dataset_id: str
    ) -> LatencyRun:
        """One paired run; InvalidInput / NotFound when a model or the dataset cannot load."""
        ...


class GateReader(Protocol):
    """Read side of regression gates."""

    async def get(self, gate_id: str) -> GateView:
        """One gate; NotFound if unknown."""
        ...

    async def page_for_model(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[GateView], str | None]:
        """A model's gates, newest first, a page at a time, and the next page's cursor."""
        ...
