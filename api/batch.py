"""Batch endpoints: submit, status, list, cancel (the original shapes, extended)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth import event_metadata
from api.deps import Bus, Config, Port
from api.pages import NEXT_PAGE_HEADER, Cursor, Limit, page_size, paged
from api.schemas import Reason
from domain.jobs.aggregate import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from domain.jobs.commands import CancelBatchJob, SubmitBatchJob
from domain.jobs.ports import JobReader
from domain.paging.ports import JobPages
from domain.registry.views import JobView

Jobs = Port[JobReader]
JobStatus = Literal[QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED]


class BatchConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Run settings of a batch job."""

    batch_size: int = 64
    shard_size: int | None = None


class SubmitRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /batch/submit."""

    model_name: str
    dataset_id: str
    config: BatchConfig = BatchConfig()
    model_version: str | None = None


class SubmitResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """202 answer: the job id to poll; ``warning`` when the dataset is not the version's own."""

    job_id: str
    status: str
    model_version: str
    warning: str | None = None


class CancelRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An optional reason recorded with the cancellation."""

    reason: Reason | None = None


class BatchController(Controller):
    """Batch evaluation jobs, run by the consumer groups."""

    path = "/batch"
    tags = ["batch"]

    @post("/submit", status_code=202, summary="Submit a batch evaluation")
    async def submit(
        self,
        request: Request,
        bus: Bus,
        data: JSONBody[SubmitRequest],
    ) -> SubmitResponse:
        """Record BatchJobSubmitted; workers plan, run and aggregate it."""
        cmd = SubmitBatchJob(
            model_name=data.model_name,
            dataset_id=data.dataset_id,
            batch_size=data.config.batch_size,
            model_version=data.model_version,
            shard_size=data.config.shard_size,
            metadata=event_metadata(request),
        )
        job = await bus.handle(cmd)
        return SubmitResponse(
            job_id=job.job_id,
            status=job.status,
            model_version=job.model_version,
            warning=job.warning,
        )

    @get("/status/{job_id:str}", summary="A job's status, progress and metrics")
    async def status(self, job_queries: Jobs, job_id: FromPath[str]) -> JobView:
        """Poll a job."""
        return await job_queries.get(job_id)

    @get(
        "/", summary="List jobs, newest first, a page at a time", response_headers=NEXT_PAGE_HEADER
    )
    async def list_jobs(
        self,
        job_queries: Port[JobPages],
        settings: Config,
        model_name: Annotated[
            str | None, QueryParameter(max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
        ] = None,
        status: Annotated[JobStatus | None, QueryParameter()] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> Response[list[JobView]]:
        """Filter by model and status; more pages when X-Next-Cursor is set."""
        size = page_size(limit, settings)
        return paged(*await job_queries.page(model_name, status, size, cursor))

    @post("/{job_id:str}/cancel", status_code=200, summary="Cancel a job")
    async def cancel(
        self,
        request: Request,
        bus: Bus,
        job_queries: Jobs,
        job_id: FromPath[str],
        data: JSONBody[CancelRequest | None] = None,
    ) -> JobView:
        """Workers skip the job's remaining shards."""
        reason = data.reason if data else None
        await bus.handle(
            CancelBatchJob(job_id=job_id, reason=reason, metadata=event_metadata(request))
        )
        return await job_queries.get(job_id)
