"""`just relay --rebuild STREAM`: recreate an event stream from the log, its groups kept.

The repair of a stream that refuses the relay's entries (an entry was added beyond the log's
head: Redis refuses every id at or below the stream's last id, even once that entry is gone).
The new stream is built under a scratch key and renamed over the old one in one step, with
each consumer group at its position: the last entry it was delivered, never past the last
genuine entry of the old stream nor past an entry still pending (consumers deduplicate by
event id, so a redelivery is harmless; a skipped entry would not be). Only the leading relay
rebuilds, between two passes, so nothing is published to the stream meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import ServiceUnavailable
from events.codec import event_types
from events.streams import area_stream
from storage.projections import get_checkpoint
from storage.streams.entries import entry_fields
from storage.streams.refusals import STATES_KEY
from storage.tables import event_log

RELAY_CHECKPOINT = "relay"  # storage.streams.relay's checkpoint (it imports this module)
REQUESTS_KEY = "platform:relay:rebuild"  # stream -> request id, for the leading relay
RESULT_PREFIX = "platform:relay:rebuilt:"  # + request id -> the result as JSON
SCAN = 200  # entries of the old stream read back at a time, looking for its last genuine one


def _pos(entry_id: bytes | str) -> tuple[int, int]:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


async def _groups(redis: aioredis.Redis, stream: str) -> list[dict]:
    try:
        return await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return []


def _types(stream: str) -> list[str]:
    return sorted(n for n, t in event_types().items() if area_stream(t.area) == stream)


async def _hashes(conn: AsyncConnection, positions: list[int]) -> dict[int, str]:
    rows = await conn.execute(
        select(event_log.c.position, event_log.c.hash).where(event_log.c.position.in_(positions))
    )
    return {p: bytes(h).hex() for p, h in rows}


async def last_genuine(conn: AsyncConnection, redis: aioredis.Redis, stream: str, upto: int) -> int:
    """The highest position whose entry the stream holds as the relay wrote it (0: none)."""
    top = f"{upto}-0"
    while True:
        entries = await redis.xrevrange(stream, top, "-", count=SCAN)
        if not entries:
            return 0
        candidates = {_pos(i)[0]: f for i, f in entries if _pos(i)[1] == 0}
        hashes = await _hashes(conn, list(candidates))
        for position in sorted(candidates, reverse=True):
            if candidates[position].get(b"hash", b"").decode() == hashes.get(position):
                return position
        ms, seq = _pos(entries[-1][0])
        if (ms, seq) == (0, 0):
            return 0
        top = f"({ms}-{seq}"  # exclusive: the next page starts below the last one read


async def _rows(conn: AsyncConnection, stream: str, floor: int, upto: int) -> AsyncIterator:
    after = floor - 1
    while True:
        rows = list(
            await conn.execute(
                select(event_log)
                .where(
                    event_log.c.event_type.in_(_types(stream)),
                    event_log.c.position > after,
                    event_log.c.position <= upto,
                )
                .order_by(event_log.c.position)
                .limit(1000)
            )
        )
        if not rows:
            return
        yield rows
        after = rows[-1].position


async def rebuild_stream(
    conn: AsyncConnection, redis: aioredis.Redis, stream: str, upto: int
) -> dict[str, Any]:
    """Recreate ``stream`` from the log's rows up to ``upto`` (the relay's checkpoint)."""
    genuine = await last_genuine(conn, redis, stream, upto)
    starts: dict[str, int] = {}
    for g in await _groups(redis, stream):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        start = min(_pos(g["last-delivered-id"])[0], genuine, upto)
        if g.get("pending"):
            low = (await redis.xpending(stream, name)).get("min")
            if low:
                start = min(start, _pos(low)[0] - 1)
        starts[name] = max(start, 0)
    first = await redis.xrange(stream, "-", "+", count=1)
    floor = min([genuine + 1, *(s + 1 for s in starts.values())])
    if first and _pos(first[0][0])[0] <= upto:
        floor = min(floor, _pos(first[0][0])[0])
    scratch = f"{stream}:rebuild"
    await redis.delete(scratch)
    entries = 0
    async for rows in _rows(conn, stream, max(floor, 1), upto):
        pipe = redis.pipeline(transaction=False)
        for row in rows:
            pipe.xadd(scratch, entry_fields(row._mapping), id=f"{row.position}-0")
        await pipe.execute()
        entries += len(rows)
    await conn.commit()
    for name, start in starts.items():
        await redis.xgroup_create(scratch, name, id=f"{start}-0", mkstream=True)
    if entries or starts:
        await redis.rename(scratch, stream)  # one step: readers never see a half-built stream
    else:
        await redis.delete(stream)
    await redis.hdel(STATES_KEY, stream)
    return {
        "stream": stream,
        "entries": entries,
        "from_position": max(floor, 1),
        "to_position": upto,
        "groups": starts,
    }


async def serve_requests(conn: AsyncConnection, redis: aioredis.Redis) -> list[str]:
    """Rebuild every stream a `just relay --rebuild` asked for; returns the streams rebuilt."""
    requests = await redis.hgetall(REQUESTS_KEY)
    if not requests:
        return []
    upto = await get_checkpoint(conn, RELAY_CHECKPOINT)
    done = []
    for raw_stream, request_id in requests.items():
        stream = raw_stream.decode()
        result = await rebuild_stream(conn, redis, stream, upto)
        await redis.set(RESULT_PREFIX + request_id.decode(), json.dumps(result), ex=600)
        await redis.hdel(REQUESTS_KEY, stream)
        done.append(stream)
    return done


async def ask_the_leader(redis: aioredis.Redis, stream: str, wait_s: float) -> dict[str, Any]:
    """Ask the leading relay (another process) to rebuild ``stream`` and wait for its answer."""
    request_id = uuid.uuid4().hex
    await redis.hset(REQUESTS_KEY, stream, request_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline:
        raw = await redis.get(RESULT_PREFIX + request_id)
        if raw is not None:
            return json.loads(raw)
        await asyncio.sleep(0.2)
    raise ServiceUnavailable(
        f"the leading relay (an API or worker process) did not rebuild {stream} within "
        f"{wait_s:.0f} s; the request stays queued for it ({REQUESTS_KEY})"
    )
