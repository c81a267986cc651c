"""The append-only PostgreSQL event log: appends under a table lock, reads, and chain checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import msgspec
import structlog
from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import ConcurrencyConflict
from domain.integrity import GENESIS, row_hash
from events.base import Event, EventMetadata, RecordedEvent
from events.codec import decode_event, encode_event, event_type_name
from storage.tables import event_log

log = structlog.get_logger("event_log")
_LOG_BUCKET = "platform_recorded_events"


class ChainBreak(msgspec.Struct, frozen=True):
    """Where and how the hash chain fails to verify."""

    position: int
    stream_id: str
    problem: str


class IntegrityReport(msgspec.Struct, frozen=True):
    """The outcome of a full chain verification."""

    ok: bool
    checked: int
    last_position: int
    breaks: list[ChainBreak]


async def append(
    conn: AsyncConnection,
    stream_id: str,
    expected_version: int,
    events: Sequence[Event],
    metadata: EventMetadata,
) -> list[RecordedEvent]:
    """Append events to a stream at ``expected_version``; the caller owns the transaction."""
    # EXCLUSIVE blocks other appenders (not readers) until commit, so positions are
    # assigned in commit order and a reader following positions never skips a late commit.
    await conn.execute(text("LOCK TABLE event_log IN EXCLUSIVE MODE"))
    current = await conn.scalar(
        select(func.coalesce(func.max(event_log.c.stream_version), 0)).where(
            event_log.c.stream_id == stream_id
        )
    )
    if current != expected_version:
        raise ConcurrencyConflict(
            f"stream {stream_id} is at version {current}, expected {expected_version}"
        )
    prev = await conn.scalar(
        select(event_log.c.hash).order_by(event_log.c.position.desc()).limit(1)
    )
    prev = prev or GENESIS
    recorded: list[RecordedEvent] = []
    causation = metadata.causation_id
    for offset, event in enumerate(events, start=1):
        row = {
            "stream_id": stream_id,
            "stream_version": expected_version + offset,
            "event_id": uuid.uuid4(),
            "event_type": event_type_name(event),
            "schema_version": event.schema_version,
            "payload": encode_event(event),
            "actor": metadata.actor,
            "correlation_id": metadata.correlation_id,
            "causation_id": causation,
            "recorded_at": datetime.now(UTC),
        }
        row["prev_hash"] = prev
        row["hash"] = prev = _hash_of(row)
        position = await conn.scalar(event_log.insert().returning(event_log.c.position), row)
        recorded.append(
            RecordedEvent(
                position=position,
                stream_id=stream_id,
                stream_version=row["stream_version"],
                event_id=row["event_id"],
                recorded_at=row["recorded_at"],
                metadata=msgspec.structs.replace(metadata, causation_id=causation),
                event=event,
            )
        )
    bucket = conn.info.get(_LOG_BUCKET)
    if bucket is not None:
        bucket.extend(recorded)
    return recorded


@asynccontextmanager
async def begin_logged(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction whose appended events are logged once it has committed."""
    async with engine.begin() as conn:
        conn.info[_LOG_BUCKET] = []
        yield conn
        recorded = conn.info.pop(_LOG_BUCKET, [])
    for r in recorded:
        _log_event(r)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _log_event(r: RecordedEvent) -> None:
    """One JSON log line per appended event (e.g. ``model_version_promoted``)."""
    fields = {
        k: getattr(r.event, k)
        for k in ("model_name", "model_version", "job_id", "from_version", "to_version")
        if getattr(r.event, k, None) is not None
    }
    log.info(
        _snake(type(r.event).__name__),
        position=r.position,
        stream_id=r.stream_id,
        actor=r.metadata.actor,
        correlation_id=str(r.metadata.correlation_id),
        **fields,
    )


def _hash_of(row: dict) -> bytes:
    return row_hash(
        row["prev_hash"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        payload=row["payload"],
        actor=row["actor"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        recorded_at=row["recorded_at"],
    )


def to_recorded(row: Row) -> RecordedEvent:
    """Decode one event_log row."""
    return RecordedEvent(
        position=row.position,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        event_id=row.event_id,
        recorded_at=row.recorded_at,
        metadata=EventMetadata(
            actor=row.actor,
            correlation_id=row.correlation_id,
            causation_id=row.causation_id,
            trace_context=row.trace_context,
        ),
        event=decode_event(row.event_type, row.payload),
    )


async def load_stream(conn: AsyncConnection, stream_id: str) -> list[RecordedEvent]:
    """Every event of one stream, oldest first."""
    result = await conn.execute(
        select(event_log)
        .where(event_log.c.stream_id == stream_id)
        .order_by(event_log.c.stream_version)
    )
    return [to_recorded(r) for r in result]


async def read_after(conn: AsyncConnection, position: int, limit: int = 500) -> list[Row]:
    """Raw rows after a global position, in position order."""
    result = await conn.execute(
        select(event_log)
        .where(event_log.c.position > position)
        .order_by(event_log.c.position)
        .limit(limit)
    )
    return list(result)


async def stream_ids(conn: AsyncConnection, prefix: str) -> list[str]:
    """Distinct stream ids starting with ``prefix``."""
    result = await conn.execute(
        select(event_log.c.stream_id)
        .where(event_log.c.stream_id.startswith(prefix, autoescape=True))
        .distinct()
        .order_by(event_log.c.stream_id)
    )
    return list(result.scalars())


async def verify_chain(conn: AsyncConnection, batch: int = 5000) -> IntegrityReport:
    """Recompute every row's hash in position order and report where the chain breaks."""
    prev, last, checked, breaks = GENESIS, 0, 0, []
    while True:
        rows = await read_after(conn, last, batch)
        if not rows:
            break
        for r in rows:
            checked += 1
            row = r._asdict()
            if bytes(row["prev_hash"]) != prev:
                breaks.append(
                    ChainBreak(r.position, r.stream_id, "prev_hash does not match the row before")
                )
            expected = _hash_of({**row, "prev_hash": bytes(row["prev_hash"])})
            if expected != bytes(row["hash"]):
                breaks.append(
                    ChainBreak(r.position, r.stream_id, "content does not match its hash (edited)")
                )
            prev, last = bytes(row["hash"]), r.position
    return IntegrityReport(ok=not breaks, checked=checked, last_position=last, breaks=breaks)
