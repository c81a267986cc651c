"""A thin consumer-group runner on redis.asyncio: batching, claiming, dead-lettering, self-heal.

Delivery is at least once; handlers make the effect exactly once (processed rows, primary
keys). A failing entry stays pending; after ``claim_idle_ms`` any live consumer claims it,
and past ``max_deliveries`` it goes to ``<stream>.dlq`` with the last error as its reason.
A backing service's failure (ServiceUnavailable, Redis) is retried without counting, up to
``max_retryable_deliveries``. Every entry held here is kept claimed until it is handled.

This module reads, batches, claims and holds entries; ``consumers.disposal`` decides what
becomes of each one, and ``consumers.delivery`` keeps the accounting in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ResponseError

from consumers.delivery import REDIS_DOWN, Fields, RunnerConfig, acknowledge
from consumers.disposal import DeadLetter, Disposal, Handler

log = structlog.get_logger("consumer")

# RunnerConfig, Handler and DeadLetter are part of the runner's interface.
__all__ = ["DeadLetter", "GroupCreated", "GroupRunner", "Handler", "RunnerConfig"]
GroupCreated = Callable[[str], Awaitable[None]]


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
    _disposal: Disposal = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._disposal = Disposal(
            self.redis, self.group, self.handler, self.config, self.on_dead_letter
        )

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
                        await acknowledge(self.redis, self.group, stream, entry_id)
                    elif claimed:
                        await self._disposal.claimed(stream, entry_id, fields)
                    else:
                        await self._disposal.handle(stream, entry_id, fields)
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
