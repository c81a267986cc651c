"""A trail line's reason: the person's reason, else what a worker's decision says (its ``why``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from domain.audit.reports import trail_from_parts
from events.codec import encode_event
from events.online import CanaryAborted
from events.registry import ModelVersionPromoted


def _entry(event):
    envelope = (
        7,
        datetime(2026, 12, 6, tzinfo=UTC),
        "worker:shadow-evaluation@w1",
        type(event).__name__,
        "online-m",
        uuid.uuid4(),
        None,
        None,
        uuid.uuid4(),
        1,
    )
    return trail_from_parts(envelope, encode_event(event), {})


def test_an_aborted_canary_shows_why_it_was_aborted() -> None:
    why = "accuracy FAIL: -0.0285 [-0.0390, -0.0180] on 3,163"
    aborted = CanaryAborted(model_name="m", canary_id="c-1", step=1, check="accuracy", why=why)
    entry = _entry(aborted)
    assert entry.reason == why and entry.model_name == "m"


def test_a_persons_reason_wins() -> None:
    promoted = ModelVersionPromoted(model_name="m", model_version="v2", reason="release 2")
    assert _entry(promoted).reason == "release 2"
