"""Batch inference through the consumer groups, against real servers and worker processes.

Each delivery guarantee of the platform has a test here: counted once, killed worker,
failing shard, Redis restarted empty, bounded streams.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import numpy as np
import pytest
import torch
from redis.exceptions import ResponseError

from domain.jobs.commands import SubmitBatchJob
from domain.registry.commands import PromoteModelVersion, RegisterModelVersion
from domain.registry.views import JobView
from events.base import EventMetadata
from events.streams import JOBS_STREAM, SHARDS_STREAM, dead_letter_stream
from ml.artifacts import load_model, read_metadata
from ml.datasets import load_dataset
from ml.preprocess import to_model_input
from storage import event_store
from storage.streams.admin import safe_trim_floor, trim_stream
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")
TERMINAL = {"succeeded", "failed", "cancelled"}


async def register(p, name: str, artifact) -> None:
    await p.bus.handle(
        RegisterModelVersion(
            model_name=name, model_version="v1", source=str(artifact), tags={}, metadata=META
        )
    )
    await p.bus.handle(PromoteModelVersion(model_name=name, model_version="v1", metadata=META))


async def submit(p, name: str, dataset: str, batch_size: int, shard_size: int) -> str:
    job = await p.bus.handle(
        SubmitBatchJob(
            model_name=name,
            dataset_id=dataset,
            batch_size=batch_size,
            shard_size=shard_size,
            limited=False,
            metadata=META,
        )
    )
    return job.job_id


async def wait_job(p, job_id: str, timeout: float = 120, until=TERMINAL) -> JobView:
    deadline = time.monotonic() + timeout
    while True:
        job = await p.job_queries.get(job_id)
        if job.status in until or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.1)


def _entry_id(raw: bytes | str) -> tuple[int, int]:
    ms, seq = (raw.decode() if isinstance(raw, bytes) else raw).split("-")
    return int(ms), int(seq)


async def wait_drained(p, groups: dict[str, tuple[str, ...]], timeout: float = 60) -> None:
    """Until each group has read to its stream's end and acked everything; fails on timeout.

    Compares last-delivered-id with the stream's last id rather than XINFO's ``lag``, which
    Redis 6.2 (the embedded server) does not report.
    """
    deadline = time.monotonic() + timeout
    while True:
        behind = []
        for stream, names in groups.items():
            last = _entry_id((await p.redis.xinfo_stream(stream))["last-generated-id"])
            info = {g["name"].decode(): g for g in await p.redis.xinfo_groups(stream)}
            for name in names:
                g = info[name]
                if g["pending"] or _entry_id(g["last-delivered-id"]) < last:
                    behind.append((stream, name, g["pending"], g["last-delivered-id"]))
        if not behind:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"consumer groups did not drain in {timeout:.0f} s: {behind}")
        await asyncio.sleep(0.1)


def expected_accuracy(artifact, dataset: str) -> tuple[float, np.ndarray]:
    data = load_dataset(dataset, cache_dir=ROOT / ".platform" / "cache")
    meta = read_metadata(artifact)
    with torch.inference_mode():
        preds = load_model(artifact, meta)(to_model_input(data.images, meta)).argmax(1).numpy()
    return float((preds == data.labels.numpy()).mean()), preds


async def test_job_metrics_and_duplicates_count_once(
    pipeline, start_worker, model_name, trained_artifacts
) -> None:
    p = pipeline
    await register(p, model_name, trained_artifacts["v1"])
    start_worker()
    job_id = await submit(p, model_name, "fashion_mnist_2000", batch_size=100, shard_size=250)
    job = await wait_job(p, job_id)
    assert job.status == "succeeded", job.error
    assert job.progress.done == job.progress.total == 2000 and job.shards == job.shards_done == 8
    accuracy, _ = expected_accuracy(trained_artifacts["v1"], "fashion_mnist_2000")
    m = job.result_metrics
    assert m["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert sum(map(sum, m["confusion_matrix"])) == 2000
    assert len(m["per_class"]) == 10 and all(0 <= c["f1"] <= 1 for c in m["per_class"])
    for key in (
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "sample_latency_p95_ms",
        "throughput_images_per_s",
    ):
        assert m[key] > 0, key
    assert m["batches"] == 24  # 8 shards of 250 in batches of 100, 100, 50

    # Deliver every shard and every shard-completed event again: nothing may count twice.
    for s in range(8):
        await p.redis.xadd(
            SHARDS_STREAM, {"job_id": job_id, "shard": str(s), "correlation_id": str(uuid.uuid4())}
        )
    # Rewind both groups on jobs.events: every event is delivered to them a second time.
    for group in ("batch-inference", "metric-aggregation"):
        await p.redis.xgroup_setid(JOBS_STREAM, group, "0")
    await wait_drained(
        p,
        {
            SHARDS_STREAM: ("batch-inference",),
            JOBS_STREAM: ("batch-inference", "metric-aggregation"),
        },
    )
    again = await p.job_queries.get(job_id)
    assert again.progress.done == 2000 and again.shards_done == 8 and again.result_metrics == m
    async with p.engine.connect() as conn:
        history = await event_store.load_stream(conn, f"job-{job_id}")
    async with p.uow() as tx:
        assert len(await tx.jobs.shard_results(job_id)) == 8
    types = [type(r.event).__name__ for r in history]
    assert types.count("BatchShardCompleted") == 8 and types.count("BatchJobCompleted") == 1
    evals = [h for h in await p.queries.history(model_name) if h.event_type == "EvaluationRecorded"]
    assert len(evals) == 1 and evals[0].details["job_id"] == job_id
    versions = await p.queries.list_versions(model_name)
    assert versions[0].metrics["accuracy"] == m["accuracy"]

    # Bounded streams: once every group has processed them, work entries are trimmed away.
    _, floor = await trim_stream(p.redis, SHARDS_STREAM, 1000)
    assert floor is not None
    assert await p.redis.xrange(SHARDS_STREAM, "-", f"({floor}") == []


async def test_killed_worker_is_recovered_with_identical_metrics(
    pipeline, start_worker, model_name, trained_artifacts
) -> None:
    p = pipeline
    await register(p, model_name, trained_artifacts["v1"])
    victim = start_worker()
    job_id = await submit(p, model_name, "fashion_mnist_3000", batch_size=1, shard_size=500)
    # Wait until the victim holds a shard, then kill it without any chance to clean up.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            consumers = await p.redis.xinfo_consumers(SHARDS_STREAM, "batch-inference")
        except ResponseError:  # no such key: the worker has not created its group yet
            consumers = []
        mine = [
            c
            for c in consumers
            if c["name"].decode().endswith(f"-{victim.pid}") and c["pending"] > 0
        ]
        if mine:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the worker never took a shard")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    # The shards it died holding: delivered to it, never acknowledged.
    held_entries = await p.redis.xpending_range(
        SHARDS_STREAM, "batch-inference", "-", "+", 100, consumername=mine[0]["name"]
    )
    held = set()
    for entry in held_entries:
        [(_, fields)] = await p.redis.xrange(
            SHARDS_STREAM, entry["message_id"], entry["message_id"]
        )
        if fields[b"job_id"].decode() == job_id:
            held.add(int(fields[b"shard"]))
    assert held, held_entries
    job_mid = await p.job_queries.get(job_id)
    assert job_mid.status != "succeeded"
    survivor = start_worker()
    job = await wait_job(p, job_id)
    assert job.status == "succeeded", job.error
    async with p.uow() as tx:
        results = await tx.jobs.shard_results(job_id)
    assert [r.shard for r in results] == list(range(6))  # every shard stored once
    redone = {r.shard: r.worker for r in results if r.shard in held}
    assert set(redone) == held
    assert all(w.endswith(f"-{survivor.pid}") for w in redone.values()), (redone, survivor.pid)

    undisturbed_id = await submit(p, model_name, "fashion_mnist_3000", batch_size=1, shard_size=500)
    undisturbed = await wait_job(p, undisturbed_id)
    assert undisturbed.status == "succeeded"
    for key in ("accuracy", "confusion_matrix", "per_class", "macro_f1"):
        assert job.result_metrics[key] == undisturbed.result_metrics[key], key


async def test_failing_shard_goes_to_dead_letter_and_fails_the_job(
    pipeline, start_worker, model_name, trained_artifacts
) -> None:
    p = pipeline
    await register(p, model_name, trained_artifacts["v1"])
    stored = p.artifacts.path_for(f"{model_name}/v1/model.pt")
    stored.write_bytes(stored.read_bytes()[:-10] + b"corrupted!")  # every load now fails its sha256
    dlq_before = await p.redis.xlen(dead_letter_stream(SHARDS_STREAM))
    start_worker()
    job_id = await submit(p, model_name, "fashion_mnist_500", batch_size=100, shard_size=500)
    job = await wait_job(p, job_id, timeout=90)
    assert job.status == "failed"
    assert "shard 0 failed" in job.error and "sha256" in job.error and "3 deliveries" in job.error
    assert await p.redis.xlen(dead_letter_stream(SHARDS_STREAM)) >= dlq_before + 1
    entries = await p.redis.xrevrange(dead_letter_stream(SHARDS_STREAM), count=5)
    ours = [f for _, f in entries if f[b"job_id"].decode() == job_id]
    assert ours and b"sha256" in ours[0][b"dlq_reason"]


async def _restart_redis_empty(p) -> None:
    if os.environ.get("REDIS_URL"):
        # A shared server cannot be restarted by a test: empty it and drop every connection.
        await p.redis.flushall()
        await p.redis.client_kill_filter(_type="normal", skipme=False)
    else:
        from storage import embedded

        embedded.stop_redis(p.settings.files.state_dir)
        embedded.ensure_redis(p.settings.files.state_dir)


async def test_redis_restarted_empty_mid_job_still_completes(
    pipeline, start_worker, model_name, trained_artifacts
) -> None:
    p = pipeline
    await register(p, model_name, trained_artifacts["v1"])
    start_worker()
    job_id = await submit(p, model_name, "fashion_mnist_4000", batch_size=1, shard_size=250)
    deadline = time.monotonic() + 60
    while (await p.job_queries.get(job_id)).shards_done < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    mid = await p.job_queries.get(job_id)
    assert mid.status == "running" and 2 <= mid.shards_done < mid.shards
    run_id = (await p.redis.info("server"))["run_id"]
    await _restart_redis_empty(p)
    if not os.environ.get("REDIS_URL"):
        assert (await p.redis.info("server"))["run_id"] != run_id, "Redis was not restarted"
    job = await wait_job(p, job_id, timeout=120)
    assert job.status == "succeeded", job.error
    assert job.progress.done == 4000 and job.shards_done == 16
    accuracy, _ = expected_accuracy(trained_artifacts["v1"], "fashion_mnist_4000")
    assert job.result_metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)


async def test_trimming_never_drops_unprocessed_entries(pipeline) -> None:
    r = pipeline.redis
    stream = f"test.trim.{uuid.uuid4().hex[:8]}"
    await r.xgroup_create(stream, "g", id="0", mkstream=True)
    ids = [await r.xadd(stream, {"i": str(i)}) for i in range(50)]
    await r.xreadgroup("g", "c", {stream: ">"}, count=20)  # 20 delivered, none acked
    await r.xack(stream, "g", *ids[:10])  # 10 processed
    floor = await safe_trim_floor(r, stream)
    assert floor == ids[10].decode()
    await trim_stream(r, stream, 5)
    remaining = [eid for eid, _ in await r.xrange(stream)]
    assert remaining == ids[10:], "an entry a group still needs was trimmed"
    await r.delete(stream)
