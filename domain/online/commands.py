"""Commands of online evaluation: start and stop a shadow, start and abort a canary, record
paired outcomes, and evaluate what is running (the worker's evaluator, every second)."""

from __future__ import annotations

import msgspec

from events.base import EventMetadata
from events.online import Margins, PairedOutcome

__all__ = ["PairedOutcome", "decode_outcomes", "encode_outcomes"]

_encoder = msgspec.msgpack.Encoder()


def encode_outcomes(rows: list[PairedOutcome]) -> bytes:
    """A ``shadow.outcomes`` entry's ``rows`` field (msgpack)."""
    return _encoder.encode(rows)


def decode_outcomes(raw: bytes) -> list[PairedOutcome]:
    """The rows of a ``shadow.outcomes`` entry."""
    return msgspec.msgpack.decode(raw, type=list[PairedOutcome])


class StartShadow(msgspec.Struct, frozen=True, kw_only=True):
    """Mirror ``fraction`` of prod's answered requests to ``version`` (for ``duration_s``)."""

    model_name: str
    version: str
    fraction: float = 0.1
    duration_s: float | None = None
    margins: Margins = msgspec.field(default_factory=Margins)
    reason: str | None = None
    metadata: EventMetadata


class StopShadow(msgspec.Struct, frozen=True, kw_only=True):
    """Stop the model's shadow."""

    model_name: str
    reason: str | None = None
    metadata: EventMetadata


class StartCanary(msgspec.Struct, frozen=True, kw_only=True):
    """Route ``steps`` percent of the unpinned requests to ``version``, step by step."""

    model_name: str
    version: str
    steps: list[int] = msgspec.field(default_factory=lambda: [5, 25, 50, 100])
    min_requests: int = 500
    max_duration_s: float = 3600.0
    margins: Margins = msgspec.field(default_factory=Margins)
    reason: str | None = None
    metadata: EventMetadata


class AbortCanary(msgspec.Struct, frozen=True, kw_only=True):
    """Stop the model's canary by hand (prod never changed)."""

    model_name: str
    reason: str | None = None
    metadata: EventMetadata


class EvaluateOnline(msgspec.Struct, frozen=True, kw_only=True):
    """Judge the model's running shadow and canary on their outcomes so far and act."""

    model_name: str
    metadata: EventMetadata


class RecordOutcomes(msgspec.Struct, frozen=True, kw_only=True):
    """Store paired outcomes (a redelivered batch stores nothing twice)."""

    rows: list[PairedOutcome]


class GetOnline(msgspec.Struct, frozen=True, kw_only=True):
    """A model's shadow and canary (running and recently ended)."""

    model_name: str
