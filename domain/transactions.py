"""The use cases: one handler per command, whose parameters are the command and its ports.

Every entrypoint (HTTP controller, consumer, CLI verb) calls exactly one of these.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from domain.errors import ConcurrencyConflict, Conflict
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.registry.decisions import ModelState
from events.base import RecordedEvent

MAX_ATTEMPTS = 200
T = TypeVar("T")


class CommandResult(msgspec.Struct, kw_only=True):
    """What a registry command did: the events it recorded (none for an idempotent repeat)."""

    state: ModelState
    recorded: list[RecordedEvent]

    @property
    def changed(self) -> bool:
        """False when the command was a no-op repeat."""
        return bool(self.recorded)


async def conflict_backoff(attempt: int) -> None:
    """After losing an optimistic-concurrency race: a short random pause so a crowd spreads out."""
    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))


async def in_transaction(
    uow: UnitOfWorkFactory, work: Callable[[UnitOfWork], Awaitable[T]], what: str = "this change"
) -> T:
    """Run ``work`` in a fresh unit of work, re-running it from scratch on a lost race."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            async with uow() as tx:
                return await work(tx)
        except ConcurrencyConflict:
            await conflict_backoff(attempt)
    raise Conflict(f"{what} is under heavy concurrent change; retry")
