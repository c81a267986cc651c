"""Retention of the ``processed`` table (the consumer groups' dedupe rows).

A row only matters while its event can be delivered again. Every event stream a group reads is
trimmed below what every group still needs (storage.streams.admin), so an event older than the
oldest entry of every such stream was acknowledged by every group and will not come back: its
rows can go. The floor is recorded first (checkpoint ``processed-retention``), and the relay
never republishes below it after Redis lost its data, so pruned events are never redelivered.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from events.streams import SHARDS_STREAM
from storage.errors import postgres_errors, redis_errors
from storage.projections import get_checkpoint, set_checkpoint
from storage.streams.admin import STREAMS

RETENTION_CHECKPOINT = "processed-retention"
EVENT_STREAMS = tuple(s for s in STREAMS if s != SHARDS_STREAM)  # entry ids are positions
_PRUNE = text(
    "DELETE FROM processed WHERE ctid IN (SELECT p.ctid FROM processed p "
    "JOIN event_log e ON e.event_id = p.event_id WHERE e.position < :floor LIMIT :batch)"
)


async def processed_floor(redis: aioredis.Redis, streams=EVENT_STREAMS) -> int | None:
    """The lowest position any event stream read by a group still holds; None: no such stream."""
    floor = None
    for stream in streams:
        try:
            if not await redis.xinfo_groups(stream):
                continue  # read by no group (fan-out): no processed rows depend on it
        except ResponseError:  # no such stream
            continue
        first = await redis.xrange(stream, count=1)
        if first:  # an empty stream (Redis lost it?) must not raise the floor
            position = int(first[0][0].split(b"-")[0])
            floor = position if floor is None else min(floor, position)
    return floor


async def prune_processed(
    engine: AsyncEngine, redis: aioredis.Redis, streams=EVENT_STREAMS, batch: int = 10_000
) -> int:
    """Delete processed rows of events below the floor, in batches; returns rows deleted."""
    async with redis_errors():
        floor = await processed_floor(redis, streams)
    if floor is None:
        return 0
    deleted = 0
    async with postgres_errors():
        async with engine.begin() as conn:
            recorded = await get_checkpoint(conn, RETENTION_CHECKPOINT)
            if floor > recorded:  # recorded first: the relay then never republishes below it
                await set_checkpoint(conn, RETENTION_CHECKPOINT, floor)
        while True:
            async with engine.begin() as conn:
                result = await conn.execute(_PRUNE, {"floor": max(floor, recorded), "batch": batch})
            deleted += result.rowcount
            if result.rowcount < batch:
                return deleted


async def retention_floor(conn) -> int:
    """The position below which the relay must not republish (0: nothing was pruned)."""
    return await get_checkpoint(conn, RETENTION_CHECKPOINT)
