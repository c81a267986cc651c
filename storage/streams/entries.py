"""The Redis stream entry of one event log row, as the relay writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def entry_fields(row: Mapping[str, Any]) -> dict[str, str | bytes]:
    """The Redis stream entry of one log row (a row mapping or an asyncpg record)."""
    return {
        "event_id": str(row["event_id"]),
        "type": row["event_type"],
        "schema_version": str(row["schema_version"]),
        "stream_id": row["stream_id"],
        "stream_version": str(row["stream_version"]),
        "position": str(row["position"]),
        "payload": bytes(row["payload"]),
        "actor": row["actor"],
        "correlation_id": str(row["correlation_id"]),
        "causation_id": str(row["causation_id"] or ""),
        "recorded_at": row["recorded_at"].isoformat(),
        "trace_context": row["trace_context"] or "",
        # The chain travels with every entry: Redis then holds an anchor outside PostgreSQL,
        # so a deleted tail of the log shows up as entries the log no longer has.
        "hash": bytes(row["hash"]).hex(),
        "hash_scheme": str(row["hash_scheme"]),
    }


# Entries published before the audit issue lack these; every other field is always there.
LATER_FIELDS = frozenset({"trace_context", "hash", "hash_scheme"})
