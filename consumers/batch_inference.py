"""The ``batch-inference`` group: plans submitted jobs into shards and runs shards.

It reads ``jobs.events`` (BatchJobSubmitted -> dispatch shards, record BatchJobPlanned) and
``jobs.shards`` (work messages). Each entry: decode, call one handler, and the runner acks.
"""

from __future__ import annotations

import msgspec
import structlog

from consumers.context import WorkerContext, event_id
from domain.jobs.aggregate import FailBatchJob, PlanBatchJob
from domain.jobs.handlers import evaluate_shard, fail_batch_job, plan_batch_job, replan_lost_shards
from events.jobs import BatchJobSubmitted
from events.streams import JOBS_STREAM, SHARDS_STREAM

GROUP = "batch-inference"
STREAMS = [JOBS_STREAM, SHARDS_STREAM]
COUNT = 1  # one shard at a time: the shards waiting behind stay free for other workers
log = structlog.get_logger(GROUP)


async def handle(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes]
) -> None:
    """Route an entry of either stream to its handler."""
    meta = ctx.metadata(GROUP, fields)
    if stream == SHARDS_STREAM:
        job_id, shard = fields[b"job_id"].decode(), int(fields[b"shard"])
        outcome = await evaluate_shard(
            job_id, shard, worker=ctx.name, metadata=meta, uow=ctx.uow, evaluator=ctx.evaluator
        )
        if not outcome.changed:
            log.info("shard_skipped", job_id=job_id, shard=shard, status=outcome.state.status)
    elif fields.get(b"type") == b"BatchJobSubmitted":
        event = msgspec.json.decode(fields[b"payload"], type=BatchJobSubmitted)
        outcome = await plan_batch_job(
            PlanBatchJob(job_id=event.job_id),
            group=GROUP,
            event_id=event_id(fields),
            metadata=meta,
            uow=ctx.uow,
            queue=ctx.queue,
        )
        if outcome.changed:
            log.info("job_planned", job_id=event.job_id, shards=outcome.state.shards)


async def dead_lettered(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes], reason: str
) -> None:
    """A dead-lettered entry fails its job with the reason."""
    job_id = fields.get(b"job_id", b"").decode()
    shard = int(fields[b"shard"]) if b"shard" in fields else None
    if not job_id and b"payload" in fields:
        job_id = str(msgspec.json.decode(fields[b"payload"]).get("job_id", ""))
    if not job_id:
        return
    where = f"shard {shard}" if shard is not None else "planning"
    cmd = FailBatchJob(job_id=job_id, reason=f"{where} failed: {reason}", shard=shard)
    await fail_batch_job(cmd, ctx.metadata(GROUP, fields), ctx.uow)


async def group_created(ctx: WorkerContext, stream: str) -> None:
    """A group recreated on an empty shard stream (Redis lost it): re-plan running jobs."""
    if stream != SHARDS_STREAM:
        return
    for job_id, shards in (await replan_lost_shards(ctx.uow, ctx.queue)).items():
        log.warning("shards_replanned", job_id=job_id, shards=shards)
