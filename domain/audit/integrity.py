"""The event log's hash chain: each row's hash covers the previous hash and the row's content."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

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


# Hash schemes, stored per row (event_log.hash_scheme) so rows written before a scheme existed
# still verify. Scheme 1 rows predate migration 0003: they cover neither position nor trace context.
SCHEME_LEGACY, SCHEME_SHA256, SCHEME_HMAC = 1, 2, 3
SCHEMES = (SCHEME_LEGACY, SCHEME_SHA256, SCHEME_HMAC)
_NULL = b"\xff\xff\xff\xff"  # NULL, told apart from an empty value
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def row_message(row: Mapping[str, Any]) -> bytes:
    """Every stored column of a row (schemes 2 and 3), each length-prefixed, in a fixed order."""
    causation, trace = row["causation_id"], row["trace_context"]
    parts = [
        str(row["position"]).encode(),
        row["stream_id"].encode(),
        str(row["stream_version"]).encode(),
        row["event_id"].bytes,
        row["event_type"].encode(),
        str(row["schema_version"]).encode(),
        row["actor"].encode(),
        row["correlation_id"].bytes,
        None if causation is None else causation.bytes,
        None if trace is None else trace.encode(),
        str((row["recorded_at"] - _EPOCH) // _MICRO).encode(),
        str(row["hash_scheme"]).encode(),
        bytes(row["payload"]),
    ]
    return b"".join([_NULL if p is None else len(p).to_bytes(4, "big") + p for p in parts])


def chain_hash(
    prev_hash: bytes, row: Mapping[str, Any], key: bytes | None = None, message: bytes | None = None
) -> bytes:
    """The hash of a row under its own ``hash_scheme`` (scheme 3 needs the HMAC key);
    ``message`` is the row's ``row_message`` when the caller has it already."""
    scheme = row["hash_scheme"]
    if scheme == SCHEME_SHA256:
        return hashlib.sha256(prev_hash + (message or row_message(row))).digest()
    if scheme == SCHEME_HMAC:
        if not key:
            raise ValueError("an HMAC row needs AUDIT_HMAC_KEY to be hashed or checked")
        return hmac.digest(key, prev_hash + (message or row_message(row)), "sha256")
    if scheme == SCHEME_LEGACY:
        fields = ("stream_id", "stream_version", "event_id", "event_type", "schema_version")
        fields += ("payload", "actor", "correlation_id", "causation_id", "recorded_at")
        return row_hash(prev_hash, **{f: row[f] for f in fields})
    raise ValueError(f"unknown hash scheme {scheme!r}")


def key_id(key: bytes) -> str:
    """A public fingerprint of an HMAC key: names which key a log was adopted under."""
    return hmac.digest(key, b"platform audit key id", "sha256").hex()[:16]
