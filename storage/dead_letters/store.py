"""Dead letters: the ``<stream>.dlq`` streams in Redis and each dead letter's log stream."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.dead_letters.aggregate import DeadLetterState, DeadLetterView, fold
from domain.errors import InvalidInput
from events.base import Event, EventMetadata, RecordedEvent
from events.dead_letters import dead_letter_stream_id
from events.streams import dead_letter_stream
from storage import event_store
from storage.errors import on_postgres, on_redis
from storage.streams.admin import STREAMS


def _text(fields: dict[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    return value.decode(errors="replace") if value is not None else None


def view(dlq_stream: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetterView:
    """What an operator sees of one dead-lettered entry."""
    shard = fields.get(b"shard", b"")
    return DeadLetterView(
        dlq_stream=dlq_stream,
        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        stream=_text(fields, b"dlq_stream") or dlq_stream.removesuffix(".dlq"),
        group=_text(fields, b"dlq_group") or "",
        original_id=_text(fields, b"dlq_entry_id") or "",
        reason=_text(fields, b"dlq_reason") or "",
        type=_text(fields, b"type"),
        job_id=_text(fields, b"job_id"),
        shard=int(shard) if shard.isdigit() else None,
    )


class RedisDeadLetterQueue:
    """Implements domain.dead_letters.ports.DeadLetterQueue over every platform stream's DLQ."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.dlq_streams = [dead_letter_stream(s) for s in STREAMS]

    def _chosen(self, stream: str | None) -> list[str]:
        if stream is None:
            return self.dlq_streams
        name = stream if stream.endswith(".dlq") else dead_letter_stream(stream)
        if name not in self.dlq_streams:
            known = ", ".join(s.removesuffix(".dlq") for s in self.dlq_streams)
            raise InvalidInput(f"unknown stream {stream!r}; choose from {known}")
        return [name]

    @on_redis
    async def list(self, stream: str | None, limit: int) -> list[DeadLetterView]:
        """Dead letters of one stream or of all, oldest first."""
        found = []
        for name in self._chosen(stream):
            for entry_id, fields in await self.redis.xrange(name, count=limit):
                found.append(view(name, entry_id, fields))
        found.sort(key=lambda v: tuple(int(p) for p in v.entry_id.split("-")))
        return found[:limit]

    @on_redis
    async def find(self, dlq_stream: str | None, entry_id: str) -> list[DeadLetterView]:
        """The dead letters with this id, in one DLQ stream or in any."""
        found = []
        for name in self._chosen(dlq_stream):
            for eid, fields in await self.redis.xrange(name, entry_id, entry_id):
                found.append(view(name, eid, fields))
        return found

    @on_redis
    async def remove(self, dlq_stream: str, entry_id: str) -> None:
        """Delete one dead letter (nothing if it is gone already)."""
        await self.redis.xdel(dlq_stream, entry_id)


class PostgresDeadLetterLog:
    """Implements domain.dead_letters.ports.DeadLetterLog: one log stream per dead letter."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @on_postgres
    async def load(self, dlq_stream: str, entry_id: str) -> DeadLetterState:
        """Fold the dead letter's stream."""
        async with self.engine.connect() as conn:
            stream_id = dead_letter_stream_id(dlq_stream, entry_id)
            return fold(await event_store.load_stream(conn, stream_id))

    @on_postgres
    async def save(
        self,
        dlq_stream: str,
        entry_id: str,
        state: DeadLetterState,
        events: list[Event],
        metadata: EventMetadata,
    ) -> list[RecordedEvent]:
        """Append at ``state.stream_version``, in a transaction of its own."""
        if not events:
            return []
        stream_id = dead_letter_stream_id(dlq_stream, entry_id)
        async with event_store.begin_logged(self.engine) as conn:
            return await event_store.append(conn, stream_id, state.stream_version, events, metadata)
