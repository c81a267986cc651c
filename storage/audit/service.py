"""The audit adapters behind one object, for the composition root to hand to entrypoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.audit.reports import Anchor, AuditReport, ModelAt, TrailEntry, TrailFilter
from storage.audit.auditor import Auditor, LogKeys
from storage.audit.replay import EventLogReader, create_replay_group
from storage.audit.stream_replay import stream_trail
from storage.audit.streams import event_streams
from storage.errors import postgres_errors, redis_errors


class AuditService:
    """Audit, anchor, replay (from the log or the streams) and point-in-time queries."""

    def __init__(
        self,
        engine: AsyncEngine,
        redis: aioredis.Redis,
        log_keys: Callable[[], LogKeys] | None = None,
    ) -> None:
        self._auditor = Auditor(engine, redis, log_keys)
        self._reader = EventLogReader(engine)
        self._engine, self._redis = engine, redis

    async def audit(self, anchor: Anchor | None = None, key: bytes | None = None) -> AuditReport:
        """Every check (chain, anchor, projections, streams) over one snapshot."""
        async with postgres_errors(), redis_errors():
            return await self._auditor.run(anchor=anchor, key=key)

    async def head(self) -> Anchor | None:
        """The current head of the log, None when the log is empty."""
        async with postgres_errors():
            return await self._auditor.head()

    async def trail(
        self, f: TrailFilter, *, limit: int | None = None
    ) -> AsyncIterator[list[TrailEntry]]:
        """The filtered trail from PostgreSQL, chunk by chunk."""
        async with postgres_errors():
            async for chunk in self._reader.trail(f, limit=limit):
                yield chunk

    async def page(self, f: TrailFilter, limit: int) -> tuple[list[TrailEntry], int | None]:
        """One page of the trail and the position to continue after."""
        async with postgres_errors():
            return await self._reader.page(f, limit)

    async def stream_trail(
        self, f: TrailFilter
    ) -> AsyncIterator[tuple[TrailEntry | None, str | None, int]]:
        """The trail read from Redis Streams, each entry checked against the log."""
        async with postgres_errors(), redis_errors():
            async for item in stream_trail(self._engine, self._redis, f):
                yield item

    async def model_at(self, model_name: str, at: datetime) -> ModelAt:
        """A model's versions and prod at a moment."""
        async with postgres_errors():
            return await self._reader.model_at(model_name, at)

    async def replay_group(self, stream: str, group: str, from_position: int) -> str:
        """A new consumer group starting at a log position; returns the id it starts after."""
        async with redis_errors():
            return await create_replay_group(self._redis, stream, group, from_position)

    @staticmethod
    def streams() -> list[str]:
        """The event streams of every area."""
        return event_streams()
