"""Commands of dead letters, in the imperative: what an operator asks for one of them.

The id is ``[<dlq stream>/]<entry id>`` as ``just dlq`` lists it.
"""

from __future__ import annotations

import msgspec

from events.base import EventMetadata


class RetryDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """Hand a dead letter back to its group, which handles it again."""

    dead_letter_id: str
    reason: str | None = None
    metadata: EventMetadata


class DropDeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """Discard a dead letter (recorded first, then removed from its DLQ stream)."""

    dead_letter_id: str
    reason: str | None = None
    metadata: EventMetadata


class ListDeadLetters(msgspec.Struct, frozen=True, kw_only=True):
    """Read the dead letters of one stream (or of all), oldest first."""

    stream: str | None = None
    limit: int = 100
