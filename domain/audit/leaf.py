"""A Merkle leaf's data is a log row's canonical bytes (integrity.row_message); read them back.

The verifier trusts nothing but the bytes it hashed, so it takes every field it shows (stream,
type, actor, time, payload) from the leaf data itself, never from a side copy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from events.base import RecordedEvent
from events.codec import recorded_from_row

_NULL = b"\xff\xff\xff\xff"
_FIELDS = 13
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LeafError(ValueError):
    """Leaf data that is not a row's canonical bytes."""


@dataclass(frozen=True)
class LeafRow:
    """The stored columns of one log row, as its leaf data carries them."""

    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    actor: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    trace_context: str | None
    recorded_at: datetime
    hash_scheme: int
    payload: bytes

    def recorded(self) -> RecordedEvent:
        """The row as a decoded event (raises what the codec raises for an unknown payload)."""
        return recorded_from_row(self)


def _parts(data: bytes) -> list[bytes | None]:
    parts: list[bytes | None] = []
    i = 0
    while i < len(data):
        head = data[i : i + 4]
        if len(head) < 4:
            raise LeafError("leaf data ends inside a length prefix")
        i += 4
        if head == _NULL:
            parts.append(None)
            continue
        n = int.from_bytes(head, "big")
        if i + n > len(data):
            raise LeafError("leaf data ends inside a field")
        parts.append(data[i : i + n])
        i += n
    if len(parts) != _FIELDS:
        raise LeafError(f"leaf data has {len(parts)} fields, a log row has {_FIELDS}")
    return parts


def decode_leaf(data: bytes) -> LeafRow:
    """The row a leaf's data describes; LeafError when the bytes are not one."""
    p = _parts(data)
    required = (0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12)
    if any(p[i] is None for i in required):
        raise LeafError("leaf data has an empty required field")
    try:
        text = [None if i in (3, 7, 8) or x is None else x.decode() for i, x in enumerate(p[:12])]
        return LeafRow(
            position=int(text[0]),
            stream_id=text[1],
            stream_version=int(text[2]),
            event_id=uuid.UUID(bytes=p[3]),
            event_type=text[4],
            schema_version=int(text[5]),
            actor=text[6],
            correlation_id=uuid.UUID(bytes=p[7]),
            causation_id=None if p[8] is None else uuid.UUID(bytes=p[8]),
            trace_context=text[9],
            recorded_at=_EPOCH + timedelta(microseconds=int(text[10])),
            hash_scheme=int(text[11]),
            payload=p[12],
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise LeafError(f"leaf data is malformed: {exc}") from None
