"""The group runner's fault paths on a real Redis: poison in the dead-letter path, outages that
outlast the claim period, entries held while others are handled, and the XAUTOCLAIM cursor.

Handlers here are plain functions standing in for a group's handler; the runner, the consumer
group, the pending lists and the dead-letter stream are Redis's own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis

from consumers.runner import GroupRunner, RunnerConfig
from domain.errors import ServiceUnavailable
from events.streams import DEAD_LETTERS_KEY, dead_letter_stream

pytestmark = pytest.mark.anyio
FAST = {"claim_idle_ms": 200, "claim_every_s": 0.05, "block_ms": 50}


@pytest.fixture
async def redis(server_urls) -> AsyncIterator[aioredis.Redis]:
    """A client on the test Redis."""
    client = aioredis.Redis.from_url(server_urls["redis_url"])
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def stream() -> str:
    """A stream no other test uses."""
    return f"test-{uuid.uuid4().hex[:10]}.events"


async def until(check, timeout: float = 30.0, what: str = "condition") -> None:
    """Wait for ``check()`` (sync or async) to be true; fail when it never is."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def started(runner: GroupRunner) -> tuple[asyncio.Event, asyncio.Task]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(runner.run(stop))


async def finish(stop: asyncio.Event, task: asyncio.Task) -> None:
    """Stop the runner; it must still be running (a crashed runner fails the test)."""
    assert not task.done(), f"the runner ended: {task.exception() if task.done() else ''}"
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_poison_in_the_dead_letter_hook_neither_stops_the_runner_nor_repeats(
    redis, stream
) -> None:
    """A hook that fails on an undecodable payload: the entry still lands in the DLQ once, it is
    acknowledged, and the entries behind it are handled."""
    handled: list[bytes] = []
    hook_calls: Counter[str] = Counter()

    async def handler(s, entry_id, fields):
        if fields.get(b"kind") == b"poison":
            raise ValueError("cannot handle this")
        handled.append(fields[b"n"])

    async def hook(s, entry_id, fields, reason):
        hook_calls[entry_id] += 1
        msgspec.json.decode(fields[b"payload"])  # not JSON: DecodeError, as a real hook raises

    poison = await redis.xadd(
        stream, {"kind": "poison", "payload": b"\xff{not json", "traceparent": b"\xfe\xff"}
    )
    runner = GroupRunner(
        redis, "g", [stream], "c1", handler, RunnerConfig(max_deliveries=2, **FAST), hook
    )
    stop, task = await started(runner)
    await until(lambda: redis.xlen(dead_letter_stream(stream)), what="the dead letter")
    for n in range(3):
        await redis.xadd(stream, {"kind": "ok", "n": str(n)})
    await until(lambda: len(handled) == 3, what="the healthy entries")
    await until(
        lambda: redis.xpending(stream, "g"), what="pending info"
    )  # the group exists and answers
    assert (await redis.xpending(stream, "g"))["pending"] == 0
    await asyncio.sleep(0.5)  # more claim rounds: nothing may be dead-lettered twice
    await finish(stop, task)
    dlq = await redis.xrange(dead_letter_stream(stream))
    assert len(dlq) == 1
    assert dlq[0][1][b"dlq_entry_id"] == poison
    assert b"ValueError: cannot handle this" in dlq[0][1][b"dlq_reason"]
    assert hook_calls == {poison.decode(): 1}
    assert await redis.hget(DEAD_LETTERS_KEY, f"g|{stream}") == b"1"


async def test_a_retryable_failure_of_the_hook_keeps_the_entry_and_writes_one_dead_letter(
    redis, stream
) -> None:
    """PostgreSQL is down when the job should be failed: the entry stays pending and is dead-
    lettered once it can be, with one DLQ entry and one count however often it was tried."""
    hook_calls = 0

    async def handler(s, entry_id, fields):
        raise KeyError("shard")

    async def hook(s, entry_id, fields, reason):
        nonlocal hook_calls
        hook_calls += 1
        if hook_calls <= 2:
            raise ServiceUnavailable("postgresql is unavailable; retry shortly")

    await redis.xadd(stream, {"job_id": "j1"})
    runner = GroupRunner(
        redis, "g", [stream], "c1", handler, RunnerConfig(max_deliveries=1, **FAST), hook
    )
    stop, task = await started(runner)
    await until(lambda: hook_calls >= 3, what="the hook to succeed")
    await until(
        lambda: _pending(redis, stream), what="the ack"
    )  # pending drops to 0 once acknowledged
    await finish(stop, task)
    assert await redis.xlen(dead_letter_stream(stream)) == 1
    assert await redis.hget(DEAD_LETTERS_KEY, f"g|{stream}") == b"1"


async def _pending(redis, stream) -> bool:
    return (await redis.xpending(stream, "g"))["pending"] == 0


