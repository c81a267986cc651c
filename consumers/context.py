"""What the consumer groups of one worker process share: the command bus, and their name."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from domain.bus import MessageBus
from domain.delivery import Delivery
from events.base import EventMetadata
from observability.tracing import current_traceparent


def consumer_name() -> str:
    """Unique per process, so a restarted worker never inherits a dead one's entries by name."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, kw_only=True)
class WorkerContext:
    """What the group modules use, built once by the composition root (bootstrap.worker)."""

    bus: MessageBus
    name: str = field(default_factory=consumer_name)

    def metadata(self, group: str, fields: dict[bytes, bytes]) -> EventMetadata:
        """Events caused by an entry carry its correlation id and name it as their cause."""
        corr = fields.get(b"correlation_id", b"").decode()
        cause = fields.get(b"event_id", b"").decode()
        return EventMetadata(
            actor=f"worker:{group}@{self.name}",
            correlation_id=uuid.UUID(corr) if corr else uuid.uuid4(),
            causation_id=uuid.UUID(cause) if cause else None,
            # The handler's span (consumers/disposal.py), which continues the entry's trace.
            trace_context=current_traceparent()
            or (fields.get(b"traceparent") or fields.get(b"trace_context") or b"").decode()
            or None,
        )


def event_id(fields: dict[bytes, bytes]) -> uuid.UUID:
    """The event id of a relayed event entry (the dedupe key)."""
    return uuid.UUID(fields[b"event_id"].decode())


def delivery(group: str, fields: dict[bytes, bytes]) -> Delivery:
    """The delivery of a relayed event entry to ``group`` (recorded as processed)."""
    return Delivery(group=group, event_id=event_id(fields))
