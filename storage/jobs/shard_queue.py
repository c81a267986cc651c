"""Work messages for the batch-inference group on the ``jobs.shards`` Redis stream."""

from __future__ import annotations

import redis.asyncio as aioredis
from opentelemetry.propagate import inject

from events.streams import SHARDS_STREAM
from storage.errors import on_redis


class RedisShardQueue:
    """Implements domain.ports.ShardQueue."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    @on_redis
    async def dispatch(self, job_id: str, shards: list[int], correlation_id: str) -> None:
        """XADD one entry per shard, in one round trip."""
        trace: dict[str, str] = {}
        inject(trace)  # the planning span's W3C context, so each shard's span joins the trace
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            pipe.xadd(
                SHARDS_STREAM,
                {
                    "job_id": job_id,
                    "shard": str(shard),
                    "correlation_id": correlation_id,
                    **trace,
                },
            )
        await pipe.execute()
