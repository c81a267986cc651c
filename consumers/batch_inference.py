"""The ``batch-inference`` group: plans submitted jobs into shards and runs shards.

It reads two streams: ``jobs.events`` (BatchJobSubmitted -> dispatch shards, BatchJobPlanned)
and ``jobs.shards`` (work messages). A shard's predictions, labels and per-batch latencies go
to batch_shard_results with BatchShardCompleted in one transaction; a redelivered shard hits
the primary key and counts once.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
import structlog

from consumers.context import WorkerContext
from domain.jobs import QUEUED, RUNNING, CompleteShard, FailBatchJob, PlanBatchJob, decide_job
from events.streams import JOBS_STREAM, SHARDS_STREAM
from storage.jobs_repository import (
    load_job,
    mark_processed,
    save_job_events,
    store_shard_result,
    stored_shards,
    transact,
)

GROUP = "batch-inference"
STREAMS = [JOBS_STREAM, SHARDS_STREAM]
log = structlog.get_logger(GROUP)


async def dispatch_shards(
    ctx: WorkerContext, job_id: str, shards: list[int], correlation_id: str
) -> None:
    """Publish work messages, one per shard."""
    pipe = ctx.platform.redis.pipeline(transaction=False)
    for shard in shards:
        pipe.xadd(
            SHARDS_STREAM, {"job_id": job_id, "shard": str(shard), "correlation_id": correlation_id}
        )
    await pipe.execute()


async def handle(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes]
) -> None:
    """Route an entry of either stream."""
    if stream == SHARDS_STREAM:
        await run_shard(ctx, fields)
    elif fields.get(b"type") == b"BatchJobSubmitted":
        await plan(ctx, fields)


async def plan(ctx: WorkerContext, fields: dict[bytes, bytes]) -> None:
    """Split a submitted job into shards and dispatch them (idempotently)."""
    import msgspec

    from events.jobs import BatchJobSubmitted

    event = msgspec.json.decode(fields[b"payload"], type=BatchJobSubmitted)
    engine = ctx.platform.engine
    async with engine.connect() as conn:
        state = await load_job(conn, event.job_id)
    meta = ctx.metadata(GROUP, fields)
    event_id = uuid.UUID(fields[b"event_id"].decode())
    if state.status == QUEUED:
        # Dispatch before recording: a crash in between re-dispatches, which results dedupe.
        await dispatch_shards(
            ctx, state.job_id, list(range(state.planned_shards)), str(meta.correlation_id)
        )

    async def record(conn) -> None:
        if not await mark_processed(conn, GROUP, event_id):
            return
        job = await load_job(conn, event.job_id)
        await save_job_events(conn, job, decide_job(job, PlanBatchJob(job_id=job.job_id)), meta)

    await transact(engine, record)
    log.info(
        "job_planned", job_id=state.job_id, shards=state.planned_shards, model_name=state.model_name
    )


def _run_batches(
    model, images: np.ndarray, batch_size: int
) -> tuple[list[int], list[float], list[int]]:
    """Forward the shard batch by batch, timing each batch (runs in the inference thread)."""
    preds: list[int] = []
    lats: list[float] = []
    sizes: list[int] = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        t = time.perf_counter()
        logits = model.forward(batch)
        lats.append((time.perf_counter() - t) * 1000)
        preds.extend(logits.argmax(axis=1).tolist())
        sizes.append(len(batch))
    return preds, lats, sizes


async def run_shard(ctx: WorkerContext, fields: dict[bytes, bytes]) -> None:
    """Evaluate one shard and record it; skipped when the job is no longer running."""
    job_id, shard = fields[b"job_id"].decode(), int(fields[b"shard"])
    engine = ctx.platform.engine
    async with engine.connect() as conn:
        state = await load_job(conn, job_id)
        done = await stored_shards(conn, job_id)
    if state.status not in (QUEUED, RUNNING):
        log.info("shard_skipped", job_id=job_id, shard=shard, status=state.status)
        return
    if shard in done:
        return
    start, stop = state.shard_bounds(shard)
    images, labels, _ = ctx.dataset(state.dataset_id)
    model = await ctx.models.get(await ctx.version_ref(state.model_name, state.model_version))
    loop = asyncio.get_running_loop()
    preds, lats, sizes = await loop.run_in_executor(
        ctx.models.executor, _run_batches, model, images[start:stop], state.batch_size
    )
    meta = ctx.metadata(GROUP, fields)
    row = {
        "job_id": job_id, "shard": shard, "start": start, "stop": stop, "predictions": preds,
        "labels": labels[start:stop].tolist(), "batch_latencies_ms": lats, "batch_sizes": sizes,
        "worker": ctx.name,
    }  # fmt: skip

    async def record(conn) -> None:
        if not await store_shard_result(conn, row):
            return
        job = await load_job(conn, job_id)
        cmd = CompleteShard(job_id=job_id, shard=shard, images=stop - start, worker=ctx.name)
        await save_job_events(conn, job, decide_job(job, cmd), meta)

    await transact(engine, record)


async def fail_job(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes], reason: str
) -> None:
    """Dead-lettered entry: mark its job failed with the reason."""
    job_id = fields.get(b"job_id", b"").decode()
    shard = int(fields[b"shard"]) if b"shard" in fields else None
    if not job_id and b"payload" in fields:
        import msgspec

        job_id = msgspec.json.decode(fields[b"payload"]).get("job_id", "")
    if not job_id:
        return
    where = f"shard {shard}" if shard is not None else "planning"
    cmd = FailBatchJob(job_id=job_id, reason=f"{where} failed: {reason}", shard=shard)
    meta = ctx.metadata(GROUP, fields)

    async def record(conn) -> None:
        job = await load_job(conn, job_id)
        await save_job_events(conn, job, decide_job(job, cmd), meta)

    await transact(ctx.platform.engine, record)


async def replan_running_jobs(ctx: WorkerContext) -> int:
    """Re-dispatch every unfinished shard of running jobs (after Redis lost its streams)."""
    from storage.jobs_queries import JobQueries

    count = 0
    for job_id in await JobQueries(ctx.platform.engine).running():
        async with ctx.platform.engine.connect() as conn:
            state = await load_job(conn, job_id)
            done = await stored_shards(conn, job_id)
        missing = [s for s in range(state.shards) if s not in done]
        if missing:
            await dispatch_shards(ctx, job_id, missing, str(uuid.uuid4()))
            count += len(missing)
            log.warning("shards_replanned", job_id=job_id, shards=len(missing))
    return count
