"""The registered-model aggregate: decisions on commands (its state lives in registry_state)."""

from __future__ import annotations

from domain import names
from domain.errors import Conflict, InvalidInput, NotFound, UnknownModel
from domain.registry import approvals
from domain.registry.commands import (
    ApprovePromotion,
    ArchiveModelVersion,
    DemoteModelVersion,
    PromoteModelVersion,
    RecordEvaluation,
    RecordRegistration,
    RegistryCommand,
    RollbackModel,
    SetGatePolicy,
    TagModelVersion,
)
from domain.registry.gate_policy import check_policy
from domain.registry.state import (
    ARCHIVED,
    PROD,
    STAGING,
    ModelState,
    VersionState,
    evolve,
    fold,
)
from events.base import Event
from events.jobs import EvaluationRecorded
from events.registry import (
    GatePolicySet,
    ModelVersionArchived,
    ModelVersionDemoted,
    ModelVersionRegistered,
    ModelVersionRolledBack,
    ModelVersionTagged,
)

# The state's names are re-exported: callers know the aggregate as domain.registry.decisions.
__all__ = [
    "ARCHIVED",
    "PROD",
    "STAGING",
    "ModelState",
    "VersionState",
    "decide",
    "evolve",
    "fold",
    "rollback_target",
]


def decide(state: ModelState, command: RegistryCommand) -> list[Event]:
    """Check a command against the state; return the events it causes (empty if a no-op)."""
    names.check_model_name(command.model_name)
    reason = names.check_reason(command.reason)
    match command:
        case RecordRegistration():
            return _register(state, command)
        case PromoteModelVersion():
            v = _existing(state, command.model_version)
            if v.status == ARCHIVED:
                raise Conflict(f"{state.model_name} {v.model_version} is archived; cannot promote")
            if state.prod == v.model_version:
                return []
            return approvals.promote(state, v, command, reason)
        case ApprovePromotion():
            v = _existing(state, command.model_version)
            if v.status == ARCHIVED:
                raise Conflict(f"{state.model_name} {v.model_version} is archived; cannot promote")
            if state.prod == v.model_version:
                raise Conflict(f"{state.model_name} {v.model_version} is already prod")
            return approvals.approve(state, v, command, reason)
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
        case SetGatePolicy():
            _require_model(state)
            if check_policy(command.policy) == state.policy:
                return []
            return [
                GatePolicySet(model_name=state.model_name, policy=command.policy, reason=reason)
            ]
    raise InvalidInput(f"unknown command {type(command).__name__}")


def rollback_target(state: ModelState) -> str | None:
    """The version that was prod before the current one, skipping archived versions."""
    for version in reversed(state.prod_stack[:-1]):
        if version != state.prod and state.versions[version].status != ARCHIVED:
            return version
    return None


def _register(state: ModelState, cmd: RecordRegistration) -> list[Event]:
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
        raise UnknownModel(state.model_name)


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
