"""Read-side queries over batch_jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import names
from domain.errors import NotFound
from domain.jobs.aggregate import RUNNING
from domain.paging.cursors import decode_cursor, page_of
from domain.registry.views import JobView, Progress
from storage.errors import on_postgres
from storage.tables import batch_jobs


def job_view(r: Row) -> JobView:
    """A batch_jobs row as the API shows it."""
    return JobView(
        job_id=r.job_id,
        status=r.status,
        model_name=r.model_name,
        model_version=r.model_version,
        dataset_id=r.dataset_id,
        progress=Progress(done=r.done_images, total=r.total),
        result_metrics=r.metrics,
        error=r.error,
        batch_size=r.batch_size,
        shards=r.shards,
        shards_done=r.done_shards,
        submitted_by=r.submitted_by,
        created_at=r.created_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
    )


class JobQueries:
    """Job lookups for the API and the CLI."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def get(self, job_id: str) -> JobView:
        """One job; NotFound if unknown."""
        names.check_job_id(job_id)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(batch_jobs).where(batch_jobs.c.job_id == job_id))
            ).first()
        if row is None:
            raise NotFound(f"unknown job {job_id!r}")
        return job_view(row)

    @on_postgres
    async def list(
        self, model_name: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[JobView]:
        """Newest jobs first, optionally filtered."""
        q = select(batch_jobs).order_by(batch_jobs.c.created_at.desc()).limit(limit)
        if model_name:
            q = q.where(batch_jobs.c.model_name == model_name)
        if status:
            q = q.where(batch_jobs.c.status == status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [job_view(r) for r in rows]

    @on_postgres
    async def page(
        self, model_name: str | None, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[JobView], str | None]:
        """Newest jobs first, optionally filtered, a page at a time."""
        j = batch_jobs.c
        q = select(batch_jobs).order_by(j.created_at.desc(), j.job_id).limit(limit + 1)
        if cursor:
            at, job_id = decode_cursor(cursor, datetime, str)
            q = q.where(or_(j.created_at < at, and_(j.created_at == at, j.job_id > job_id)))
        if model_name:
            q = q.where(j.model_name == model_name)
        if status:
            q = q.where(j.status == status)
        async with self.engine.connect() as conn:
            rows = [job_view(r) for r in await conn.execute(q)]
        return page_of(rows, limit, lambda v: (v.created_at, v.job_id))

    @on_postgres
    async def running(self) -> list[str]:
        """Ids of jobs that are planned but not finished."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(batch_jobs.c.job_id).where(batch_jobs.c.status == RUNNING)
            )
            return list(rows.scalars())
