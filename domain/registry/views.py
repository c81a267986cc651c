"""Read models returned by queries: plain structs, shaped for the API and the CLI."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from domain.registry.reference import ReferenceAccuracy
from domain.registry.summaries import ONLINE_EVENTS, TRAFFIC_EVENTS, online_summary, traffic_summary
from events.base import RecordedEvent
from events.gates import GateErrored, GateEvaluated, GateEvaluationsRequested, GateRequested
from events.jobs import EvaluationRecorded
from events.registry import (
    GatePolicySet,
    ModelVersionArchived,
    ModelVersionDemoted,
    ModelVersionPromoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
    ModelVersionTagged,
    PromotionApproved,
    PromotionRequested,
)


class ModelSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One row of GET /models: the original shape, and the accuracy on the reference dataset."""

    model_name: str
    model_version: str
    status: str
    created_at: datetime
    reference_dataset: str | None = None
    accuracy: ReferenceAccuracy | None = None


class ModelVersionView(msgspec.Struct, frozen=True, kw_only=True):
    """A version with everything the registry knows about it."""

    model_name: str
    model_version: str
    status: str
    created_at: datetime
    updated_at: datetime
    registered_by: str
    sha256: str
    size_bytes: int
    artifact_uri: str
    tags: dict[str, str]
    metadata: dict[str, Any]
    # The evaluation on ``reference_dataset`` (its figure in ``accuracy``); ``evaluations`` has
    # the latest on every dataset.
    metrics: dict[str, Any] | None = None
    evaluations: dict[str, Any] = {}
    reference_dataset: str | None = None
    accuracy: ReferenceAccuracy | None = None


class HistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One fact of a model's audit trail, read from the log."""

    position: int
    recorded_at: datetime
    event_type: str
    actor: str
    summary: str
    reason: str | None
    correlation_id: uuid.UUID
    event_id: uuid.UUID
    details: dict[str, Any]


def summarize(recorded: RecordedEvent) -> str:
    """A one-line human description of an event of a model's history."""
    e = recorded.event
    if isinstance(e, ONLINE_EVENTS):
        return online_summary(e)
    if isinstance(e, TRAFFIC_EVENTS):
        return traffic_summary(e)
    match e:
        case ModelVersionRegistered():
            return f"registered {e.model_version} (sha256 {e.sha256[:12]})"
        case ModelVersionPromoted():
            prev = f", demoted {e.previous_prod}" if e.previous_prod else ""
            how = f" FORCED past the gate policy ({e.force_reason})" if e.forced else ""
            gate = f", cleared by gate {e.gate_id[:8]}" if e.gate_id else ""
            eyes = (
                f", requested by {e.requested_by}, approved by {', '.join(e.approved_by)}"
                if e.requested_by
                else ""
            )
            return f"promoted {e.model_version} to prod{prev}{gate}{how}{eyes}"
        case PromotionRequested():
            return (
                f"requested promotion of {e.model_version} to prod ({e.approvals_required} keys "
                f"needed, until {e.expires_at:%Y-%m-%d %H:%M} UTC)"
            )
        case PromotionApproved():
            return f"approved the promotion of {e.model_version} requested by {e.requested_by}"
        case ModelVersionRolledBack():
            return f"rolled back prod from {e.from_version} to {e.to_version}"
        case ModelVersionDemoted():
            return f"demoted {e.model_version} from prod"
        case ModelVersionTagged():
            return f"tagged {e.model_version}: " + ", ".join(f"{k}={v}" for k, v in e.tags.items())
        case ModelVersionArchived():
            return f"archived {e.model_version}"
        case EvaluationRecorded():
            acc = e.metrics.get("accuracy")
            score = f": accuracy {acc:.4f}" if isinstance(acc, int | float) else ""
            return f"evaluated {e.model_version} on {e.dataset_id}{score} (job {e.job_id[:8]})"
        case GatePolicySet():
            return policy_summary(e)
        case GateRequested() | GateEvaluationsRequested() | GateEvaluated() | GateErrored():
            return gate_summary(e)
    return type(e).__name__


def policy_summary(e: GatePolicySet) -> str:
    """One line for a gate policy."""
    p, t = e.policy, e.policy.thresholds
    flags = ", ".join(
        f"{name} {'on' if value else 'off'}"
        for name, value in (
            ("require_gate", p.require_gate),
            ("auto_gate", p.auto_gate),
            ("auto_promote", p.auto_promote),
        )
    )
    return (
        f"gate policy: {flags}; non-inferior within {t.max_accuracy_drop * 100:g} pts accuracy "
        f"and {t.max_latency_increase:.0%} latency at one-sided alpha {t.alpha:g}, at least "
        f"{t.min_images} images, INCONCLUSIVE {'blocks' if p.on_inconclusive == 'block' else 'clears'}"
        f", gates valid {p.max_gate_age_s}s"
    )


def gate_summary(e: GateRequested | GateEvaluationsRequested | GateEvaluated | GateErrored) -> str:
    """One line for a gate event in its model's history."""
    gate = f"gate {e.gate_id[:8]}"
    match e:
        case GateRequested():
            how = f"automatic (job {e.cause[:8]})" if e.auto and e.cause else "requested"
            vs = f"{e.candidate_version} vs {e.baseline_version} on {e.dataset_id}"
            return f"{gate} {how}: {vs}"
        case GateEvaluationsRequested():
            jobs = f"jobs {e.candidate_job_id[:8]} and {e.baseline_job_id[:8]}"
            if e.candidate_job_id == e.baseline_job_id:
                jobs = f"job {e.candidate_job_id[:8]} (one version against itself)"
            new = len(set(e.submitted))
            how = f"submitted {new} of them" if new else "recorded evaluations reused"
            return f"{gate} compares {jobs}: {how}"
        case GateEvaluated():
            parts = [
                f"{c.name} {c.verdict}" + (f" (p={c.p_value:.3g})" if c.p_value is not None else "")
                for c in e.checks
            ]
            vs = f"{e.candidate_version} vs {e.baseline_version} on {e.dataset_id}"
            needs = f"; needs {e.needed}" if e.needed else ""
            return f"{gate} {e.verdict}: {vs}; " + ", ".join(parts) + needs
        case GateErrored():
            return f"{gate} errored: {e.reason}"
    return gate


def history_entry(recorded: RecordedEvent) -> HistoryEntry:
    """The audit view of a recorded event."""
    details = msgspec.to_builtins(recorded.event)
    details.pop("type", None)
    return HistoryEntry(
        position=recorded.position,
        recorded_at=recorded.recorded_at,
        event_type=type(recorded.event).__name__,
        actor=recorded.metadata.actor,
        summary=summarize(recorded),
        reason=getattr(recorded.event, "reason", None),
        correlation_id=recorded.metadata.correlation_id,
        event_id=recorded.event_id,
        details=details,
    )


class Progress(msgspec.Struct, frozen=True):
    """How far a job has got, in images."""

    done: int
    total: int


class JobView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /batch/status/{job_id} (the original shape, extended)."""

    job_id: str
    status: str
    model_name: str
    model_version: str
    dataset_id: str
    progress: Progress
    result_metrics: dict[str, Any] | None = None
    error: str | None = None
    batch_size: int
    shards: int
    shards_done: int
    submitted_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
