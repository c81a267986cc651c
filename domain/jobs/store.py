"""The batch jobs' store in the unit of work: job streams and their shard results."""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.jobs.aggregate import JobState
from events.base import Event, EventMetadata, RecordedEvent


class ShardResult(msgspec.Struct, kw_only=True):
    """One evaluated shard: per-image predictions and labels, per-batch latencies."""

    job_id: str
    shard: int
    start: int
    stop: int
    predictions: list[int]
    labels: list[int]
    batch_latencies_ms: list[float]
    batch_sizes: list[int]
    worker: str


class JobStore(Protocol):
    """Batch jobs and their shard results."""

    async def load(self, job_id: str) -> JobState:
        """The job's state folded from its stream."""
        ...

    async def save(
        self, state: JobState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version`` and project."""
        ...

    async def store_shard_result(self, result: ShardResult) -> bool:
        """Keep a shard's results; False when that shard was already stored."""
        ...

    async def stored_shards(self, job_id: str) -> set[int]:
        """Shard numbers with stored results."""
        ...

    async def shard_results(self, job_id: str) -> list[ShardResult]:
        """Every stored shard of a job, in shard order."""
        ...

    async def running(self) -> list[str]:
        """Ids of jobs that are planned but not finished."""
        ...

    async def progress(self, job_id: str) -> tuple[str, int, int]:
        """(status, planned shards, stored shards) counted in SQL, without folding the stream."""
        ...

    async def active_count(self, submitted_by: str) -> int:
        """Jobs queued or running that ``submitted_by`` submitted."""
        ...
