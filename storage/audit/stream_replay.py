"""`just replay --source stream`: the trail read from Redis Streams, each entry checked against the log."""

from __future__ import annotations

import heapq
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.audit.reports import TrailEntry, TrailFilter, trail_entry
from events.base import EventMetadata, RecordedEvent
from events.codec import decode_event
from storage.audit.reader import COLUMNS, driver
from storage.audit.replay import JobModels
from storage.audit.streams import event_streams
from storage.streams.relay import LATER_FIELDS, entry_fields


async def _entries(
    redis: aioredis.Redis, stream: str, after: int, batch: int
) -> AsyncIterator[tuple[int, str, dict[str, bytes]]]:
    """(position, stream, fields) of a stream's entries after a position."""
    start = f"{after}-1" if after else "-"
    while True:
        rows = await redis.xrange(stream, start, "+", count=batch)
        for entry_id, fields in rows:
            ms, _, seq = entry_id.decode().partition("-")
            yield int(ms), stream, {k.decode(): v for k, v in fields.items()}
        if len(rows) < batch:
            return
        start = f"{ms}-{int(seq) + 1}"


async def _merged(
    redis: aioredis.Redis, after: int, batch: int
) -> AsyncIterator[tuple[int, str, dict[str, bytes]]]:
    """Every area stream's entries, merged in position order."""
    its = [_entries(redis, s, after, batch) for s in event_streams()]
    heap: list[tuple[int, int, str, dict[str, bytes]]] = []
    for i, it in enumerate(its):
        first = await anext(it, None)
        if first is not None:
            heapq.heappush(heap, (first[0], i, first[1], first[2]))
    while heap:
        position, i, stream, fields = heapq.heappop(heap)
        yield position, stream, fields
        nxt = await anext(its[i], None)
        if nxt is not None:
            heapq.heappush(heap, (nxt[0], i, nxt[1], nxt[2]))


def _recorded(position: int, fields: dict[str, bytes]) -> RecordedEvent:
    """Decode an entry as the consumers see it."""
    text = {k: v.decode() for k, v in fields.items() if k != "payload"}
    causation = text.get("causation_id") or None
    return RecordedEvent(
        position=position,
        stream_id=text["stream_id"],
        stream_version=int(text["stream_version"]),
        event_id=uuid.UUID(text["event_id"]),
        recorded_at=datetime.fromisoformat(text["recorded_at"]),
        metadata=EventMetadata(
            actor=text["actor"],
            correlation_id=uuid.UUID(text["correlation_id"]),
            causation_id=uuid.UUID(causation) if causation else None,
            trace_context=text.get("trace_context") or None,
        ),
        event=decode_event(text["type"], fields["payload"], int(text["schema_version"])),
    )


def _difference(fields: dict[str, bytes], row: Any | None) -> str | None:
    """How an entry differs from its log row, or None."""
    if row is None:
        return "the log has no event at this position"
    want = entry_fields(row)
    bad = [
        name
        for name, value in want.items()
        if not (name in LATER_FIELDS and name not in fields)
        and fields.get(name) != (value if isinstance(value, bytes) else value.encode())
    ]
    bad += [f"extra field {k}" for k in sorted(set(fields) - set(want))]
    return "differs from the log in " + ", ".join(bad) if bad else None


async def stream_trail(
    engine: AsyncEngine, redis: aioredis.Redis, f: TrailFilter, *, batch: int = 2000
) -> AsyncIterator[tuple[TrailEntry | None, str | None, int]]:
    """(entry, problem, position) per stream entry matching ``f``; problem None when it agrees."""
    f.check()
    jobs = JobModels()
    async with engine.connect() as conn:
        pg = await driver(conn)
        pending: list[tuple[int, str, dict[str, bytes]]] = []

        async def flush() -> AsyncIterator[tuple[TrailEntry | None, str | None, int]]:
            positions = [p for p, _, _ in pending]
            rows = await pg.fetch(
                f"SELECT {COLUMNS} FROM event_log WHERE position = ANY($1::bigint[])",  # noqa: S608
                positions,
            )
            by_position = {r["position"]: r for r in rows}
            for position, stream, fields in pending:
                problem = _difference(fields, by_position.get(position))
                try:
                    r = _recorded(position, fields)
                except (KeyError, ValueError) as exc:
                    yield None, f"{stream} {position}-0 cannot be decoded: {exc}", position
                    continue
                if not _wanted(r, f, fields, jobs):
                    continue
                entry = trail_entry(r, int(fields["schema_version"]), jobs.known)
                yield entry, f"{stream} {position}-0 {problem}" if problem else None, position
            pending.clear()

        async for item in _merged(redis, f.after, batch):
            pending.append(item)
            if len(pending) >= batch:
                async for out in flush():
                    yield out
        if pending:
            async for out in flush():
                yield out


def _wanted(r: RecordedEvent, f: TrailFilter, fields: dict[str, bytes], jobs: JobModels) -> bool:
    """Apply the trail filter to a decoded entry (and learn job models on the way)."""
    type_name = fields["type"].decode()
    if type_name == "BatchJobSubmitted":
        jobs.learn({"event_type": type_name, "payload": fields["payload"]})
    if f.event_type and type_name != f.event_type:
        return False
    if f.actor and r.metadata.actor != f.actor:
        return False
    if f.since and r.recorded_at < f.since:
        return False
    if f.model:
        named = getattr(r.event, "model_name", None)
        job = getattr(r.event, "job_id", None)
        return named == f.model or (job is not None and jobs.known.get(job, ("",))[0] == f.model)
    return True
