"""A thin consumer-group runner on redis.asyncio: batching, claiming, dead-lettering, self-heal.

Delivery is at least once; handlers make the effect exactly once (processed rows, primary
keys). A failing entry stays pending; after ``claim_idle_ms`` any live consumer claims it,
and past ``max_deliveries`` it goes to ``<stream>.dlq`` with the last error as its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from events.streams import DEAD_LETTERS_KEY, dead_letter_stream
from observability.metrics import instruments
from observability.tracing import context_from, tracer

log = structlog.get_logger("consumer")

Fields = dict[bytes, bytes]
Handler = Callable[[str, str, Fields], Awaitable[None]]
DeadLetter = Callable[[str, str, Fields, str], Awaitable[None]]
GroupCreated = Callable[[str], Awaitable[None]]
ERRORS_KEY = "platform:consumer-errors"


@dataclass
class RunnerConfig:
    """Tuning of one group's runner."""

    count: int = 10
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_every_s: float = 1.0
    max_deliveries: int = 3
    dlq_maxlen: int = 10_000


@dataclass
class GroupRunner:
    """Reads ``streams`` as consumer ``consumer`` of ``group`` and calls ``handler`` per entry."""

    redis: aioredis.Redis
    group: str
    streams: list[str]
    consumer: str
    handler: Handler
    config: RunnerConfig = field(default_factory=RunnerConfig)
    on_dead_letter: DeadLetter | None = None
    on_group_created: GroupCreated | None = None

    async def ensure_groups(self) -> None:
        """Create the group on every stream (from the start); run the hook for new ones."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" in str(exc):
                    continue
                raise
            log.info("group_created", group=self.group, stream=stream)
            if self.on_group_created is not None:
                await self.on_group_created(stream)

    async def run(self, stop: asyncio.Event) -> None:
        """Drain own pending entries, then read new ones, claiming idle ones periodically."""
        ready = False
        last_claim = 0.0
        while not stop.is_set():
            try:
                if not ready:
                    await self.ensure_groups()
                    await self._read({s: "0" for s in self.streams}, block=None)
                    ready = True
                if time.monotonic() - last_claim >= self.config.claim_every_s:
                    last_claim = time.monotonic()
                    await self._claim_idle()
                await self._read({s: ">" for s in self.streams}, block=self.config.block_ms)
            except ResponseError as exc:
                # NOGROUP: the group is gone (Redis lost its data); UNBLOCKED: the stream was
                # deleted while we were blocked on it. Either way: recreate and carry on.
                ready = False
                if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                    log.warning("group_missing_recreating", group=self.group, error=str(exc))
                    continue
                log.error("redis_error", group=self.group, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("redis_unavailable", group=self.group, error=str(exc))
                ready = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _read(self, ids: dict[str, str], block: int | None) -> None:
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, ids, count=self.config.count, block=block
        )
        for stream, entries in reply or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                if fields:  # a pending entry trimmed away comes back with no fields
                    await self._handle(name, entry_id.decode(), fields)
                else:
                    await self.redis.xack(name, self.group, entry_id)

    async def _handle(self, stream: str, entry_id: str, fields: Fields) -> None:
        with self._traced("process", stream, entry_id, fields) as span:
            await self._handle_in_span(stream, entry_id, fields, span)

    async def _handle_in_span(self, stream: str, entry_id: str, fields: Fields, span) -> None:
        keeper = asyncio.create_task(self._keep_claimed(stream, entry_id))
        started = time.perf_counter()
        try:
            await self.handler(stream, entry_id, fields)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._count("failed", stream, started)
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR)
            reason = f"{type(exc).__name__}: {exc}"[:500]
            log.warning(
                "handler_failed", group=self.group, stream=stream, entry_id=entry_id, error=reason
            )
            await self.redis.hset(ERRORS_KEY, f"{self.group}|{stream}|{entry_id}", reason)
            return
        finally:
            keeper.cancel()
        await self.redis.xack(stream, self.group, entry_id)
        await self.redis.hdel(ERRORS_KEY, f"{self.group}|{stream}|{entry_id}")
        self._count("handled", stream, started)
        log.info(
            "entry_handled", group=self.group, stream=stream, entry_id=entry_id,
            type=_text(fields, b"type"), job_id=_text(fields, b"job_id"),
            shard=_text(fields, b"shard"), duration_ms=round((time.perf_counter() - started) * 1e3, 3),
        )  # fmt: skip

    @contextlib.contextmanager
    def _traced(self, action: str, stream: str, entry_id: str, fields: Fields):
        """A consumer span continuing the entry's trace, its correlation id bound to the logs."""
        raw = fields.get(b"traceparent") or fields.get(b"trace_context") or b""
        with (
            structlog.contextvars.bound_contextvars(
                correlation_id=_text(fields, b"correlation_id")
            ),
            tracer().start_as_current_span(
                f"{self.group} {action} {stream}",
                context=context_from(raw.decode()),
                kind=SpanKind.CONSUMER,
                attributes={"messaging.consumer.group.name": self.group,
                            "messaging.destination.name": stream,
                            "messaging.message.id": entry_id},
            ) as span,
        ):  # fmt: skip
            yield span

    def _count(self, outcome: str, stream: str, started: float | None = None) -> None:
        inst = instruments()
        inst.consumer_entries.add(1, {"group": self.group, "outcome": outcome})
        if started is not None:
            inst.handler_duration.record(
                time.perf_counter() - started,
                {"group": self.group, "stream": stream, "outcome": outcome},
            )

    async def _keep_claimed(self, stream: str, entry_id: str) -> None:
        """While a long handler runs, reset the entry's idle time so nobody else claims it."""
        interval = self.config.claim_idle_ms / 3000
        while True:
            await asyncio.sleep(interval)
            # Losing Redis for a moment only risks a duplicate delivery, which handlers absorb.
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                await self.redis.xclaim(
                    stream, self.group, self.consumer, 0, [entry_id], justid=True
                )

    async def _claim_idle(self) -> None:
        for stream in self.streams:
            reply = await self.redis.xautoclaim(
                stream,
                self.group,
                self.consumer,
                self.config.claim_idle_ms,
                "0-0",
                count=self.config.count,
            )
            entries = reply[1] if len(reply) > 1 else []
            for entry_id, fields in entries:
                eid = entry_id.decode()
                if not fields:
                    await self.redis.xack(stream, self.group, eid)
                    continue
                info = await self.redis.xpending_range(stream, self.group, eid, eid, 1)
                deliveries = info[0]["times_delivered"] if info else 1
                if deliveries > self.config.max_deliveries:
                    with self._traced("dead-letter", stream, eid, fields):
                        await self._dead_letter(stream, eid, fields, deliveries)
                else:
                    log.info(
                        "entry_claimed",
                        group=self.group,
                        stream=stream,
                        entry_id=eid,
                        deliveries=deliveries,
                    )
                    await self._handle(stream, eid, fields)

    async def _dead_letter(
        self, stream: str, entry_id: str, fields: Fields, deliveries: int
    ) -> None:
        key = f"{self.group}|{stream}|{entry_id}"
        last_error = await self.redis.hget(ERRORS_KEY, key)
        reason = (last_error.decode() if last_error else "consumer died while handling it") + (
            f" (failed {deliveries - 1} deliveries)"
        )
        dlq = {**fields, b"dlq_reason": reason.encode(), b"dlq_group": self.group.encode(),
               b"dlq_entry_id": entry_id.encode(), b"dlq_stream": stream.encode()}  # fmt: skip
        await self.redis.xadd(
            dead_letter_stream(stream), dlq, maxlen=self.config.dlq_maxlen, approximate=True
        )
        if self.on_dead_letter is not None:
            await self.on_dead_letter(stream, entry_id, fields, reason)
        await self.redis.xack(stream, self.group, entry_id)
        await self.redis.hdel(ERRORS_KEY, key)
        await self.redis.hincrby(DEAD_LETTERS_KEY, f"{self.group}|{stream}", 1)
        self._count("dead_lettered", stream)
        log.error(
            "entry_dead_lettered", group=self.group, stream=stream, entry_id=entry_id, reason=reason
        )


def _text(fields: Fields, key: bytes) -> str | None:
    """A field as text, None when the entry lacks it."""
    value = fields.get(key)
    return value.decode(errors="replace") if value is not None else None
