"""The hash chain covers every stored field of a row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.audit.integrity import GENESIS, row_hash

BASE = {
    "stream_id": "model-a",
    "stream_version": 1,
    "event_id": uuid.UUID(int=1),
    "event_type": "ModelVersionRegistered",
    "schema_version": 1,
    "payload": b'{"a":1}',
    "actor": "alice",
    "correlation_id": uuid.UUID(int=2),
    "causation_id": None,
    "recorded_at": datetime(2026, 1, 1, tzinfo=UTC),
}

CHANGES = {
    "stream_id": "model-b",
    "stream_version": 2,
    "event_id": uuid.UUID(int=3),
    "event_type": "ModelVersionPromoted",
    "schema_version": 2,
    "payload": b'{"a":2}',
    "actor": "mallory",
    "correlation_id": uuid.UUID(int=4),
    "causation_id": uuid.UUID(int=5),
    "recorded_at": datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
}


def test_hash_is_deterministic() -> None:
    assert row_hash(GENESIS, **BASE) == row_hash(GENESIS, **BASE)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_any_field_changes_the_hash(field: str) -> None:
    assert row_hash(GENESIS, **BASE) != row_hash(GENESIS, **{**BASE, field: CHANGES[field]})


def test_hash_depends_on_previous_hash() -> None:
    assert row_hash(GENESIS, **BASE) != row_hash(b"\x01" * 32, **BASE)
