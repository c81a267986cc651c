"""The ports every context shares: the unit of work over the event log, and the clock.

Each context's own ports (its adapters' protocols and the dataclass of ports its handlers take)
live in that context's ``ports`` module; its store in the unit of work in its ``store`` module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from domain.gates.store import GateStore
from domain.jobs.store import JobStore
from domain.keys.store import KeyStore
from domain.registry.store import ModelStore


class UnitOfWork(Protocol):
    """One atomic transaction over the event log, its projections and consumer bookkeeping.

    Leaving the block without an error commits; an error rolls everything back.
    """

    models: ModelStore
    jobs: JobStore
    keys: KeyStore
    gates: GateStore

    async def mark_processed(self, group: str, event_id: Any) -> bool:
        """Record that ``group`` handled ``event_id``; False for a duplicate delivery."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class Clock(Protocol):
    """The time, a port so that handlers are testable; every handler that needs it takes one."""

    def now(self) -> datetime:
        """The current UTC time."""
        ...
