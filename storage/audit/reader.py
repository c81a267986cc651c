"""Chunked, fast reads of the event log for audits and replays (asyncpg records, no ORM rows)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from events.base import EventMetadata, RecordedEvent
from events.codec import decode_event, encode_event, schema_version_of

COLUMNS = (
    "position, stream_id, stream_version, event_id, event_type, schema_version, payload, actor, "
    "correlation_id, causation_id, trace_context, recorded_at, prev_hash, hash, hash_scheme"
)
CHUNK = 5000


async def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``, inside the transaction ``conn`` has begun."""
    await conn.execute(text("SELECT 1"))  # begins the transaction the raw reads then share
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def chunks(
    conn: AsyncConnection,
    *,
    after: int = 0,
    until: int | None = None,
    where: str = "",
    params: Sequence[Any] = (),
    batch: int = CHUNK,
    columns: str = COLUMNS,
    prefetch: bool = False,
) -> AsyncIterator[list[Any]]:
    """Rows after ``after`` (up to ``until``) in position order, ``batch`` at a time.

    ``where`` is extra SQL over the columns with parameters from $3 on. With ``prefetch`` the
    next chunk is fetched while the caller works on this one, so PostgreSQL and Python use
    both cores; the caller must then not use ``conn`` until the loop ends.
    """
    pg = await driver(conn)
    extra = f" AND ({where})" if where else ""
    bound = f" AND position <= {int(until)}" if until is not None else ""
    # Only code passes ``columns`` and ``where``; values always travel as parameters.
    sql = f"SELECT {columns} FROM event_log WHERE position > $1{bound}{extra} ORDER BY position LIMIT $2"  # noqa: S608
    stmt = await pg.prepare(sql)
    pending: asyncio.Future | None = asyncio.ensure_future(stmt.fetch(after, batch, *params))
    try:
        while pending is not None:
            rows = await pending
            pending = None
            if len(rows) == batch and prefetch:
                pending = asyncio.ensure_future(stmt.fetch(rows[-1]["position"], batch, *params))
            if rows:
                yield rows
            if len(rows) == batch and not prefetch:
                pending = asyncio.ensure_future(stmt.fetch(rows[-1]["position"], batch, *params))
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)  # leave the connection idle


def recorded(row: Any) -> RecordedEvent:
    """Decode one record (upcasting older schema versions)."""
    return RecordedEvent(
        position=row["position"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_id=row["event_id"],
        recorded_at=row["recorded_at"],
        metadata=EventMetadata(
            actor=row["actor"],
            correlation_id=row["correlation_id"],
            causation_id=row["causation_id"],
            trace_context=row["trace_context"],
        ),
        event=decode_event(row["event_type"], row["payload"], row["schema_version"]),
    )


def payload_json(row: Any) -> bytes:
    """The payload as current JSON: the stored bytes, or re-encoded through the upcasters."""
    if schema_version_of(row["event_type"]) == row["schema_version"]:
        return row["payload"]
    return encode_event(decode_event(row["event_type"], row["payload"], row["schema_version"]))


def envelope(row: Any) -> tuple:
    """The envelope columns in TrailEntry's order."""
    return (
        row["position"],
        row["recorded_at"],
        row["actor"],
        row["event_type"],
        row["stream_id"],
        row["correlation_id"],
        row["causation_id"],
        row["trace_context"],
        row["event_id"],
        row["schema_version"],
    )
