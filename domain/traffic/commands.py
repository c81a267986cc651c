"""Commands of traffic capture: set a capture policy, record captured requests and labels,
freeze captured requests into a dataset."""

from __future__ import annotations

from datetime import datetime

import msgspec

from events.base import EventMetadata
from events.traffic import CapturedRow

__all__ = ["CapturedRow", "decode_rows", "encode_rows"]


_encoder = msgspec.msgpack.Encoder()


def encode_rows(rows: list[CapturedRow]) -> bytes:
    """A ``traffic.captured`` entry's ``rows`` field (msgpack)."""
    return _encoder.encode(rows)


def decode_rows(raw: bytes) -> list[CapturedRow]:
    """The rows of a ``traffic.captured`` entry."""
    return msgspec.msgpack.decode(raw, type=list[CapturedRow])


class SetCapturePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Replace a model's capture policy (CapturePolicySet; a repeat records nothing)."""

    model_name: str
    fraction: float
    max_per_s: float
    retention_days: int
    reason: str | None = None
    metadata: EventMetadata


class GetCapturePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """A model's capture policy (fraction 0 when none was ever set)."""

    model_name: str


class RecordCaptured(msgspec.Struct, frozen=True, kw_only=True):
    """Store captured requests (a redelivered batch stores nothing twice)."""

    rows: list[CapturedRow]


class RecordFeedback(msgspec.Struct, frozen=True, kw_only=True):
    """True labels of captured requests: all of them or none."""

    items: list[tuple[str, int]]


class FreezeTrafficDataset(msgspec.Struct, frozen=True, kw_only=True):
    """Freeze a model's captured requests (in [since, until)) into ``traffic:<name>``."""

    model_name: str
    dataset_id: str
    since: datetime | None = None
    until: datetime | None = None
    labelled_only: bool = False
    reason: str | None = None
    metadata: EventMetadata
