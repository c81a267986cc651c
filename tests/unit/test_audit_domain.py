"""Pure audit pieces: hash schemes, anchors, point-in-time folds, recipes, traceparent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.auth import traceparent
from domain.audit.integrity import GENESIS, SCHEME_HMAC, SCHEME_LEGACY, SCHEME_SHA256, chain_hash
from domain.audit.reports import (
    Anchor,
    AuditReport,
    Finding,
    TrailFilter,
    model_at,
    parse_time,
    recipe_from_metadata,
)
from domain.errors import InvalidInput
from events.base import EventMetadata, RecordedEvent
from events.registry import ModelVersionPromoted, ModelVersionRegistered, ModelVersionRolledBack

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ROW = {
    "position": 7,
    "stream_id": "model-a",
    "stream_version": 1,
    "event_id": uuid.UUID(int=1),
    "event_type": "ModelVersionRegistered",
    "schema_version": 1,
    "payload": b'{"a":1}',
    "actor": "alice",
    "correlation_id": uuid.UUID(int=2),
    "causation_id": None,
    "trace_context": None,
    "recorded_at": T0,
    "hash_scheme": SCHEME_SHA256,
}
CHANGES = {
    "position": 8,
    "stream_id": "model-b",
    "stream_version": 2,
    "event_id": uuid.UUID(int=3),
    "event_type": "ModelVersionPromoted",
    "schema_version": 2,
    "payload": b'{"a":2}',
    "actor": "mallory",
    "correlation_id": uuid.UUID(int=4),
    "causation_id": uuid.UUID(int=5),
    "trace_context": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    "recorded_at": T0 + timedelta(microseconds=1),
    "hash_scheme": SCHEME_HMAC,
}


@pytest.mark.parametrize("column", sorted(CHANGES))
def test_the_hash_covers_every_stored_column(column: str) -> None:
    key = b"k" * 32
    changed = {**ROW, column: CHANGES[column]}
    assert chain_hash(GENESIS, ROW, key) != chain_hash(GENESIS, changed, key)


def test_null_and_empty_are_told_apart_and_the_previous_hash_counts() -> None:
    assert chain_hash(GENESIS, ROW) != chain_hash(GENESIS, {**ROW, "trace_context": ""})
    assert chain_hash(GENESIS, ROW) != chain_hash(b"\x01" * 32, ROW)


def test_an_hmac_needs_the_key_and_depends_on_it() -> None:
    row = {**ROW, "hash_scheme": SCHEME_HMAC}
    with pytest.raises(ValueError, match="AUDIT_HMAC_KEY"):
        chain_hash(GENESIS, row)
    assert chain_hash(GENESIS, row, b"a" * 32) != chain_hash(GENESIS, row, b"b" * 32)
    assert chain_hash(GENESIS, row, b"a" * 32) != chain_hash(GENESIS, ROW, b"a" * 32)


def test_legacy_rows_keep_their_old_hash() -> None:
    from domain.audit.integrity import row_hash

    legacy = {**ROW, "hash_scheme": SCHEME_LEGACY}
    fields = {k: v for k, v in ROW.items() if k not in ("position", "trace_context", "hash_scheme")}
    assert chain_hash(GENESIS, legacy) == row_hash(GENESIS, **fields)


def test_an_anchor_line_round_trips_and_bad_lines_say_why() -> None:
    a = Anchor(12, "ab" * 32, T0)
    assert Anchor.parse(a.line()) == a
    assert " " not in a.line()
    with pytest.raises(InvalidInput, match="lacks hash, time"):
        Anchor.parse("position=3")
    with pytest.raises(InvalidInput, match="malformed"):
        Anchor.parse(f"position=x,hash={'ab' * 32},time={T0.isoformat()}")
    with pytest.raises(InvalidInput, match="64 hex"):
        Anchor.parse(f"position=3,hash=abcd,time={T0.isoformat()}")


def test_the_first_bad_position_prefers_exact_checks() -> None:
    report = AuditReport(
        findings=[Finding("projections", 4, "as of 4"), Finding("streams", 5, "holds 5")]
    )
    assert report.first_bad_position == 5 and not report.ok
    assert AuditReport(findings=[Finding("projections", 4, "x")]).first_bad_position == 4
    assert AuditReport().ok and AuditReport().first_bad_position is None


def _recorded(position: int, event, minutes: int) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream_id="model-m",
        stream_version=position,
        event_id=uuid.uuid4(),
        recorded_at=T0 + timedelta(minutes=minutes),
        metadata=EventMetadata(actor="alice"),
        event=event,
    )


def test_model_at_folds_only_what_happened_before_the_moment() -> None:
    reg = {"artifact_uri": "x", "size_bytes": 1}
    history = [
        _recorded(
            1, ModelVersionRegistered(model_name="m", model_version="v1", sha256="1" * 64, **reg), 0
        ),
        _recorded(
            2, ModelVersionRegistered(model_name="m", model_version="v2", sha256="2" * 64, **reg), 1
        ),
        _recorded(3, ModelVersionPromoted(model_name="m", model_version="v1"), 2),
        _recorded(
            4, ModelVersionPromoted(model_name="m", model_version="v2", previous_prod="v1"), 3
        ),
        _recorded(5, ModelVersionRolledBack(model_name="m", from_version="v2", to_version="v1"), 4),
    ]
    at = [model_at("m", T0 + timedelta(minutes=m, seconds=30), history) for m in range(5)]
    assert [v.prod_version for v in at] == [None, None, "v1", "v2", "v1"]
    assert [len(v.versions) for v in at] == [1, 2, 2, 2, 2]
    assert [v.as_of_position for v in at] == [1, 2, 3, 4, 5]
    assert {v.model_version: v.status for v in at[3].versions} == {"v1": "staging", "v2": "prod"}
    assert model_at("m", T0 - timedelta(seconds=1), history).as_of_position is None


def test_times_and_filters_are_checked() -> None:
    assert parse_time("2026-11-26") == datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_time("2026-11-26T12:00:00Z") == T0
    with pytest.raises(InvalidInput, match="not an ISO 8601 time"):
        parse_time("yesterday", "--since")
    with pytest.raises(InvalidInput, match="unknown event type 'Nope'; known: "):
        TrailFilter(event_type="Nope").check()
    with pytest.raises(InvalidInput, match="position must be >= 0"):
        TrailFilter(after=-1).check()


def test_a_recipe_needs_every_parameter() -> None:
    training = {
        "epochs": 1,
        "batch_size": 128,
        "lr": 0.002,
        "seed": 3,
        "threads": 2,
        "precision": "fp32",
        "train_samples": 500,
        "device": "cpu",
    }
    meta = {"architecture": "mnist_cnn", "dataset": "fashion_mnist_train", "training": training}
    recipe = recipe_from_metadata(meta, "m v1")
    assert (recipe.seed, recipe.train_samples, recipe.device) == (3, 500, "cpu")
    del training["seed"]
    with pytest.raises(InvalidInput, match=r"m v1 records no full training recipe \(missing: seed"):
        recipe_from_metadata(meta, "m v1")
    with pytest.raises(InvalidInput, match="missing: epochs"):
        recipe_from_metadata({}, "bare v1")


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ", True),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),
        ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", False),
        ("garbage" * 100, False),
        (None, False),
    ],
)
def test_only_a_valid_traceparent_is_recorded(raw: str | None, kept: bool) -> None:
    assert (traceparent(raw) is not None) is kept
