"""Ports of online evaluation: the ``online-<model>`` streams and the paired outcomes table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from domain.online.judge import Counts
from domain.online.state import OnlineState
from domain.ports import Clock, UnitOfWorkFactory
from domain.registry.commands import PromoteModelVersion
from events.base import Event, EventMetadata, RecordedEvent
from events.online import PairedOutcome


class OnlineLog(Protocol):
    """Shadows and canaries in the event log, and the projection every API process follows."""

    async def load(self, model_name: str) -> OnlineState:
        """The model's state folded from ``online-<model>``."""
        ...

    async def save(
        self, state: OnlineState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` (stale: ConcurrencyConflict) and project."""
        ...

    async def running(self) -> list[OnlineState]:
        """Every model with a shadow or a canary running (from the projection)."""
        ...


class OutcomeStore(Protocol):
    """The paired outcomes of shadows and canaries, with the labels feedback gave them."""

    async def record(self, rows: list[PairedOutcome]) -> int:
        """Insert rows (known (run, request) pairs are skipped); how many were new."""
        ...

    async def counts(self, run_id: str, latency_margin: float, step: int | None = None) -> Counts:
        """What the run's outcomes (of one step, or all) add up to, labels joined."""
        ...


Promote = Callable[[PromoteModelVersion], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True)
class OnlinePorts:
    """What the online handlers use; ``promote`` is the registry's promotion handler."""

    uow: UnitOfWorkFactory
    log: OnlineLog
    outcomes: OutcomeStore
    clock: Clock
    promote: Promote
