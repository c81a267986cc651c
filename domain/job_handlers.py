"""Handlers for batch jobs: submission and cancellation (the workers use the storage helpers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol

from domain import names
from domain.errors import Conflict, InvalidInput, NotFound
from domain.jobs import MAX_BATCH, MIN_BATCH, CancelBatchJob, JobState, SubmitBatchJob, decide_job
from domain.ports import ModelRepository
from events.base import EventMetadata


class DatasetCatalog(Protocol):
    """Knows which dataset ids exist here and how many images they hold."""

    def size(self, dataset_id: str) -> int:
        """Images in the selection; InvalidInput (listing what exists) if unknown."""
        ...


class JobStore(Protocol):
    """Runs a job command: load, decide, append and project in one transaction."""

    async def execute(
        self, job_id: str, decide: Callable[[JobState], list], metadata: EventMetadata
    ) -> JobState:
        """Apply ``decide`` to the job's state and save its events."""
        ...


async def submit_batch_job(
    *,
    model_name: str,
    dataset_id: str,
    batch_size: int,
    model_version: str | None,
    shard_size: int,
    metadata: EventMetadata,
    models: ModelRepository,
    datasets: DatasetCatalog,
    jobs: JobStore,
) -> JobState:
    """Validate and record a batch evaluation; the consumer groups do the rest."""
    names.check_model_name(model_name)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not MIN_BATCH <= batch_size <= MAX_BATCH
    ):
        raise InvalidInput(
            f"config.batch_size must be an integer between {MIN_BATCH} and {MAX_BATCH}"
        )
    model = await models.load(model_name)
    if not model.exists:
        raise NotFound(f"unknown model {model_name!r}")
    if model_version is None:
        if model.prod is None:
            raise Conflict(f"model {model_name!r} has no prod version; pass model_version")
        model_version = model.prod
    elif names.check_version(model_version) not in model.versions:
        known = ", ".join(model.versions)
        raise NotFound(f"model {model_name!r} has no version {model_version!r} (known: {known})")
    names.check_text(dataset_id, "dataset_id")
    total = datasets.size(dataset_id)
    cmd = SubmitBatchJob(
        job_id=str(uuid.uuid4()),
        model_name=model_name,
        model_version=model_version,
        dataset_id=dataset_id,
        total=total,
        batch_size=batch_size,
        shard_size=shard_size,
    )
    return await jobs.execute(cmd.job_id, lambda state: decide_job(state, cmd), metadata)


async def cancel_batch_job(
    job_id: str, reason: str | None, metadata: EventMetadata, jobs: JobStore
) -> JobState:
    """Cancel a queued or running job; workers skip its remaining shards."""
    names.check_job_id(job_id)
    cmd = CancelBatchJob(job_id=job_id, reason=names.check_reason(reason))
    return await jobs.execute(job_id, lambda state: decide_job(state, cmd), metadata)
