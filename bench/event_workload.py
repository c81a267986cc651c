"""The event mix `just bench-events` appends, and the scratch database and Redis it works in."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

import bootstrap
from events.base import EventMetadata
from events.jobs import (
    BatchJobCompleted,
    BatchJobPlanned,
    BatchJobSubmitted,
    BatchShardCompleted,
    EvaluationRecorded,
)
from events.registry import (
    ModelVersionPromoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
    ModelVersionTagged,
)
from storage import event_store

SHARDS = 10
PER_UNIT = 8 + 2 * (3 + SHARDS)  # one model stream and two job streams
META = EventMetadata(actor="bench")


def _metrics(seed: int) -> dict:
    per_class = [
        {"class": str(c), "precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 100}
        for c in range(10)
    ]
    matrix = [[90 if r == c else 1 for c in range(10)] for r in range(10)]
    return {
        "accuracy": 0.9 + seed % 7 / 100,
        "macro_f1": 0.9,
        "per_class": per_class,
        "confusion_matrix": matrix,
        "latency_ms_p50": 1.5,
        "throughput_ips": 3000.0,
    }


def _job(i: int, name: str, v: str) -> tuple[str, list, EvaluationRecorded]:
    job = f"{i:08d}{v}"
    m = _metrics(i)
    events = [
        BatchJobSubmitted(
            job_id=job,
            model_name=name,
            model_version=v,
            dataset_id="fashion_mnist_10000",
            total=10_000,
            batch_size=256,
            shard_size=1000,
        ),
        BatchJobPlanned(job_id=job, shards=SHARDS),
        *[
            BatchShardCompleted(job_id=job, shard=s, images=1000, worker="bench")
            for s in range(SHARDS)
        ],
        BatchJobCompleted(job_id=job, metrics=m, duration_s=3.2),
    ]
    summary = {k: x for k, x in m.items() if k != "per_class"}
    evaluation = EvaluationRecorded(
        model_name=name,
        model_version=v,
        job_id=job,
        dataset_id="fashion_mnist_10000",
        metrics=summary,
    )
    return f"job-{job}", events, evaluation


def unit(i: int) -> list[tuple[str, list]]:
    """One model with two versions, promoted, tagged, rolled back, each evaluated by a job."""
    name = f"bench-{i}"
    model: list = [
        ModelVersionRegistered(
            model_name=name,
            model_version=v,
            artifact_uri=f"{name}/{v}",
            sha256=f"{i:060x}{n:04x}",
            size_bytes=1000,
        )
        for n, v in enumerate(("v1", "v2"))
    ]
    model += [
        ModelVersionPromoted(model_name=name, model_version="v1", reason="first"),
        ModelVersionPromoted(model_name=name, model_version="v2", previous_prod="v1"),
        ModelVersionTagged(model_name=name, model_version="v2", tags={"team": "vision"}),
        ModelVersionRolledBack(model_name=name, from_version="v2", to_version="v1"),
    ]
    streams = []
    for v in ("v1", "v2"):
        stream_id, events, evaluation = _job(i, name, v)
        streams.append((stream_id, events))
        model.append(evaluation)
    return [(f"model-{name}", model), *streams]


async def append_single(engine: AsyncEngine, first: int, units: int) -> int:
    """Units ``first``… appended one event per transaction (a registry command's shape)."""
    n = 0
    for i in range(first, first + units):
        for stream_id, evs in unit(i):
            for k, e in enumerate(evs):
                async with engine.begin() as conn:
                    await event_store.append(conn, stream_id, k, [e], META)
                n += 1
    return n


async def append_streams(engine: AsyncEngine, first: int, units: int, per_tx: int = 1) -> int:
    """Units ``first``… appended one stream per append call, ``per_tx`` units per transaction."""
    n = 0
    for start in range(first, first + units, per_tx):
        async with engine.begin() as conn:
            for i in range(start, min(start + per_tx, first + units)):
                for stream_id, evs in unit(i):
                    await event_store.append(conn, stream_id, 0, evs, META)
                    n += len(evs)
    return n


async def timed(coro) -> tuple[int, float]:
    """(what ``coro`` returns, seconds it took)."""
    started = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - started


@asynccontextmanager
async def scratch(redis_db: int, prefix: str = "bench_events") -> AsyncIterator[tuple]:
    """A migrated scratch database and an empty Redis database index, dropped and flushed after.

    Yields (engine, redis, database URL).
    """
    url = bootstrap.redis_url()
    redis = bootstrap.create_redis(f"{url}{'&' if '?' in url else '?'}db={redis_db}")
    if await redis.dbsize():  # someone else's data: leave it alone
        await redis.aclose()
        raise SystemExit(f"error: Redis database {redis_db} is not empty; pick --redis-db")
    base = make_url(bootstrap.database_url())
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = base.set(database=name).render_as_string(False)
    engine = bootstrap.create_engine(db_url)
    try:
        await bootstrap.migrate(engine)
        yield engine, redis, db_url
    finally:
        await redis.flushdb()
        await redis.aclose()
        await engine.dispose()
        async with admin.connect() as c:
            await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
