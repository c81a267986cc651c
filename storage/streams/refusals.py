"""Why Redis refused the relay's ``XADD <position>-0``, and each stream's state, logged once.

A refused id is harmless when the entry is already there with the log's hash (a republish
after a rewind) or lies below the stream's first entry (trimmed after delivery): the row is
published. Anything else is a finding: another entry holds the id (``conflict``), or the
stream's last id is above the position although the entry is absent (``blocked``: an entry
was added beyond the log, even if deleted since; every later publish is refused until
`just relay --rebuild STREAM`). States live in one Redis hash, so every process's
``relay_stream_refused`` gauge and `just audit` show them, and each change is logged once.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
import structlog

from events.codec import event_types
from events.streams import area_stream

log = structlog.get_logger("relay")

STATES_KEY = "platform:relay:streams"  # stream -> JSON {state, position, refused, last_id}
PUBLISHED, CONFLICT, BLOCKED = "published", "conflict", "blocked"
PROBLEMS = (CONFLICT, BLOCKED)


def _position(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


async def classify(redis: aioredis.Redis, refused: list[tuple[str, Any]], head: int) -> list[str]:
    """PUBLISHED, CONFLICT or BLOCKED for each refused (stream, row), in two round trips."""
    pipe = redis.pipeline(transaction=False)
    for stream, row in refused:
        pipe.xrange(stream, f"{row.position}-0", f"{row.position}-0")
    streams = sorted({stream for stream, _ in refused})
    for stream in streams:
        pipe.xrange(stream, "-", "+", count=1)
    replies = await pipe.execute()
    found, firsts = (
        replies[: len(refused)],
        dict(zip(streams, replies[len(refused) :], strict=True)),
    )
    out = []
    for (stream, row), entry in zip(refused, found, strict=True):
        if entry:
            fields = entry[0][1]
            mine = fields.get(b"hash") == bytes(row.hash).hex().encode() or (
                b"hash" not in fields and fields.get(b"event_id") == str(row.event_id).encode()
            )  # entries published before the hash field existed
            out.append(PUBLISHED if mine else CONFLICT)
            continue
        first = firsts[stream]
        trimmed = bool(first) and row.position < _position(first[0][0]) <= head
        out.append(PUBLISHED if trimmed else BLOCKED)
    return out


async def load(redis: aioredis.Redis) -> dict[str, dict]:
    """Every stream's recorded problem (absent: the stream takes its entries)."""
    raw = await redis.hgetall(STATES_KEY)
    return {k.decode(): json.loads(v) for k, v in raw.items()}


async def record(
    redis: aioredis.Redis,
    states: dict[str, dict],
    problems: dict[str, tuple[str, int, int]],
    recovered: set[str],
) -> None:
    """Note this batch's problems (stream -> state, first position, refused rows) and the
    streams that took entries again; log each change of state once."""
    for stream, (state, position, count) in problems.items():
        before = states.get(stream)
        if before is not None and before["state"] == state:
            before["refused"] += count
        else:
            last_id = (await redis.xinfo_stream(stream)).get("last-generated-id", b"")
            last = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
            before = {"state": state, "position": position, "refused": count, "last_id": last}
            _log_change(stream, before)
        states[stream] = before
        await redis.hset(STATES_KEY, stream, json.dumps(before))
    for stream in recovered & set(states):
        log.info("relay_stream_recovered", stream=stream, was=states.pop(stream)["state"])
        await redis.hdel(STATES_KEY, stream)


def _log_change(stream: str, state: dict) -> None:
    if state["state"] == BLOCKED:
        log.error(
            "relay_stream_blocked",
            stream=stream,
            position=state["position"],
            last_id=state["last_id"],
            hint=f"{stream}'s last id {state['last_id']} is above the log: an entry was added "
            "beyond the log's head, so Redis refuses every later entry; rows are skipped until "
            f"`just relay --rebuild {stream}` recreates the stream from the log",
        )
    else:
        log.error(
            "relay_stream_conflict",
            stream=stream,
            position=state["position"],
            hint=f"{stream} holds an entry {state['position']}-0 whose hash is not the log's: "
            f"see `just audit`; `just relay --rebuild {stream}` recreates the stream from the log",
        )


def summary(states: dict[str, dict]) -> str:
    """One line for `just audit`: each stream's recorded problem."""
    if not states:
        return "every stream takes its entries"
    return "; ".join(
        f"{s} {v['state']} since position {v['position']} ({v['refused']} rows refused)"
        for s, v in sorted(states.items())
    )


async def gauge_samples(redis: aioredis.Redis) -> list[tuple[float, dict[str, str]]]:
    """``relay_stream_refused``: rows refused per event stream and state (0 while all is well)."""
    states = await load(redis)
    streams = sorted({area_stream(t.area) for t in event_types().values()} | set(states))
    return [
        (
            float(states[s]["refused"]) if states.get(s, {}).get("state") == k else 0.0,
            {"stream": s, "state": k},
        )
        for s in streams
        for k in PROBLEMS
    ]
