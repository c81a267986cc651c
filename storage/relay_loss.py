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


async def loss(redis: aioredis.Redis, tails: dict[str, int]) -> tuple[bool, int | None]:
    """(whether the marker is there, the position to republish after or None), one round trip."""
    streams = sorted(tails)
    pipe = redis.pipeline(transaction=False)
    pipe.exists(MARKER_KEY)
    for stream in streams:
        pipe.xrevrange(stream, count=1)
    marker, *lasts = await pipe.execute()
    if not marker:
        return False, 0
    behind = []
    for stream, last in zip(streams, lasts, strict=True):
        have = int(last[0][0].split(b"-")[0]) if last else 0
        if have < tails[stream]:
            behind.append(have)
    return True, min(behind) if behind else None
