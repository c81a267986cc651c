"""API keys over the event log, with their api_keys projection kept in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.keys.aggregate import ApiKeyState, evolve_key, fold_key
from events.base import Event, EventMetadata, RecordedEvent
from events.keys import key_stream_id
from storage import event_store
from storage.projections import KEY_PROJECTION, set_checkpoint, write_key_projection


class PostgresKeyStore:
    """Implements domain.keys.ports.KeyStore inside one unit of work's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def load(self, key_name: str) -> ApiKeyState:
        """Fold the key name's stream."""
        return fold_key(key_name, await event_store.load_stream(self.conn, key_stream_id(key_name)))

    async def save(
        self, state: ApiKeyState, events: list[Event], metadata: EventMetadata
    ) -> list[RecordedEvent]:
        """Append to the key's stream and update its api_keys row."""
        if not events:
            return []
        recorded = await event_store.append(
            self.conn, key_stream_id(state.key_name), state.stream_version, events, metadata
        )
        for r in recorded:
            evolve_key(state, r)
        await write_key_projection(self.conn, state)
        await set_checkpoint(self.conn, KEY_PROJECTION, recorded[-1].position)
        return recorded
