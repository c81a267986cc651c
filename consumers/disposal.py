"""What becomes of one delivered entry: handled and acknowledged, kept pending with its error,
or, once it failed too often, dead-lettered to ``<stream>.dlq`` and acknowledged.

Each attempt runs in a consumer span that continues the entry's trace and is counted in the
``consumer_entries`` and ``consumer_handler_seconds`` metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from opentelemetry.trace import SpanKind, StatusCode

from consumers import dead_letter_path as dlq_path
from consumers.delivery import (
    RETRYABLE,
    Fields,
    RunnerConfig,
    acknowledge,
    failures,
    record_failure,
)
from events.dead_letters import DLQ_EVENTS
from events.streams import DEAD_LETTERS_KEY
from observability.metrics import instruments
from observability.tracing import context_from, tracer

log = structlog.get_logger("consumer")

Handler = Callable[[str, str, Fields], Awaitable[None]]
DeadLetter = Callable[[str, str, Fields, str], Awaitable[None]]


@dataclass
class Disposal:
    """Handles, retries and dead-letters the entries of one group for its runner."""

    redis: aioredis.Redis
    group: str
    handler: Handler
    config: RunnerConfig
    on_dead_letter: DeadLetter | None = None

    async def handle(self, stream: str, entry_id: str, fields: Fields) -> None:
        """Call the handler once; acknowledge on success, keep the error otherwise."""
        with self._traced("process", stream, entry_id, fields) as span:
            await self._handle_in_span(stream, entry_id, fields, span)

    async def _handle_in_span(self, stream: str, entry_id: str, fields: Fields, span) -> None:
        started = time.perf_counter()
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
            await record_failure(self.redis, self.group, stream, entry_id, reason, retryable)
            return
        await acknowledge(self.redis, self.group, stream, entry_id)
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

    async def claimed(self, stream: str, entry_id: str, fields: Fields) -> None:
        """Handle a claimed entry again, or dead-letter it when it failed too often."""
        deliveries, retries, failed = await failures(self.redis, self.group, stream, entry_id)
        if failed > self.config.max_deliveries or retries > self.config.max_retryable_deliveries:
            with self._traced("dead-letter", stream, entry_id, fields):
                await self._dead_letter(stream, entry_id, fields, failed - 1, retries)
            return
        log.info(
            "entry_claimed",
            group=self.group,
            stream=stream,
            entry_id=entry_id,
            deliveries=deliveries,
            retryable_failures=retries,
        )
        await self.handle(stream, entry_id, fields)

    async def _dead_letter(
        self, stream: str, entry_id: str, fields: Fields, failed: int, retries: int
    ) -> None:
        """Move the entry to ``<stream>.dlq`` once, run the hook, then acknowledge it."""
        reason = await dlq_path.reason(self.redis, self.group, stream, entry_id, failed, retries)
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
        await acknowledge(self.redis, self.group, stream, entry_id)
        self._count("dead_lettered", stream)
        log.error(
            "entry_dead_lettered", group=self.group, stream=stream, entry_id=entry_id, reason=reason
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


def _text(fields: Fields, key: bytes) -> str | None:
    """A field as text, None when the entry lacks it."""
    value = fields.get(key)
    return value.decode(errors="replace") if value is not None else None
