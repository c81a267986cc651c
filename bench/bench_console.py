"""Benchmark the web console at scale: 100,000 events, and one model with 1,000 versions.

In a scratch database (created and dropped here), the event mix of `just bench-events` plus one
model, ``big``, with 1,000 versions (each registered and evaluated, every tenth promoted). Each
console page is fetched through the app (httpx on ASGI, a reader's session) several times; the
median time and the size of the HTML are reported. Pages must stay fast because every list is
one page of an index scan, never the whole log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import bootstrap
from bench.bench_events import _metrics, seed
from events.base import EventMetadata
from events.jobs import EvaluationRecorded
from events.registry import ModelVersionPromoted, ModelVersionRegistered
from settings import get_settings
from storage import event_store
from storage.projections import rebuild_projections

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-console-reader-key-0123456789"


def big_model(versions: int) -> list:
    """One model stream: ``versions`` registered and evaluated, every tenth promoted."""
    out: list = []
    prod = None
    for n in range(1, versions + 1):
        v = f"v{n}"
        out.append(
            ModelVersionRegistered(
                model_name="big",
                model_version=v,
                artifact_uri=f"big/{v}",
                sha256=f"{n:064x}",
                size_bytes=1000,
            )
        )
        m = {k: x for k, x in _metrics(n).items() if k != "per_class"}
        m["latency_p95_ms"] = 10 + n % 13
        out.append(
            EvaluationRecorded(
                model_name="big",
                model_version=v,
                job_id=f"big-{n}",
                dataset_id="fashion_mnist_10000",
                metrics=m,
            )
        )
        if n % 10 == 0:
            out.append(
                ModelVersionPromoted(
                    model_name="big", model_version=v, previous_prod=prod, reason=f"release {n}"
                )
            )
            prod = v
    return out


async def timed(client: httpx.AsyncClient, url: str, repeat: int) -> dict:
    """Median and worst time of ``repeat`` fetches of one page, and its size."""
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        r = await client.get(url)
        times.append(time.perf_counter() - started)
        assert r.status_code == 200, (url, r.status_code, r.text[-300:])
        size = len(r.content)
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "kib": round(size / 1024, 1),
    }


async def run(events: int, versions: int, repeat: int) -> dict:
    """Seed a scratch database, then time every console page on it."""
    from api.app import create_app

    base = make_url(bootstrap.database_url())
    name = f"bench_console_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as c:
        await c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = bootstrap.create_engine(base.set(database=name).render_as_string(False))
    redis = bootstrap.create_redis(bootstrap.redis_url())
    try:
        await bootstrap.migrate(engine)
        out: dict = {"append": await seed(engine, events)}
        async with engine.begin() as conn:
            await event_store.append(
                conn, "model-big", 0, big_model(versions), EventMetadata(actor="bench")
            )
        await rebuild_projections(engine)
        async with engine.connect() as conn:
            out["events"] = await conn.scalar(text("SELECT count(*) FROM event_log"))
        settings = get_settings().changed(
            security={"api_keys": {KEY: ("bench", "reader")}, "rate_limit_per_s": 0},
            serving={"hot_swap": False, "warm_up": False},
        )
        app = create_app(bootstrap.wire(settings, engine, redis), settings, run_relay=False)
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                assert (await c.post("/ui/login", data={"key": KEY})).status_code == 303
                page = (await c.get("/ui/models/big")).text
                older = page.split("?vc=")[1].split('"')[0]
                events_page = page.split("?tc=")[1].split('"')[0]
                pages = {
                    "models (first page)": "/ui/models",
                    "models, search 'bench-29'": "/ui/models?q=bench-29",
                    "model with 1,000 versions": "/ui/models/big",
                    "its older versions": f"/ui/models/big?vc={older}",
                    "its older events": f"/ui/models/big?tc={events_page}",
                    "its prod at a time": "/ui/models/big?at=2999-01-01T00:00:00Z",
                    "a small model": "/ui/models/bench-100",
                    "audit": "/ui/audit",
                }
                out["pages"] = {k: await timed(c, u, repeat) for k, u in pages.items()}
        out["versions"] = versions
        out["load_average_1m"] = round(os.getloadavg()[0], 2)
        return out
    finally:
        await redis.aclose()
        await engine.dispose()
        async with admin.connect() as c:
            await c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def table(out: dict) -> str:
    """The pages as a Markdown table."""
    lines = ["| page | median ms | max ms | KiB |", "|---|---:|---:|---:|"]
    lines += [
        f"| {k} | {v['median_ms']} | {v['max_ms']} | {v['kib']} |" for k, v in out["pages"].items()
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse flags, run, print the table and write reports/bench_console.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_console.json"))
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "warning")
    out = asyncio.run(run(args.events, args.versions, args.repeat))
    from bench.common import machine

    out["machine"] = machine()
    print(f"{out['events']:,} events; model 'big' with {out['versions']:,} versions")
    print(table(out))
    print(f"load average (1 min) at the end: {out['load_average_1m']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
