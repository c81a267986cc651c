"""Read models of the web console (api/ui), pure: model rows, timeline entries, chart points."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol

import msgspec

from domain.audit.reports import AuditReport
from domain.errors import InvalidInput
from domain.registry.gate_evidence import GateOutcome
from domain.registry.views import summarize
from events.base import RecordedEvent
from events.gates import GateErrored, GateEvaluated
from events.online import CanaryAborted, CanaryCompleted, ShadowVerdict
from events.registry import ModelVersionPromoted, ModelVersionRegistered

MAX_SEARCH = 64
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SEARCH = re.compile(r"[a-z0-9_.-]*")


class ModelRow(msgspec.Struct, frozen=True, kw_only=True):
    """One model on the models page: its prod and latest versions and its last change."""

    model_name: str
    prod_version: str | None
    latest_version: str | None
    versions: int
    last_change_at: datetime | None
    last_change_by: str | None
    last_change: str | None


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a model's timeline (its own stream and its gates'), newest first."""

    position: int
    recorded_at: datetime
    event_type: str
    actor: str
    summary: str
    reason: str | None
    trace_id: str | None
    tone: str  # info, success, warning (a forced override), danger (a failed or errored gate)
    gate_id: str | None = None


class VersionPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A version's accuracy and p95 batch latency on its reference dataset, for the charts."""

    model_version: str
    created_at: datetime
    accuracy: float | None
    p95_ms: float | None
    dataset_id: str | None = None  # what the figures were measured on: one series per dataset
    images: int | None = None


class ShardFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A shard that failed a job, with the reason recorded in BatchJobFailed."""

    shard: int | None
    reason: str
    recorded_at: datetime


class AuditRun(msgspec.Struct, frozen=True, kw_only=True):
    """The latest `just audit` (from the CLI or the console): its report, when and by whom."""

    report: AuditReport
    finished_at: datetime
    actor: str
    source: str  # cli or console


class ConsoleReader(Protocol):
    """What the console reads beyond the API's ports; storage.console.queries implements it."""

    async def page_models(
        self, search: str | None, limit: int, cursor: str | None
    ) -> tuple[list[ModelRow], str | None]:
        """Models by name (those containing ``search``), a page at a time."""
        ...

    async def page_versions(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list, str | None]:
        """A model's versions (ModelVersionView), newest first; NotFound if unknown."""
        ...

    async def version_points(self, model_name: str, limit: int) -> list[VersionPoint]:
        """The latest ``limit`` versions' figures, oldest first."""
        ...

    async def page_timeline(
        self, model_name: str, limit: int, cursor: str | None
    ) -> tuple[list[TimelineEntry], str | None]:
        """The model's events and its gates', newest first; NotFound if unknown."""
        ...

    async def shard_failures(self, job_id: str) -> list[ShardFailure]:
        """The failures recorded on a job's stream."""
        ...

    async def candidate_gates(
        self, model_name: str, candidate: str, limit: int
    ) -> list[GateOutcome]:
        """A candidate version's finished gates, newest first (the promote page's evidence)."""
        ...

    async def trace_events(self, trace_id: str, limit: int) -> list[TimelineEntry]:
        """Events recorded under one trace id, newest first."""
        ...

    async def latest_audit(self) -> AuditRun | None:
        """The latest recorded audit run, None before the first."""
        ...

    async def record_audit(self, report: AuditReport, actor: str, source: str) -> None:
        """Keep ``report`` as the latest audit run."""
        ...


class AuditRunner(Protocol):
    """The audit service's one method the console calls (storage.audit.service.AuditService)."""

    async def audit(self) -> AuditReport:
        """Every check over one snapshot."""
        ...


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent (``00-<trace id>-<span id>-<flags>``), else None."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and _TRACE_ID.fullmatch(parts[1]) and parts[1] != "0" * 32:
        return parts[1]
    return None


def check_trace_id(trace_id: str) -> str:
    """A 32-hex-digit trace id, or InvalidInput."""
    if not _TRACE_ID.fullmatch(trace_id):
        raise InvalidInput(f"trace id {trace_id[:80]!r} is not 32 lowercase hex digits")
    return trace_id


def check_search(search: str | None) -> str | None:
    """A model-name search term (part of a name), None when empty; InvalidInput if it cannot match."""
    term = (search or "").strip().lower()
    if not term:
        return None
    if len(term) > MAX_SEARCH or not _SEARCH.fullmatch(term):
        raise InvalidInput(
            f"search {term[:80]!r}: model names hold only a-z, 0-9, '_', '.' and '-' "
            f"(at most {MAX_SEARCH} characters)"
        )
    return term


def tone_of(recorded: RecordedEvent) -> str:
    """How the timeline colours an event: overrides warn, failed gates alarm, passes reassure."""
    e = recorded.event
    if isinstance(e, ModelVersionPromoted) and e.forced:
        return "warning"
    if isinstance(e, GateErrored) or (isinstance(e, GateEvaluated) and e.verdict != "PASS"):
        return "danger"
    if isinstance(e, CanaryAborted) or (isinstance(e, ShadowVerdict) and e.verdict == "FAIL"):
        return "danger"
    if isinstance(e, GateEvaluated | ModelVersionRegistered | CanaryCompleted):
        return "success"
    return "info"


def timeline_entry(recorded: RecordedEvent) -> TimelineEntry:
    """The timeline view of a recorded event."""
    e = recorded.event
    reason = getattr(e, "reason", None)
    if isinstance(e, ModelVersionPromoted) and e.forced:
        reason = reason or e.force_reason
    return TimelineEntry(
        position=recorded.position,
        recorded_at=recorded.recorded_at,
        event_type=type(e).__name__,
        actor=recorded.metadata.actor,
        summary=summarize(recorded),
        reason=reason,
        trace_id=trace_id_of(recorded.metadata.trace_context),
        tone=tone_of(recorded),
        gate_id=getattr(e, "gate_id", None),
    )
