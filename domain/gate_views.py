"""Read models of gates: the projection row a gate's state becomes, its API shape, page cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import msgspec

from domain.errors import InvalidInput
from domain.gates import GateState
from events.gates import AccuracyFigures, GateCheck, GateThresholds, LatencyFigures

MAX_PAGE = 200


class GateView(msgspec.Struct, frozen=True, kw_only=True):
    """GET /gates/{id}: what was compared, how far it got, and the verdict with every check."""

    gate_id: str
    model_name: str
    candidate_version: str
    baseline_version: str
    dataset_id: str
    status: str
    verdict: str | None = None
    checks: list[GateCheck] = []
    accuracy: AccuracyFigures | None = None
    latency: LatencyFigures | None = None
    error: str | None = None
    thresholds: GateThresholds = GateThresholds()
    auto: bool = False
    cause: str | None = None
    requested_by: str
    requested_at: datetime
    decided_at: datetime | None = None
    candidate_job_id: str | None = None
    baseline_job_id: str | None = None
    submitted: list[str] = []


class GatePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a model's gates, newest first; ask again with ``cursor=next_cursor``."""

    gates: list[GateView]
    next_cursor: str | None = None


def gate_row(state: GateState) -> dict[str, Any]:
    """The ``gates`` projection row of a gate (plain values; JSON columns as builtins)."""
    return {
        "gate_id": state.gate_id,
        "model_name": state.model_name,
        "candidate_version": state.candidate_version,
        "baseline_version": state.baseline_version,
        "dataset_id": state.dataset_id,
        "status": state.status,
        "verdict": state.verdict,
        "auto": state.auto,
        "cause": state.cause,
        "requested_by": state.requested_by or "",
        "requested_at": state.requested_at,
        "decided_at": state.decided_at,
        "candidate_job_id": state.candidate_job_id,
        "baseline_job_id": state.baseline_job_id,
        "submitted": list(state.submitted),
        "thresholds": msgspec.to_builtins(state.thresholds),
        "checks": msgspec.to_builtins(state.checks),
        "accuracy": msgspec.to_builtins(state.accuracy),
        "latency": msgspec.to_builtins(state.latency),
        "error": state.error,
    }


def gate_view(row: dict[str, Any]) -> GateView:
    """A projection row as the API shows it."""
    return msgspec.convert(row, GateView, from_attributes=False, strict=False)


def encode_cursor(requested_at: datetime, gate_id: str) -> str:
    """An opaque cursor naming the last gate of a page (time and id break ties)."""
    raw = f"{requested_at.isoformat()}|{gate_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (requested_at, gate_id) a cursor names; InvalidInput for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, sep, gate_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        if not sep or not gate_id:
            raise ValueError(cursor)
        return datetime.fromisoformat(at), gate_id
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidInput(
            f"invalid cursor {cursor[:80]!r}: pass the next_cursor of the previous page"
        ) from None


def check_limit(limit: int) -> int:
    """Page sizes are 1..MAX_PAGE."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be an integer between 1 and {MAX_PAGE}, got {limit!r}")
    return limit
