"""Batch-job use cases asked for by people: submit, cancel, and fail (a dead-lettered entry).

The work the consumer groups do (plan, evaluate a shard, aggregate, re-plan) is in
``domain.jobs.work``; ``HANDLERS`` routes every job command to its handler.
"""

from __future__ import annotations

import uuid

import msgspec

from domain import names
from domain.errors import Conflict, InvalidInput, NotFound, UnknownModel
from domain.jobs.aggregate import MAX_BATCH, MIN_BATCH, JobState, check_shard_limit, decide_job
from domain.jobs.commands import (
    AggregateBatchJob,
    CancelBatchJob,
    EvaluateShard,
    FailBatchJob,
    JobCommand,
    PlanBatchJob,
    RecordSubmission,
    ReplanLostShards,
    SubmitBatchJob,
)
from domain.jobs.ports import JobPorts
from domain.jobs.work import aggregate_batch_job, evaluate_shard, plan_batch_job, replan_lost_shards
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.registry.reference import dataset_warning
from domain.registry.state import ModelState
from domain.transactions import in_transaction
from events.base import EventMetadata


async def decide_and_save(
    uow: UnitOfWorkFactory, job_id: str, cmd: JobCommand, metadata: EventMetadata
) -> JobState:
    """Load the job, decide, save; retried on a lost race."""

    async def work(tx: UnitOfWork) -> JobState:
        state = await tx.jobs.load(job_id)
        await tx.jobs.save(state, decide_job(state, cmd), metadata)
        return state

    return await in_transaction(uow, work, f"job {job_id}")


def _version(model: ModelState, cmd: SubmitBatchJob) -> str:
    """The version a submission evaluates: the one named, else prod."""
    if not model.exists:
        raise UnknownModel(cmd.model_name)
    if cmd.model_version is None:
        if model.prod is None:
            raise Conflict(f"model {cmd.model_name!r} has no prod version; pass model_version")
        return model.prod
    if names.check_version(cmd.model_version) not in model.versions:
        known = ", ".join(model.versions)
        raise NotFound(
            f"model {cmd.model_name!r} has no version {cmd.model_version!r} (known: {known})"
        )
    return cmd.model_version


async def submit_batch_job(cmd: SubmitBatchJob, ports: JobPorts) -> JobState:
    """Validate and record a batch evaluation; the consumer groups do the rest.

    The model, the version and the limits (MAX_SHARDS_PER_JOB, and MAX_ACTIVE_JOBS_PER_KEY on
    the actor's queued and running jobs) are checked in the transaction that records the job,
    the active jobs after the append, so two concurrent submissions cannot both pass.
    The dataset is sized before it (the catalogue reads file headers in a thread), after a first
    look at the model so that an unknown one is reported without reading any file.
    """
    names.check_model_name(cmd.model_name)
    size = cmd.batch_size
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_BATCH <= size <= MAX_BATCH:
        raise InvalidInput(
            f"config.batch_size must be an integer between {MIN_BATCH} and {MAX_BATCH}"
        )
    async with ports.uow() as tx:
        _version(await tx.models.load(cmd.model_name), cmd)
    names.check_text(cmd.dataset_id, "dataset_id")
    total = await ports.datasets.size(cmd.dataset_id)
    limits = ports.limits
    shard_size = limits.shard_size if cmd.shard_size is None else cmd.shard_size
    job_id = names.check_job_id(cmd.job_id) if cmd.job_id is not None else str(uuid.uuid4())
    actor = cmd.metadata.actor

    async def work(tx: UnitOfWork) -> JobState:
        model = await tx.models.load(cmd.model_name)
        version = _version(model, cmd)
        if cmd.limited:
            check_shard_limit(total, shard_size, limits.max_shards, cmd.dataset_id)
        record = RecordSubmission(
            job_id=job_id,
            model_name=cmd.model_name,
            model_version=version,
            dataset_id=cmd.dataset_id,
            total=total,
            batch_size=size,
            shard_size=shard_size,
        )
        state = await tx.jobs.load(job_id)
        await tx.jobs.save(state, decide_job(state, record), cmd.metadata)
        if cmd.limited and limits.max_active is not None:
            # Counted after the append, whose lock on the log lasts until commit: a concurrent
            # submission of the same actor waits for this one and then counts it.
            before = await tx.jobs.active_count(actor) - 1
            if before >= limits.max_active:
                raise Conflict(
                    f"{actor} has {before} jobs queued or running; the limit is "
                    f"{limits.max_active} (MAX_ACTIVE_JOBS_PER_KEY): wait for one to finish or "
                    "cancel one"
                )
        state.warning = dataset_warning(model, version, cmd.dataset_id)
        return state

    return await in_transaction(ports.uow, work, f"job {job_id}")


async def cancel_batch_job(cmd: CancelBatchJob, ports: JobPorts) -> JobState:
    """Cancel a queued or running job; workers skip its remaining shards."""
    names.check_job_id(cmd.job_id)
    checked = msgspec.structs.replace(cmd, reason=names.check_reason(cmd.reason))
    return await decide_and_save(ports.uow, cmd.job_id, checked, cmd.metadata)


async def fail_batch_job(cmd: FailBatchJob, ports: JobPorts) -> JobState:
    """Mark a job failed with the reason (a dead-lettered shard or plan)."""
    return await decide_and_save(ports.uow, cmd.job_id, cmd, cmd.metadata)


HANDLERS = {
    SubmitBatchJob: submit_batch_job,
    CancelBatchJob: cancel_batch_job,
    FailBatchJob: fail_batch_job,
    PlanBatchJob: plan_batch_job,
    AggregateBatchJob: aggregate_batch_job,
    ReplanLostShards: replan_lost_shards,
}
"""The job commands a JobPorts serves (the message bus routes by command type)."""

SHARD_HANDLERS = {EvaluateShard: evaluate_shard}
"""The job command a worker's ShardPorts serves."""
