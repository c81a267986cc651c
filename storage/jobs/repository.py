"""Batch jobs over the event log, their shard results and projection."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from domain.jobs.aggregate import QUEUED, RUNNING, JobState
from domain.jobs.store import ShardResult
from storage.jobs.projection import JOBS
from storage.repository import EventSourcedRepository
from storage.tables import batch_jobs, batch_shard_results

_RESULT_FIELDS = tuple(ShardResult.__struct_fields__)


class PostgresJobStore(EventSourcedRepository[JobState]):
    """Implements domain.jobs.store.JobStore inside one unit of work's connection."""

    projection = JOBS

    async def store_shard_result(self, result: ShardResult) -> bool:
        """Insert one shard's results; False if that shard was already stored (a redelivery)."""
        row = {f: getattr(result, f) for f in _RESULT_FIELDS}
        inserted = await self.conn.execute(
            insert(batch_shard_results)
            .values(row)
            .on_conflict_do_nothing()
            .returning(batch_shard_results.c.shard)
        )
        return inserted.first() is not None

    async def stored_shards(self, job_id: str) -> set[int]:
        """Shard numbers with stored results."""
        rows = await self.conn.execute(
            select(batch_shard_results.c.shard).where(batch_shard_results.c.job_id == job_id)
        )
        return set(rows.scalars())

    async def shard_results(self, job_id: str) -> list[ShardResult]:
        """Every stored shard of a job, in shard order."""
        rows = await self.conn.execute(
            select(*(batch_shard_results.c[f] for f in _RESULT_FIELDS))
            .where(batch_shard_results.c.job_id == job_id)
            .order_by(batch_shard_results.c.shard)
        )
        return [ShardResult(**r._asdict()) for r in rows]

    async def running(self) -> list[str]:
        """Ids of jobs that are planned but not finished."""
        rows = await self.conn.execute(
            select(batch_jobs.c.job_id).where(batch_jobs.c.status == RUNNING)
        )
        return list(rows.scalars())

    async def progress(self, job_id: str) -> tuple[str, int, int]:
        """(status, planned shards, stored shards) from the projection and a count."""
        row = (
            await self.conn.execute(
                select(batch_jobs.c.status, batch_jobs.c.shards).where(
                    batch_jobs.c.job_id == job_id
                )
            )
        ).first()
        if row is None:
            return "", 0, 0
        stored = await self.conn.scalar(
            select(func.count()).where(batch_shard_results.c.job_id == job_id)
        )
        return row.status, int(row.shards), int(stored or 0)

    async def active_count(self, submitted_by: str) -> int:
        """Jobs queued or running that ``submitted_by`` submitted."""
        count = await self.conn.scalar(
            select(func.count()).where(
                batch_jobs.c.submitted_by == submitted_by,
                batch_jobs.c.status.in_((QUEUED, RUNNING)),
            )
        )
        return int(count or 0)
