"""Stream upkeep and statistics: trimming that never drops unprocessed entries, lag and DLQ sizes."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from events.dead_letters import DLQ_EVENTS
from events.streams import (
    DEAD_LETTERS_KEY,
    EVAL_STREAM,
    GATES_STREAM,
    JOBS_STREAM,
    REGISTRY_STREAM,
    SHARDS_STREAM,
    dead_letter_stream,
)
from storage.streams import refusals

# dlq.events: operators' DeadLetterRetried / DeadLetterDropped, read by every group.
STREAMS = (REGISTRY_STREAM, JOBS_STREAM, EVAL_STREAM, GATES_STREAM, SHARDS_STREAM, DLQ_EVENTS)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def _groups(redis: aioredis.Redis, stream: str) -> list[dict]:
    try:
        return await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return []


async def safe_trim_floor(redis: aioredis.Redis, stream: str) -> str | None:
    """The oldest entry id any group still needs (pending or not yet delivered); None: no groups."""
    groups = await _groups(redis, stream)
    if not groups:
        return None
    floor: tuple[int, int] | None = None
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        needed = g["last-delivered-id"]
        needed = needed.decode() if isinstance(needed, bytes) else needed
        if g.get("pending"):
            summary = await redis.xpending(stream, name)
            low = summary.get("min")
            if low:
                needed = low.decode() if isinstance(low, bytes) else low
        candidate = _id_tuple(needed)
        floor = candidate if floor is None or candidate < floor else floor
    return f"{floor[0]}-{floor[1]}" if floor else None


async def trim_stream(redis: aioredis.Redis, stream: str, maxlen: int) -> tuple[int, str | None]:
    """Trim below what every group still needs (cap by length without groups).

    Returns the entries removed and the floor used (None when capped by length).
    """
    floor = await safe_trim_floor(redis, stream)
    await redis.xtrim(dead_letter_stream(stream), maxlen=maxlen, approximate=True)
    if floor is not None:
        return await redis.xtrim(stream, minid=floor, approximate=False), floor
    return await redis.xtrim(stream, maxlen=maxlen, approximate=True), None


async def trim_streams(redis: aioredis.Redis, maxlen: int) -> dict[str, int]:
    """Trim every platform stream; returns entries removed per stream."""
    return {stream: (await trim_stream(redis, stream, maxlen))[0] for stream in STREAMS}


async def stream_stats(redis: aioredis.Redis) -> dict[str, list[tuple[float, dict[str, str]]]]:
    """Gauge samples: consumer lag, pending and dead-lettered entries per group, queue depth."""
    lag, pending, dlq, depth = [], [], [], []
    dead = await redis.hgetall(DEAD_LETTERS_KEY)  # "<group>|<stream>" -> count (consumers/runner)
    for stream in STREAMS:
        for g in await _groups(redis, stream):
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            labels = {"group": name, "stream": stream}
            group_lag = g.get("lag")
            if group_lag is None:  # Redis < 7 reports no lag
                group_lag = 0
            lag.append((float(group_lag), labels))
            pending.append((float(g.get("pending", 0)), labels))
            dlq.append((float(dead.get(f"{name}|{stream}".encode(), 0)), labels))
            if stream == SHARDS_STREAM:
                depth.append((float(group_lag) + float(g.get("pending", 0)), {"stream": stream}))
    return {
        "consumer_lag": lag,
        "consumer_pending": pending,
        "dead_letter_count": dlq,
        "queue_depth": depth or [(0.0, {"stream": SHARDS_STREAM})],
        "relay_stream_refused": await refusals.gauge_samples(redis),
    }


GAUGES = {
    "consumer_lag": "Entries not yet delivered to a consumer group",
    "consumer_pending": "Entries delivered but not acknowledged, per group",
    "dead_letter_count": "Entries a consumer group moved to the stream's dead-letter stream",
    "queue_depth": "Shard work messages waiting or in progress",
    "relay_stream_refused": "Log rows a stream refused to the relay, by stream and state "
    "(blocked: an entry beyond the log's head; conflict: another entry at the row's id)",
}


HEARTBEAT_PREFIX = "platform:workers:"


async def heartbeat(redis: aioredis.Redis, consumer: str, ttl_s: int = 15) -> None:
    """Announce a live worker for ``ttl_s`` seconds."""
    await redis.set(HEARTBEAT_PREFIX + consumer, "alive", ex=ttl_s)


async def retire(redis: aioredis.Redis, consumer: str) -> None:
    """Remove a stopping worker's heartbeat."""
    await redis.delete(HEARTBEAT_PREFIX + consumer)


async def live_workers(redis: aioredis.Redis) -> int:
    """How many workers announced themselves recently."""
    return len([k async for k in redis.scan_iter(match=HEARTBEAT_PREFIX + "*")])
