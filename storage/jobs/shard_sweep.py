"""The shard stream's backlog, read for the sweeper that re-plans shards Redis lost."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from events.streams import SHARDS_STREAM
from storage.errors import on_redis
from storage.streams.admin import safe_trim_floor

SWEEP_LOCK = "platform:shard-sweeper"


def _id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class RedisShardBacklog:
    """Implements domain.dead_letters.ports.ShardBacklog over ``jobs.shards``."""

    def __init__(self, redis: aioredis.Redis, batch: int = 10_000) -> None:
        self.redis = redis
        self.batch = batch

    @on_redis
    async def outstanding(self) -> set[tuple[str, int]]:
        """(job, shard) of every entry some group has not acknowledged (all, with no group)."""
        try:
            groups = await self.redis.xinfo_groups(SHARDS_STREAM)
        except ResponseError:  # no stream: nothing is outstanding
            return set()
        pending: set[tuple[int, int]] = set()
        delivered: list[tuple[int, int]] = []
        for g in groups:
            delivered.append(_id(g["last-delivered-id"]))
            if g.get("pending"):
                rows = await self.redis.xpending_range(
                    SHARDS_STREAM, g["name"], "-", "+", int(g["pending"])
                )
                pending.update(_id(r["message_id"]) for r in rows)
        start = (await safe_trim_floor(self.redis, SHARDS_STREAM)) or "-"
        found: set[tuple[str, int]] = set()
        while True:
            rows = await self.redis.xrange(SHARDS_STREAM, start, "+", count=self.batch)
            for entry_id, fields in rows:
                key = _id(entry_id)
                waiting = not delivered or any(key > d for d in delivered)
                shard = fields.get(b"shard", b"")
                if (waiting or key in pending) and b"job_id" in fields and shard.isdigit():
                    found.add((fields[b"job_id"].decode(errors="replace"), int(shard)))
            if len(rows) < self.batch:
                return found
            ms, seq = _id(rows[-1][0])
            start = f"{ms}-{seq + 1}"

    @on_redis
    async def lead(self, holder: str, seconds: float) -> bool:
        """Whether this process sweeps now: one sweeper per period across the workers."""
        return bool(await self.redis.set(SWEEP_LOCK, holder, nx=True, px=int(seconds * 1000)))
