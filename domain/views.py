"""Read models returned by queries: plain structs, shaped for the API and the CLI."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from events.base import RecordedEvent
from events.jobs import EvaluationRecorded
from events.registry import (
    ModelVersionArchived,
    ModelVersionDemoted,
    ModelVersionPromoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
    ModelVersionTagged,
)


class ModelSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One row of GET /models (the original shape)."""

    model_name: str
    model_version: str
    status: str
    created_at: datetime


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
    metrics: dict[str, Any] | None = None
    evaluations: dict[str, Any] = {}


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
    """A one-line human description of a registry event."""
    e = recorded.event
    match e:
        case ModelVersionRegistered():
            return f"registered {e.model_version} (sha256 {e.sha256[:12]})"
        case ModelVersionPromoted():
            prev = f", demoted {e.previous_prod}" if e.previous_prod else ""
            return f"promoted {e.model_version} to prod{prev}"
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
    return type(e).__name__


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
