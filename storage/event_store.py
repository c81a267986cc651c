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

from domain.audit.integrity import GENESIS, SCHEME_HMAC, SCHEME_SHA256, chain_hash, key_id
from domain.errors import ConcurrencyConflict
from events.audit import AUDIT_STREAM_ID, AuditKeyAdopted
from events.base import Event, EventMetadata, RecordedEvent
from events.codec import encode_event, event_type_name, recorded_from_row
from storage.audit.chain import IntegrityReport, check_chain
from storage.tables import event_log

log = structlog.get_logger("event_log")
_LOG_BUCKET = "platform_recorded_events"


APPEND_LOCK = 7_313_003
_NEXT_POSITIONS = text(
    "SELECT nextval(pg_get_serial_sequence('event_log', 'position')) "
    "FROM generate_series(1, :n) ORDER BY 1"
)
_INSERT = text(
    "INSERT INTO event_log (position, stream_id, stream_version, event_id, event_type, "
    "schema_version, payload, actor, correlation_id, causation_id, trace_context, recorded_at, "
    "prev_hash, hash, hash_scheme) OVERRIDING SYSTEM VALUE VALUES (:position, :stream_id, "
    ":stream_version, :event_id, :event_type, :schema_version, :payload, :actor, "
    ":correlation_id, :causation_id, :trace_context, :recorded_at, :prev_hash, :hash, "
    ":hash_scheme)"
)
# AUDIT_HMAC_KEY, handed over by the composition root (storage reads no settings itself).
_hmac_override: list[bytes | None] = []


def set_hmac_key(key: bytes | None) -> None:
    """HMAC new rows under ``key`` (None: plain SHA-256); bootstrap sets AUDIT_HMAC_KEY here."""
    _hmac_override[:] = [key]


def hmac_key() -> bytes | None:
    """The key new rows are HMAC'd with, None for plain SHA-256."""
    return _hmac_override[0] if _hmac_override else None


async def lock_appends(conn: AsyncConnection) -> None:
    """Serialise appenders until the caller's transaction ends."""
    # An advisory lock rather than LOCK TABLE: the application role holds only INSERT and
    # SELECT on event_log, and LOCK TABLE in EXCLUSIVE mode needs UPDATE or DELETE. Appenders
    # still commit one at a time, so positions are in commit order and a reader following
    # positions never skips a late commit; INSERT's own lock still waits for a rebuild's lock.
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK})


async def append(
    conn: AsyncConnection,
    stream_id: str,
    expected_version: int,
    events: Sequence[Event],
    metadata: EventMetadata,
) -> list[RecordedEvent]:
    """Append events to a stream at ``expected_version``; the caller owns the transaction."""
    await lock_appends(conn)
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
    prev = bytes(prev) if prev is not None else GENESIS
    key = hmac_key()
    adopt = await _adoption(conn) if key else None
    # Positions are taken before the insert so that the hash can cover them.
    n = len(events) + (adopt is not None)
    positions = list((await conn.execute(_NEXT_POSITIONS, {"n": n})).scalars())
    items = [(stream_id, expected_version + i, e) for i, e in enumerate(events, start=1)]
    if adopt is not None and key:
        # The first row written with the key pins that fact in the log itself (docs/audit.md).
        since = adopt[1] or positions[0]
        marker = AuditKeyAdopted(since_position=since, key_id=key_id(key))
        items.insert(0, (AUDIT_STREAM_ID, adopt[0] + 1, marker))
    scheme = SCHEME_HMAC if key else SCHEME_SHA256
    now = datetime.now(UTC)
    rows: list[dict] = []
    recorded: list[RecordedEvent] = []
    causation = metadata.causation_id
    meta = msgspec.structs.replace(metadata, causation_id=causation)
    for (stream, version, event), position in zip(items, positions, strict=True):
        row = {
            "position": position,
            "stream_id": stream,
            "stream_version": version,
            "event_id": uuid.uuid4(),
            "event_type": event_type_name(event),
            "schema_version": event.schema_version,
            "payload": encode_event(event),
            "actor": metadata.actor,
            "correlation_id": metadata.correlation_id,
            "causation_id": causation,
            "trace_context": metadata.trace_context,
            "recorded_at": now,
            "hash_scheme": scheme,
            "prev_hash": prev,
        }
        row["hash"] = prev = chain_hash(prev, row, key)
        rows.append(row)
        recorded.append(
            RecordedEvent(
                position=position,
                stream_id=stream,
                stream_version=row["stream_version"],
                event_id=row["event_id"],
                recorded_at=now,
                metadata=meta,
                event=event,
            )
        )
    await conn.execute(_INSERT, rows)
    bucket = conn.info.get(_LOG_BUCKET)
    if bucket is not None:
        bucket.extend(recorded)
    return recorded[n - len(events) :]  # the caller's events (not the key's marker)


async def _adoption(conn: AsyncConnection) -> tuple[int, int | None] | None:
    """None when the log records a key's adoption already; else the audit stream's version and
    the first HMAC row's position (rows HMAC'd before the marker existed), or None for none."""
    known = await conn.scalar(
        select(event_log.c.position)
        .where(event_log.c.event_type == AuditKeyAdopted.__name__)
        .order_by(event_log.c.position)
        .limit(1)
    )
    if known is not None:
        return None
    first = await conn.scalar(
        select(event_log.c.position)
        .where(event_log.c.hash_scheme == SCHEME_HMAC)
        .order_by(event_log.c.position)
        .limit(1)
    )
    version = await conn.scalar(
        select(func.coalesce(func.max(event_log.c.stream_version), 0)).where(
            event_log.c.stream_id == AUDIT_STREAM_ID
        )
    )
    return int(version), first


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


def to_recorded(row: Row) -> RecordedEvent:
    """Decode one event_log row."""
    return recorded_from_row(row)


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


async def verify_chain(
    conn: AsyncConnection, batch: int = 5000, key: bytes | None = None
) -> IntegrityReport:
    """Recompute every row's hash in position order and report where the chain breaks."""
    return await check_chain(conn, batch=batch, key=key if key is not None else hmac_key())


async def head(conn: AsyncConnection) -> Row | None:
    """The last row of the log (position, hash, recorded_at), None when it is empty."""
    result = await conn.execute(
        select(event_log.c.position, event_log.c.hash, event_log.c.recorded_at)
        .order_by(event_log.c.position.desc())
        .limit(1)
    )
    return result.first()


def adopted_since(payload: bytes) -> int | None:
    """The first HMAC position an AuditKeyAdopted payload names (None when unreadable)."""
    try:
        return msgspec.json.decode(bytes(payload), type=AuditKeyAdopted).since_position
    except msgspec.DecodeError:
        return None


async def hmac_from(conn: AsyncConnection) -> int | None:
    """The first HMAC position the log's marker names, None before any key was adopted."""
    payload = await conn.scalar(
        select(event_log.c.payload)
        .where(event_log.c.event_type == AuditKeyAdopted.__name__)
        .order_by(event_log.c.position)
        .limit(1)
    )
    return adopted_since(payload) if payload is not None else None
