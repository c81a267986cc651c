"""Chunked, fast reads of the event log for audits and replays (asyncpg records, no ORM rows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from events.base import EventMetadata, RecordedEvent
from events.codec import decode_event

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
) -> AsyncIterator[list[Any]]:
    """Rows after ``after`` (up to ``until``) in position order, ``batch`` at a time.

    ``where`` is extra SQL over the columns with parameters from $3 on.
    """
    pg = await driver(conn)
    extra = f" AND ({where})" if where else ""
    bound = f" AND position <= {int(until)}" if until is not None else ""
    # Only code passes ``columns`` and ``where``; values always travel as parameters.
    sql = f"SELECT {columns} FROM event_log WHERE position > $1{bound}{extra} ORDER BY position LIMIT $2"  # noqa: S608
    stmt = await pg.prepare(sql)
    while True:
        rows = await stmt.fetch(after, batch, *params)
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        after = rows[-1]["position"]


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
