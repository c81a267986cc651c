"""The runner's delivery accounting in Redis: a group's tuning, the per-entry bookkeeping hashes
(last error, retryable failures, dead letter written), and the one step that acknowledges an
entry and forgets its bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import ServiceUnavailable

Fields = dict[bytes, bytes]
ERRORS_KEY = "platform:consumer-errors"  # "<group>|<stream>|<id>" -> the last error
RETRIES_KEY = "platform:consumer-retries"  # "<group>|<stream>|<id>" -> retryable failures
INDEX_KEY = "platform:dead-letter-index"  # "<group>|<stream>|<id>" -> its dead letter's id
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# Failures of a backing service, not of the entry: retried, never counted as poison.
RETRYABLE = (ServiceUnavailable, RedisConnectionError, RedisTimeoutError, ConnectionError)


@dataclass
class RunnerConfig:
    """Tuning of one group's runner."""

    count: int = 10
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_every_s: float = 1.0
    max_deliveries: int = 3
    max_retryable_deliveries: int = 200
    dlq_maxlen: int = 10_000


def entry_key(group: str, stream: str, entry_id: str) -> str:
    """The field naming one entry of one group in the runner's bookkeeping hashes."""
    return f"{group}|{stream}|{entry_id}"


async def acknowledge(redis: aioredis.Redis, group: str, stream: str, entry_id: str) -> None:
    """XACK the entry and forget its bookkeeping, in one transaction."""
    key = entry_key(group, stream, entry_id)
    pipe = redis.pipeline(transaction=True)
    pipe.xack(stream, group, entry_id)
    pipe.hdel(ERRORS_KEY, key)
    pipe.hdel(RETRIES_KEY, key)
    pipe.hdel(INDEX_KEY, key)
    await pipe.execute()


async def record_failure(
    redis: aioredis.Redis, group: str, stream: str, entry_id: str, reason: str, retryable: bool
) -> None:
    """Keep the entry's last error; count a retryable failure apart from the entry's own."""
    key = entry_key(group, stream, entry_id)
    pipe = redis.pipeline(transaction=False)
    pipe.hset(ERRORS_KEY, key, reason)
    if retryable:
        pipe.hincrby(RETRIES_KEY, key, 1)
    await pipe.execute()


async def failures(
    redis: aioredis.Redis, group: str, stream: str, entry_id: str
) -> tuple[int, int, int]:
    """(deliveries, retryable failures, deliveries that failed because of the entry itself)."""
    info = await redis.xpending_range(stream, group, entry_id, entry_id, 1)
    deliveries = info[0]["times_delivered"] if info else 1
    retries = int(await redis.hget(RETRIES_KEY, entry_key(group, stream, entry_id)) or 0)
    return deliveries, retries, deliveries - retries
