"""The relay publishes an append as soon as it commits, not at its next timed pass."""

from __future__ import annotations

import asyncio
import time

import pytest

from storage.streams.relay import Relay
from tests.conftest import isolated
from tests.integration.audit.support import register

pytestmark = pytest.mark.anyio
RELAY_REDIS_DB = 13


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        await asyncio.sleep(0.01)


async def test_an_append_is_published_at_once_though_the_interval_is_a_minute(
    test_settings,
) -> None:
    import bootstrap

    async with isolated(test_settings, RELAY_REDIS_DB, "relay") as settings:
        p = await bootstrap.build_platform(settings, run_migrations=False)
        stop = asyncio.Event()
        relay = Relay(p.engine, p.redis, interval=60)
        task = asyncio.create_task(relay.run(stop))
        try:
            await _until(lambda: _leading(relay), 10, "the relay did not lead")
            for n in range(3):  # each append wakes it again: none waits for the minute
                await register(p, "notified", f"v{n}", n)
                await _until(
                    lambda n=n: _published(p, n + 1), 5, f"append {n + 1} was not published"
                )
        finally:
            stop.set()
            await task
            await p.aclose()


async def _leading(relay: Relay) -> bool:
    return relay._tails is not None  # set by the leader's first pass, after it listens


async def _published(p, count: int) -> bool:
    return await p.redis.xlen("registry.events") >= count
