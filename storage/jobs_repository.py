"""Batch jobs over the event log, their projection, shard results and consumer idempotency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import ConcurrencyConflict, Conflict
from domain.handlers import conflict_backoff
from domain.jobs import JobState, evolve_job, fold_job, job_row
from events.base import Event, EventMetadata, RecordedEvent
from events.streams import job_stream_id
from storage import event_store
from storage.registry_repository import set_checkpoint
from storage.tables import batch_jobs, batch_shard_results, processed

JOB_STREAM_PREFIX = "job-"
JOB_PROJECTION = "job-projections"
T = TypeVar("T")


async def transact(
    engine: AsyncEngine, fn: Callable[[AsyncConnection], Awaitable[T]], attempts: int = 200
) -> T:
    """Run ``fn`` in a transaction, re-running it from scratch on optimistic-concurrency conflicts."""
    for attempt in range(attempts):
        try:
            async with event_store.begin_logged(engine) as conn:
                return await fn(conn)
        except ConcurrencyConflict:
            await conflict_backoff(attempt)
    raise Conflict("too much concurrent change; retry")


async def load_job(conn: AsyncConnection, job_id: str) -> JobState:
    """Fold a job's stream."""
    return fold_job(job_id, await event_store.load_stream(conn, job_stream_id(job_id)))


async def save_job_events(
    conn: AsyncConnection, state: JobState, events: list[Event], metadata: EventMetadata
) -> list[RecordedEvent]:
    """Append to the job stream and update batch_jobs, in the caller's transaction."""
    if not events:
        return []
    recorded = await event_store.append(
        conn, job_stream_id(state.job_id), state.stream_version, events, metadata
    )
    for r in recorded:
        evolve_job(state, r)
    await write_job_projection(conn, state)
    await set_checkpoint(conn, JOB_PROJECTION, recorded[-1].position)
    return recorded


async def write_job_projection(conn: AsyncConnection, state: JobState) -> None:
    """Upsert the job's batch_jobs row."""
    row = job_row(state)
    stmt = insert(batch_jobs).values(row)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["job_id"], set_={k: stmt.excluded[k] for k in row if k != "job_id"}
        )
    )


async def mark_processed(conn: AsyncConnection, group: str, event_id: Any) -> bool:
    """Record that ``group`` handled ``event_id``; False if it already had (a duplicate)."""
    result = await conn.execute(
        insert(processed)
        .values(group_name=group, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(processed.c.event_id)
    )
    return result.first() is not None


async def store_shard_result(conn: AsyncConnection, row: dict[str, Any]) -> bool:
    """Insert one shard's results; False if that shard was already stored (a redelivery)."""
    result = await conn.execute(
        insert(batch_shard_results)
        .values(row)
        .on_conflict_do_nothing()
        .returning(batch_shard_results.c.shard)
    )
    return result.first() is not None


async def shard_results(conn: AsyncConnection, job_id: str) -> list[Any]:
    """Every stored shard of a job, in shard order."""
    result = await conn.execute(
        select(batch_shard_results)
        .where(batch_shard_results.c.job_id == job_id)
        .order_by(batch_shard_results.c.shard)
    )
    return list(result)


async def stored_shards(conn: AsyncConnection, job_id: str) -> set[int]:
    """Shard numbers with stored results."""
    result = await conn.execute(
        select(batch_shard_results.c.shard).where(batch_shard_results.c.job_id == job_id)
    )
    return set(result.scalars())


class PostgresJobStore:
    """Implements domain.job_handlers.JobStore."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def execute(self, job_id: str, decide, metadata: EventMetadata) -> JobState:
        """Load, decide, save in one transaction, retried on conflicts."""

        async def run(conn: AsyncConnection) -> JobState:
            state = await load_job(conn, job_id)
            await save_job_events(conn, state, decide(state), metadata)
            return state

        return await transact(self.engine, run)
