"""Base types shared by every event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """A fact that happened. Subclasses are tagged by class name on the wire."""

    schema_version: ClassVar[int] = 1
    area: ClassVar[str] = "registry"


class EventMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Who caused an event and why: kept beside the payload, not inside it."""

    actor: str
    correlation_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    causation_id: uuid.UUID | None = None
    trace_context: str | None = None


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored in the log, with its position and envelope."""

    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    recorded_at: datetime
    metadata: EventMetadata
    event: Event