async def test_an_outage_longer_than_three_claim_periods_does_not_dead_letter(
    redis, stream, server_urls
) -> None:
    """The handler's unit of work cannot reach PostgreSQL for many claim periods; the entry is
    retried, not dead-lettered, and handled once PostgreSQL is back."""
    from bootstrap import create_engine
    from storage.unit_of_work import unit_of_work_factory

    down = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")  # nothing listens
    attempts, handled = 0, []
    outage_until = time.monotonic() + 1.5  # > 3 claim periods of 200 ms, > MAX_DELIVERIES tries

    async def handler(s, entry_id, fields):
        nonlocal attempts
        attempts += 1
        if time.monotonic() < outage_until:
            async with unit_of_work_factory(down)():
                pass  # never reached: connecting raises ServiceUnavailable
        handled.append(entry_id)

    dead: list[str] = []

    async def hook(s, entry_id, fields, reason):
        dead.append(reason)

    await redis.xadd(stream, {"job_id": "j1", "shard": "0"})
    runner = GroupRunner(
        redis, "g", [stream], "c1", handler, RunnerConfig(max_deliveries=3, **FAST), hook
    )
    stop, task = await started(runner)
    try:
        await until(lambda: handled, what="the entry to be handled after the outage")
    finally:
        await down.dispose()
    await finish(stop, task)
    assert attempts > 4  # it really was tried beyond MAX_DELIVERIES
    assert dead == []
    assert await redis.xlen(dead_letter_stream(stream)) == 0


async def test_entries_held_while_another_is_handled_are_not_stolen(redis, stream) -> None:
    """A worker holding several entries keeps them all; a second worker claims none of them, so
    no entry is handled twice and none is dead-lettered."""
    seen: Counter[str] = Counter()

    async def slow(s, entry_id, fields):
        seen[entry_id] += 1
        await asyncio.sleep(0.25)  # longer than claim_idle_ms / 3, four of them past it

    for n in range(5):
        await redis.xadd(stream, {"job_id": "j", "shard": str(n)})
    config = RunnerConfig(max_deliveries=2, count=10, **FAST)
    a = GroupRunner(redis, "g", [stream], "a", slow, config)
    await a.ensure_groups()
    stop_a, task_a = await started(a)
    await until(lambda: seen, what="worker a to start")
    b = GroupRunner(redis, "g", [stream], "b", slow, config)
    stop_b, task_b = await started(b)
    await until(lambda: sum(seen.values()) >= 5, what="all five entries")
    await until(lambda: _pending(redis, stream), what="every ack")
    await asyncio.sleep(0.5)
    await finish(stop_a, task_a)
    await finish(stop_b, task_b)
    assert set(seen.values()) == {1}, f"entries handled more than once: {seen}"
    assert await redis.xlen(dead_letter_stream(stream)) == 0


async def test_claiming_walks_the_pending_list_with_the_autoclaim_cursor(redis, stream) -> None:
    """Slow failing entries at the head of the pending list must not starve the ones behind."""
    healthy: list[str] = []

    async def handler(s, entry_id, fields):
        if fields[b"kind"] == b"bad":
            await asyncio.sleep(0.3)
            raise RuntimeError("bad entry")
        healthy.append(entry_id)

    for _ in range(10):
        await redis.xadd(stream, {"kind": "bad"})
    for _ in range(3):
        await redis.xadd(stream, {"kind": "good"})
    await redis.xgroup_create(stream, "g", id="0")
    # A consumer that died holding everything: only claiming can reach these entries.
    await redis.xreadgroup("g", "dead", {stream: ">"}, count=100)
    config = RunnerConfig(max_deliveries=1000, count=5, **FAST)
    runner = GroupRunner(redis, "g", [stream], "c1", handler, config)
    stop, task = await started(runner)
    await until(lambda: len(healthy) == 3, timeout=30, what="the healthy entries behind")
    await finish(stop, task)


async def test_an_outage_past_max_retryable_deliveries_is_dead_lettered(redis, stream) -> None:
    """The retryable budget is bounded too: an entry that only ever meets an unavailable
    service is dead-lettered once it is spent, saying so."""

    async def handler(s, entry_id, fields):
        raise ServiceUnavailable("postgresql is unavailable; retry shortly")

    await redis.xadd(stream, {"job_id": "j1"})
    config = RunnerConfig(max_deliveries=3, max_retryable_deliveries=4, **FAST)
    runner = GroupRunner(redis, "g", [stream], "c1", handler, config)
    stop, task = await started(runner)
    await until(lambda: redis.xlen(dead_letter_stream(stream)), what="the dead letter")
    await finish(stop, task)
    [(_, fields)] = await redis.xrange(dead_letter_stream(stream))
    reason = fields[b"dlq_reason"].decode()
    assert "postgresql is unavailable" in reason
    assert "5 more while a service was unavailable" in reason, reason
