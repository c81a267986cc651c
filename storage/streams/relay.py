"""The relay: publishes the event log to Redis Streams in position order, one leader at a time.

Entry ids are ``<position>-0``, so a retried publish is refused by Redis and is harmless.
A marker key tells whether Redis lost its data, and each stream's last entry whether it lost
part of it; the log is then republished from the loss and consumers deduplicate by event id.
"""

from __future__ import annotations

import asyncio
import contextlib

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
from storage.streams import rebuild, refusals, relay_loss
from storage.streams.entries import LATER_FIELDS, entry_fields
from storage.streams.relay_loss import MARKER_KEY

log = structlog.get_logger("relay")
__all__ = ["LATER_FIELDS", "Relay", "anchor_line", "entry_fields"]

RELAY_CHECKPOINT = "relay"
LEADER_LOCK = 7_313_002
ANCHOR_KEY = "platform:relay:anchor"
ADOPTED = "AuditKeyAdopted"  # the log's HMAC marker (events.audit), pinned in the anchor
APPENDED_CHANNEL = "event_log_appended"  # NOTIFY'd by a trigger on event_log (migration 0006)
MIN_GAP_S = 0.01  # between passes under a stream of appends: at most 100 passes a second


def anchor_line(row: Row, hmac_from: int | None = None) -> str:
    """The head anchor of one published row (the format `just anchor` prints)."""
    return Anchor(row.position, bytes(row.hash).hex(), row.recorded_at, hmac_from).line()


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
        self._pin: int | None = None  # the first HMAC position, once the log adopted a key
        self._states: dict[str, dict] = {}  # streams that refuse entries (streams.refusals)

    async def _ensure_marker(self, conn: AsyncConnection) -> int:
        """The position to publish after; rewinds when Redis lost some or all of its entries."""
        checkpoint = await get_checkpoint(conn, RELAY_CHECKPOINT)
        if self._tails is None:  # once per leadership: what each stream should end with
            self._tails = await relay_loss.published_tails(conn, checkpoint)
            self._pin = await event_store.hmac_from(conn)
            await conn.commit()
            self._states = await refusals.load(self.redis)
        marker, behind = await relay_loss.loss(self.redis, self._tails)
        if not marker:
            self._states = {}  # Redis lost everything, recorded refusals included
        for stream in set(behind) & set(self._states):
            del behind[stream]  # refused, not lost: republishing would be refused again
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
        if await rebuild.serve_requests(conn, self.redis):
            self._tails = None  # what each stream holds changed: look again
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
            if self._pin is None and any(r.event_type == ADOPTED for r in rows):
                self._pin = await event_store.hmac_from(conn)  # the anchor pins it from now on
                await conn.commit()
            pipe.set(ANCHOR_KEY, anchor_line(rows[-1], self._pin))
            results = (await pipe.execute(raise_on_error=False))[:-1]
            await self._settle(rows, results)
            after = rows[-1].position
            await set_checkpoint(conn, RELAY_CHECKPOINT, after)
            await conn.commit()
            total += len(rows)
        self.published += total
        return total

    async def _settle(self, rows: list[Row], results: list) -> None:
        """Sort refused XADDs into published and problems; only published rows move a
        stream's tail (a blocked stream must not look like one Redis lost, or every pass
        would rewind and be refused again)."""
        published: list[tuple[str, Row]] = []
        refused: list[tuple[str, Row]] = []
        for row, result in zip(rows, results, strict=True):
            stream = area_stream(area_of(row.event_type))
            if not isinstance(result, ResponseError):
                published.append((stream, row))
            elif "equal or smaller" in str(result):
                refused.append((stream, row))
            else:
                raise result
        problems: dict[str, tuple[str, int, int]] = {}
        if refused:
            states = await refusals.classify(self.redis, refused, rows[-1].position)
            for (stream, row), state in zip(refused, states, strict=True):
                if state == refusals.PUBLISHED:
                    published.append((stream, row))
                    continue
                kind, first, count = problems.get(stream, (state, row.position, 0))
                problems[stream] = (
                    refusals.BLOCKED if state == refusals.BLOCKED else kind,
                    first,
                    count + 1,
                )
        tails = self._tails if self._tails is not None else {}
        for stream, row in published:
            tails[stream] = max(tails.get(stream, 0), row.position)
        fresh = {s for s, _ in published} - set(problems)
        if problems or fresh & set(self._states):
            await refusals.record(self.redis, self._states, problems, fresh)

    async def rebuild(self, stream: str, wait_s: float = 60.0) -> dict:
        """Recreate ``stream`` from the log (its groups kept), then publish what is pending:
        here if no relay leads, else by asking the leader, which does it between passes."""
        async with self.engine.connect() as conn:
            if not await _try_lead(conn):
                return await rebuild.ask_the_leader(self.redis, stream, wait_s)
            try:
                upto = await get_checkpoint(conn, RELAY_CHECKPOINT)
                result = await rebuild.rebuild_stream(conn, self.redis, stream, upto)
                self._tails = None
                self._states.pop(stream, None)
                await self.publish_pending(conn)
                return result
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
                await conn.commit()

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
