"""Registered models over the event log, with their projection kept in the same transaction."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.registry import ModelState, evolve, fold
from events.base import Event, EventMetadata, RecordedEvent
from events.streams import model_stream_id
from storage import event_store
from storage.errors import postgres_errors
from storage.projections import REGISTRY_PROJECTION, set_checkpoint, write_model_projection


class PostgresModelStore:
    """Implements domain.ports.ModelStore inside one unit of work's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def load(self, model_name: str) -> ModelState:
        """Fold the model's stream."""
        return fold(
            model_name, await event_store.load_stream(self.conn, model_stream_id(model_name))
        )

    async def save(
        self, state: ModelState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append to the model's stream and update its projection rows."""
        if not events:
            return []
        recorded = await event_store.append(
            self.conn, model_stream_id(state.model_name), state.stream_version, events, metadata
        )
        for r in recorded:
            evolve(state, r)
        await write_model_projection(self.conn, state)
        await set_checkpoint(self.conn, REGISTRY_PROJECTION, recorded[-1].position)
        return recorded


class PostgresRegistrationLock:
    """Implements domain.ports.RegistrationLock with a session advisory lock."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def __call__(self, model_name: str, model_version: str) -> AsyncIterator[None]:
        """Hold the advisory lock of (model, version) for the block."""
        digest = hashlib.sha256(f"register/{model_name}/{model_version}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        async with postgres_errors(), self.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                await conn.commit()
