"""The registered-model aggregate: state as a fold over its events, and decisions on commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain import names
from domain.commands import (
    ArchiveModelVersion,
    DemoteModelVersion,
    PromoteModelVersion,
    RecordEvaluation,
    RegisterModelVersion,
    RegistryCommand,
    RollbackModel,
    TagModelVersion,
)
from domain.errors import Conflict, InvalidInput, NotFound
from events.base import Event, RecordedEvent
from events.jobs import EvaluationRecorded
from events.registry import (
    ArtifactMetadata,
    ModelVersionArchived,
    ModelVersionDemoted,
    ModelVersionPromoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
    ModelVersionTagged,
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
class ModelState:
    """A registered model: its versions, its prod version and the stack of past prods."""

    model_name: str
    stream_version: int = 0
    versions: dict[str, VersionState] = field(default_factory=dict)
    prod: str | None = None
    prod_stack: list[str] = field(default_factory=list)
    prod_since: datetime | None = None
    evaluated_jobs: set[str] = field(default_factory=set)

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
        case EvaluationRecorded():
            v = _touch(state, e.model_version, at)
            summary = {"dataset_id": e.dataset_id, "job_id": e.job_id, **e.metrics}
            v.metrics = summary
            v.evaluations[e.dataset_id] = summary
            state.evaluated_jobs.add(e.job_id)
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


def decide(state: ModelState, command: RegistryCommand) -> list[Event]:
    """Check a command against the state; return the events it causes (empty if a no-op)."""
    names.check_model_name(command.model_name)
    reason = names.check_reason(command.reason)
    match command:
        case RegisterModelVersion():
            return _register(state, command)
        case PromoteModelVersion():
            v = _existing(state, command.model_version)
            if v.status == ARCHIVED:
                raise Conflict(f"{state.model_name} {v.model_version} is archived; cannot promote")
            if state.prod == v.model_version:
                return []
            return [
                ModelVersionPromoted(
                    model_name=state.model_name,
                    model_version=v.model_version,
                    previous_prod=state.prod,
                    reason=reason,
                )
            ]
        case RollbackModel():
            _require_model(state)
            if state.prod is None:
                raise Conflict(f"model {state.model_name!r} has no prod version to roll back from")
            target = rollback_target(state)
            if target is None:
                raise Conflict(
                    f"model {state.model_name!r} has no earlier prod version to roll back to "
                    f"(prod is {state.prod}, and it is the first prod)"
                )
            return [
                ModelVersionRolledBack(
                    model_name=state.model_name,
                    from_version=state.prod,
                    to_version=target,
                    reason=reason,
                )
            ]
        case DemoteModelVersion():
            v = _existing(state, command.model_version)
            if state.prod != v.model_version:
                raise Conflict(f"{state.model_name} {v.model_version} is not prod; cannot demote")
            return [
                ModelVersionDemoted(
                    model_name=state.model_name, model_version=v.model_version, reason=reason
                )
            ]
        case TagModelVersion():
            v = _existing(state, command.model_version)
            names.check_tags(command.tags)
            if not command.tags:
                raise InvalidInput("no tags given")
            return [
                ModelVersionTagged(
                    model_name=state.model_name,
                    model_version=v.model_version,
                    tags=dict(command.tags),
                    reason=reason,
                )
            ]
        case ArchiveModelVersion():
            v = _existing(state, command.model_version)
            if v.status == ARCHIVED:
                return []
            if state.prod == v.model_version:
                raise Conflict(
                    f"{state.model_name} {v.model_version} is prod; promote another version "
                    "or demote it before archiving"
                )
            return [
                ModelVersionArchived(
                    model_name=state.model_name, model_version=v.model_version, reason=reason
                )
            ]
        case RecordEvaluation():
            v = _existing(state, command.model_version)
            if command.job_id in state.evaluated_jobs:
                return []
            return [
                EvaluationRecorded(
                    model_name=state.model_name,
                    model_version=v.model_version,
                    job_id=command.job_id,
                    dataset_id=command.dataset_id,
                    metrics=command.metrics,
                )
            ]
    raise InvalidInput(f"unknown command {type(command).__name__}")


def rollback_target(state: ModelState) -> str | None:
    """The version that was prod before the current one, skipping archived versions."""
    for version in reversed(state.prod_stack[:-1]):
        if version != state.prod and state.versions[version].status != ARCHIVED:
            return version
    return None


def _register(state: ModelState, cmd: RegisterModelVersion) -> list[Event]:
    names.check_version(cmd.model_version)
    names.check_tags(cmd.tags)
    existing = state.versions.get(cmd.model_version)
    if existing is not None:
        if existing.sha256 == cmd.sha256:
            return []
        raise Conflict(
            f"{cmd.model_name} {cmd.model_version} is already registered with sha256 "
            f"{existing.sha256[:12]}…; versions are immutable, register a new version"
        )
    return [
        ModelVersionRegistered(
            model_name=cmd.model_name,
            model_version=cmd.model_version,
            artifact_uri=cmd.artifact_uri,
            sha256=cmd.sha256,
            size_bytes=cmd.size_bytes,
            metadata=cmd.metadata,
            tags=dict(cmd.tags),
            reason=cmd.reason,
        )
    ]


def _require_model(state: ModelState) -> None:
    if not state.exists:
        raise NotFound(f"unknown model {state.model_name!r}")


def _existing(state: ModelState, version: str) -> VersionState:
    _require_model(state)
    names.check_version(version)
    try:
        return state.versions[version]
    except KeyError:
        known = ", ".join(state.versions) or "none"
        raise NotFound(
            f"model {state.model_name!r} has no version {version!r} (known: {known})"
        ) from None
