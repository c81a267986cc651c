"""The faults, one function each: inject, let the cluster converge, and state the facts.

Each batch scenario runs the same job as the clean run of the cluster (``Context.clean``) and
compares its metrics with it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench.chaos.cluster import FAST, ROOT, Cluster
from bench.chaos.driver import Driver
from bench.chaos.net import Network

SHARDS_STREAM, GROUP = "jobs.shards", "batch-inference"


@dataclass
class Outcome:
    """One row of the table."""

    scenario: str
    requests: str
    lost: int
    duplicated: int
    converge_s: float
    audit_clean: bool
    identical: bool
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost or doubled, the same metrics, a clean audit, no broken promise."""
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.identical
            and self.audit_clean
            and not any(n.startswith("FAIL") for n in self.notes)
        )


@dataclass
class Context:
    """What every scenario works with."""

    net: Network
    cluster: Cluster
    driver: Driver
    clean: dict
    clean_s: float


def redis_client(cluster: Cluster) -> aioredis.Redis:
    """A Redis client from the root namespace, with timeouts so a fault cannot hang the driver."""
    return aioredis.Redis.from_url(cluster.redis_url, socket_timeout=5, socket_connect_timeout=5)


async def held_by(cluster: Cluster, host: str) -> int:
    """How many shard entries the worker on ``host`` holds (delivered, not acknowledged)."""
    r = redis_client(cluster)
    try:
        consumers = await r.xinfo_consumers(SHARDS_STREAM, GROUP)
    except Exception:  # the group does not exist yet
        consumers = []
    finally:
        await r.aclose()
    pid = cluster.procs[host].pid
    return sum(c["pending"] for c in consumers if c["name"].decode().endswith(f"-{pid}"))


async def held_shards(cluster: Cluster, host: str, job_id: str) -> set[int]:
    """The shards of ``job_id`` that the worker on ``host`` holds."""
    r = redis_client(cluster)
    pid = cluster.procs[host].pid
    try:
        consumers = await r.xinfo_consumers(SHARDS_STREAM, GROUP)
        names = [x["name"] for x in consumers if x["name"].decode().endswith(f"-{pid}")]
        shards = set()
        for name in names:
            for e in await r.xpending_range(SHARDS_STREAM, GROUP, "-", "+", 100, name):
                for _, fields in await r.xrange(SHARDS_STREAM, e["message_id"], e["message_id"]):
                    if fields[b"job_id"].decode() == job_id:
                        shards.add(int(fields[b"shard"]))
    finally:
        await r.aclose()
    return shards


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float) -> float:
    """Poll ``condition`` until true; the seconds it took. RuntimeError on timeout."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > timeout_s:
            raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting until {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


def outcome(name: str, ctx: Context, facts: dict, converge_s: float, **kw) -> Outcome:
    """The row for a batch scenario: lost, duplicated and identical from the job's facts."""
    notes = kw.pop("notes", [])
    if facts["status"] != "succeeded":
        notes.append(f"FAIL: job {facts['status']}")
    return Outcome(
        scenario=name,
        requests=f"{facts['images']} images, {facts['shards']} shards",
        lost=facts["lost"],
        duplicated=facts["duplicated"],
        converge_s=round(converge_s, 1),
        audit_clean=ctx.driver.audit(),
        identical=facts["metrics"] == ctx.clean["metrics"],
        notes=notes,
    )


async def partition_worker(ctx: Context) -> Outcome:
    """(1) worker1 cut off while it holds a shard; worker2 finishes; worker1's late result is
    ignored after the heal."""
    d, c = ctx.driver, ctx.cluster
    job = await d.submit()
    for _ in range(3):  # worker1 may acknowledge its shard in the instant before the cut
        await until(lambda: _holds(c, "worker1"), "worker1 holds a shard", 120)
        ctx.net.partition("worker1")
        start = time.monotonic()
        held = await held_shards(c, "worker1", job)
        if held:
            break
        ctx.net.heal("worker1")
    else:
        raise RuntimeError("worker1 held no shard at the moment of the cut, three times")
    try:
        await d.wait_job(job)
        converge = time.monotonic() - start
        before = await d.facts(job)
    finally:
        ctx.net.heal("worker1")
    # Let the healed worker finish what it held and try to store it; nothing may change.
    healed, address = await d.server_now(), ctx.net["worker1"].address
    await until(lambda: d.spoke_since(address, healed), "worker1 reaches PostgreSQL again", 120)
    await asyncio.sleep(float(FAST["CLAIM_IDLE_MS"]) / 1000)
    after = await d.facts(job)
    notes = [] if after == before else [f"FAIL: late results changed the job: {before} {after}"]
    writers = await d.writers(job)
    survivor = f"-{c.procs['worker2'].pid}"
    taken = all(writers.get(s, "").endswith(survivor) for s in held)
    notes.append(f"worker1 held shard(s) {sorted(held)}; worker2 stored them: {taken}")
    if not held or not taken:
        notes.append("FAIL: worker2 did not take worker1's shards")
    if c.procs["worker1"].poll() is not None:
        notes.append("FAIL: worker1 exited after the heal")
    return outcome("partition a worker host", ctx, after, converge, notes=notes)


async def _holds(c: Cluster, host: str) -> bool:
    return await held_by(c, host) > 0


async def start_lossy(*argv: str) -> subprocess.Popen:
    """``python -m bench.chaos.lossy ARGV``, once its detours are in place."""
    cmd = [sys.executable, "-m", "bench.chaos.lossy", *argv]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    line = await asyncio.to_thread(proc.stdout.readline)
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the lossy links did not start: {line!r}")
    return proc


def stop_lossy(proc: subprocess.Popen) -> None:
    """Stop the detours: the links are direct again."""
    proc.terminate()
    proc.wait()


async def lossy_links(ctx: Context) -> Outcome:
    """(2) 30% loss and 100 ms delay on everything the worker hosts send to the data host."""
    lossy = await start_lossy("--loss", "0.3", "--delay-ms", "100", "worker1", "worker2")
    try:
        start = time.monotonic()
        job = await ctx.driver.submit()
        await ctx.driver.wait_job(job, timeout_s=300)
        took = time.monotonic() - start
    finally:
        stop_lossy(lossy)
    facts = await ctx.driver.facts(job)
    note = f"job took {took:.1f}s (clean {ctx.clean_s:.1f}s)"
    return outcome("30% loss, 100 ms delay to the data host", ctx, facts, took, notes=[note])


async def restart_servers(ctx: Context) -> Outcome:
    """(4) PostgreSQL restarted after the first shard, Redis restarted empty halfway."""
    d, c = ctx.driver, ctx.cluster
    job = await d.submit()
    await d.wait_job(job, done=1)
    c.stop_postgres("fast")
    c.start_postgres()
    shards = (await d.job(job))["shards"]
    mid = await d.wait_job(job, done=max(2, shards // 2))
    c.restart_redis_empty()
    notes = [f"Redis restarted empty with {mid['shards_done']} of {shards} shards done"]
    start = time.monotonic()
    await d.wait_job(job, timeout_s=240)
    converge = time.monotonic() - start
    facts = await d.facts(job)
    return outcome("restart PostgreSQL, then Redis empty", ctx, facts, converge, notes=notes)
