"""Replay into a consumer: a new group reads eval.events from a position and recomputes metrics.

Two real jobs (really trained models, the real Fashion-MNIST test images) run through the
job handlers; a new consumer group then replays every EvaluationRecorded, recomputes its
metrics from the stored shard results into a scratch table, and SQL finds them equal to
the recorded ones. The live group on the same stream is left exactly as it was.
"""

from __future__ import annotations

import uuid

import msgspec
import pytest
from sqlalchemy import text

import bootstrap
from domain.audit.reports import TrailFilter
from domain.delivery import Delivery
from domain.errors import Conflict
from domain.jobs.commands import AggregateBatchJob, EvaluateShard, PlanBatchJob, SubmitBatchJob
from domain.jobs.evaluation import evaluation_metrics
from domain.jobs.ports import ShardPorts
from domain.jobs.work import evaluate_shard, evaluation_summary
from domain.registry.commands import RegisterModelVersion
from events.base import EventMetadata
from events.streams import EVAL_STREAM

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="recompute-test")


async def _evaluate(p, evaluator, version: str) -> str:
    job = await p.bus.handle(
        SubmitBatchJob(
            model_name="recomputed",
            dataset_id="fashion_mnist_300",
            model_version=version,
            batch_size=64,
            shard_size=100,
            limited=False,
            metadata=META,
        )
    )
    delivery = Delivery(group="batch-inference", event_id=uuid.uuid4())
    await p.bus.handle(PlanBatchJob(job_id=job.job_id, delivery=delivery, metadata=META))
    ports = ShardPorts(uow=p.uow, evaluator=evaluator)
    for shard in range(3):
        cmd = EvaluateShard(job_id=job.job_id, shard=shard, worker="test", metadata=META)
        await evaluate_shard(cmd, ports)
    delivery = Delivery(group="metric-aggregation", event_id=uuid.uuid4())
    outcome = await p.bus.handle(
        AggregateBatchJob(job_id=job.job_id, delivery=delivery, metadata=META)
    )
    assert outcome.changed
    return job.job_id


async def _group(p, group: str) -> dict:
    groups = await p.redis.xinfo_groups(EVAL_STREAM)
    found = next(g for g in groups if g["name"].decode() == group)
    # entries-read exists from Redis 7 on; the embedded server may be 6.2.
    return {k: found.get(k) for k in ("last-delivered-id", "pending", "entries-read")}


async def test_a_new_group_recomputes_every_evaluation_from_history(
    private, trained_artifacts
) -> None:
    p = private
    for version, path in trained_artifacts.items():
        await p.bus.handle(
            RegisterModelVersion(
                model_name="recomputed",
                model_version=version,
                source=str(path),
                tags={},
                metadata=META,
            )
        )
    evaluator = bootstrap.build_shard_evaluator(p)
    jobs = [await _evaluate(p, evaluator, v) for v in ("v1", "v2")]
    await bootstrap.build_relay(p).publish_once()
    # A live group that has taken one entry and not acknowledged it.
    await p.redis.xgroup_create(EVAL_STREAM, "live", id="0")
    await p.redis.xreadgroup("live", "w1", {EVAL_STREAM: ">"}, count=1)
    live_before = await _group(p, "live")

    evaluations = [
        e async for c in p.audit.trail(TrailFilter(event_type="EvaluationRecorded")) for e in c
    ]
    group = f"recompute-{uuid.uuid4().hex[:8]}"
    await p.audit.replay_group(EVAL_STREAM, group, evaluations[0].position)
    replayed = []
    while entries := await p.redis.xreadgroup(group, "r1", {EVAL_STREAM: ">"}, count=10):
        for entry_id, fields in entries[0][1]:
            replayed.append(msgspec.json.decode(fields[b"payload"]))
            await p.redis.xack(EVAL_STREAM, group, entry_id)
    assert sorted(e["job_id"] for e in replayed) == sorted(jobs)

    completed = [
        msgspec.json.decode(e.payload)
        async for c in p.audit.trail(TrailFilter(event_type="BatchJobCompleted"))
        for e in c
    ]
    durations = {c["job_id"]: c["duration_s"] for c in completed}
    async with p.engine.begin() as conn:
        await conn.execute(
            text("CREATE TEMP TABLE recomputed (job_id text PRIMARY KEY, metrics jsonb)")
        )
        for evaluation in replayed:
            job_id = evaluation["job_id"]
            async with p.uow() as tx:
                rows = await tx.jobs.shard_results(job_id)
            names = await p.datasets.class_names(evaluation["dataset_id"])
            metrics = evaluation_metrics(
                [x for r in rows for x in r.predictions],
                [x for r in rows for x in r.labels],
                [x for r in rows for x in r.batch_latencies_ms],
                [x for r in rows for x in r.batch_sizes],
                num_classes=max(10, len(names)),
                class_names=names,
                wall_seconds=durations[job_id],
            )
            await conn.execute(
                text("INSERT INTO recomputed VALUES (:j, CAST(:m AS jsonb))"),
                {"j": job_id, "m": msgspec.json.encode(evaluation_summary(metrics)).decode()},
            )
        compared = (
            await conn.execute(
                text(
                    "SELECT r.job_id, e.payload->'metrics' = r.metrics AS same "
                    "FROM recomputed r JOIN event_log_json e "
                    "ON e.event_type = 'EvaluationRecorded' AND e.payload->>'job_id' = r.job_id"
                )
            )
        ).all()
    assert sorted(job for job, _ in compared) == sorted(jobs)
    assert all(same for _, same in compared), compared
    assert await _group(p, "live") == live_before
    with pytest.raises(Conflict, match="already exists"):
        await p.audit.replay_group(EVAL_STREAM, "live", 1)
