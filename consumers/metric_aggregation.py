"""The ``metric-aggregation`` group: when a job's last shard lands, record its metrics.

BatchJobCompleted on the job and EvaluationRecorded on the model version are written in one
transaction with the processed row, so a redelivered event changes nothing.
"""

from __future__ import annotations

import msgspec
import structlog

from consumers.context import WorkerContext, delivery
from domain.jobs.commands import AggregateBatchJob
from events.streams import JOBS_STREAM
from observability.metrics import instruments

GROUP = "metric-aggregation"
STREAMS = [JOBS_STREAM]
log = structlog.get_logger(GROUP)
# The plan may be recorded after the last shard (tiny jobs), so both can complete a job.
TRIGGERS = (b"BatchShardCompleted", b"BatchJobPlanned")


async def handle(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes]
) -> None:
    """Aggregate when a shard completion (or the plan) completes its job."""
    if fields.get(b"type") not in TRIGGERS:
        return
    job_id = str(msgspec.json.decode(fields[b"payload"])["job_id"])
    meta = ctx.metadata(GROUP, fields)
    cmd = AggregateBatchJob(job_id=job_id, delivery=delivery(GROUP, fields), metadata=meta)
    outcome = await ctx.bus.handle(cmd)
    if outcome.changed:
        job = outcome.state
        wall = (
            (job.finished_at - job.submitted_at).total_seconds()
            if job.submitted_at and job.finished_at
            else 0.0
        )
        instruments().batch_job_duration.record(wall, {"model_name": job.model_name})
        accuracy = (job.metrics or {}).get("accuracy")
        log.info(
            "job_completed", job_id=job_id, model_name=job.model_name, wall=wall, accuracy=accuracy
        )
