"""Appends under the log's single-writer lock: one event per transaction (a command's shape)
from 1, 4 and 16 concurrent appenders, each on its own streams, in one scratch database
(dropped at the end). The figure docs/scale.md builds the log's bound on.

    python -m bench.bench_appends [--units 10] [--appenders 1 4 16] [--redis-db 14]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.event_workload import append_single, scratch, timed

ROOT = Path(__file__).resolve().parent.parent


WAITERS = text(
    "SELECT count(*) FILTER (WHERE wait_event = 'advisory'),"
    " count(*) FILTER (WHERE state = 'active' AND wait_event IS DISTINCT FROM 'advisory')"
    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def sample(engine: AsyncEngine, stop: asyncio.Event, into: list[tuple[int, int]]) -> None:
    """Every 20 ms: sessions waiting for the append lock, and sessions working."""
    async with engine.connect() as conn:
        while not stop.is_set():
            waiting, working = (await conn.execute(WAITERS)).one()
            await conn.commit()
            into.append((waiting, working))
            await asyncio.sleep(0.02)


async def run(units: int, appenders: list[int], redis_db: int) -> list[dict]:
    """Events/s for each number of appenders, in the same database, one after the other."""
    rows, first = [], 0
    async with scratch(redis_db, prefix="bench_appends") as (engine, _redis, _url):
        await append_single(engine, first, 1)  # warm the pool and the caches
        first += 1
        for n in appenders:
            starts = [first + k * units for k in range(n)]
            stop, seen = asyncio.Event(), []
            sampler = asyncio.create_task(sample(engine, stop, seen))
            counts, seconds = await timed(
                asyncio.gather(*(append_single(engine, s, units) for s in starts))
            )
            stop.set()
            await sampler
            first += n * units
            events = sum(counts)
            rows.append(
                {
                    "appenders": n,
                    "events": events,
                    "seconds": round(seconds, 2),
                    "events_per_s": round(events / seconds),
                    "ms_per_event": round(seconds / events * 1000, 2),
                    # Mean sessions queued on the lock / running a statement, per sample.
                    "waiting_for_lock": round(sum(w for w, _ in seen) / max(1, len(seen)), 1),
                    "working": round(sum(a for _, a in seen) / max(1, len(seen)), 1),
                }
            )
    return rows


def main() -> None:
    """Run, print a table, write reports/bench_appends.json."""
    p = argparse.ArgumentParser(prog="python -m bench.bench_appends", description=__doc__)
    p.add_argument("--units", type=int, default=10, help="units (~34 events) per appender")
    p.add_argument("--appenders", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--redis-db", type=int, default=14, help="an empty Redis database index")
    args = p.parse_args()
    load_before = os.getloadavg()
    rows = asyncio.run(run(args.units, args.appenders, args.redis_db))
    print(
        "| appenders | events | seconds | events/s | ms per event | waiting for the lock | working |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['appenders']} | {r['events']:,} | {r['seconds']} | {r['events_per_s']:,} "
            f"| {r['ms_per_event']} | {r['waiting_for_lock']} | {r['working']} |"
        )
    # The machine's other work shows in the 1-minute load average, before and after.
    load = [round(load_before[0], 1), round(os.getloadavg()[0], 1)]
    out = {"cores": os.cpu_count(), "load_average_before_after": load, "runs": rows}
    print(f"load average before / after: {load[0]} / {load[1]} on {os.cpu_count()} cores")
    path = ROOT / "reports" / "bench_appends.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"report: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
