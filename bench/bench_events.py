"""Benchmark the event log: append throughput, replay from PostgreSQL, and `just audit`.

It works in a scratch database (created and dropped here) and an empty Redis database index,
so it never touches the platform's own data. The bare SELECT of the same rows, in the same
chunks, in the same run, is the limit the replay and the audit are compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

import bootstrap
from domain.audit.reports import TrailFilter
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
from storage.audit.auditor import Auditor
from storage.audit.reader import COLUMNS, chunks
from storage.audit.replay import EventLogReader
from storage.projections import rebuild_projections
from storage.streams.relay import Relay

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 10
PER_UNIT = 8 + 2 * (3 + SHARDS)  # one model stream and two job streams
SINGLE_UNITS = 30  # about 1,000 events appended one per transaction


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


def unit(i: int) -> list[tuple[str, list]]:
    """One model with two versions, promoted, tagged, rolled back, each evaluated by a job."""
    name = f"bench-{i}"
    model = [
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
        job = f"{i:08d}{v}"
        m = _metrics(i)
        streams.append(
            (
                f"job-{job}",
                [
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
                ],
            )
        )
        summary = {k: x for k, x in m.items() if k != "per_class"}
        model.append(
            EvaluationRecorded(
                model_name=name,
                model_version=v,
                job_id=job,
                dataset_id="fashion_mnist_10000",
                metrics=summary,
            )
        )
    return [(f"model-{name}", model), *streams]


async def seed(engine: AsyncEngine, events: int) -> dict:
    """Write about ``events`` events; measure single-event and batched appends."""
    meta = EventMetadata(actor="bench")
    units = max(1, events // PER_UNIT)
    single, started = 0, time.perf_counter()
    # Single-event transactions: the registry's usual shape (one command, one event).
    for i in range(min(SINGLE_UNITS, units)):
        for stream_id, evs in unit(i):
            for k, e in enumerate(evs):
                async with engine.begin() as conn:
                    await event_store.append(conn, stream_id, k, [e], meta)
                single += 1
    single_s = time.perf_counter() - started
    batched, started = 0, time.perf_counter()
    for i in range(SINGLE_UNITS, units):
        for stream_id, evs in unit(i):
            async with engine.begin() as conn:
                await event_store.append(conn, stream_id, 0, evs, meta)
            batched += len(evs)
    batched_s = time.perf_counter() - started
    return {
        "single_events": single,
        "single_events_per_s": round(single / single_s),
        "batched_events": batched,
        "batched_events_per_s": round(batched / batched_s) if batched else 0,
    }


async def bare_select(engine: AsyncEngine) -> tuple[int, float]:
    """Every row, same columns and chunks as the replay and the audit, nothing decoded."""
    started, n = time.perf_counter(), 0
    async with engine.connect() as conn:
        async for rows in chunks(conn, columns=COLUMNS):
            n += len(rows)
    return n, time.perf_counter() - started


async def replay(engine: AsyncEngine) -> tuple[int, float, float]:
    """The whole trail decoded (what `just replay --json` reads before printing)."""
    started, cpu, n = time.perf_counter(), time.process_time(), 0
    async for entries in EventLogReader(engine).trail(TrailFilter()):
        n += len(entries)
    return n, time.perf_counter() - started, time.process_time() - cpu


async def run(events: int, redis_db: int) -> dict:
    """Everything, in a scratch database that is dropped at the end."""
    base = make_url(bootstrap.database_url())
    name = f"bench_events_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = bootstrap.create_engine(base.set(database=name).render_as_string(False))
    url = bootstrap.redis_url()
    redis = bootstrap.create_redis(f"{url}{'&' if '?' in url else '?'}db={redis_db}")
    try:
        if await redis.dbsize():
            raise SystemExit(f"error: Redis database {redis_db} is not empty; pick --redis-db")
        await bootstrap.migrate(engine)
        out: dict = {"append": await seed(engine, events)}
        started = time.perf_counter()
        await rebuild_projections(engine)
        out["rebuild_projections_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        published = await Relay(engine, redis, batch=2000).publish_once()
        out["relay"] = {"events": published, "seconds": round(time.perf_counter() - started, 2)}
        n, bare_s = await bare_select(engine)
        _, replay_s, replay_cpu = await replay(engine)
        out["events"] = n
        out["bare_select"] = {"seconds": round(bare_s, 3), "rows_per_s": round(n / bare_s)}
        out["replay"] = {
            "seconds": round(replay_s, 3),
            "events_per_s": round(n / replay_s),
            "cpu_seconds": round(replay_cpu, 3),
        }
        auditor = Auditor(engine, redis)
        cpu = time.process_time()
        report = await auditor.run()
        out["audit"] = {
            "seconds": report.seconds,
            "ok": report.ok,
            "checks": report.checks,
            "cpu_seconds": round(time.process_time() - cpu, 3),
        }
        # Other work on a shared machine slows every figure: say how busy it was.
        out["load_average_1m"] = round(os.getloadavg()[0], 2)
        chain = await auditor.run(projections=False, streams=False)
        out["audit_chain_only_s"] = chain.seconds
        if not report.ok:
            out["audit"]["findings"] = [f.problem for f in report.findings[:5]]
        return out
    finally:
        await redis.flushdb()
        await redis.aclose()
        await engine.dispose()
        async with admin.connect() as c:
            await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def table(out: dict) -> str:
    """The figures as a Markdown table."""
    n = out["events"]
    a = out["append"]
    rows = [
        ("append, one event per transaction", a["single_events"], "", a["single_events_per_s"]),
        (
            "append, one stream's events per transaction",
            a["batched_events"],
            "",
            a["batched_events_per_s"],
        ),
        (
            "bare SELECT of every row (the limit)",
            n,
            out["bare_select"]["seconds"],
            out["bare_select"]["rows_per_s"],
        ),
        (
            "replay from PostgreSQL (decoded trail)",
            n,
            out["replay"]["seconds"],
            out["replay"]["events_per_s"],
        ),
        ("audit: chain only", n, out["audit_chain_only_s"], round(n / out["audit_chain_only_s"])),
        (
            "audit: chain + projections + streams",
            n,
            out["audit"]["seconds"],
            round(n / out["audit"]["seconds"]),
        ),
    ]
    lines = ["| run | events | seconds | events/s |", "|---|---:|---:|---:|"]
    lines += [f"| {r} | {e:,} | {s} | {v:,} |" for r, e, s, v in rows]
    return "\n".join(lines)


def main() -> None:
    """Parse flags, run, print the table and write reports/bench_events.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--redis-db", type=int, default=15)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_events.json"))
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "warning")
    out = asyncio.run(run(args.events, args.redis_db))
    from bench.common import machine

    out["machine"] = machine()
    print(table(out))
    print(f"audit clean: {out['audit']['ok']}  ({'; '.join(out['audit']['checks'].values())})")
    print(
        f"load average (1 min) at the end: {out['load_average_1m']} on {out['machine']['cores']} cores"
    )
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    note = f"\n\n1-minute load average at the end: {out['load_average_1m']} on {out['machine']['cores']} cores.\n"
    out_path.with_suffix(".md").write_text(table(out) + note)
    print(f"saved {out_path} and {out_path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
