"""Whether Redis lost relayed entries: all of them (the relay's marker is gone) or some (a
stream ends before the last position the relay published to it: a restored snapshot, a
deleted stream). The relay then republishes from the earliest loss; Redis refuses the
entries it still has, since each id is ``<position>-0``.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from events.codec import area_of
from events.streams import area_stream
from storage.streams.retention import retention_floor

MARKER_KEY = "platform:relay:marker"


async def published_tails(conn: AsyncConnection, checkpoint: int) -> dict[str, int]:
    """For each stream, the last position at or below ``checkpoint`` that belongs on it."""
    rows = await conn.execute(
        text(
            "SELECT event_type, max(position) FROM event_log WHERE position <= :c "
            "GROUP BY event_type"
        ),
        {"c": checkpoint},
    )
    tails: dict[str, int] = {}
    for type_name, position in rows:
        try:
            stream = area_stream(area_of(type_name))
        except ValueError:  # a type this code does not know: the relay cannot publish it either
            continue
        tails[stream] = max(tails.get(stream, 0), int(position))
    return tails


async def loss(redis: aioredis.Redis, tails: dict[str, int]) -> tuple[bool, dict[str, int]]:
    """Whether the marker is there, and each stream that ends before its tail with the
    position it ends at (0: empty); one round trip."""
    streams = sorted(tails)
    pipe = redis.pipeline(transaction=False)
    pipe.exists(MARKER_KEY)
    for stream in streams:
        pipe.xrevrange(stream, count=1)
    marker, *lasts = await pipe.execute()
    behind = {}
    for stream, last in zip(streams, lasts, strict=True):
        have = int(last[0][0].split(b"-")[0]) if last and marker else 0
        if have < tails[stream]:
            behind[stream] = have
    return bool(marker), behind


async def rewind_point(
    conn: AsyncConnection, tails: dict[str, int], behind: dict[str, int]
) -> int | None:
    """Where to republish after a loss: its earliest position, never below the retention floor
    (those events' dedupe rows are pruned, so they must not be delivered again). A stream that
    lost only such events cannot be restored and is no longer checked."""
    if not behind:
        return None
    floor = await retention_floor(conn)
    for stream in [s for s in behind if tails[s] < floor]:
        del tails[stream], behind[stream]
    return max(min(behind.values()), floor - 1, 0) if behind else None
