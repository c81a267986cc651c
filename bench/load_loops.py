"""The load test's two ways to send requests: a closed loop by concurrency, and an open loop at a
fixed arrival rate whose latency counts from each request's scheduled time."""

from __future__ import annotations

import asyncio
import time

from bench.client import Connection, HttpError


async def closed_loop(
    url: str, requests: list[bytes], concurrency: int, total: int
) -> tuple[list, list, float]:
    """``concurrency`` connections, each sending its next request when the last one answers."""
    latencies: list[float] = []
    statuses: list[int] = []
    counter = iter(range(total))

    async def worker() -> None:
        conn = Connection(url)
        try:
            for i in counter:
                start = time.perf_counter()
                try:
                    status, _ = await conn.send(requests[i % len(requests)])
                except (OSError, HttpError, asyncio.IncompleteReadError):
                    status = 599
                latencies.append(time.perf_counter() - start)
                statuses.append(status)
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - start


async def open_loop(
    url: str, requests: list[bytes], rate: float, total: int, max_conns: int
) -> tuple[list, list, float]:
    """Send at a fixed arrival rate; latency counts from each request's scheduled time."""
    latencies: list[float] = []
    statuses: list[int] = []
    idle: list[Connection] = []
    inflight = asyncio.Semaphore(max_conns)
    t0 = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        async with inflight:
            conn = idle.pop() if idle else Connection(url)
            try:
                status, _ = await conn.send(requests[i % len(requests)])
                idle.append(conn)
            except (OSError, HttpError, asyncio.IncompleteReadError):
                status = 599
                await conn.close()
            latencies.append(time.perf_counter() - scheduled)
            statuses.append(status)

    tasks = []
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    for conn in idle:
        await conn.close()
    return latencies, statuses, time.perf_counter() - t0
