"""The shared rate limiter on a real Redis: one bucket for every process, and the per-process
buckets while Redis is away."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

import bootstrap
from domain.keys.buckets import TokenBuckets
from storage.keys.limiter import RedisRateLimiter, quick_redis

pytestmark = pytest.mark.anyio


async def test_limiters_on_one_redis_share_each_callers_bucket(server_urls) -> None:
    shared = bootstrap.create_redis(server_urls["redis_url"])
    clients = [quick_redis(shared, 0.5) for _ in range(3)]
    try:
        # Three API processes, each with its own client, limiter and fallback.
        limiters = [RedisRateLimiter(c, 0.01, 5, TokenBuckets(0.01, 5)) for c in clients]
        caller = f"key-{uuid.uuid4().hex}"
        waits = [await limiters[i % 3].take(caller) for i in range(9)]
        assert waits[:5] == [0.0] * 5 and all(w > 1 for w in waits[5:])  # 5 in all, not 15
        assert await limiters[0].take(f"other-{caller}") == 0.0  # each caller its own bucket
        # Other limits (a process started with other settings) use buckets of their own.
        other = RedisRateLimiter(clients[0], 0.02, 5, TokenBuckets(0.02, 5))
        assert await other.take(caller) == 0.0
        assert await RedisRateLimiter(clients[0], 0, 5, TokenBuckets(0, 5)).take(caller) == 0.0
    finally:
        for c in clients:
            await c.aclose()
        await shared.aclose()


async def test_while_redis_is_away_each_process_limits_on_its_own() -> None:
    away = aioredis.Redis.from_url("redis://127.0.0.1:9")  # discard: nothing answers there
    client = quick_redis(away, 0.2)
    try:
        limiter = RedisRateLimiter(client, 0.01, 2, TokenBuckets(0.01, 2), retry_s=60)
        with capture_logs() as logs:
            waits = [await limiter.take("k") for _ in range(4)]
        assert waits[:2] == [0.0, 0.0] and all(w > 1 for w in waits[2:])  # still limited
        assert [e["event"] for e in logs] == ["rate_limit_local"]  # said once, not per request
    finally:
        await client.aclose()
        await away.aclose()
