"""The event log's hash chain: each row's hash covers the previous hash and the row's content."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

GENESIS = b"\x00" * 32


def row_hash(
    prev_hash: bytes,
    *,
    stream_id: str,
    stream_version: int,
    event_id: uuid.UUID,
    event_type: str,
    schema_version: int,
    payload: bytes,
    actor: str,
    correlation_id: uuid.UUID,
    causation_id: uuid.UUID | None,
    recorded_at: datetime,
) -> bytes:
    """SHA-256 over the previous hash and every stored field of the row."""
    h = hashlib.sha256(prev_hash)
    header = "\x1f".join(
        [
            stream_id,
            str(stream_version),
            str(event_id),
            event_type,
            str(schema_version),
            actor,
            str(correlation_id),
            str(causation_id or ""),
            recorded_at.isoformat(timespec="microseconds"),
        ]
    )
    h.update(header.encode())
    h.update(b"\x1e")
    h.update(payload)
    return h.digest()
