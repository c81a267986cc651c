"""Registered models over the event log, with their projection kept in the same transaction."""

from __future__ import annotations

from domain.registry.state import ModelState
from storage.registry.lock import PostgresRegistrationLock
from storage.registry.projection import MODELS
from storage.repository import EventSourcedRepository

__all__ = ["PostgresModelStore", "PostgresRegistrationLock"]


class PostgresModelStore(EventSourcedRepository[ModelState]):
    """Implements domain.registry.store.ModelStore inside one unit of work's connection."""

    projection = MODELS
