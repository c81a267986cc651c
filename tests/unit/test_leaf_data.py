"""A leaf's data is a log row's canonical bytes: it decodes back to the row and its event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.audit.integrity import SCHEME_HMAC, SCHEME_SHA256, row_message
from domain.audit.leaf import LeafError, LeafRow, decode_leaf
from domain.audit.merkle import leaf_hash
from events.base import EventMetadata
from events.codec import encode_event, event_type_name
from events.registry import ArtifactMetadata, ModelVersionPromoted, ModelVersionRegistered

EVENT = ModelVersionRegistered(
    model_name="mnist",
    model_version="2.0.0",
    artifact_uri="file:///artifacts/mnist/2.0.0/model.pt",
    sha256="ab" * 32,
    size_bytes=1234,
    metadata=ArtifactMetadata(architecture="cnn", dataset="mnist", num_classes=10),
    tags={"team": "vision"},
    reason="first prod candidate",
)


def _row(event=EVENT, **changes) -> dict:
    """A row as storage.event_store.append builds it (the columns row_message covers)."""
    row = {
        "position": 17,
        "stream_id": "model-mnist",
        "stream_version": 3,
        "event_id": uuid.UUID(int=11),
        "event_type": event_type_name(event),
        "schema_version": event.schema_version,
        "payload": encode_event(event),
        "actor": "alice",
        "correlation_id": uuid.UUID(int=12),
        "causation_id": None,
        "trace_context": None,
        "recorded_at": datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC),
        "hash_scheme": SCHEME_SHA256,
    }
    row.update(changes)
    return row


def _fields(leaf: LeafRow) -> dict:
    return {k: getattr(leaf, k) for k in _row() if k != "payload"} | {"payload": leaf.payload}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"causation_id": uuid.UUID(int=13), "trace_context": "00-abc-def-01"},
        {"trace_context": "", "actor": "bob é", "hash_scheme": SCHEME_HMAC},  # empty is not NULL
        {"position": 1, "stream_version": 1, "recorded_at": datetime(1970, 1, 1, tzinfo=UTC)},
        {"payload": b""},
    ],
)
def test_a_row_decodes_back_to_every_field(changes: dict) -> None:
    row = _row(**changes)
    leaf = decode_leaf(row_message(row))
    assert _fields(leaf) == row
    assert leaf.recorded_at.tzinfo is not None


def test_null_and_empty_are_told_apart() -> None:
    none, empty = _row(trace_context=None), _row(trace_context="")
    assert row_message(none) != row_message(empty)
    assert decode_leaf(row_message(none)).trace_context is None
    assert decode_leaf(row_message(empty)).trace_context == ""


def test_recorded_gives_the_event_with_its_envelope() -> None:
    row = _row(causation_id=uuid.UUID(int=13), trace_context="00-abc-def-01")
    rec = decode_leaf(row_message(row)).recorded()
    assert rec.event == EVENT
    assert (rec.position, rec.stream_id, rec.stream_version) == (17, "model-mnist", 3)
    assert rec.event_id == uuid.UUID(int=11)
    assert rec.recorded_at == row["recorded_at"]
    assert rec.metadata == EventMetadata(
        actor="alice",
        correlation_id=uuid.UUID(int=12),
        causation_id=uuid.UUID(int=13),
        trace_context="00-abc-def-01",
    )
    promoted = ModelVersionPromoted(model_name="mnist", model_version="2.0.0", gate_id="g-1")
    assert decode_leaf(row_message(_row(promoted))).recorded().event == promoted


def test_an_unknown_event_type_fails_only_when_the_event_is_read() -> None:
    leaf = decode_leaf(row_message(_row(event_type="NoSuchEvent")))
    assert leaf.event_type == "NoSuchEvent"
    with pytest.raises(ValueError, match="unknown event type"):
        leaf.recorded()


def test_every_field_is_covered_by_the_leaf_hash() -> None:
    base = leaf_hash(row_message(_row()))
    changes = {
        "position": 18,
        "stream_id": "model-other",
        "stream_version": 4,
        "event_id": uuid.UUID(int=99),
        "event_type": "ModelVersionPromoted",
        "schema_version": 2,
        "payload": encode_event(EVENT) + b" ",
        "actor": "mallory",
        "correlation_id": uuid.UUID(int=98),
        "causation_id": uuid.UUID(int=97),
        "trace_context": "t",
        "recorded_at": datetime(2026, 3, 4, 5, 6, 7, 891012, tzinfo=UTC),
        "hash_scheme": SCHEME_HMAC,
    }
    for key, value in changes.items():
        assert leaf_hash(row_message(_row(**{key: value}))) != base, key


GOOD = row_message(_row())


def _field(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _with(index: int, raw: bytes | None) -> bytes:
    """GOOD with field ``index`` replaced by ``raw`` (None: the NULL marker)."""
    out, i, n = b"", 0, 0
    while i < len(GOOD):
        head = GOOD[i : i + 4]
        size = 0 if head == b"\xff\xff\xff\xff" else int.from_bytes(head, "big")
        part = GOOD[i : i + 4 + size]
        out += part if n != index else (b"\xff\xff\xff\xff" if raw is None else _field(raw))
        i, n = i + 4 + size, n + 1
    return out


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5, 40, len(GOOD) - 1])
def test_truncated_leaf_data_is_refused(cut: int) -> None:
    with pytest.raises(LeafError):
        decode_leaf(GOOD[:-cut])


@pytest.mark.parametrize(
    "extra", [b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", _field(b"x")]
)
def test_extra_bytes_are_refused(extra: bytes) -> None:
    with pytest.raises(LeafError):
        decode_leaf(GOOD + extra)


@pytest.mark.parametrize(
    ("index", "raw"),
    [
        (0, b"seventeen"),  # position not a number
        (0, None),  # required fields cannot be NULL
        (1, None),
        (4, None),
        (12, None),
        (1, b"\xff\xfe"),  # not UTF-8
        (3, b"\x00" * 15),  # event id not 16 bytes
        (7, b"\x00" * 17),  # correlation id not 16 bytes
        (8, b"\x01"),  # causation id not 16 bytes
        (10, b"yesterday"),  # recorded_at not microseconds
        (11, b""),  # hash scheme empty
    ],
)
def test_malformed_fields_are_refused(index: int, raw: bytes | None) -> None:
    assert decode_leaf(_with(index, GOOD_FIELDS[index])) == decode_leaf(GOOD)  # the helper is exact
    with pytest.raises(LeafError):
        decode_leaf(_with(index, raw))


def _split(data: bytes) -> list[bytes | None]:
    out, i = [], 0
    while i < len(data):
        head = data[i : i + 4]
        if head == b"\xff\xff\xff\xff":
            out.append(None)
            i += 4
            continue
        size = int.from_bytes(head, "big")
        out.append(data[i + 4 : i + 4 + size])
        i += 4 + size
    return out


GOOD_FIELDS = _split(GOOD)


def test_garbage_is_refused() -> None:
    for data in (b"", b"\x00", b"\x00\x00\x00\x05abc", b"\xff" * 52, b"x" * 100):
        with pytest.raises(LeafError):
            decode_leaf(data)
