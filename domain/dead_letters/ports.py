"""Ports of the fault paths: the shard stream's backlog (for the lost-shard sweeper), the
dead-letter streams and each dead letter's history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.dead_letters.aggregate import DeadLetterState, DeadLetterView
from events.base import Event, EventMetadata, RecordedEvent


class ShardBacklog(Protocol):
    """What the shard stream still holds for the batch-inference group."""

    async def outstanding(self) -> set[tuple[str, int]]:
        """(job id, shard) of every work message queued or delivered but not acknowledged."""
        ...

    async def lead(self, holder: str, seconds: float) -> bool:
        """Whether ``holder`` sweeps this period (one sweeper at a time across workers)."""
        ...


class DeadLetterQueue(Protocol):
    """The ``<stream>.dlq`` streams in Redis."""

    async def list(self, stream: str | None, limit: int) -> list[DeadLetterView]:
        """Dead letters of one stream (``jobs.shards`` or ``jobs.shards.dlq``) or all, oldest first."""
        ...

    async def find(self, dlq_stream: str | None, entry_id: str) -> list[DeadLetterView]:
        """The dead letters with this id (in one DLQ stream, or in any)."""
        ...

    async def remove(self, dlq_stream: str, entry_id: str) -> None:
        """Delete one dead letter."""
        ...


class DeadLetterLog(Protocol):
    """Each dead letter's history in the event log (``dead-letter-<dlq stream>/<id>``)."""

    async def load(self, dlq_stream: str, entry_id: str) -> DeadLetterState:
        """The dead letter's state folded from its stream."""
        ...

    async def save(
        self,
        dlq_stream: str,
        entry_id: str,
        state: DeadLetterState,
        events: list[Event],
        metadata: EventMetadata,
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version``."""
        ...


@dataclass(frozen=True, kw_only=True)
class DeadLetterPorts:
    """What the dead-letter handlers use: the DLQ streams and each dead letter's log."""

    queue: DeadLetterQueue
    log: DeadLetterLog
