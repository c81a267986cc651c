"""Events of dead-lettered stream entries (area ``dlq``): an operator retried or dropped one.

Each dead letter has its own log stream, ``dead-letter-<dlq stream>/<entry id>``. The relay
publishes these events to ``dlq.events``, which every consumer group also reads: the group
named in a ``DeadLetterRetried`` handles the dead-lettered entry again.
"""

from __future__ import annotations

from typing import ClassVar

from events.base import Event

DEAD_LETTER_STREAM_PREFIX = "dead-letter-"
DLQ_EVENTS = "dlq.events"
# Fields the runner adds to an entry when it dead-letters it (the rest are the entry's own).
DLQ_FIELDS = (b"dlq_reason", b"dlq_group", b"dlq_entry_id", b"dlq_stream")


def dead_letter_stream_id(dlq_stream: str, entry_id: str) -> str:
    """The event-log stream id of one dead-lettered entry."""
    return f"{DEAD_LETTER_STREAM_PREFIX}{dlq_stream}/{entry_id}"


class DeadLetterRetried(Event, frozen=True, kw_only=True):
    """The entry ``entry_id`` of ``dlq_stream`` goes back to ``group``, as if from ``stream``."""

    area: ClassVar[str] = "dlq"
    dlq_stream: str
    entry_id: str
    group: str
    stream: str
    original_id: str
    reason: str | None = None


class DeadLetterDropped(Event, frozen=True, kw_only=True):
    """The entry ``entry_id`` of ``dlq_stream`` was discarded."""

    area: ClassVar[str] = "dlq"
    dlq_stream: str
    entry_id: str
    group: str
    stream: str
    original_id: str
    reason: str | None = None


DeadLetterEvent = DeadLetterRetried | DeadLetterDropped
