"""The registration lock on PostgreSQL: turns per process and a lock per version, each waited
for at most REGISTRATION_WAIT_S, then ServiceUnavailable (503 with Retry-After)."""

from __future__ import annotations

import asyncio

import pytest

from domain.errors import ServiceUnavailable
from storage.registry.repository import PostgresRegistrationLock

pytestmark = pytest.mark.anyio


async def test_a_turn_not_had_in_time_is_service_unavailable(platform) -> None:
    lock = PostgresRegistrationLock(platform.engine, concurrency=1, wait_s=0.3)
    async with lock("m", "v1"):
        with pytest.raises(ServiceUnavailable, match="too many registrations"):
            async with lock("m", "v2"):
                pass
    async with lock("m", "v2"):  # the turn is free again
        pass


async def test_the_same_version_waits_for_its_lock_then_gives_up(platform) -> None:
    lock = PostgresRegistrationLock(platform.engine, concurrency=4, wait_s=0.3)
    other = PostgresRegistrationLock(platform.engine, concurrency=4, wait_s=5)
    async with lock("m", "same"):
        with pytest.raises(ServiceUnavailable, match="lock wait timed out"):
            async with lock("m", "same"):
                pass
    order: list[str] = []

    async def holder() -> None:
        async with lock("m", "same"):
            await asyncio.sleep(0.2)
            order.append("holder done")

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.05)
    async with other("m", "same"):  # waits on the lock while the holder has it, then has it
        order.append("other")
    await task
    assert order == ["holder done", "other"]
