"""The relay when Redis loses entries: a relay that dies right after noticing the loss, and a
partial loss (a stream restored to an older state while the relay's marker survived)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from events.streams import REGISTRY_STREAM
from storage import event_store
from storage.streams.relay import MARKER_KEY, Relay
from tests.integration.registry_support import register_versions

pytestmark = pytest.mark.anyio


async def _registered(p, model_name: str, state_dict_file, versions=("v1", "v2", "v3")) -> list:
    """Register versions and publish; the log positions of the model's events."""
    await register_versions(p, model_name, state_dict_file, versions)
    await p.ops.publish_pending()
    async with p.engine.connect() as conn:
        return [r.position for r in await event_store.load_stream(conn, f"model-{model_name}")]


async def _ids(redis: aioredis.Redis, positions: list[int]) -> list[int]:
    """Which of these positions the registry stream holds."""
    found = []
    for position in positions:
        if await redis.xrange(REGISTRY_STREAM, f"{position}-0", f"{position}-0"):
            found.append(position)
    return found


async def test_a_relay_that_dies_right_after_noticing_the_loss_still_republishes(
    platform, model_name, state_dict_file, server_urls
) -> None:
    p = platform
    positions = await _registered(p, model_name, state_dict_file)
    assert await _ids(p.redis, positions) == positions
    await p.redis.delete(REGISTRY_STREAM, MARKER_KEY)  # Redis lost its data
    dying = aioredis.Redis.from_url(server_urls["redis_url"])

    real = dying.pipeline

    def pipeline(*args, **kwargs):
        """A pipeline that dies when it would publish: after the loss was noticed."""
        pipe = real(*args, **kwargs)
        execute = pipe.execute

        async def dies(*a, **k):
            if any(args[0] == "XADD" for args, _ in pipe.command_stack):
                raise RedisConnectionError("the relay's host went away")
            return await execute(*a, **k)

        pipe.execute = dies
        return pipe

    dying.pipeline = pipeline  # type: ignore[method-assign]
    try:
        with pytest.raises(RedisConnectionError):
            await Relay(p.engine, dying).publish_once()
    finally:
        await dying.aclose()
    await Relay(p.engine, p.redis).publish_once()  # the next leader
    assert await _ids(p.redis, positions) == positions


async def test_a_stream_restored_to_an_older_state_is_republished(
    platform, model_name, state_dict_file
) -> None:
    """The marker survived, but the registry stream lost its newest entries."""
    p = platform
    positions = await _registered(p, model_name, state_dict_file)
    kept = [
        (entry_id, fields)
        for entry_id, fields in await p.redis.xrange(REGISTRY_STREAM)
        if int(entry_id.split(b"-")[0]) < positions[-2]
    ]
    await p.redis.delete(REGISTRY_STREAM)
    for entry_id, fields in kept:  # as an older snapshot would have it
        await p.redis.xadd(REGISTRY_STREAM, fields, id=entry_id)
    assert await _ids(p.redis, positions) == positions[:-2]
    assert await p.redis.exists(MARKER_KEY)
    await Relay(p.engine, p.redis).publish_once()
    assert await _ids(p.redis, positions) == positions
