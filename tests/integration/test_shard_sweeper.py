"""The lost-shard sweeper on real servers: Redis loses some shard messages of a running job
while the consumer group survives; the sweeper re-dispatches exactly those."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from redis.exceptions import ResponseError

from bootstrap import build_shard_backlog
from consumers.sweeper import sweep_lost_shards
from domain.delivery import Delivery
from domain.jobs.commands import PlanBatchJob, SubmitBatchJob
from domain.registry.commands import PromoteModelVersion, RegisterModelVersion
from events.base import EventMetadata
from events.streams import SHARDS_STREAM
from storage.jobs.shard_sweep import SWEEP_LOCK

pytestmark = pytest.mark.anyio
META = EventMetadata(actor="tester")


async def _shards_in_stream(redis, job_id: str) -> dict[int, list[bytes]]:
    found: dict[int, list[bytes]] = {}
    for entry_id, fields in await redis.xrange(SHARDS_STREAM):
        if fields.get(b"job_id") == job_id.encode():
            found.setdefault(int(fields[b"shard"]), []).append(entry_id)
    return found


async def _sweep(p, consumer: str = "w1"):
    await p.redis.delete(SWEEP_LOCK)  # a new period
    return await sweep_lost_shards(p, build_shard_backlog(p), consumer)


async def test_the_sweeper_replans_only_the_shards_the_stream_lost(
    platform, model_name, state_dict_file
) -> None:
    p = replace(platform, settings=platform.settings.changed(batch={"shard_sweep_grace_s": 0.0}))
    await p.bus.handle(
        RegisterModelVersion(
            model_name=model_name,
            model_version="v1",
            source=str(state_dict_file()),
            tags={},
            metadata=META,
        )
    )
    await p.bus.handle(
        PromoteModelVersion(model_name=model_name, model_version="v1", metadata=META)
    )
    try:
        await p.redis.xgroup_create(SHARDS_STREAM, "batch-inference", id="$", mkstream=True)
    except ResponseError as exc:
        assert "BUSYGROUP" in str(exc)
    job = await p.bus.handle(
        SubmitBatchJob(
            model_name=model_name,
            dataset_id="fashion_mnist_500",
            batch_size=100,
            shard_size=100,
            limited=False,
            metadata=META,
        )
    )
    delivery = Delivery(group="test", event_id=uuid.uuid4())
    await p.bus.handle(PlanBatchJob(job_id=job.job_id, delivery=delivery, metadata=META))
    assert sorted(await _shards_in_stream(p.redis, job.job_id)) == [0, 1, 2, 3, 4]

    # Every shard is still queued: nothing is dispatched twice.
    assert job.job_id not in (await _sweep(p) or {})
    # Redis loses the messages of shards 1 to 4.
    held = await _shards_in_stream(p.redis, job.job_id)
    await p.redis.xdel(SHARDS_STREAM, *(i for s in (1, 2, 3, 4) for i in held[s]))
    replanned = await _sweep(p)
    assert replanned is not None and replanned[job.job_id] == 4
    again = await _shards_in_stream(p.redis, job.job_id)
    assert {s: len(ids) for s, ids in again.items()} == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    # Another worker in the same period leaves the sweep to the first.
    assert await sweep_lost_shards(p, build_shard_backlog(p), "w2") is None
    # A job that moved within the grace period is left alone, even with a shard missing.
    await p.redis.xdel(SHARDS_STREAM, *again[0])
    patient = replace(p, settings=p.settings.changed(batch={"shard_sweep_grace_s": 3600.0}))
    assert job.job_id not in (await _sweep(patient) or {})
    assert 0 not in await _shards_in_stream(p.redis, job.job_id)
