"""The registered-model aggregate's state: a fold over the model's events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.base import RecordedEvent
from events.gates import GatePolicy
from events.jobs import EvaluationRecorded
from events.registry import (
    ArtifactMetadata,
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

STAGING, PROD, ARCHIVED = "staging", "prod", "archived"


@dataclass
class VersionState:
    """One version as the registry sees it now."""

    model_name: str
    model_version: str
    status: str
    artifact_uri: str
    sha256: str
    size_bytes: int
    metadata: ArtifactMetadata
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    registered_by: str
    metrics: dict[str, Any] | None = None
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PendingPromotion:
    """A promotion request waiting for approvals (four eyes): who asked, who approved, until when."""

    request_id: str
    model_version: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    approvals_required: int
    reason: str | None = None
    forced: bool = False
    gate_id: str | None = None
    canary_id: str | None = None
    canary_prod: str | None = None
    approved_by: list[str] = field(default_factory=list)


@dataclass
class ModelState:
    """A registered model: its versions, its prod version and the stack of past prods."""

    model_name: str
    stream_version: int = 0
    versions: dict[str, VersionState] = field(default_factory=dict)
    prod: str | None = None
    prod_stack: list[str] = field(default_factory=list)
    prod_since: datetime | None = None
    evaluated_jobs: set[str] = field(default_factory=set)
    policy: GatePolicy = field(default_factory=GatePolicy)
    # Promotion requests waiting for approvals, by version (one open request per version).
    requests: dict[str, PendingPromotion] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        """True once the first version is registered."""
        return bool(self.versions)


def fold(model_name: str, history: list[RecordedEvent]) -> ModelState:
    """Rebuild a model's state from its events, oldest first."""
    state = ModelState(model_name=model_name)
    for recorded in history:
        evolve(state, recorded)
    return state


def evolve(state: ModelState, recorded: RecordedEvent) -> ModelState:
    """Apply one recorded event to the state (in place) and return it."""
    e, at = recorded.event, recorded.recorded_at
    state.stream_version = recorded.stream_version
    match e:
        case ModelVersionRegistered():
            state.versions[e.model_version] = VersionState(
                model_name=e.model_name,
                model_version=e.model_version,
                status=STAGING,
                artifact_uri=e.artifact_uri,
                sha256=e.sha256,
                size_bytes=e.size_bytes,
                metadata=e.metadata,
                tags=dict(e.tags),
                created_at=at,
                updated_at=at,
                registered_by=recorded.metadata.actor,
            )
        case ModelVersionPromoted():
            _set_prod(state, e.model_version, at)
            state.prod_stack.append(e.model_version)
            state.requests.pop(e.model_version, None)
        case PromotionRequested():
            state.requests[e.model_version] = PendingPromotion(
                request_id=e.request_id,
                model_version=e.model_version,
                requested_by=recorded.metadata.actor,
                requested_at=at,
                expires_at=e.expires_at,
                approvals_required=e.approvals_required,
                reason=e.reason,
                forced=e.forced,
                gate_id=e.gate_id,
                canary_id=e.canary_id,
                canary_prod=e.canary_prod,
            )
        case PromotionApproved():
            pending = state.requests.get(e.model_version)
            if pending is not None and pending.request_id == e.request_id:
                pending.approved_by.append(recorded.metadata.actor)
        case ModelVersionRolledBack():
            if state.prod_stack and state.prod_stack[-1] == e.from_version:
                state.prod_stack.pop()
            # Archived entries between the two are skipped by the decision; drop them here too.
            while state.prod_stack and state.prod_stack[-1] != e.to_version:
                state.prod_stack.pop()
            if not state.prod_stack:
                state.prod_stack.append(e.to_version)
            _set_prod(state, e.to_version, at)
        case ModelVersionDemoted():
            _touch(state, e.model_version, at).status = STAGING
            state.prod, state.prod_since = None, at
        case ModelVersionTagged():
            v = _touch(state, e.model_version, at)
            for key, value in e.tags.items():
                if value:
                    v.tags[key] = value
                else:
                    v.tags.pop(key, None)
        case ModelVersionArchived():
            _touch(state, e.model_version, at).status = ARCHIVED
            state.requests.pop(e.model_version, None)
        case EvaluationRecorded():
            v = _touch(state, e.model_version, at)
            summary = {"dataset_id": e.dataset_id, "job_id": e.job_id, **e.metrics}
            v.metrics = summary
            v.evaluations[e.dataset_id] = summary
            state.evaluated_jobs.add(e.job_id)
        case GatePolicySet():
            state.policy = e.policy
    return state


def _touch(state: ModelState, version: str, at: datetime) -> VersionState:
    v = state.versions[version]
    v.updated_at = at
    return v


def _set_prod(state: ModelState, version: str, at: datetime) -> None:
    if state.prod and state.prod != version:
        _touch(state, state.prod, at).status = STAGING
    _touch(state, version, at).status = PROD
    state.prod, state.prod_since = version, at
