"""The relay: publishes the event log to Redis Streams in position order, one leader at a time.

Entry ids are ``<position>-0``, so a retried publish is refused by Redis and is harmless.
A marker key tells whether Redis lost its data, and each stream's last entry whether it lost
part of it; the log is then republished from the loss and consumers deduplicate by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import Row, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.audit.reports import Anchor
from events.codec import area_of
from events.streams import area_stream
from storage import event_store
from storage.projections import get_checkpoint, set_checkpoint
from storage.streams import relay_loss
from storage.streams.relay_loss import MARKER_KEY

log = structlog.get_logger("relay")

RELAY_CHECKPOINT = "relay"
LEADER_LOCK = 7_313_002
ANCHOR_KEY = "platform:relay:anchor"
APPENDED_CHANNEL = "event_log_appended"  # NOTIFY'd by a trigger on event_log (migration 0006)
MIN_GAP_S = 0.01  # between passes under a stream of appends: at most 100 passes a second


def entry_fields(row: Mapping[str, Any]) -> dict[str, str | bytes]:
    """The Redis stream entry of one log row (a row mapping or an asyncpg record)."""
    return {
        "event_id": str(row["event_id"]),
        "type": row["event_type"],
        "schema_version": str(row["schema_version"]),
        "stream_id": row["stream_id"],
        "stream_version": str(row["stream_version"]),
        "position": str(row["position"]),
        "payload": bytes(row["payload"]),
        "actor": row["actor"],
        "correlation_id": str(row["correlation_id"]),
        "causation_id": str(row["causation_id"] or ""),
        "recorded_at": row["recorded_at"].isoformat(),
        "trace_context": row["trace_context"] or "",
        # The chain travels with every entry: Redis then holds an anchor outside PostgreSQL,
        # so a deleted tail of the log shows up as entries the log no longer has.
        "hash": bytes(row["hash"]).hex(),
        "hash_scheme": str(row["hash_scheme"]),
    }


# Entries published before the audit issue lack these; every other field is always there.
LATER_FIELDS = frozenset({"trace_context", "hash", "hash_scheme"})


def anchor_line(row: Row) -> str:
    """The head anchor of one published row (the format `just anchor` prints)."""
    return Anchor(row.position, bytes(row.hash).hex(), row.recorded_at).line()


class Relay:
    """Moves committed events from PostgreSQL to Redis Streams."""

    def __init__(
        self, engine: AsyncEngine, redis: aioredis.Redis, interval: float = 1.0, batch: int = 500
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.interval = interval
        self.batch = batch
        self.published = 0
        self._tails: dict[str, int] | None = None  # stream -> last position published to it

    async def _ensure_marker(self, conn: AsyncConnection) -> int:
        """The position to publish after; rewinds when Redis lost some or all of its entries."""
        checkpoint = await get_checkpoint(conn, RELAY_CHECKPOINT)
        if self._tails is None:  # once per leadership: what each stream should end with
            self._tails = await relay_loss.published_tails(conn, checkpoint)
            await conn.commit()
        marker, behind = await relay_loss.loss(self.redis, self._tails)
        rewind = await relay_loss.rewind_point(conn, self._tails, behind)
        if rewind is not None and rewind < checkpoint:
            log.warning("redis_lost_data_republishing", from_position=rewind, checkpoint=checkpoint)
            # Persist the rewind before setting the marker: a relay that dies in between
            # leaves a checkpoint that still republishes, never a marker that hides the loss.
            await set_checkpoint(conn, RELAY_CHECKPOINT, rewind)
            await conn.commit()
            checkpoint = rewind
        if not marker:
            await self.redis.set(MARKER_KEY, "1")
        return checkpoint

    async def publish_pending(self, conn: AsyncConnection) -> int:
        """Publish everything after the checkpoint; the caller holds leadership."""
        after = await self._ensure_marker(conn)
        total = 0
        while True:
            rows = await event_store.read_after(conn, after, self.batch)
            await conn.commit()
            if not rows:
                break
            pipe = self.redis.pipeline(transaction=False)
            for row in rows:
                stream = area_stream(area_of(row.event_type))
                pipe.xadd(stream, entry_fields(row._mapping), id=f"{row.position}-0")
                if self._tails is not None:
                    self._tails[stream] = max(self._tails.get(stream, 0), row.position)
            pipe.set(ANCHOR_KEY, anchor_line(rows[-1]))
            results = (await pipe.execute(raise_on_error=False))[:-1]
            for row, result in zip(rows, results, strict=True):
                if not isinstance(result, ResponseError):
                    continue
                if "equal or smaller" not in str(result):
                    raise result
                await self._check_already_published(row)
            after = rows[-1].position
            await set_checkpoint(conn, RELAY_CHECKPOINT, after)
            await conn.commit()
            total += len(rows)
        self.published += total
        return total

    async def _check_already_published(self, row: Row) -> None:
        """A refused id is fine if it is there; if not, something else wrote to the stream."""
        stream, entry_id = area_stream(area_of(row.event_type)), f"{row.position}-0"
        if not await self.redis.xrange(stream, entry_id, entry_id):
            log.error(
                "relay_stream_ahead",
                stream=stream,
                position=row.position,
                hint=f"an entry newer than {entry_id} was added to {stream} by something other "
                "than the relay; only the relay may write to event streams",
            )

    async def publish_once(self) -> int | None:
        """One pass if no other relay leads (used by the CLI); None if another one leads."""
        async with self.engine.connect() as conn:
            if not await _try_lead(conn):
                return None
            try:
                return await self.publish_pending(conn)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
                await conn.commit()

    async def run(self, stop: asyncio.Event) -> None:
        """Lead when possible and keep publishing until ``stop`` is set.

        The leader passes as soon as an append commits (LISTEN on the trigger's channel) and
        at least every ``interval`` seconds, which also notices a Redis that lost its data.
        """
        while not stop.is_set():
            try:
                async with self.engine.connect() as conn:
                    if not await _try_lead(conn):
                        await _wait(stop, 1.0)
                        continue
                    log.info("relay_leading")
                    appended = asyncio.Event()
                    unlisten = await _listen(conn, appended)
                    try:
                        while not stop.is_set():
                            appended.clear()
                            await self.publish_pending(conn)
                            await _wait(stop, MIN_GAP_S)
                            await _wait_either(stop, appended, self.interval)
                    finally:
                        await unlisten()
                        await _release(conn)
            except (RedisError, OSError, OperationalError, DBAPIError) as exc:
                log.warning("relay_retrying", error=str(exc))
                await _wait(stop, 1.0)
            except Exception as exc:  # the relay must outlive any one bad pass
                log.error("relay_failed", error=str(exc), exc_info=exc)
                await _wait(stop, 1.0)


async def _release(conn: AsyncConnection) -> None:
    """Give up leadership; a dead connection has already dropped its session locks."""
    try:
        await conn.rollback()
        await conn.execute(text("SELECT pg_advisory_unlock_all()"))
        await conn.commit()
    except (SQLAlchemyError, OSError) as exc:
        log.info("relay_release_skipped", error=str(exc).splitlines()[0][:200])


async def _listen(conn: AsyncConnection, appended: asyncio.Event):
    """LISTEN for appends on the leader's connection; returns the coroutine that stops it."""
    driver = (await conn.get_raw_connection()).driver_connection

    def on_notify(*_: object) -> None:
        appended.set()

    await driver.add_listener(APPENDED_CHANNEL, on_notify)

    async def unlisten() -> None:
        with contextlib.suppress(Exception):  # a dead connection listens to nothing anyway
            await driver.remove_listener(APPENDED_CHANNEL, on_notify)

    return unlisten


async def _wait_either(stop: asyncio.Event, other: asyncio.Event, seconds: float) -> None:
    """Until ``stop`` or ``other`` is set, or ``seconds`` have passed."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _try_lead(conn: AsyncConnection) -> bool:
    got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK})
    await conn.commit()
    return bool(got)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
