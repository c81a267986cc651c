"""Replay for auditors: the trail from the log (filtered, paged), a model at a moment, replay groups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.audit.reports import ModelAt, TrailEntry, TrailFilter, model_at, trail_from_parts
from domain.errors import Conflict, InvalidInput, NotFound, UnknownModel
from events.streams import model_stream_id
from storage.audit.reader import chunks, driver, envelope, payload_json, recorded

SUBMITTED = "BatchJobSubmitted"


async def _where(conn: AsyncConnection, f: TrailFilter) -> tuple[str, list[Any]] | None:
    """SQL over event_log for the filter (parameters from $3); None when nothing can match."""
    clauses, params = [], []
    for column, value in (("event_type", f.event_type), ("actor", f.actor)):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} = ${len(params) + 2}")
    if f.since is not None:
        params.append(f.since)
        clauses.append(f"recorded_at >= ${len(params) + 2}")
    if f.model is not None:
        streams = await streams_of_model(conn, f.model)
        if not streams:
            return None
        params.append(streams)
        clauses.append(f"stream_id = ANY(${len(params) + 2}::text[])")
    return " AND ".join(clauses), params


async def streams_of_model(conn: AsyncConnection, model: str) -> list[str]:
    """The model's own stream and every stream with an event naming it (jobs, gates)."""
    pg = await driver(conn)
    rows = await pg.fetch(
        "SELECT DISTINCT stream_id FROM event_log_json WHERE payload->>'model_name' = $1", model
    )
    return sorted({r["stream_id"] for r in rows} | {model_stream_id(model)})


class JobModels:
    """Which model and version each batch job evaluates, learned from BatchJobSubmitted."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[str, str]] = {}

    def learn(self, row: Any) -> None:
        """Remember a submitted job's model."""
        if row["event_type"] == SUBMITTED:
            p = msgspec.json.decode(row["payload"])
            self.known[p["job_id"]] = (p["model_name"], p["model_version"])

    async def fill(self, conn: AsyncConnection, rows: list[Any]) -> None:
        """Look up the jobs of rows whose submission lies before the replay's start."""
        wanted = {
            r["stream_id"]
            for r in rows
            if r["stream_id"].startswith("job-") and r["stream_id"][4:] not in self.known
        }
        if not wanted:
            return
        pg = await driver(conn)
        for r in await pg.fetch(
            "SELECT event_type, payload FROM event_log WHERE event_type = $1 "
            "AND stream_id = ANY($2::text[])",
            SUBMITTED,
            sorted(wanted),
        ):
            self.learn(r)


class EventLogReader:
    """Reads the log for `just replay`, GET /events and the point-in-time views."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def trail(
        self, f: TrailFilter, *, batch: int = 5000, limit: int | None = None
    ) -> AsyncIterator[list[TrailEntry]]:
        """The filtered trail in position order, a chunk at a time."""
        f.check()
        async with self.engine.connect() as conn, self.engine.connect() as lookups:
            where = await _where(conn, f)
            if where is None:
                return
            jobs, left = JobModels(), limit
            size = min(batch, limit) if limit else batch
            # Prefetching overlaps PostgreSQL's work with decoding; lookups use their own connection.
            rows_in = chunks(
                conn,
                after=f.after,
                where=where[0],
                params=where[1],
                batch=size,
                prefetch=limit is None,
            )
            # aclosing: an early return must finish the prefetch before the connection closes.
            async with aclosing(rows_in):
                async for rows in rows_in:
                    for row in rows:
                        jobs.learn(row)
                    await jobs.fill(lookups, rows)  # jobs submitted before this chunk
                    out = [
                        trail_from_parts(envelope(row), payload_json(row), jobs.known)
                        for row in rows
                    ]
                    if left is not None:
                        out, left = out[:left], left - len(out)
                    yield out
                    if left is not None and left <= 0:
                        return

    async def page(self, f: TrailFilter, limit: int) -> tuple[list[TrailEntry], int | None]:
        """One page after ``f.after``; the position to ask after next, None at the end."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be between 1 and 1000, got {limit}")
        entries = [e async for chunk in self.trail(f, limit=limit) for e in chunk]
        return entries, entries[-1].position if len(entries) == limit else None

    async def model_at(self, model_name: str, at: datetime) -> ModelAt:
        """Which versions existed and which was prod at ``at``, folded from the log."""
        async with self.engine.connect() as conn:
            history = [
                recorded(r)
                async for rows in chunks(
                    conn, where="stream_id = $3", params=[model_stream_id(model_name)]
                )
                for r in rows
            ]
        if not history:
            raise UnknownModel(model_name)
        view = model_at(model_name, at, history)
        if view.as_of_position is None:
            first = history[0].recorded_at.isoformat()
            raise NotFound(f"model {model_name!r} did not exist yet at {at.isoformat()} ({first})")
        return view


async def create_replay_group(
    redis: aioredis.Redis, stream: str, group: str, from_position: int
) -> str:
    """A new consumer group on ``stream`` that starts at a log position; live groups untouched."""
    if from_position < 1:
        raise InvalidInput(f"position must be >= 1, got {from_position}")
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        raise NotFound(f"stream {stream} does not exist") from None
    names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
    if group in names:
        raise Conflict(f"group {group!r} already exists on {stream}; a replay needs a new group")
    first = await redis.xrange(stream, "-", "+", count=1)
    if first and int(first[0][0].split(b"-")[0]) > from_position:
        raise Conflict(
            f"{stream} is trimmed past position {from_position} (it starts at "
            f"{first[0][0].decode()}); replay that range from PostgreSQL (just replay --from)"
        )
    start = f"{from_position - 1}-0"
    await redis.xgroup_create(stream, group, id=start)
    return start
