"""A thin consumer-group runner on redis.asyncio: batching, claiming, dead-lettering, self-heal.

Delivery is at least once; handlers make the effect exactly once (processed rows, primary
keys). A failing entry stays pending; after ``claim_idle_ms`` any live consumer claims it,
and past ``max_deliveries`` it goes to ``<stream>.dlq`` with the last error as its reason.
A backing service's failure (ServiceUnavailable, Redis) is retried without counting, up to
``max_retryable_deliveries``. Every entry held here is kept claimed until it is handled.
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

from consumers import dead_letter_path as dlq_path
from consumers.dead_letter_path import ERRORS_KEY, RETRIES_KEY, Fields, entry_key
from domain.errors import ServiceUnavailable
from events.dead_letters import DLQ_EVENTS
from events.streams import DEAD_LETTERS_KEY
from observability.metrics import instruments
from observability.tracing import context_from, tracer

log = structlog.get_logger("consumer")

Handler = Callable[[str, str, Fields], Awaitable[None]]
DeadLetter = Callable[[str, str, Fields, str], Awaitable[None]]
GroupCreated = Callable[[str], Awaitable[None]]
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# Failures of a backing service, not of the entry: retried, never counted as poison.
RETRYABLE = (ServiceUnavailable, RedisConnectionError, RedisTimeoutError, ConnectionError)


@dataclass
class RunnerConfig:
    """Tuning of one group's runner."""

    count: int = 10
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    claim_every_s: float = 1.0
    max_deliveries: int = 3
    max_retryable_deliveries: int = 200
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
    # Entries delivered to this consumer and not finished yet, per stream: kept claimed.
    _held: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False)
    _cursors: dict[str, str] = field(default_factory=dict, init=False, repr=False)

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
        keeper = asyncio.create_task(self._keep_held())
        try:
            await self._loop(stop)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            self._held.clear()

    async def _loop(self, stop: asyncio.Event) -> None:
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
                self._cursors.clear()
                if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                    log.warning("group_missing_recreating", group=self.group, error=str(exc))
                    continue
                log.error("redis_error", group=self.group, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            except REDIS_DOWN as exc:
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
            await self._process(name, [(e.decode(), f) for e, f in entries], claimed=False)

    async def _process(
        self, stream: str, entries: list[tuple[str, Fields]], *, claimed: bool
    ) -> None:
        """Handle entries one at a time; one entry's failure never stops the others."""
        held = self._held.setdefault(stream, set())
        held.update(entry_id for entry_id, _ in entries)
        try:
            for entry_id, fields in entries:
                try:
                    if not fields:  # a pending entry trimmed away comes back with no fields
                        await self.redis.xack(stream, self.group, entry_id)
                    elif claimed:
                        await self._claimed(stream, entry_id, fields)
                    else:
                        await self._handle(stream, entry_id, fields)
                except REDIS_DOWN:
                    raise
                except Exception as exc:  # it stays pending and is tried again later
                    log.error(
                        "entry_not_disposed",
                        group=self.group,
                        stream=stream,
                        entry_id=entry_id,
                        error=f"{type(exc).__name__}: {exc}"[:500],
                    )
                finally:
                    held.discard(entry_id)
        finally:
            held.difference_update(entry_id for entry_id, _ in entries)

    async def _handle(self, stream: str, entry_id: str, fields: Fields) -> None:
        with self._traced("process", stream, entry_id, fields) as span:
            await self._handle_in_span(stream, entry_id, fields, span)

    async def _handle_in_span(self, stream: str, entry_id: str, fields: Fields, span) -> None:
        started = time.perf_counter()
        key = entry_key(self.group, stream, entry_id)
        try:
            if stream == DLQ_EVENTS:
                await dlq_path.replay(self.redis, self.group, fields, self.handler)
            else:
                await self.handler(stream, entry_id, fields)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retryable = isinstance(exc, RETRYABLE)
            self._count("retryable" if retryable else "failed", stream, started)
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR)
            reason = f"{type(exc).__name__}: {exc}"[:500]
            log.warning(
                "handler_failed",
                group=self.group,
                stream=stream,
                entry_id=entry_id,
                error=reason,
                retryable=retryable,
            )
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(ERRORS_KEY, key, reason)
            if retryable:
                pipe.hincrby(RETRIES_KEY, key, 1)
            await pipe.execute()
            return
        await self.redis.xack(stream, self.group, entry_id)
        await self.redis.hdel(ERRORS_KEY, key)
        await self.redis.hdel(RETRIES_KEY, key)
        self._count("handled", stream, started)
        log.info(
            "entry_handled",
            group=self.group,
            stream=stream,
            entry_id=entry_id,
            type=_text(fields, b"type"),
            job_id=_text(fields, b"job_id"),
            shard=_text(fields, b"shard"),
            duration_ms=round((time.perf_counter() - started) * 1e3, 3),
        )

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
                context=context_from(raw.decode(errors="replace")),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.consumer.group.name": self.group,
                    "messaging.destination.name": stream,
                    "messaging.message.id": entry_id,
                },
            ) as span,
        ):
            yield span

    def _count(self, outcome: str, stream: str, started: float | None = None) -> None:
        inst = instruments()
        inst.consumer_entries.add(1, {"group": self.group, "outcome": outcome})
        if started is not None:
            inst.handler_duration.record(
                time.perf_counter() - started,
                {"group": self.group, "stream": stream, "outcome": outcome},
            )

    async def _keep_held(self) -> None:
        """Reset the idle time of every entry this consumer holds, so nobody else claims it."""
        interval = self.config.claim_idle_ms / 3000
        while True:
            await asyncio.sleep(interval)
            for stream, ids in [(s, i) for s, i in self._held.items() if i]:
                # Losing Redis for a moment only risks a duplicate delivery, which handlers absorb.
                with contextlib.suppress(*REDIS_DOWN, ResponseError):
                    await self.redis.xclaim(
                        stream, self.group, self.consumer, 0, list(ids), justid=True
                    )

    async def _claim_idle(self) -> None:
        """Claim entries idle past ``claim_idle_ms``, resuming where the last pass stopped."""
        for stream in self.streams:
            reply = await self.redis.xautoclaim(
                stream,
                self.group,
                self.consumer,
                self.config.claim_idle_ms,
                self._cursors.get(stream, "0-0"),
                count=self.config.count,
            )
            cursor = reply[0] if reply else b"0-0"
            self._cursors[stream] = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            entries = reply[1] if len(reply) > 1 else []
            await self._process(stream, [(e.decode(), f) for e, f in entries], claimed=True)

    async def _claimed(self, stream: str, entry_id: str, fields: Fields) -> None:
        """Handle a claimed entry again, or dead-letter it when it failed too often."""
        key = entry_key(self.group, stream, entry_id)
        info = await self.redis.xpending_range(stream, self.group, entry_id, entry_id, 1)
        deliveries = info[0]["times_delivered"] if info else 1
        retries = int(await self.redis.hget(RETRIES_KEY, key) or 0)
        failures = deliveries - retries  # deliveries that failed because of the entry itself
        if failures > self.config.max_deliveries or retries > self.config.max_retryable_deliveries:
            with self._traced("dead-letter", stream, entry_id, fields):
                await self._dead_letter(stream, entry_id, fields, failures - 1, retries)
            return
        log.info(
            "entry_claimed",
            group=self.group,
            stream=stream,
            entry_id=entry_id,
            deliveries=deliveries,
            retryable_failures=retries,
        )
        await self._handle(stream, entry_id, fields)

    async def _dead_letter(
        self, stream: str, entry_id: str, fields: Fields, failures: int, retries: int
    ) -> None:
        """Move the entry to ``<stream>.dlq`` once, run the hook, then acknowledge it."""
        reason = await dlq_path.reason(self.redis, self.group, stream, entry_id, failures, retries)
        created = await dlq_path.write(
            self.redis, self.group, stream, entry_id, fields, reason, self.config.dlq_maxlen
        )
        if created:
            await self.redis.hincrby(DEAD_LETTERS_KEY, f"{self.group}|{stream}", 1)
        if self.on_dead_letter is not None:
            try:
                await self.on_dead_letter(stream, entry_id, fields, reason)
            except RETRYABLE:
                raise  # the entry stays pending; the next claim finds its dead letter written
            except Exception as exc:  # poison in the hook too: it is in the DLQ; log, move on
                log.error(
                    "dead_letter_hook_failed",
                    group=self.group,
                    stream=stream,
                    entry_id=entry_id,
                    error=f"{type(exc).__name__}: {exc}"[:500],
                )
        await dlq_path.acknowledge(self.redis, self.group, stream, entry_id)
        self._count("dead_lettered", stream)
        log.error(
            "entry_dead_lettered", group=self.group, stream=stream, entry_id=entry_id, reason=reason
        )


def _text(fields: Fields, key: bytes) -> str | None:
    """A field as text, None when the entry lacks it."""
    value = fields.get(key)
    return value.decode(errors="replace") if value is not None else None
