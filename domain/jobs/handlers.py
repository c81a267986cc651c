"""Batch-job use cases: submit, plan, evaluate a shard, aggregate, fail, cancel, re-plan."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from domain import names
from domain.errors import Conflict, InvalidInput, NotFound
from domain.jobs.aggregate import (
    MAX_BATCH,
    MIN_BATCH,
    QUEUED,
    RUNNING,
    CancelBatchJob,
    CompleteBatchJob,
    CompleteShard,
    FailBatchJob,
    JobState,
    PlanBatchJob,
    SubmitBatchJob,
    check_shard_limit,
    decide_job,
)
from domain.jobs.evaluation import evaluation_metrics
from domain.ports import (
    Clock,
    DatasetCatalog,
    ShardEvaluator,
    ShardQueue,
    ShardResult,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain.registry.commands import RecordEvaluation
from domain.registry.decisions import decide
from domain.transactions import in_transaction
from events.base import EventMetadata


class JobOutcome(msgspec.Struct, kw_only=True):
    """A job's state after a handler ran, and whether this call changed it."""

    state: JobState
    changed: bool


async def _execute(
    uow: UnitOfWorkFactory, job_id: str, cmd: Any, metadata: EventMetadata
) -> JobState:
    async def work(tx: UnitOfWork) -> JobState:
        state = await tx.jobs.load(job_id)
        await tx.jobs.save(state, decide_job(state, cmd), metadata)
        return state

    return await in_transaction(uow, work, f"job {job_id}")


async def submit_batch_job(
    *,
    model_name: str,
    dataset_id: str,
    batch_size: int,
    model_version: str | None,
    shard_size: int,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    datasets: DatasetCatalog,
    job_id: str | None = None,
    max_shards: int | None = None,
    max_active: int | None = None,
) -> JobState:
    """Validate and record a batch evaluation; the consumer groups do the rest.

    The dataset catalogue reads file headers, so entrypoints call this off the event loop's
    critical path (the catalogue adapter runs its file work in a thread). A gate passes its own
    deterministic ``job_id`` so a retry cannot submit a second job. Entrypoints pass the limits
    MAX_SHARDS_PER_JOB and MAX_ACTIVE_JOBS_PER_KEY (the actor's queued and running jobs).
    """
    names.check_model_name(model_name)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not (MIN_BATCH <= batch_size <= MAX_BATCH)
    ):
        raise InvalidInput(
            f"config.batch_size must be an integer between {MIN_BATCH} and {MAX_BATCH}"
        )
    async with uow() as tx:
        model = await tx.models.load(model_name)
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
    total = await datasets.size(dataset_id)
    check_shard_limit(total, shard_size, max_shards, dataset_id)
    if max_active is not None:
        async with uow() as tx:
            active = await tx.jobs.active_count(metadata.actor)
        if active >= max_active:
            raise Conflict(
                f"{metadata.actor} has {active} jobs queued or running; the limit is {max_active} "
                "(MAX_ACTIVE_JOBS_PER_KEY): wait for one to finish or cancel one"
            )
    cmd = SubmitBatchJob(
        job_id=names.check_job_id(job_id) if job_id is not None else str(uuid.uuid4()),
        model_name=model_name,
        model_version=model_version,
        dataset_id=dataset_id,
        total=total,
        batch_size=batch_size,
        shard_size=shard_size,
    )
    return await _execute(uow, cmd.job_id, cmd, metadata)


