"""The ``metric-aggregation`` group: when a job's last shard lands, compute and record metrics.

It records BatchJobCompleted on the job and EvaluationRecorded on the model version in one
transaction, together with its processed row, so a redelivered event changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog

from consumers.context import WorkerContext
from domain.commands import RecordEvaluation
from domain.evaluation import evaluation_metrics
from domain.jobs import RUNNING, CompleteBatchJob, decide_job
from domain.registry import decide
from events.streams import JOBS_STREAM
from observability.metrics import instruments
from storage.jobs_repository import (
    load_job,
    mark_processed,
    save_job_events,
    shard_results,
    transact,
)
from storage.registry_repository import load_model_state, save_model_events

GROUP = "metric-aggregation"
STREAMS = [JOBS_STREAM]
log = structlog.get_logger(GROUP)


async def handle(
    ctx: WorkerContext, stream: str, entry_id: str, fields: dict[bytes, bytes]
) -> None:
    """Aggregate when a BatchShardCompleted completes its job."""
    # The plan may be recorded after the last shard (tiny jobs), so both can complete a job.
    if fields.get(b"type") not in (b"BatchShardCompleted", b"BatchJobPlanned"):
        return
    import msgspec

    job_id = msgspec.json.decode(fields[b"payload"])["job_id"]
    event_id = uuid.UUID(fields[b"event_id"].decode())
    meta = ctx.metadata(GROUP, fields)
    finished: dict = {}

    async def run(conn) -> None:
        if not await mark_processed(conn, GROUP, event_id):
            return
        job = await load_job(conn, job_id)
        if job.status != RUNNING or len(job.done_shards) != job.shards:
            return
        rows = await shard_results(conn, job_id)
        preds = [p for r in rows for p in r.predictions]
        labels = [t for r in rows for t in r.labels]
        lats = [x for r in rows for x in r.batch_latencies_ms]
        sizes = [x for r in rows for x in r.batch_sizes]
        wall = (datetime.now(UTC) - job.submitted_at).total_seconds() if job.submitted_at else 0.0
        class_names = _class_names(job.dataset_id)
        metrics = evaluation_metrics(
            preds, labels, lats, sizes, num_classes=max(10, len(class_names)),
            class_names=class_names, wall_seconds=wall,
        )  # fmt: skip
        await save_job_events(
            conn,
            job,
            decide_job(job, CompleteBatchJob(job_id=job_id, metrics=metrics, duration_s=wall)),
            meta,
        )
        model = await load_model_state(conn, job.model_name)
        cmd = RecordEvaluation(
            model_name=job.model_name, model_version=job.model_version, job_id=job_id,
            dataset_id=job.dataset_id, metrics=_summary(metrics),
        )  # fmt: skip
        await save_model_events(conn, model, decide(model, cmd), meta)
        finished.update(model_name=job.model_name, wall=wall, accuracy=metrics["accuracy"])

    await transact(ctx.platform.engine, run)
    if finished:
        instruments().batch_job_duration.record(
            finished["wall"], {"model_name": finished["model_name"]}
        )
        log.info("job_completed", job_id=job_id, **finished)


def _class_names(dataset_id: str) -> list[str]:
    from ml.datasets import CLASS_NAMES, parse_dataset_id

    try:
        return list(CLASS_NAMES[parse_dataset_id(dataset_id).name])
    except (KeyError, ValueError):
        return [str(i) for i in range(10)]


def _summary(metrics: dict) -> dict:
    """What the model version keeps: everything but the bulky per-class table stays in the job."""
    keep = {k: v for k, v in metrics.items() if k != "per_class"}
    keep["f1_per_class"] = {p["class"]: p["f1"] for p in metrics["per_class"]}
    return keep
