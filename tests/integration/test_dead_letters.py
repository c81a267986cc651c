"""Dead letters end to end on real servers: a group dead-letters two shard entries, the CLI
lists them with their reasons, retries one (the group handles it again once the relay has
published the retry) and drops the other; both are events with the OS user as their actor.
The processed table is pruned below what the streams still hold, and the relay never
republishes below that floor."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from consumers.runner import GroupRunner, RunnerConfig
from events.dead_letters import DLQ_EVENTS, dead_letter_stream_id
from events.streams import REGISTRY_STREAM, SHARDS_STREAM, dead_letter_stream
from storage import event_store
from storage.streams.relay import MARKER_KEY
from storage.streams.retention import RETENTION_CHECKPOINT, prune_processed
from tests.conftest import ROOT
from tests.integration.registry_support import register_versions

pytestmark = pytest.mark.anyio


def cli(server_urls, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": server_urls["database_url"],
        "REDIS_URL": server_urls["redis_url"],
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_list_retry_and_drop_dead_letters_from_the_cli(platform, server_urls) -> None:
    p, group, job = platform, f"test-dlq-{uuid.uuid4().hex[:8]}", f"job-{uuid.uuid4()}"
    broken, handled = True, []

    async def handler(stream, entry_id, fields):
        if fields.get(b"job_id") != job.encode():
            return
        if broken:
            raise ValueError("the model cannot be loaded")
        handled.append(int(fields[b"shard"]))

    for stream in (SHARDS_STREAM, DLQ_EVENTS):  # from now on only: other tests' entries stay
        await p.redis.xgroup_create(stream, group, id="$", mkstream=True)
    config = RunnerConfig(max_deliveries=1, claim_idle_ms=200, claim_every_s=0.05, block_ms=50)
    runner = GroupRunner(p.redis, group, [SHARDS_STREAM, DLQ_EVENTS], "c1", handler, config)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    ids = [await p.redis.xadd(SHARDS_STREAM, {"job_id": job, "shard": str(s)}) for s in (0, 1)]
    dlq = dead_letter_stream(SHARDS_STREAM)

    async def ours() -> list[dict]:
        out = cli(server_urls, "dlq", SHARDS_STREAM, "--json", "--limit", "10000")
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        return [r for r in rows if r["job_id"] == job and r["group"] == group]

    try:
        await until(lambda: _count(p, dlq, job, 2), "both entries to be dead-lettered")
        letters = sorted(await ours(), key=lambda r: r["shard"])
        assert [r["original_id"] for r in letters] == [i.decode() for i in ids]
        assert all("ValueError: the model cannot be loaded" in r["reason"] for r in letters)
        retried, dropped = (f"{dlq}/{r['entry_id']}" for r in letters)

        broken = False  # the cause is fixed: hand shard 0 back to the group
        out = cli(server_urls, "dlq-retry", retried, "--reason", "model fixed")
        assert out.returncode == 0, out.stderr
        await p.ops.publish_pending()  # the relay carries DeadLetterRetried to dlq.events
        await until(lambda: _true(handled == [0]), "the group to handle the retried entry")
        out = cli(server_urls, "dlq-drop", dropped, "--reason", "not needed")
        assert out.returncode == 0, out.stderr
        assert await ours() == []  # both left the dead letters

        again = cli(server_urls, "dlq-retry", dropped)
        assert again.returncode == 1 and "no dead letter" in again.stderr
        bad = cli(server_urls, "dlq-retry", "not-an-id")
        assert bad.returncode == 1 and "invalid dead letter id" in bad.stderr
        assert cli(server_urls, "dlq", "no.such").returncode == 1
        async with p.engine.connect() as conn:
            for raw, kind in ((retried, "DeadLetterRetried"), (dropped, "DeadLetterDropped")):
                stream_id = dead_letter_stream_id(*raw.rsplit("/", 1))
                [event] = await event_store.load_stream(conn, stream_id)
                assert type(event.event).__name__ == kind
                assert event.metadata.actor == f"cli:{getpass.getuser()}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        for stream in (SHARDS_STREAM, DLQ_EVENTS):
            await p.redis.xgroup_destroy(stream, group)


async def _count(p, dlq: str, job: str, n: int) -> bool:
    return sum(f.get(b"job_id") == job.encode() for _, f in await p.redis.xrange(dlq)) >= n


async def _true(value: bool) -> bool:
    return value


async def test_processed_rows_are_pruned_below_what_the_streams_hold(
    platform, model_name, state_dict_file
) -> None:
    p = platform
    await register_versions(p, model_name, state_dict_file)
    await p.ops.publish_pending()
    async with p.engine.connect() as conn:
        events = await event_store.load_stream(conn, f"model-{model_name}")
    for r in events:
        async with p.uow() as tx:
            assert await tx.mark_processed("test-retention", r.event_id)
    first, second, third = (r.position for r in events)
    # A stream a group reads, whose oldest entry is the second event: the first was handled.
    stream = f"test-{uuid.uuid4().hex[:8]}.events"
    await p.redis.xgroup_create(stream, "g", id="0", mkstream=True)
    await p.redis.xadd(stream, {"x": "1"}, id=f"{second}-0")
    assert await prune_processed(p.engine, p.redis, streams=[stream]) >= 1
    async with p.uow() as tx:  # False: the row is still there
        assert not await tx.mark_processed("test-retention", events[1].event_id)
        assert not await tx.mark_processed("test-retention", events[2].event_id)
    async with p.uow() as tx:  # True: it was pruned
        assert await tx.mark_processed("test-retention", events[0].event_id)
    async with p.engine.connect() as conn:
        assert await event_store.read_after(conn, 0, 1)  # the log itself keeps everything
        from storage.projections import get_checkpoint

        assert await get_checkpoint(conn, RETENTION_CHECKPOINT) >= second
    # Redis loses its data: the relay republishes from the floor, never the pruned events.
    await p.redis.delete(REGISTRY_STREAM, MARKER_KEY)
    await p.ops.publish_pending()
    assert not await p.redis.xrange(REGISTRY_STREAM, f"{first}-0", f"{first}-0")
    assert await p.redis.xrange(REGISTRY_STREAM, f"{third}-0", f"{third}-0")
    await p.redis.delete(stream)
