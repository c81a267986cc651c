"""Read models of gates: the projection row a gate's state becomes, and its API shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from domain.gates.aggregate import GateState
from domain.gates.verdict import evidence_needed
from domain.registry.gate_policy import GateOutcome
from events.gates import (
    INCONCLUSIVE,
    AccuracyFigures,
    GateCheck,
    GateThresholds,
    LatencyFigures,
)


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
    # INCONCLUSIVE: the evidence still needed, in words (from the checks).
    needed: str | None = None


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
    # Keys as plain str: a driver's row may name columns with str subclasses msgspec refuses.
    view = msgspec.convert({str(k): v for k, v in row.items()}, GateView, strict=False)
    if view.verdict == INCONCLUSIVE:
        view = msgspec.structs.replace(view, needed=evidence_needed(view.checks))
    return view


def outcome_of(row: dict[str, Any]) -> GateOutcome:
    """A finished gate's projection row as the promotion rule reads it (images from accuracy)."""
    accuracy = row.get("accuracy") or {}
    return GateOutcome(
        gate_id=row["gate_id"],
        model_name=row["model_name"],
        candidate_version=row["candidate_version"],
        baseline_version=row["baseline_version"],
        verdict=row["verdict"],
        decided_at=row["decided_at"],
        dataset_id=row.get("dataset_id") or "",
        images=accuracy.get("images"),
        needed=_needed(row),
    )


def _needed(row: dict[str, Any]) -> str | None:
    if row.get("verdict") != INCONCLUSIVE:
        return None
    checks = msgspec.convert(row.get("checks") or [], list[GateCheck], strict=False)
    return evidence_needed(checks)
