"""Commands: what a user asks the registry to do, in the imperative."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from domain.registry.gate_policy import GateOutcome
from events.gates import GatePolicy
from events.registry import ArtifactMetadata


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every command."""

    reason: str | None = None


class RegisterModelVersion(Command, frozen=True, kw_only=True):
    """Add an immutable version whose artifact is already stored and hashed."""

    model_name: str
    model_version: str
    artifact_uri: str
    sha256: str
    size_bytes: int
    metadata: ArtifactMetadata = msgspec.field(default_factory=ArtifactMetadata)
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class PromoteModelVersion(Command, frozen=True, kw_only=True):
    """Make a version prod, demoting the current prod.

    The gate policy is checked against ``gates`` (the model's finished gates of this candidate,
    looked up by the handler) at ``now``; ``force`` overrides a required gate and needs
    ``reason``; ``gate_id`` names the gate that caused the promotion (auto-promotion).
    """

    model_name: str
    model_version: str
    force: bool = False
    gate_id: str | None = None
    gates: tuple[GateOutcome, ...] = ()
    now: datetime | None = None


class DemoteModelVersion(Command, frozen=True, kw_only=True):
    """Take the prod version out of prod."""

    model_name: str
    model_version: str


class RollbackModel(Command, frozen=True, kw_only=True):
    """Restore the version that was prod before the current one."""

    model_name: str


class TagModelVersion(Command, frozen=True, kw_only=True):
    """Set tags on a version."""

    model_name: str
    model_version: str
    tags: dict[str, str]


class ArchiveModelVersion(Command, frozen=True, kw_only=True):
    """Retire a version so it can no longer be promoted."""

    model_name: str
    model_version: str


class SetGatePolicy(Command, frozen=True, kw_only=True):
    """Replace a model's gate policy."""

    model_name: str
    policy: GatePolicy


class RecordEvaluation(Command, frozen=True, kw_only=True):
    """Attach a batch job's metrics to the version it evaluated."""

    model_name: str
    model_version: str
    job_id: str
    dataset_id: str
    metrics: dict[str, Any]


RegistryCommand = (
    RegisterModelVersion
    | PromoteModelVersion
    | DemoteModelVersion
    | RollbackModel
    | TagModelVersion
    | ArchiveModelVersion
    | RecordEvaluation
    | SetGatePolicy
)
