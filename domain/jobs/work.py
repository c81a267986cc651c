"""The work of the consumer groups on batch jobs: plan, evaluate a shard, aggregate, re-plan."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import msgspec

from domain.errors import InvalidInput, NotFound
from domain.jobs.aggregate import QUEUED, RUNNING, JobState, decide_job
from domain.jobs.commands import (
    AggregateBatchJob,
    CompleteBatchJob,
    CompleteShard,
    EvaluateShard,
    PlanBatchJob,
    ReplanLostShards,
)
from domain.jobs.evaluation import evaluation_metrics
from domain.jobs.ports import JobPorts, ShardPorts
from domain.jobs.store import ShardResult
from domain.ports import UnitOfWork
from domain.registry.commands import RecordEvaluation
from domain.registry.decisions import decide
from domain.transactions import in_transaction


class JobOutcome(msgspec.Struct, kw_only=True):
    """A job's state after a handler ran, and whether this call changed it."""

    state: JobState
    changed: bool


async def plan_batch_job(cmd: PlanBatchJob, ports: JobPorts) -> JobOutcome:
    """Dispatch a submitted job's shards, then record the plan (once per delivery)."""
    async with ports.uow() as tx:
        state = await tx.jobs.load(cmd.job_id)
    if state.status == QUEUED:
        # Dispatch before recording: a crash in between re-dispatches, which results dedupe.
        shards = list(range(state.planned_shards))
        await ports.queue.dispatch(state.job_id, shards, str(cmd.metadata.correlation_id))

    async def work(tx: UnitOfWork) -> JobOutcome:
        job = await tx.jobs.load(cmd.job_id)
        if not await tx.mark_processed(cmd.delivery.group, cmd.delivery.event_id):
            return JobOutcome(state=job, changed=False)
        recorded = await tx.jobs.save(job, decide_job(job, cmd), cmd.metadata)
        return JobOutcome(state=job, changed=bool(recorded))

    return await in_transaction(ports.uow, work, f"job {cmd.job_id}")


async def evaluate_shard(cmd: EvaluateShard, ports: ShardPorts) -> JobOutcome:
    """Run one shard through the model and record it; a stored or inactive shard is skipped."""
    job_id, shard = cmd.job_id, cmd.shard
    known = ports.plans.get(job_id)
    async with ports.uow() as tx:
        if known is None:
            state = await tx.jobs.load(job_id)
            model = await tx.models.load(state.model_name) if state.exists else None
            status = state.status
        else:  # the plan is remembered: only what changes is read (the status, from the projection)
            (state, version), model = known, None
            status = (await tx.jobs.progress(job_id))[0]
        done = await tx.jobs.stored_shards(job_id)
    if status not in (QUEUED, RUNNING) or shard in done or (known is None and model is None):
        return JobOutcome(state=dataclasses.replace(state, status=status), changed=False)
    if known is None:
        assert model is not None
        version = model.versions.get(state.model_version)
        if version is None:
            raise NotFound(f"model {state.model_name!r} has no version {state.model_version!r}")
        ports.plans.remember(state, version)
    if not 0 <= shard < state.planned_shards:
        raise InvalidInput(f"job {job_id} has no shard {shard}")
    start, stop = state.shard_bounds(shard)
    preds, labels, lats, sizes = await ports.evaluator.evaluate(
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
        worker=cmd.worker,
    )

    async def work(tx: UnitOfWork) -> JobOutcome:
        if not await tx.jobs.store_shard_result(result):
            return JobOutcome(state=state, changed=False)
        job = await tx.jobs.load(job_id)
        done = CompleteShard(job_id=job_id, shard=shard, images=stop - start, worker=cmd.worker)
        await tx.jobs.save(job, decide_job(job, done), cmd.metadata)
        return JobOutcome(state=job, changed=True)

    return await in_transaction(ports.uow, work, f"job {job_id}")


async def aggregate_batch_job(cmd: AggregateBatchJob, ports: JobPorts) -> JobOutcome:
    """When every shard is in: record the job's metrics and the version's evaluation.

    Every shard's completion asks; the answer comes from a SQL count, so the job's stream
    (one event per shard) is folded only once the last shard is in, not once per shard.
    """
    job_id, metadata = cmd.job_id, cmd.metadata
    async with ports.uow() as tx:
        status, shards, stored = await tx.jobs.progress(job_id)
    if status != RUNNING or stored < shards:
        return JobOutcome(state=JobState(job_id=job_id, status=status), changed=False)
    async with ports.uow() as tx:
        dataset_id = (await tx.jobs.load(job_id)).dataset_id
    class_names = await ports.datasets.class_names(dataset_id) if dataset_id else []

    async def work(tx: UnitOfWork) -> JobOutcome:
        job = await tx.jobs.load(job_id)
        if not await tx.mark_processed(cmd.delivery.group, cmd.delivery.event_id):
            return JobOutcome(state=job, changed=False)
        if job.status != RUNNING or len(job.done_shards) != job.shards:
            return JobOutcome(state=job, changed=False)
        rows = await tx.jobs.shard_results(job_id)
        wall = (ports.clock.now() - job.submitted_at).total_seconds() if job.submitted_at else 0.0
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

    return await in_transaction(ports.uow, work, f"job {job_id}")


def evaluation_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the model version keeps: everything but the bulky per-class table stays in the job."""
    keep = {k: v for k, v in metrics.items() if k != "per_class"}
    keep["f1_per_class"] = {p["class"]: p["f1"] for p in metrics["per_class"]}
    return keep


async def replan_lost_shards(cmd: ReplanLostShards, ports: JobPorts) -> dict[str, int]:
    """Re-dispatch every unfinished shard of running jobs (after Redis lost its streams).

    A shard the stream still holds (``outstanding``), and a job that moved since
    ``idle_before``, are left alone, so a shard that is merely waiting is never dispatched twice.
    """
    replanned: dict[str, int] = {}
    async with ports.uow() as tx:
        running = await tx.jobs.running()
    for job_id in running:
        async with ports.uow() as tx:
            state = await tx.jobs.load(job_id)
            done = await tx.jobs.stored_shards(job_id)
        idle_before = cmd.idle_before
        if idle_before is not None and state.updated_at and state.updated_at > idle_before:
            continue
        held = cmd.outstanding
        missing = [
            s for s in range(state.planned_shards) if s not in done and (job_id, s) not in held
        ]
        if missing:
            await ports.queue.dispatch(job_id, missing, str(uuid.uuid4()))
            replanned[job_id] = len(missing)
    return replanned
