"""The ``batch-inference`` group: plans submitted jobs into shards and runs shards.

It reads ``jobs.events`` (BatchJobSubmitted -> dispatch shards, record BatchJobPlanned) and
``jobs.shards`` (work messages). Each entry: decode, call one handler, and the runner acks.
"""

from __future__ import annotations

import msgspec
import structlog

from consumers.context import WorkerContext, delivery
from domain.jobs.commands import EvaluateShard, FailBatchJob, PlanBatchJob, ReplanLostShards
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
        cmd = EvaluateShard(job_id=job_id, shard=shard, worker=ctx.name, metadata=meta)
        outcome = await ctx.bus.handle(cmd)
        if not outcome.changed:
            log.info("shard_skipped", job_id=job_id, shard=shard, status=outcome.state.status)
    elif fields.get(b"type") == b"BatchJobSubmitted":
        event = msgspec.json.decode(fields[b"payload"], type=BatchJobSubmitted)
        plan = PlanBatchJob(job_id=event.job_id, delivery=delivery(GROUP, fields), metadata=meta)
        outcome = await ctx.bus.handle(plan)
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
    why, meta = f"{where} failed: {reason}", ctx.metadata(GROUP, fields)
    await ctx.bus.handle(FailBatchJob(job_id=job_id, reason=why, shard=shard, metadata=meta))


async def group_created(ctx: WorkerContext, stream: str) -> None:
    """A group recreated on an empty shard stream (Redis lost it): re-plan running jobs."""
    if stream != SHARDS_STREAM:
        return
    for job_id, shards in (await ctx.bus.handle(ReplanLostShards())).items():
        log.warning("shards_replanned", job_id=job_id, shards=shards)