async def cancel_batch_job(
    job_id: str, reason: str | None, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> JobState:
    """Cancel a queued or running job; workers skip its remaining shards."""
    names.check_job_id(job_id)
    cmd = CancelBatchJob(job_id=job_id, reason=names.check_reason(reason))
    return await _execute(uow, job_id, cmd, metadata)


async def plan_batch_job(
    cmd: PlanBatchJob,
    *,
    group: str,
    event_id: uuid.UUID,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    queue: ShardQueue,
) -> JobOutcome:
    """Dispatch a submitted job's shards, then record the plan (once per delivery)."""
    async with uow() as tx:
        state = await tx.jobs.load(cmd.job_id)
    if state.status == QUEUED:
        # Dispatch before recording: a crash in between re-dispatches, which results dedupe.
        shards = list(range(state.planned_shards))
        await queue.dispatch(state.job_id, shards, str(metadata.correlation_id))

    async def work(tx: UnitOfWork) -> JobOutcome:
        job = await tx.jobs.load(cmd.job_id)
        if not await tx.mark_processed(group, event_id):
            return JobOutcome(state=job, changed=False)
        recorded = await tx.jobs.save(job, decide_job(job, cmd), metadata)
        return JobOutcome(state=job, changed=bool(recorded))

    return await in_transaction(uow, work, f"job {cmd.job_id}")


async def evaluate_shard(
    job_id: str,
    shard: int,
    *,
    worker: str,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    evaluator: ShardEvaluator,
) -> JobOutcome:
    """Run one shard through the model and record it; a stored or inactive shard is skipped."""
    async with uow() as tx:
        state = await tx.jobs.load(job_id)
        done = await tx.jobs.stored_shards(job_id)
        model = await tx.models.load(state.model_name) if state.exists else None
    if state.status not in (QUEUED, RUNNING) or shard in done or model is None:
        return JobOutcome(state=state, changed=False)
    version = model.versions.get(state.model_version)
    if version is None:
        raise NotFound(f"model {state.model_name!r} has no version {state.model_version!r}")
    if not 0 <= shard < state.planned_shards:
        raise InvalidInput(f"job {job_id} has no shard {shard}")
    start, stop = state.shard_bounds(shard)
    preds, labels, lats, sizes = await evaluator.evaluate(
        version, state.dataset_id, start, stop, state.batch_size
    )
    result = ShardResult(
        job_id=job_id,
        shard=shard,
        start=start,
        stop=stop,
        predictions=preds,
        labels=labels,
        batch_latencies_ms=lats,
        batch_sizes=sizes,
        worker=worker,
    )

    async def work(tx: UnitOfWork) -> JobOutcome:
        if not await tx.jobs.store_shard_result(result):
            return JobOutcome(state=state, changed=False)
        job = await tx.jobs.load(job_id)
        cmd = CompleteShard(job_id=job_id, shard=shard, images=stop - start, worker=worker)
        await tx.jobs.save(job, decide_job(job, cmd), metadata)
        return JobOutcome(state=job, changed=True)

    return await in_transaction(uow, work, f"job {job_id}")


async def aggregate_batch_job(
    job_id: str,
    *,
    group: str,
    event_id: uuid.UUID,
    metadata: EventMetadata,
    uow: UnitOfWorkFactory,
    datasets: DatasetCatalog,
    clock: Clock,
) -> JobOutcome:
    """When every shard is in: record the job's metrics and the version's evaluation.

    Every shard's completion asks; the answer comes from a SQL count, so the job's stream
    (one event per shard) is folded only once the last shard is in, not once per shard.
    """
    async with uow() as tx:
        status, shards, stored = await tx.jobs.progress(job_id)
    if status != RUNNING or stored < shards:
        return JobOutcome(state=JobState(job_id=job_id, status=status), changed=False)
    async with uow() as tx:
        dataset_id = (await tx.jobs.load(job_id)).dataset_id
    class_names = await datasets.class_names(dataset_id) if dataset_id else []

    async def work(tx: UnitOfWork) -> JobOutcome:
        job = await tx.jobs.load(job_id)
        if not await tx.mark_processed(group, event_id):
            return JobOutcome(state=job, changed=False)
        if job.status != RUNNING or len(job.done_shards) != job.shards:
            return JobOutcome(state=job, changed=False)
        rows = await tx.jobs.shard_results(job_id)
        wall = (clock.now() - job.submitted_at).total_seconds() if job.submitted_at else 0.0
        metrics = evaluation_metrics(
            [p for r in rows for p in r.predictions],
            [t for r in rows for t in r.labels],
            [x for r in rows for x in r.batch_latencies_ms],
            [x for r in rows for x in r.batch_sizes],
            num_classes=max(10, len(class_names)),
            class_names=class_names,
            wall_seconds=wall,
        )
        done = CompleteBatchJob(job_id=job_id, metrics=metrics, duration_s=wall)
        await tx.jobs.save(job, decide_job(job, done), metadata)
        model = await tx.models.load(job.model_name)
        record = RecordEvaluation(
            model_name=job.model_name,
            model_version=job.model_version,
            job_id=job_id,
            dataset_id=job.dataset_id,
            metrics=evaluation_summary(metrics),
        )
        await tx.models.save(model, decide(model, record), metadata)
        return JobOutcome(state=job, changed=True)

    return await in_transaction(uow, work, f"job {job_id}")


def evaluation_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the model version keeps: everything but the bulky per-class table stays in the job."""
    keep = {k: v for k, v in metrics.items() if k != "per_class"}
    keep["f1_per_class"] = {p["class"]: p["f1"] for p in metrics["per_class"]}
    return keep


async def fail_batch_job(
    cmd: FailBatchJob, metadata: EventMetadata, uow: UnitOfWorkFactory
) -> JobState:
    """Mark a job failed with the reason (a dead-lettered shard or plan)."""
    return await _execute(uow, cmd.job_id, cmd, metadata)


async def replan_lost_shards(
    uow: UnitOfWorkFactory,
    queue: ShardQueue,
    *,
    outstanding: set[tuple[str, int]] | None = None,
    idle_before: datetime | None = None,
) -> dict[str, int]:
    """Re-dispatch every unfinished shard of running jobs (after Redis lost its streams).

    The periodic sweeper passes ``outstanding`` (the shards the stream still holds, read before
    the jobs) and ``idle_before``: a shard still queued or in progress, and a job that moved
    since then, are left alone, so a shard that is merely waiting is never dispatched twice.
    """
    replanned: dict[str, int] = {}
    async with uow() as tx:
        running = await tx.jobs.running()
    for job_id in running:
        async with uow() as tx:
            state = await tx.jobs.load(job_id)
            done = await tx.jobs.stored_shards(job_id)
        if idle_before is not None and state.updated_at and state.updated_at > idle_before:
            continue
        held = outstanding or set()
        missing = [
            s for s in range(state.planned_shards) if s not in done and (job_id, s) not in held
        ]
        if missing:
            await queue.dispatch(job_id, missing, str(uuid.uuid4()))
            replanned[job_id] = len(missing)
    return replanned
