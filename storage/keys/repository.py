"""API keys over the event log, with their api_keys projection kept in the same transaction."""

from __future__ import annotations

from domain.keys.aggregate import ApiKeyState
from storage.keys.projection import KEYS
from storage.repository import EventSourcedRepository


class PostgresKeyStore(EventSourcedRepository[ApiKeyState]):
    """Implements domain.keys.ports.KeyStore inside one unit of work's connection."""

    projection = KEYS
